//! Command-line interface. Global options work before or after the subcommand.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::ui::ColorChoice;

#[derive(Debug, Parser)]
#[command(
    name = "drcache",
    version,
    about = "Local pull-through caches of container registries for minikube clusters",
    long_about = "Runs one registry container per upstream registry (quay.io, docker.io, \
                  registry.k8s.io, ghcr.io, gcr.io) in proxy mode with podman, so cluster \
                  nodes pull each image from the internet once."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Config file (default: $DRCACHE_CONFIG, then $XDG_CONFIG_HOME/drcache/config.toml
    /// when it exists, then the embedded default)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Show every command run, as `+ podman ...`
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,

    /// Print only errors and warnings
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Run queries but change nothing; print each change instead
    #[arg(long, global = true)]
    pub dry_run: bool,

    /// Print a machine-readable report on stdout
    #[arg(long, global = true)]
    pub json: bool,

    /// Color human output (also off when NO_COLOR is set)
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        value_name = "WHEN"
    )]
    pub color: ColorChoice,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or start the caches and wait until they answer
    Start(StartArgs),
    /// Stop the caches; containers and cached data are kept
    Stop(SelectArgs),
    /// Show each cache's state and readiness (exit 3 when any is not ready)
    Status(SelectArgs),
    /// Remove the cache containers (and with --volumes, their cached data)
    Clean(CleanArgs),
    /// Show each cache's requests, hits, misses and bytes since it started
    Stats(SelectArgs),
    /// Fetch images through their caches ahead of need (e.g. before going offline)
    Warm(WarmArgs),
    /// Check podman, the caches and their ports; say what to fix (exit 3 when a check fails)
    Doctor(SelectArgs),
    /// Show the log of a cache (podman logs of its container)
    Logs(LogsArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
    /// Print the man page (or write one page per command into a directory)
    Man(ManArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "IMAGE is a reference as in a pod spec: `nginx` is \
    docker.io/library/nginx:latest. A list file holds one reference a line (`#` starts a \
    comment), or the output of `kubectl get pods -A -o jsonpath='{..image}'`.")]
pub struct WarmArgs {
    /// Image references
    #[arg(value_name = "IMAGE", required_unless_present = "file")]
    pub images: Vec<String>,

    /// Read image references from FILE (`-` for stdin)
    #[arg(short, long, value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Platforms to fetch from multi-platform images: OS/ARCH[/VARIANT], comma-separated
    /// or repeated, or `all` (default: linux on this host's CPU)
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Vec<String>,

    /// Connections to the caches at a time
    #[arg(short, long, default_value_t = 4, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The cache's registry, e.g. quay.io
    #[arg(value_name = "REGISTRY")]
    pub registry: String,

    /// Keep printing new lines as they are logged
    #[arg(short, long)]
    pub follow: bool,

    /// Print only the last N lines
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<u32>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write drcache.1 and drcache-COMMAND.1 into DIR instead of printing drcache.1
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Registries to act on (default: all configured)
    #[arg(value_name = "REGISTRY")]
    pub registries: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub select: SelectArgs,

    /// Seconds to wait for the caches to answer
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    #[command(flatten)]
    pub select: SelectArgs,

    /// Also remove the caches' volumes (the cached images)
    #[arg(long)]
    pub volumes: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_work_after_the_subcommand() {
        let cli = Cli::try_parse_from(["drcache", "status", "--json", "-v", "--config", "c.toml"])
            .unwrap();
        assert!(cli.global.json && cli.global.verbose);
        assert_eq!(cli.global.config, Some(PathBuf::from("c.toml")));
        let cli = Cli::try_parse_from(["drcache", "--dry-run", "start", "quay.io"]).unwrap();
        assert!(cli.global.dry_run);
        match cli.command {
            Command::Start(a) => assert_eq!(a.select.registries, ["quay.io"]),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn warm_needs_images_or_a_file() {
        assert!(Cli::try_parse_from(["drcache", "warm"]).is_err());
        let cli = Cli::try_parse_from(["drcache", "warm", "-f", "-", "--platform", "all"]).unwrap();
        match cli.command {
            Command::Warm(a) => {
                assert_eq!(a.file, Some(PathBuf::from("-")));
                assert_eq!(a.platform, ["all"]);
                assert_eq!(a.jobs, 4);
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["drcache", "warm", "nginx", "-j", "0"]).is_err());
    }
}
