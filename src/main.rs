#![deny(clippy::print_stdout, clippy::print_stderr)]

mod cache;
mod cli;
mod clients;
mod clock;
mod cluster;
mod commands;
mod config;
mod containerd;
mod context;
mod credentials;
mod digest;
mod doctor;
mod errors;
mod exec;
mod fsutil;
#[cfg(test)]
mod fuzz_tests;
mod host;
mod hostinfo;
mod imageref;
mod interrupt;
mod lock;
#[cfg(test)]
mod log_tests;
mod login_key;
mod metrics;
mod minikube;
mod netaddr;
mod oci;
mod parallel;
mod podman;
mod privileged;
mod prune;
mod reconcile;
mod registry_http;
mod serde_util;
mod tools;
mod ui;
mod upstream;
mod warm;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::context::Context;
use crate::errors::ExitStatus;
use crate::ui::Ui;

fn run(cli: &Cli) -> anyhow::Result<ExitStatus> {
    // These need no configuration: they work even with a broken config file.
    match &cli.command {
        Command::Completions(args) => return commands::completions::completions(args),
        Command::Man(args) => {
            let ui = Ui::new(cli.global.verbose, cli.global.quiet, cli.global.color);
            return commands::completions::man(args, &ui);
        }
        _ => {}
    }
    let ctx = Context::new(&cli.global)?;
    match &cli.command {
        Command::Start(args) => commands::start::run(&ctx, args),
        Command::Stop(args) => commands::stop::run(&ctx, args),
        Command::Status(args) => commands::status::run(&ctx, args),
        Command::Clean(args) => commands::clean::run(&ctx, args),
        Command::HostsToml(args) => commands::hosts_toml::run(&ctx, args),
        Command::Configure(args) => commands::configure::configure(&ctx, args),
        Command::Unconfigure(args) => commands::configure::unconfigure(&ctx, args),
        Command::SetupHost(args) => commands::setup_host::run(&ctx, args),
        Command::Stats(args) => commands::stats::run(&ctx, args),
        Command::Warm(args) => commands::warm::run(&ctx, args),
        Command::Prune(args) => commands::prune::run(&ctx, args),
        Command::Doctor(args) => commands::doctor::run(&ctx, args),
        Command::Logs(args) => commands::logs::run(&ctx, args),
        Command::Completions(_) | Command::Man(_) => unreachable!("handled before the context"),
    }
}

fn main() {
    let cli = Cli::parse();
    interrupt::install();
    let status = match run(&cli) {
        Ok(status) => status,
        Err(err) => {
            let ui = Ui::new(false, false, cli.global.color);
            let causes: Vec<String> = err.chain().skip(1).map(ToString::to_string).collect();
            ui.error_chain(&err.to_string(), &causes, errors::hint(&err).as_deref());
            errors::exit_status(&err)
        }
    };
    std::process::exit(status.code());
}
