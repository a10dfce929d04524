//! `drcache completions SHELL` and `drcache man`: generated from the CLI
//! definition, so they never drift from it.

use std::io::Write;

use anyhow::{Context as _, Result};
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};
use crate::errors::ExitStatus;
use crate::ui::Ui;

pub fn completions(args: &CompletionsArgs) -> Result<ExitStatus> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut Cli::command(), "drcache", &mut out);
    out.flush().context("cannot write the completion script")?;
    Ok(ExitStatus::Success)
}

pub fn man(args: &ManArgs, ui: &Ui) -> Result<ExitStatus> {
    match &args.dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .and_then(|()| out.flush())
                .context("cannot write the man page")?;
            Ok(ExitStatus::Success)
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), dir)
                .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
            ui.info(&format!("wrote man pages into {}", dir.display()));
            Ok(ExitStatus::Success)
        }
    }
}
