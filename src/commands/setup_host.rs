use anyhow::Result;

use crate::cli::SetupHostArgs;
use crate::context::Context;
use crate::errors::ExitStatus;
use crate::host::{self, Mode, Options, State};
use crate::ui::Tone;

pub fn run(ctx: &Context, args: &SetupHostArgs) -> Result<ExitStatus> {
    let mode = match (args.check, args.undo) {
        (true, _) => Mode::Check,
        (_, true) => Mode::Undo,
        _ => Mode::Setup,
    };
    let report = host::run(
        &ctx.host_env(),
        &Options {
            mode,
            zone: args.zone.clone(),
        },
    )?;
    if ctx.json {
        ctx.ui.data(&report.to_json().to_string());
    }
    for line in &report.missing {
        ctx.ui
            .info(&format!("{} {line}", ctx.ui.paint(Tone::Bad, "missing:")));
    }
    if report.state == State::Missing {
        // A check's "no" is an outcome, as for every other check: exit 3.
        ctx.ui
            .verdict("the host is not set up for the caches: run `drcache setup-host`");
        return Ok(ExitStatus::NotReady);
    }
    let tone = match report.state {
        State::WouldChange => Tone::Warn,
        _ => Tone::Good,
    };
    ctx.ui.info(&ctx.ui.paint(tone, &report.summary));
    Ok(ExitStatus::Success)
}
