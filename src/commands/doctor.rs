use anyhow::Result;
use serde_json::json;

use crate::cli::SelectArgs;
use crate::context::Context;
use crate::doctor;
use crate::errors::ExitStatus;
use crate::ui::Tone;

pub fn run(ctx: &Context, args: &SelectArgs) -> Result<ExitStatus> {
    let (specs, credentials_unknown) = ctx.specs_as_started(&args.registries)?;
    let inputs = doctor::gather(ctx, specs, credentials_unknown);
    let checks = doctor::run_checks(&inputs);
    let failed = checks.iter().filter(|c| !c.ok).count();

    if ctx.json {
        ctx.ui
            .data(&json!({ "ok": failed == 0, "checks": checks }).to_string());
    } else {
        let ui = &ctx.ui;
        let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &checks {
            // Failures show even with -q: they are what doctor is for.
            if c.ok && ui.quiet {
                continue;
            }
            let mark = match (c.ok, c.is_note()) {
                (true, false) => ui.paint(Tone::Good, "ok  "),
                (true, true) => ui.paint(Tone::Warn, "note"),
                (false, _) => ui.paint(Tone::Bad, "FAIL"),
            };
            // Continuation lines (a command's stderr) stay in the detail column.
            let detail = c.detail.replace('\n', &format!("\n     {:width$}  ", ""));
            ui.human(&format!("{mark} {:<width$}  {detail}", c.name));
            for (label, text) in [("fix:", &c.fix), ("tip:", &c.tip)] {
                if let Some(text) = text {
                    ui.human(&format!(
                        "     {:<width$}  {} {text}",
                        "",
                        ui.paint(Tone::Warn, label)
                    ));
                }
            }
        }
    }
    // Notes are read, not counted: they pass whatever the user chose.
    let notes = checks.iter().filter(|c| c.is_note()).count();
    let counted = checks.len() - notes;
    let with_notes = match notes {
        0 => String::new(),
        1 => " (and 1 note)".to_string(),
        n => format!(" (and {n} notes)"),
    };
    if failed == 0 {
        ctx.ui
            .info(&format!("all {counted} checks passed{with_notes}"));
        return Ok(ExitStatus::Success);
    }
    ctx.ui
        .verdict(&format!("{failed} of {counted} checks failed{with_notes}"));
    Ok(ExitStatus::NotReady)
}
