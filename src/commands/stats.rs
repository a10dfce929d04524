use anyhow::Result;
use serde_json::json;

use crate::cache::{CacheSpec, Mode, DEBUG_PORT, LABEL_MODE};
use crate::cli::SelectArgs;
use crate::clock;
use crate::context::Context;
use crate::errors::ExitStatus;
use crate::metrics::{Counts, Format, ProxyStats};
use crate::registry_http;
use crate::ui::{human_bytes, human_duration, table, Tone, Ui};

const RESET_NOTE: &str =
    "counters count since each cache last started: they reset when a cache restarts";
const DOUBLE_FETCH_NOTE: &str =
    "registry 2.8 fetches every missed blob from the upstream twice (for the client and for the cache); the upstream bytes include both";

/// Why an offline cache has no counters to show.
const OFFLINE_REASON: &str = "offline mode: the registry runs without an upstream, so it keeps no \
     proxy counters; it serves what is cached (`drcache start` returns it to proxy mode)";

#[derive(Debug)]
struct Row<'a> {
    spec: &'a CacheSpec,
    state: String,
    /// `proxy` or `offline`, from the container's label; None when missing.
    mode: Option<String>,
    uptime_seconds: Option<u64>,
    /// None when the cache is not running.
    stats: Option<Result<ProxyStats, String>>,
}

pub fn run(ctx: &Context, args: &SelectArgs) -> Result<ExitStatus> {
    let specs = ctx.specs(&args.registries)?;
    let podman = ctx.podman()?;
    let containers = podman.containers()?;
    let now = clock::unix_now();
    let rows: Vec<Row> = crate::parallel::map(&specs, |spec| {
        let container = containers.iter().find(|c| c.name() == spec.container);
        let running = container.is_some_and(|c| c.is_running());
        let mode = container
            .and_then(|c| c.label(LABEL_MODE))
            .map(str::to_string);
        let offline = mode.as_deref() == Some(Mode::Offline.as_str());
        let stats =
            (running && !offline).then(|| match container.and_then(|c| c.host_port(DEBUG_PORT)) {
                Some(port) => registry_http::proxy_stats(&format!("127.0.0.1:{port}")),
                None => Err(format!(
                    "{} publishes no debug port (created by another tool or an older drcache); \
                     `drcache start {}` recreates it, keeping its data",
                    spec.container, spec.registry.name
                )),
            });
        Row {
            spec,
            state: container.map_or_else(|| "missing".to_string(), |c| c.state.clone()),
            mode,
            uptime_seconds: container.and_then(|c| c.uptime(now)),
            stats,
        }
    });

    if ctx.json {
        print_json(&ctx.ui, &rows);
    } else if !ctx.ui.quiet {
        print_table(ctx, &rows);
    }
    let failed: Vec<String> = rows
        .iter()
        .filter_map(|r| match &r.stats {
            Some(Err(e)) => Some(format!("{}: {e}", r.spec.registry.name)),
            _ => None,
        })
        .collect();
    if failed.is_empty() {
        return Ok(ExitStatus::Success);
    }
    ctx.ui.verdict(&format!(
        "cannot read the counters of {}",
        failed.join("; ")
    ));
    Ok(ExitStatus::Failure)
}

fn print_json(ui: &Ui, rows: &[Row]) {
    let caches: Vec<_> = rows
        .iter()
        .map(|r| {
            let (stats, error) = match &r.stats {
                Some(Ok(s)) => (Some(s), None),
                Some(Err(e)) => (None, Some(e.as_str())),
                None => (None, None),
            };
            json!({
                "registry": r.spec.registry.name,
                "port": r.spec.registry.port,
                "state": r.state,
                "mode": r.mode,
                "running": r.state == "running",
                "reason": r.is_offline().then_some(OFFLINE_REASON),
                "uptime_seconds": r.uptime_seconds,
                "format": stats.map(|s| s.format),
                "manifests": stats.map(|s| s.manifests),
                "blobs": stats.map(|s| s.blobs),
                "hit_rate": stats.and_then(|s| s.hit_rate),
                "descriptor_cache": stats.and_then(|s| s.descriptor_cache),
                "error": error,
            })
        })
        .collect();
    ui.data(&json!({ "caches": caches, "note": RESET_NOTE }).to_string());
}

impl Row<'_> {
    fn is_offline(&self) -> bool {
        self.state == "running" && self.mode.as_deref() == Some(Mode::Offline.as_str())
    }
}

fn counts_cell(c: &Counts) -> String {
    format!("{}/{}/{}", c.requests, c.hits, c.misses)
}

fn print_table(ctx: &Context, rows: &[Row]) {
    let ui = &ctx.ui;
    let dash = || "-".to_string();
    let mut problems = Vec::new();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut row = vec![
                r.spec.registry.name.clone(),
                match (&r.stats, r.is_offline()) {
                    (_, true) => ui.paint(Tone::Warn, "offline"),
                    (Some(_), false) => r.state.clone(),
                    (None, false) => ui.paint(Tone::Warn, &r.state),
                },
                r.uptime_seconds.map_or_else(dash, human_duration),
            ];
            match &r.stats {
                Some(Ok(s)) => row.extend([
                    counts_cell(&s.manifests),
                    counts_cell(&s.blobs),
                    s.hit_rate
                        .map_or_else(dash, |h| format!("{:.0}%", h * 100.0)),
                    human_bytes(s.manifests.upstream_bytes + s.blobs.upstream_bytes),
                    human_bytes(s.manifests.served_bytes + s.blobs.served_bytes),
                ]),
                other => {
                    if let Some(Err(e)) = other {
                        problems.push(format!("{}: {e}", r.spec.registry.name));
                    }
                    row.extend((0..5).map(|_| dash()));
                }
            }
            row
        })
        .collect();
    ui.human(&table(
        &[
            "REGISTRY",
            "STATE",
            "UP",
            "MANIFESTS req/hit/miss",
            "BLOBS req/hit/miss",
            "HIT RATE",
            "FROM UPSTREAM",
            "SERVED",
        ],
        &cells,
    ));
    for p in problems {
        ui.warn(&p);
    }
    let mut notes = vec![RESET_NOTE];
    if rows.iter().any(Row::is_offline) {
        notes.push(OFFLINE_REASON);
    }
    if rows
        .iter()
        .any(|r| matches!(&r.stats, Some(Ok(s)) if s.format == Format::Registry28))
    {
        notes.push(DOUBLE_FETCH_NOTE);
    }
    for note in notes {
        ui.human(&ui.paint(Tone::Dim, &format!("note: {note}")));
    }
}
