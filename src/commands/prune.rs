use std::io::Read;

use anyhow::{Context as _, Result};
use serde_json::json;

use crate::cache::{Mode, LABEL_MODE};
use crate::cli::PruneArgs;
use crate::context::Context;
use crate::errors::{exit, Hinted, Unsatisfied, UsageError};
use crate::imageref::{self, ImageRef};
use crate::minikube::Minikube;
use crate::prune::apply::{self, Report};
use crate::prune::clusters::{self, NodeImages};
use crate::prune::{self, Keep, Reason, Recent};
use crate::reconcile::Facts;
use crate::ui::{human_bytes, Tone};
use crate::{interrupt, lock, tools};

/// The references of --keep and --keep-file, each parsed as `warm` does.
fn named(args: &PruneArgs) -> Result<Vec<ImageRef>> {
    let mut text = args.keep.join("\n");
    if let Some(path) = &args.keep_file {
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

/// Running cluster nodes and their images; nothing when minikube is not installed.
fn cluster_nodes(ctx: &Context) -> Result<Vec<NodeImages>> {
    match tools::find_installed(&tools::MINIKUBE)? {
        Some(path) => clusters::read(&Minikube::new(path, &ctx.runner)),
        None => Ok(Vec::new()),
    }
}

struct Row {
    registry: String,
    mode: Option<Mode>,
    report: Report,
    before: Option<u64>,
    after: Option<u64>,
    skipped: Option<String>,
}

pub fn run(ctx: &Context, args: &PruneArgs) -> Result<()> {
    let window = args.unused_for.as_deref().map(prune::parse_duration);
    let window = window.transpose().map_err(UsageError)?;
    let named = named(args)?;
    let specs = ctx.specs(&args.registries)?;
    let podman = ctx.podman()?;
    let nodes = cluster_nodes(ctx)?;
    let (readable, unreadable): (Vec<_>, Vec<_>) = nodes.iter().partition(|n| n.result.is_ok());
    let why: Vec<String> = unreadable
        .iter()
        .map(|n| format!("{}: {}", n.node(), n.result.as_ref().err().unwrap()))
        .collect();
    if !why.is_empty() && !args.ignore_clusters {
        return Err(Hinted {
            message: format!(
                "cannot read which images these cluster nodes use, and they may use every \
                 cache; nothing was removed:\n  {}",
                why.join("\n  ")
            ),
            hint: "make the node answer `minikube ssh`, or pass --ignore-clusters to prune \
                   without knowing what it uses"
                .into(),
            code: exit::FAILURE,
        }
        .into());
    }
    for w in &why {
        ctx.ui.warn(&format!("ignored (--ignore-clusters): {w}"));
    }
    if named.is_empty() && window.is_none() && readable.is_empty() {
        return Err(UsageError(
            "nothing says what to keep, so nothing was removed: name images with --keep or \
             --keep-file, keep what was pulled lately with --unused-for (e.g. 30d), or run the \
             minikube clusters whose images to keep; `clean --volumes` removes everything"
                .into(),
        )
        .into());
    }
    let mut keep_refs: Vec<(ImageRef, Reason)> =
        named.into_iter().map(|r| (r, Reason::Named)).collect();
    for n in &readable {
        let refs = n.result.as_ref().map(Vec::as_slice).unwrap_or_default();
        keep_refs.extend(refs.iter().map(|r| (r.clone(), Reason::Cluster(n.node()))));
    }

    let _lock = lock::acquire(&ctx.config.prefix, || {
        ctx.ui.info("waiting for another drcache run to finish...")
    })?;
    let facts = Facts::read(&podman)?;
    // A dry run changes no cache, but runs a read-only registry beside it.
    let mut live_runner = ctx.runner.clone();
    live_runner.dry_run = false;
    let live = crate::podman::Podman::new(tools::find(&tools::PODMAN)?, &live_runner);
    let mut rows = Vec::new();
    for spec in &specs {
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
        let start_spec = ctx.start_specs(std::slice::from_ref(&spec.registry.name), mode)?;
        let recent = match window {
            None => Recent::NotAsked,
            Some(w) => apply::recent(&podman, &spec.container, w).unwrap_or_else(|e| {
                ctx.ui.warn(&format!(
                    "{}: last pulls unknown, all kept: {e}",
                    row.registry
                ));
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
            apply::plan_only(&live, spec, &keep)
        } else {
            ctx.ui.info(&format!(
                "pruning {} (down until it is back)...",
                row.registry
            ));
            let running = container.is_running();
            interrupt::finish_steps(|| apply::prune_cache(&podman, &start_spec[0], running, &keep))
        };
        if !ctx.dry_run {
            row.after = apply::disk_bytes(&facts, &spec.volume);
        }
        rows.push(row);
    }
    render(ctx, &rows, &nodes);
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| {
            r.report.error.is_some()
                || r.report
                    .restored
                    .as_ref()
                    .is_some_and(|o| !o.ok() || !o.ready())
        })
        .map(|r| r.registry.as_str())
        .collect();
    if interrupt::requested() {
        return Err(crate::errors::Interrupted.into());
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(Unsatisfied {
        message: format!("prune failed for: {}", failed.join(", ")),
        code: exit::FAILURE,
    }
    .into())
}

fn render(ctx: &Context, rows: &[Row], nodes: &[NodeImages]) {
    if ctx.json {
        let caches: Vec<_> = rows.iter().map(row_json).collect();
        let nodes: Vec<_> = nodes
            .iter()
            .map(|n| {
                json!({"profile": n.profile, "machine": n.machine,
                "images": n.result.as_ref().ok().map(Vec::len), "error": n.result.as_ref().err()})
            })
            .collect();
        println!(
            "{}",
            json!({"dry_run": ctx.dry_run, "caches": caches, "nodes": nodes})
        );
    }
    let ui = &ctx.ui;
    for r in rows {
        let name = format!("{:<16}", r.registry);
        if let Some(why) = &r.skipped {
            ui.info(&format!("{name} skipped: {why}"));
            continue;
        }
        let mut line = name;
        if let Some(plan) = &r.report.plan {
            let (removed, kept) = (plan.removed.len(), plan.kept.len());
            line += &if ctx.dry_run {
                format!(
                    " would remove {removed} images, keep {kept}, free about {}",
                    human_bytes(plan.bytes_freed)
                )
            } else {
                format!(" removed {removed} images, kept {kept}")
            };
        }
        if let (Some(b), Some(a)) = (r.before, r.after) {
            line += &format!(", disk {} -> {}", human_bytes(b), human_bytes(a));
        }
        if let Some(d) = r.report.downtime {
            line += &format!(", down {:.1}s", d.as_secs_f64());
        }
        if let Some(o) = &r.report.restored {
            line += &format!(
                ", back in {} mode{}",
                o.mode.as_str(),
                if o.ready() {
                    String::new()
                } else {
                    ui.paint(Tone::Bad, " but NOT ready")
                }
            );
        }
        if let Some(e) = &r.report.error {
            line += &format!("\n  {} {e}", ui.paint(Tone::Bad, "failed:"));
        }
        if let Some(e) = r.report.restored.as_ref().and_then(|o| o.error.as_ref()) {
            line += &format!("\n  {} {e}", ui.paint(Tone::Bad, "not restored:"));
        }
        ui.info(&line);
        if let Some(plan) = &r.report.plan {
            let verb = if ctx.dry_run {
                "would remove"
            } else {
                "removed"
            };
            for i in &plan.removed {
                ui.info(&format!("  {verb} {}", i.name()));
            }
            for (i, why) in &plan.kept {
                ui.info(&format!("  kept {} ({})", i.name(), why.as_str()));
            }
        }
    }
}

fn row_json(r: &Row) -> serde_json::Value {
    let plan = r.report.plan.as_ref();
    let image = |i: &prune::Image| json!({"image": i.name(), "digest": i.digest});
    json!({
        "registry": r.registry,
        "mode": r.mode.map(Mode::as_str),
        "removed": plan.map(|p| p.removed.iter().map(image).collect::<Vec<_>>()),
        "kept": plan.map(|p| p.kept.iter().map(|(i, why)| {
            let mut v = image(i);
            v["reason"] = json!(why.as_str());
            v
        }).collect::<Vec<_>>()),
        "bytes_freed_estimate": plan.map(|p| p.bytes_freed),
        "bytes_before": r.before,
        "bytes_after": r.after,
        "downtime_seconds": r.report.downtime.map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0),
        "gc": r.report.gc_summary,
        "restored": r.report.restored.as_ref().map(|o| json!({
            "action": o.action.past_tense(), "mode": o.mode.as_str(), "ready": o.ready(), "error": o.error})),
        "skipped": r.skipped,
        "error": r.report.error,
    })
}
