use anyhow::Result;

use crate::cli::SetupHostArgs;
use crate::context::Context;
use crate::errors::ExitStatus;
use crate::host::autostart::{self, StartLine, Target};
use crate::host::{self, Mode, Options, Report, State};
use crate::ui::Tone;

pub fn run(ctx: &Context, args: &SetupHostArgs) -> Result<ExitStatus> {
    let mode = match (args.check, args.undo) {
        (true, _) => Mode::Check,
        (_, true) => Mode::Undo,
        _ => Mode::Setup,
    };
    let env = ctx.host_env();
    let report = host::run(
        &env,
        &Options {
            mode,
            zone: args.zone.clone(),
        },
    )?;
    let autostart = if args.no_autostart {
        None
    } else {
        let target = Target {
            prefix: ctx.config.prefix.clone(),
            line: StartLine::current(ctx.config_path.as_deref())?,
        };
        Some(autostart::run(&env, mode, &target)?)
    };
    if ctx.json {
        let mut json = report.to_json();
        json["autostart"] = autostart
            .as_ref()
            .map_or(serde_json::Value::Null, Report::to_json);
        ctx.ui.data(&json.to_string());
    }
    let parts: Vec<&Report> = std::iter::once(&report).chain(&autostart).collect();
    for line in parts.iter().flat_map(|r| &r.missing) {
        ctx.ui
            .info(&format!("{} {line}", ctx.ui.paint(Tone::Bad, "missing:")));
    }
    if parts.iter().any(|r| r.state == State::Missing) {
        // A check's "no" is an outcome, as for every other check: exit 3.
        for part in parts.iter().filter(|r| r.state != State::Missing) {
            ctx.ui.info(&ctx.ui.paint(Tone::Good, &part.summary));
        }
        ctx.ui
            .verdict("the host is not set up for the caches: run `drcache setup-host`");
        return Ok(ExitStatus::NotReady);
    }
    for part in parts {
        let tone = match part.state {
            State::WouldChange => Tone::Warn,
            _ => Tone::Good,
        };
        ctx.ui.info(&ctx.ui.paint(tone, &part.summary));
    }
    Ok(ExitStatus::Success)
}
