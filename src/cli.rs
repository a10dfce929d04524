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

    /// Kill any podman, minikube or firewall command still running after this
    /// long (image pulls get at least 30 minutes)
    #[arg(
        long,
        global = true,
        env = "DRCACHE_COMMAND_TIMEOUT",
        default_value_t = 120,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub command_timeout: u64,

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
    /// Print or write the containerd hosts.toml that sends each registry's pulls
    /// through its cache (for kind, k3d or any containerd; see docs/clusters.md)
    HostsToml(HostsTomlArgs),
    /// Make minikube clusters pull through the caches, on every node and across
    /// restarts, and check from each node that the caches answer (exit 3 when not)
    Configure(ConfigureArgs),
    /// Remove what `configure` wrote, from minikube's file-sync directory and
    /// from the nodes of running clusters
    Unconfigure(ConfigureArgs),
    /// Let cluster VMs reach the caches through the host's firewall (Linux
    /// firewalld, macOS application firewall) and start the caches at boot;
    /// once per host, idempotent
    #[command(
        long_about = "Let cluster VMs reach the caches through the host's firewall, and start the \
                      caches at boot (or login) and every 5 minutes, once per host.\n\n\
                      Linux: adds a firewalld service `registry-cache` opening the cache ports to \
                      the zone of the VMs' network (`libvirt` for kvm2). Nothing is needed when \
                      firewalld is not installed or not running.\n\
                      macOS: allows podman's gvproxy, which carries the VMs' connections to the \
                      caches, through the application firewall. Run it again after upgrading podman.\n\n\
                      Autostart (unless --no-autostart): a systemd service and timer \
                      (drcache-PREFIX.service/.timer; user units for rootless podman) or a launchd \
                      agent (io.drcache.PREFIX) that run `drcache start` with this binary and config \
                      file. Where neither runs, it says what to run after each boot.\n\n\
                      Changes need root: drcache runs them through sudo when you are not root. \
                      With --dry-run the privileged commands are printed, not run."
    )]
    SetupHost(SetupHostArgs),
    /// Show each cache's requests, hits, misses and bytes since it started
    Stats(SelectArgs),
    /// Fetch images through their caches ahead of need (e.g. before going offline)
    Warm(WarmArgs),
    /// Remove cached images no cluster uses and none you keep, and free their disk
    Prune(PruneArgs),
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
pub struct SetupHostArgs {
    /// Change nothing; exit 0 when the host is set up, 3 when not
    #[arg(long, conflicts_with = "undo")]
    pub check: bool,

    /// Remove what setup-host added
    #[arg(long)]
    pub undo: bool,

    /// Leave autostart alone (set up, checked or removed otherwise)
    #[arg(long)]
    pub no_autostart: bool,

    /// firewalld zone of the cluster VMs' network (Linux)
    #[arg(long, default_value = "libvirt", value_name = "ZONE")]
    pub zone: String,
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
#[command(
    after_help = "At least one way to keep images is needed: --keep, --keep-file, \
    --unused-for, or running minikube nodes (their images are kept). IMAGE takes the forms \
    of `warm`. Each cache is down while it is pruned; it comes back in the mode it was in."
)]
pub struct PruneArgs {
    /// Registries to prune (default: all configured)
    #[arg(value_name = "REGISTRY")]
    pub registries: Vec<String>,

    /// Keep this image (repeat for several)
    #[arg(short, long, value_name = "IMAGE")]
    pub keep: Vec<String>,

    /// Keep the images listed in FILE (`-` for stdin), as `warm --file` reads them
    #[arg(long, value_name = "FILE")]
    pub keep_file: Option<PathBuf>,

    /// Keep images pulled through the cache within DURATION (e.g. 30d, 12h), as its
    /// log shows; an image whose last pull is unknown is kept
    #[arg(long, value_name = "DURATION")]
    pub unused_for: Option<String>,

    /// Go on when a cluster node cannot be read (its images are then not known)
    #[arg(long)]
    pub ignore_clusters: bool,
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

    /// Serve only what is cached, read-only, without contacting the upstreams
    /// (for planned travel); the next plain `start` returns to proxy mode
    #[arg(long)]
    pub offline: bool,

    /// Wait up to this long for podman to answer before giving up (a podman
    /// machine still starting after login; the macOS autostart agent uses it)
    #[arg(long, value_name = "SECONDS")]
    pub wait_for_podman: Option<u64>,
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    #[command(flatten)]
    pub select: SelectArgs,

    /// Also remove the caches' volumes (the cached images)
    #[arg(long)]
    pub volumes: bool,
}

#[derive(Debug, Args)]
pub struct HostsTomlArgs {
    #[command(flatten)]
    pub select: SelectArgs,

    /// Address the cluster nodes reach the caches at (default: the config's `host`)
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// Write DIR/<registry>/hosts.toml instead of printing
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ConfigureArgs {
    /// Running minikube profiles to act on now (default: all running ones with
    /// the containerd runtime); repeat for several
    #[arg(short, long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
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
    fn wiring_commands_parse() {
        let cli =
            Cli::try_parse_from(["drcache", "hosts-toml", "--host", "::1", "--out", "d"]).unwrap();
        match cli.command {
            Command::HostsToml(a) => {
                assert_eq!(a.host.as_deref(), Some("::1"));
                assert_eq!(a.out, Some(PathBuf::from("d")));
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli =
            Cli::try_parse_from(["drcache", "configure", "-p", "a", "--profile", "b"]).unwrap();
        match cli.command {
            Command::Configure(a) => assert_eq!(a.profiles, ["a", "b"]),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn setup_host_check_and_undo_exclude_each_other() {
        let cli = Cli::try_parse_from(["drcache", "setup-host", "--check"]).unwrap();
        match cli.command {
            Command::SetupHost(a) => assert!(a.check && !a.undo && a.zone == "libvirt"),
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["drcache", "setup-host", "--check", "--undo"]).is_err());
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
