use anyhow::Result;
use serde_json::json;

use crate::cache::CacheSpec;
use crate::cli::SelectArgs;
use crate::context::Context;
use crate::errors::{exit, Unsatisfied};
use crate::reconcile::Facts;
use crate::registry_http;
use crate::ui::{table, Tone};

/// One row of the status report.
#[derive(Debug)]
struct Row<'a> {
    spec: &'a CacheSpec,
    state: String,
    volume_exists: bool,
    ready: bool,
}

pub fn run(ctx: &Context, args: &SelectArgs) -> Result<()> {
    let specs = ctx.specs(&args.registries)?;
    let podman = ctx.podman()?;
    let facts = Facts::read(&podman)?;
    let rows: Vec<Row> = super::parallel(&specs, |spec| {
        let container = facts.container(&spec.container);
        let running = container.is_some_and(|c| c.is_running());
        Row {
            spec,
            state: container.map_or_else(|| "missing".to_string(), |c| c.state.clone()),
            volume_exists: facts.volume(&spec.volume).is_some(),
            // A cache that is not running cannot answer; skip the probe.
            ready: running && registry_http::probe(&spec.probe_addr()).is_ready(),
        }
    });

    if ctx.json {
        let caches: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "registry": r.spec.registry.name,
                    "upstream": r.spec.registry.upstream,
                    "port": r.spec.registry.port,
                    "container": r.spec.container,
                    "volume": r.spec.volume,
                    "volume_exists": r.volume_exists,
                    "state": r.state,
                    "ready": r.ready,
                })
            })
            .collect();
        println!("{}", json!({ "caches": caches }));
    } else if !ctx.ui.quiet {
        let ui = &ctx.ui;
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.spec.registry.name.clone(),
                    r.spec.registry.upstream.clone(),
                    r.spec.registry.port.to_string(),
                    r.spec.container.clone(),
                    if r.volume_exists {
                        r.spec.volume.clone()
                    } else {
                        format!("{} (missing)", r.spec.volume)
                    },
                    r.state.clone(),
                    if r.ready {
                        ui.paint(Tone::Good, "yes")
                    } else {
                        ui.paint(Tone::Bad, "no")
                    },
                ]
            })
            .collect();
        eprintln!(
            "{}",
            table(
                &[
                    "REGISTRY",
                    "UPSTREAM",
                    "PORT",
                    "CONTAINER",
                    "VOLUME",
                    "STATE",
                    "READY"
                ],
                &cells
            )
        );
    }
    let not_ready: Vec<&str> = rows
        .iter()
        .filter(|r| !r.ready)
        .map(|r| r.spec.registry.name.as_str())
        .collect();
    if not_ready.is_empty() {
        Ok(())
    } else {
        Err(Unsatisfied {
            message: format!("not ready: {}; run `drcache start`", not_ready.join(", ")),
            code: exit::NOT_READY,
        }
        .into())
    }
}
