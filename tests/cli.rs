//! The fast tier: drcache against fake executables (podman, minikube,
//! firewall-cmd, socketfilterfw, sudo) that log every call. No real
//! component, no lock, no network: `cargo test --test cli`.

#[path = "support/fake.rs"]
mod fake;
mod support;

#[path = "cli/autostart.rs"]
mod autostart;
#[path = "cli/configure_minikube.rs"]
mod configure_minikube;
#[path = "cli/no_follow.rs"]
mod no_follow;
#[path = "cli/observe.rs"]
mod observe;
#[path = "cli/podman_fake.rs"]
mod podman_fake;
#[path = "cli/prune.rs"]
mod prune;
#[path = "cli/setup_host_linux.rs"]
mod setup_host_linux;
#[path = "cli/setup_host_macos.rs"]
mod setup_host_macos;

use std::path::Path;
use std::process::Command;

use support::{drcache, FakeBin};

/// drcache driving the fake `podman`; locks and markers go to the fake's
/// private dir, like a user's runtime dir; the host OS is this machine's.
pub fn with_fake(fake: &FakeBin, podman: &Path) -> Command {
    let mut cmd = drcache(None);
    cmd.env("DRCACHE_PODMAN", podman)
        .env("DRCACHE_STATE_DIR", fake.path())
        .env_remove("DRCACHE_HOST_OS");
    cmd
}
