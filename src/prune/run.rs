//! Around the plan: the images to keep as named on the command line, and
//! each selected cache pruned in turn (or only planned, under --dry-run).

use std::io::Read;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde_json::json;

use super::apply::{self, Report};
use super::{Keep, Reason, Recent};
use crate::cache::{CacheSpec, Mode, LABEL_MODE};
use crate::context::Context;
use crate::errors::UsageError;
use crate::imageref::{self, ImageRef};
use crate::podman::Podman;
use crate::reconcile::Facts;
use crate::{interrupt, tools};

/// The references of --keep and --keep-file (`-` for stdin), in the forms
/// `warm` reads; image ids are skipped.
pub fn named(keep: &[String], keep_file: Option<&Path>) -> Result<Vec<ImageRef>> {
    let mut text = keep.join("\n");
    if let Some(path) = keep_file {
        let mut content = String::new();
        if path.as_os_str() == "-" {
            std::io::stdin()
                .read_to_string(&mut content)
                .context("cannot read image references from stdin")?;
        } else {
            content = std::fs::read_to_string(path).map_err(|e| {
                UsageError(format!("cannot read the keep file {}: {e}", path.display()))
            })?;
        }
        text = format!("{text}\n{content}");
    }
    let (refs, _ids) = imageref::parse_list(&text);
    let parsed: Result<Vec<_>, String> = refs.iter().map(|r| imageref::parse(r)).collect();
    Ok(parsed.map_err(UsageError)?)
}

/// How one cache went.
pub struct Row {
    pub registry: String,
    pub mode: Option<Mode>,
    pub report: Report,
    pub before: Option<u64>,
    pub after: Option<u64>,
    pub skipped: Option<String>,
}

impl Row {
    pub fn failed(&self) -> bool {
        self.report.error.is_some()
            || self
                .report
                .restored
                .as_ref()
                .is_some_and(|o| !o.ok() || !o.ready())
    }
}

/// Prune (or plan, under --dry-run) each cache in turn, so that one cache
/// at a time is down. `window` is --unused-for in seconds.
pub fn all(
    ctx: &Context,
    podman: &Podman,
    specs: &[CacheSpec],
    keep_refs: &[(ImageRef, Reason)],
    window: Option<u64>,
) -> Result<Vec<Row>> {
    let facts = Facts::read(podman)?;
    // A dry run changes no cache, but runs a read-only registry beside it.
    let mut live_runner = ctx.runner.clone();
    live_runner.dry_run = false;
    let live = Podman::new(tools::find(&tools::PODMAN)?, &live_runner);
    let mut rows = Vec::new();
    for spec in specs {
        let mut row = Row {
            registry: spec.registry.name.clone(),
            mode: None,
            report: Report::default(),
            before: apply::disk_bytes(&facts, &spec.volume),
            after: None,
            skipped: None,
        };
        let Some(container) = facts.container(&spec.container) else {
            row.skipped = Some("no cache container: run `drcache start` first".into());
            rows.push(row);
            continue;
        };
        if interrupt::requested() {
            row.skipped = Some("interrupted before it began".into());
            rows.push(row);
            continue;
        }
        let mode = match container.label(LABEL_MODE) {
            Some("offline") => Mode::Offline,
            _ => Mode::Proxy,
        };
        row.mode = Some(mode);
        let recent = match window {
            None => Recent::NotAsked,
            Some(w) => apply::recent(podman, &spec.container, w).unwrap_or_else(|e| {
                let name = &row.registry;
                ctx.ui
                    .warn(&format!("{name}: last pulls unknown, all kept: {e}"));
                Recent::Unknown
            }),
        };
        let refs = keep_refs
            .iter()
            .filter(|(r, _)| r.registry == spec.registry.name);
        let keep = Keep {
            refs: refs.cloned().collect(),
            recent,
        };
        row.report = if ctx.dry_run {
            interrupt::finish_steps(|| apply::plan_only(&live, spec, &keep))
        } else {
            ctx.ui.info(&format!(
                "pruning {} (down until it is back)...",
                row.registry
            ));
            // Brought back as `start` makes it in that mode, login included.
            let name = std::slice::from_ref(&spec.registry.name);
            match ctx.start_specs(name, mode) {
                Err(e) => Report {
                    error: Some(format!("{e:#}; the cache was left as it is")),
                    ..Report::default()
                },
                Ok(start_spec) => {
                    let running = container.is_running();
                    interrupt::finish_steps(|| {
                        apply::prune_cache(podman, &start_spec[0], running, &keep)
                    })
                }
            }
        };
        if !ctx.dry_run {
            row.after = apply::disk_bytes(&facts, &spec.volume);
        }
        rows.push(row);
    }
    Ok(rows)
}

/// One cache in `prune --json`.
pub fn row_json(r: &Row) -> serde_json::Value {
    let plan = r.report.plan.as_ref();
    let image = |i: &super::Image| json!({"image": i.name(), "digest": i.digest});
    let kept = |p: &super::Plan| -> Vec<serde_json::Value> {
        p.kept
            .iter()
            .map(|(i, why)| {
                let mut v = image(i);
                v["reason"] = json!(why.as_str());
                v
            })
            .collect()
    };
    json!({
        "registry": r.registry,
        "mode": r.mode.map(Mode::as_str),
        "removed": plan.map(|p| p.removed.iter().map(image).collect::<Vec<_>>()),
        "kept": plan.map(kept),
        "bytes_freed_estimate": plan.map(|p| p.bytes_freed),
        "bytes_before": r.before,
        "bytes_after": r.after,
        "downtime_seconds": r.report.downtime.map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0),
        "gc": r.report.gc_summary,
        "restored": r.report.restored.as_ref().map(|o| json!({
            "action": o.action.past_tense(),
            "mode": o.mode.as_str(),
            "ready": o.ready(),
            "offline_reason": o.offline_reason,
            "error": o.error.as_ref().map(|e| format!("{e:#}")),
        })),
        "skipped": r.skipped,
        "error": r.report.error,
    })
}
