use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use crate::cache::{CacheSpec, Mode};
use crate::cli::StartArgs;
use crate::context::Context;
use crate::errors::ExitStatus;
use crate::host::autostart;
use crate::interrupt;
use crate::lock;
use crate::reconcile::{self, Facts, Outcome, Trigger};
use crate::registry_http::Probe;
use crate::ui::Tone;

pub fn run(ctx: &Context, args: &StartArgs) -> Result<ExitStatus> {
    let result = start(ctx, args);
    // A run of the autostart unit is recorded, failed or not, so that
    // `status` and `doctor` can tell when it last ran and how it ended.
    if autostart::triggered() && !ctx.dry_run {
        let (code, summary) = match &result {
            Ok((status, summary)) => (status.code(), summary.clone()),
            Err(e) => (crate::errors::exit_status(e).code(), format!("{e:#}")),
        };
        if let Err(e) = autostart::record_run(&ctx.config.prefix, code, &summary) {
            ctx.ui
                .warn(&format!("cannot record this automatic run: {e:#}"));
        }
    }
    result.map(|(status, _)| status)
}

/// `start` itself: its status and a one-line summary of how it went.
fn start(ctx: &Context, args: &StartArgs) -> Result<(ExitStatus, String)> {
    let mode = if args.offline {
        Mode::Offline
    } else {
        Mode::Proxy
    };
    let specs = ctx.start_specs(&args.select.registries, mode)?;
    let with_login: Vec<&str> = specs
        .iter()
        .filter(|s| s.credentials.is_some() && s.mode == Mode::Proxy)
        .map(|s| s.registry.name.as_str())
        .collect();
    if let Some(warning) = crate::host::nft::start_check(&ctx.config, &with_login)? {
        ctx.ui.warn(&warning);
    }
    let podman = ctx.podman()?;
    let _lock = lock::acquire(&ctx.config.prefix, || {
        ctx.ui.info("waiting for another drcache run to finish...")
    })?;
    for spec in specs.iter().filter(|s| s.credentials.is_some()) {
        warn_once_about_credentials(ctx, spec);
    }
    let trigger = if autostart::triggered() {
        Trigger::Automatic
    } else {
        Trigger::Manual
    };
    let wait = Duration::from_secs(args.wait_for_podman.unwrap_or(0));
    let (facts, plans) = Facts::read_for_start(&podman, &specs, trigger, wait)?;
    let timeout = Duration::from_secs(args.timeout);
    // Ctrl-C from here on finishes the step in progress, starts nothing new.
    let outcomes = interrupt::finish_steps(|| {
        let image_problems = reconcile::ensure_images(&podman, &plans, &|image| {
            ctx.ui
                .info(&format!("pulling {image} (needed for the caches)..."));
            ctx.ui.live_progress()
        });
        for (image, problem) in &image_problems {
            ctx.ui.warn(&format!(
                "{problem}\n  hint: check `image` in the config (a typo?), the network, or \
                 `podman pull {image}` by hand; caches that need it were left as they are"
            ));
        }
        let spinner = if ctx.dry_run {
            indicatif::ProgressBar::hidden()
        } else {
            ctx.ui.spinner(&format!(
                "bringing up {} caches and waiting until they answer",
                specs.len()
            ))
        };
        let outcomes = crate::parallel::map(&plans, |plan| {
            let problem = image_problems
                .iter()
                .find(|(image, _)| *image == plan.target.image)
                .map(|(_, problem)| problem.as_str());
            reconcile::apply(&podman, plan, &facts, problem, timeout, ctx.dry_run)
        });
        spinner.finish_and_clear();
        outcomes
    });

    if ctx.json {
        let caches: Vec<_> = outcomes.iter().map(Outcome::to_json).collect();
        ctx.ui.data(&json!({ "caches": caches }).to_string());
    }
    for o in &outcomes {
        ctx.ui.info(&describe(ctx, o));
    }
    if let Some(warning) = crate::host::start_warning(&ctx.runner) {
        ctx.ui.warn(&warning);
    }
    if interrupt::requested() {
        ctx.ui
            .verdict("interrupted: the step in progress was finished, nothing new was started");
        return Ok((ExitStatus::Interrupted, "interrupted".into()));
    }
    let (status, verdict) = summarize(&outcomes, ctx.dry_run);
    let summary = verdict.clone().unwrap_or_else(|| run_summary(&outcomes));
    if let Some(verdict) = verdict {
        ctx.ui.verdict(&verdict);
    }
    Ok((status, summary))
}

