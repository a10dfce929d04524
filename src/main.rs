mod cache;
mod cli;
mod commands;
mod config;
mod containerd;
mod context;
mod credentials;
mod errors;
mod exec;
#[cfg(test)]
mod fuzz_tests;
mod host;
mod lock;
mod minikube;
mod podman;
mod reconcile;
mod registry_http;
mod tools;
mod ui;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::context::Context;
use crate::ui::{Tone, Ui};

fn run(cli: &Cli) -> anyhow::Result<()> {
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
    }
}

fn main() {
    let cli = Cli::parse();
    let Err(err) = run(&cli) else {
        std::process::exit(errors::exit::OK);
    };
    let ui = Ui::new(false, false, cli.global.color);
    eprintln!("{} {err}", ui.paint(Tone::Bad, "error:"));
    let causes: Vec<String> = err.chain().skip(1).map(ToString::to_string).collect();
    if !causes.is_empty() {
        eprintln!("\nCaused by:");
        for cause in causes {
            eprintln!("    {}", cause.replace('\n', "\n    "));
        }
    }
    if let Some(hint) = errors::hint(&err) {
        eprintln!("{} {hint}", ui.paint(Tone::Warn, "hint:"));
    }
    std::process::exit(errors::exit_code(&err));
}
