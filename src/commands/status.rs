use std::path::Path;

use anyhow::Result;
use serde_json::json;

use crate::cache::{CacheSpec, LABEL_MODE};
use crate::cli::SelectArgs;
use crate::clock;
use crate::context::Context;
use crate::errors::ExitStatus;
use crate::host::autostart;
use crate::hostinfo::{self, HostOs};
use crate::reconcile::Facts;
use crate::registry_http;
use crate::ui::{human_bytes, human_duration, table, Tone};

/// One row of the status report.
#[derive(Debug)]
struct Row<'a> {
    spec: &'a CacheSpec,
    state: String,
    volume_exists: bool,
    ready: bool,
    /// The mode the container was created in (its label), when it exists.
    mode: Option<String>,
    /// The image the container runs, when it exists.
    image: Option<String>,
    /// Repositories in the cache (`/v2/_catalog`), when it answers.
    repositories: Option<usize>,
    /// Disk used by the volume, when its mountpoint is readable here.
    disk_bytes: Option<u64>,
    uptime_seconds: Option<u64>,
}

pub fn run(ctx: &Context, args: &SelectArgs) -> Result<ExitStatus> {
    let specs = ctx.specs(&args.registries)?;
    let podman = ctx.podman()?;
    let facts = Facts::read(&podman)?;
    // On macOS the volume's mountpoint is a path inside the podman machine.
    let volumes_readable = hostinfo::host_os() != HostOs::Macos;
    let now = clock::unix_now();
    let rows: Vec<Row> = crate::parallel::map(&specs, |spec| {
        let container = facts.container(&spec.container);
        let running = container.is_some_and(|c| c.is_running());
        let volume = facts.volume(&spec.volume);
        let addr = spec.probe_addr();
        // A cache that is not running cannot answer; skip the probes.
        let ready = running && registry_http::probe(&addr).is_ready();
        Row {
            spec,
            state: container.map_or_else(|| "missing".to_string(), |c| c.state.clone()),
            volume_exists: volume.is_some(),
            ready,
            mode: container
                .and_then(|c| c.label(LABEL_MODE))
                .map(str::to_string),
            image: container.map(|c| c.image.clone()),
            repositories: ready
                .then(|| registry_http::catalog(&addr).ok().map(|r| r.len()))
                .flatten(),
            disk_bytes: volume
                .filter(|v| volumes_readable && !v.mountpoint.is_empty())
                .and_then(|v| hostinfo::disk_usage(Path::new(&v.mountpoint))),
            uptime_seconds: container.and_then(|c| c.uptime(now)),
        }
    });

    let autostart = autostart::Status::read(&ctx.config.prefix);
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
                    "mode": r.mode,
                    "image": r.image,
                    "repositories": r.repositories,
                    "disk_bytes": r.disk_bytes,
                    "uptime_seconds": r.uptime_seconds,
                })
            })
            .collect();
        ctx.ui
            .data(&json!({ "caches": caches, "autostart": autostart.to_json() }).to_string());
    } else if !ctx.ui.quiet {
        let ui = &ctx.ui;
        let dash = || "-".to_string();
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.spec.registry.name.clone(),
                    r.spec.registry.port.to_string(),
                    r.state.clone(),
                    if r.ready {
                        ui.paint(Tone::Good, "yes")
                    } else {
                        ui.paint(Tone::Bad, "no")
                    },
                    r.mode.clone().unwrap_or_else(dash),
                    r.repositories.map_or_else(dash, |n| n.to_string()),
                    match (r.volume_exists, r.disk_bytes) {
                        (false, _) => "no volume".to_string(),
                        (true, Some(b)) => human_bytes(b),
                        (true, None) => "?".to_string(),
                    },
                    r.uptime_seconds.map_or_else(dash, human_duration),
                    r.spec.registry.upstream.clone(),
                    r.image.clone().unwrap_or_else(dash),
                ]
            })
            .collect();
        ui.human(&table(
            &[
                "REGISTRY", "PORT", "STATE", "READY", "MODE", "REPOS", "DISK", "UP", "UPSTREAM",
                "IMAGE",
            ],
            &cells,
        ));
        ui.human(&format!("autostart: {}", autostart.describe(now)));
    }
    let not_ready: Vec<&str> = rows
        .iter()
        .filter(|r| !r.ready)
        .map(|r| r.spec.registry.name.as_str())
        .collect();
    if not_ready.is_empty() {
        return Ok(ExitStatus::Success);
    }
    ctx.ui.verdict(&format!(
        "not ready: {}; run `drcache start`",
        not_ready.join(", ")
    ));
    Ok(ExitStatus::NotReady)
}
