use anyhow::Result;
use serde_json::json;

use crate::cli::SelectArgs;
use crate::context::Context;
use crate::doctor;
use crate::errors::{exit, Unsatisfied};
use crate::ui::Tone;

pub fn run(ctx: &Context, args: &SelectArgs) -> Result<()> {
    let (specs, credentials_unknown) = ctx.specs_as_started(&args.registries)?;
    let mut inputs = doctor::gather(ctx, specs);
    inputs.credentials_unknown = credentials_unknown;
    let checks = doctor::run_checks(&inputs);
    let failed = checks.iter().filter(|c| !c.ok).count();

    if ctx.json {
        println!("{}", json!({ "ok": failed == 0, "checks": checks }));
    } else {
        let ui = &ctx.ui;
        let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &checks {
            // Failures show even with -q: they are what doctor is for.
            if c.ok && ui.quiet {
                continue;
            }
            let mark = match (c.ok, c.note) {
                (true, false) => ui.paint(Tone::Good, "ok  "),
                (true, true) => ui.paint(Tone::Warn, "note"),
                (false, _) => ui.paint(Tone::Bad, "FAIL"),
            };
            // Continuation lines (a command's stderr) stay in the detail column.
            let detail = c.detail.replace('\n', &format!("\n     {:width$}  ", ""));
            eprintln!("{mark} {:<width$}  {detail}", c.name);
            if let Some(fix) = &c.fix {
                let label = if c.note { "tip:" } else { "fix:" };
                eprintln!("     {:<width$}  {} {fix}", "", ui.paint(Tone::Warn, label));
            }
        }
    }
    if failed == 0 {
        ctx.ui.info(&format!("all {} checks passed", checks.len()));
        return Ok(());
    }
    Err(Unsatisfied {
        message: format!("{failed} of {} checks failed", checks.len()),
        code: exit::NOT_READY,
    }
    .into())
}
