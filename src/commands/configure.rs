//! `configure` and `unconfigure`: flags and rendering around
//! [`crate::cluster::wire`], which does the work.

use anyhow::Result;
use serde_json::json;

use crate::cli::ConfigureArgs;
use crate::cluster::report::{self, Kind, Row};
use crate::cluster::wire::{self, Op, WireEnv};
use crate::context::Context;
use crate::errors::ExitStatus;
use crate::ui::{table, Tone};

pub fn configure(ctx: &Context, args: &ConfigureArgs) -> Result<ExitStatus> {
    run(ctx, args, Op::Configure)
}

pub fn unconfigure(ctx: &Context, args: &ConfigureArgs) -> Result<ExitStatus> {
    run(ctx, args, Op::Unconfigure)
}

fn run(ctx: &Context, args: &ConfigureArgs, op: Op) -> Result<ExitStatus> {
    let env = WireEnv {
        config: &ctx.config,
        runner: &ctx.runner,
        dry_run: ctx.dry_run,
    };
    let wiring = wire::wire(&env, &args.profiles, op)?;
    let rows = report::rows(
        &wiring.profiles,
        &wiring.files,
        &ctx.config.host,
        &wiring.answers_here,
        op,
    );
    if ctx.json {
        let dir = wiring.certs_d.display().to_string();
        ctx.ui.data(
            &json!({
                "file_sync": { "dir": dir, "written": wiring.written, "removed": wiring.removed },
                "profiles": report::profiles_json(&wiring.profiles, &rows),
                "dry_run": ctx.dry_run,
            })
            .to_string(),
        );
    }
    let (write, remove) = if ctx.dry_run {
        ("would write", "would remove")
    } else {
        ("wrote", "removed")
    };
    let dir = wiring.certs_d.display();
    match op {
        Op::Configure => ctx.ui.info(&format!(
            "{write} {} hosts.toml files in {dir} (minikube copies them to every node at every start)",
            wiring.written.len(),
        )),
        Op::Unconfigure => ctx.ui.info(&format!(
            "{remove} {} hosts.toml files from {dir}",
            wiring.removed.len(),
        )),
    }
    if op == Op::Configure && !wiring.removed.is_empty() {
        ctx.ui.info(&format!(
            "{remove} stale files of: {}",
            wiring.removed.join(", ")
        ));
    }
    print_rows(ctx, &rows, op);
    let (status, verdict) = report::verdict(&rows);
    if let Some(line) = verdict {
        ctx.ui.verdict(&line);
    }
    Ok(status)
}

fn print_rows(ctx: &Context, rows: &[Row], op: Op) {
    if rows.is_empty() {
        ctx.ui
            .info("no minikube profiles: the files apply to clusters started from now on");
    }
    if ctx.ui.quiet || rows.is_empty() {
        return;
    }
    let ui = &ctx.ui;
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let tone = match r.kind {
                Kind::Info => Tone::Dim,
                Kind::Ok => Tone::Good,
                Kind::Unreachable | Kind::Failed => Tone::Bad,
            };
            let text = match &r.fix {
                Some(fix) => format!("{} -> {fix}", r.text),
                None => r.text.clone(),
            };
            let dash = || "-".to_string();
            let mut cells = vec![r.profile.clone(), r.node.clone().unwrap_or_else(dash)];
            if op == Op::Configure {
                cells.push(r.registry.clone().unwrap_or_else(dash));
            }
            cells.push(ui.paint(tone, &text));
            cells
        })
        .collect();
    let header: &[&str] = match op {
        Op::Configure => &["PROFILE", "NODE", "REGISTRY", "RESULT"],
        Op::Unconfigure => &["PROFILE", "NODE", "RESULT"],
    };
    ui.human(&table(header, &cells));
}