fn describe(ctx: &Context, o: &Outcome) -> String {
    let ui = &ctx.ui;
    let name = format!("{:<16} :{:<5}", o.registry, o.port);
    if let Some(error) = &o.error {
        return format!("{name} {}  {error:#}", ui.paint(Tone::Bad, "failed"));
    }
    let action = if ctx.dry_run && o.action != reconcile::Action::Unchanged {
        format!("would be {}", o.action.past_tense())
    } else {
        o.action.past_tense().to_string()
    };
    let state = match &o.probe {
        None => String::new(),
        Some(Probe::Ready) => ui.paint(
            Tone::Good,
            &format!("ready in {:.1}s", o.elapsed.as_secs_f64()),
        ),
        Some(Probe::Status(code)) => {
            ui.paint(Tone::Bad, &format!("not ready: /v2/ answered {code}"))
        }
        Some(Probe::Unreachable(why)) => ui.paint(Tone::Bad, &format!("not ready: {why}")),
    };
    let mut details: Vec<String> = Vec::new();
    if !state.is_empty() {
        details.push(state);
    }
    if o.volume_created {
        details.push("new volume".into());
    }
    if o.secret_removed {
        details.push("login secret removed".into());
    }
    if o.adopted {
        details.push("made by another drcache run at the same moment".into());
    }
    if o.offline_reason.is_none() && o.stays_offline.is_none() && o.mode == Mode::Offline {
        details.push("offline (read-only)".into());
    }
    let reason = match (&o.offline_reason, &o.stays_offline) {
        (Some(reason), _) => format!(
            "\n  {} upstream unreachable, serving cached images read-only: {reason}",
            ui.paint(Tone::Warn, "offline:")
        ),
        (None, Some(why)) => format!(
            "\n  {} stays offline (read-only): {why}",
            ui.paint(Tone::Warn, "offline:")
        ),
        (None, None) => String::new(),
    };
    format!("{name} {action:<17}  {}{reason}", details.join(", "))
        .trim_end()
        .to_string()
}

/// One line on how an automatic run left the caches, for `status`/`doctor`.
fn run_summary(outcomes: &[Outcome]) -> String {
    let count = |pred: &dyn Fn(&Outcome) -> bool| outcomes.iter().filter(|o| pred(o)).count();
    let changed = count(&|o| o.action != reconcile::Action::Unchanged);
    let offline = count(&|o| o.mode == Mode::Offline);
    let mut line = format!("{} ready, {changed} changed", outcomes.len());
    if offline > 0 {
        line.push_str(&format!(", {offline} offline"));
    }
    line
}

/// The command's status and, unless all went well, the line that says why.
fn summarize(outcomes: &[Outcome], dry_run: bool) -> (ExitStatus, Option<String>) {
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.ok())
        .map(|o| o.registry.as_str())
        .collect();
    if !failed.is_empty() {
        let line = format!(
            "{} of {} caches failed: {}",
            failed.len(),
            outcomes.len(),
            failed.join(", ")
        );
        return (ExitStatus::Failure, Some(line));
    }
    let not_ready: Vec<&str> = outcomes
        .iter()
        .filter(|o| !dry_run && !o.ready())
        .map(|o| o.registry.as_str())
        .collect();
    if !not_ready.is_empty() {
        let line = format!(
            "not ready in time: {}; see `drcache status` and `podman logs <container>`",
            not_ready.join(", ")
        );
        return (ExitStatus::NotReady, Some(line));
    }
    (ExitStatus::Success, None)
}

/// Say once per cache (remembered in the state directory) what an
/// authenticated cache means for whoever can reach its port.
fn warn_once_about_credentials(ctx: &Context, spec: &CacheSpec) {
    let Ok(dir) = lock::ensure_state_dir() else {
        return;
    };
    let marker = dir.join(format!("{}.credentials-warned", spec.container));
    if std::fs::symlink_metadata(&marker).is_ok() {
        return;
    }
    let reach = if spec.bind.is_empty() {
        "every network interface of this host".to_string()
    } else {
        spec.bind.clone()
    };
    ctx.ui.warn(&format!(
        "{} logs in to its upstream: anyone who can reach port {} on {reach} can pull \
         what those credentials can pull; set `bind` to limit who can reach it",
        spec.registry.name, spec.registry.port
    ));
    if !ctx.dry_run {
        let _ = crate::fsutil::open_no_follow(&marker, 0o600);
    }
}
