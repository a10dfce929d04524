//! `drcache completions SHELL` and `drcache man`: generated from the CLI
//! definition, so they never drift from it.

use std::io::Write;

use anyhow::{Context as _, Result};
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};

pub fn completions(args: &CompletionsArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut Cli::command(), "drcache", &mut out);
    out.flush().context("cannot write the completion script")
}

pub fn man(args: &ManArgs) -> Result<()> {
    match &args.dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .and_then(|()| out.flush())
                .context("cannot write the man page")
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), dir)
                .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
            eprintln!("wrote man pages into {}", dir.display());
            Ok(())
        }
    }
}
