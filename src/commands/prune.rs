use anyhow::Result;
use serde_json::json;

use crate::cli::PruneArgs;
use crate::context::Context;
use crate::errors::{exit, ExitStatus, Hinted, UsageError};
use crate::imageref::ImageRef;
use crate::minikube::Minikube;
use crate::prune::clusters::{self, NodeImages};
use crate::prune::run::{self, Row};
use crate::prune::{self, Reason};
use crate::ui::{human_bytes, Tone};
use crate::{interrupt, lock, tools};

/// Running cluster nodes and their images; none when minikube is not installed.
fn cluster_nodes(ctx: &Context) -> Result<Vec<NodeImages>> {
    match tools::find_installed(&tools::MINIKUBE)? {
        Some(path) => clusters::read(&Minikube::new(path, &ctx.runner)),
        None => Ok(Vec::new()),
    }
}

pub fn run(ctx: &Context, args: &PruneArgs) -> Result<ExitStatus> {
    let window = args.unused_for.as_deref().map(prune::parse_duration);
    let window = window.transpose().map_err(UsageError)?;
    let named = run::named(&args.keep, args.keep_file.as_deref())?;
    let specs = ctx.specs(&args.registries)?;
    let podman = ctx.podman()?;
    let nodes = cluster_nodes(ctx)?;
    let (readable, unreadable): (Vec<_>, Vec<_>) = nodes.iter().partition(|n| n.result.is_ok());
    let why: Vec<String> = unreadable
        .iter()
        .filter_map(|n| Some(format!("{}: {}", n.node(), n.result.as_ref().err()?)))
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
    for r in named
        .iter()
        .filter(|r| ctx.config.registry(&r.registry).is_none())
    {
        ctx.ui.warn(&format!(
            "{r} keeps nothing: there is no cache of {}",
            r.registry
        ));
    }
    let mut keep_refs: Vec<(ImageRef, Reason)> =
        named.into_iter().map(|r| (r, Reason::Named)).collect();
    for n in &readable {
        let refs = n.result.as_deref().unwrap_or_default();
        keep_refs.extend(refs.iter().map(|r| (r.clone(), Reason::Cluster(n.node()))));
    }

    let _lock = lock::acquire(&ctx.config.prefix, || {
        ctx.ui.info("waiting for another drcache run to finish...")
    })?;
    let rows = run::all(ctx, &podman, &specs, &keep_refs, window)?;
    if ctx.json {
        let caches: Vec<_> = rows.iter().map(run::row_json).collect();
        let nodes: Vec<_> = nodes.iter().map(node_json).collect();
        let report = json!({"dry_run": ctx.dry_run, "caches": caches, "nodes": nodes});
        ctx.ui.data(&report.to_string());
    }
    for r in &rows {
        describe(ctx, r);
    }
    if interrupt::requested() {
        ctx.ui
            .verdict("interrupted: the step in progress was finished and each cache brought back");
        return Ok(ExitStatus::Interrupted);
    }
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.failed())
        .map(|r| r.registry.as_str())
        .collect();
    if failed.is_empty() {
        return Ok(ExitStatus::Success);
    }
    ctx.ui
        .verdict(&format!("prune failed for: {}", failed.join(", ")));
    Ok(ExitStatus::Failure)
}

fn node_json(n: &NodeImages) -> serde_json::Value {
    json!({
        "profile": n.profile,
        "machine": n.machine,
        "images": n.result.as_ref().ok().map(Vec::len),
        "error": n.result.as_ref().err(),
    })
}

/// One summary line per cache, then its images.
fn describe(ctx: &Context, r: &Row) {
    let ui = &ctx.ui;
    let mut line = format!("{:<16}", r.registry);
    if let Some(why) = &r.skipped {
        ui.info(&format!("{line} skipped: {why}"));
        return;
    }
    if let Some(plan) = &r.report.plan {
        let (removed, kept) = (plan.removed.len(), plan.kept.len());
        line += &if ctx.dry_run {
            let free = human_bytes(plan.bytes_freed);
            format!(" would remove {removed} images, keep {kept}, free about {free}")
        } else if r.report.error.is_some() {
            format!(" was to remove {removed} images, keep {kept}")
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
        line += &format!(", back in {} mode", o.mode.as_str());
        if !o.ready() {
            line += &ui.paint(Tone::Bad, " but not ready");
        }
        if let Some(why) = &o.offline_reason {
            let upstream = ui.paint(Tone::Warn, "upstream unreachable");
            line += &format!(" ({upstream}: {why})");
        }
    }
    if let Some(e) = &r.report.error {
        line += &format!("\n  {} {e}", ui.paint(Tone::Bad, "failed:"));
    }
    if let Some(e) = r.report.restored.as_ref().and_then(|o| o.error.as_ref()) {
        line += &format!("\n  {} {e}", ui.paint(Tone::Bad, "not restored:"));
    }
    ui.info(&line);
    if let Some(plan) = &r.report.plan {
        let verb = match (ctx.dry_run, &r.report.error) {
            (true, _) => "would remove",
            (false, Some(_)) => "to remove",
            (false, None) => "removed",
        };
        for i in &plan.removed {
            ui.info(&format!("  {verb} {}", i.name()));
        }
        for (i, why) in &plan.kept {
            ui.info(&format!("  kept {} ({})", i.name(), why.as_str()));
        }
    }
}
