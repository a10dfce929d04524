//! `drcache doctor`: a list of checks, each saying what it found and, when
//! it failed, what to do.
//!
//! One gathering step ([`gather::gather`]) does all the I/O: podman's
//! listings, probes of the caches and their upstreams, the ports, the host
//! firewall, the minikube nodes. Then each group of checks is a pure function
//! of what was gathered ([`Inputs`]), one file per group, listed in
//! [`GROUPS`]: the printer, `--json` and the exit status take every group's
//! checks alike. To add a group, gather what it needs and list it.

use std::path::PathBuf;

use serde::Serialize;

use crate::cache::CacheSpec;
use crate::hostinfo::{HostOs, PortOwner};
use crate::metrics::Format;
use crate::podman::Machine;
use crate::reconcile::Facts;
use crate::registry_http::Probe;
use crate::upstream::Silence;

mod autostart;
mod caches;
mod firewall;
pub mod gather;
mod minikube;
mod podman;
mod ports;
#[cfg(test)]
mod testing;

pub use gather::gather;
pub use minikube::{MinikubeFacts, NodeFacts, ProfileFacts};

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// What to do about a failed check.
    pub fix: Option<String>,
    /// A passed check with something the user should know, and how to
    /// avoid it (e.g. the image they chose expires cached data): a note.
    pub tip: Option<String>,
}

impl Check {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
            tip: None,
        }
    }

    pub fn is_note(&self) -> bool {
        self.tip.is_some()
    }

    pub fn note(
        name: impl Into<String>,
        detail: impl Into<String>,
        advice: impl Into<String>,
    ) -> Check {
        Check {
            tip: Some(advice.into()),
            ..Check::pass(name, detail)
        }
    }

    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
            tip: None,
        }
    }
}

/// What the checks look at, read once before any check runs.
pub struct Inputs {
    pub os: HostOs,
    pub specs: Vec<CacheSpec>,
    /// The podman executable, or why there is none (with its fix).
    pub podman_path: Result<PathBuf, (String, String)>,
    /// Podman's client version, when `podman version` answered.
    pub podman_version: Option<String>,
    /// `podman machine list` (macOS only): the machines, or the error.
    pub machines: Option<Result<Vec<Machine>, String>>,
    /// One `ps` and one `volume ls`, or why podman did not answer (with a hint).
    pub facts: Result<Facts, (String, Option<String>)>,
    /// The readiness probe of each running cache, by registry name.
    pub probes: Vec<(String, Probe)>,
    /// Why each cache that exited with an error stopped, from its log, by
    /// registry name.
    pub last_logs: Vec<(String, String)>,
    /// Registries whose credentials cannot be read here, with why: whether
    /// their cache is current cannot be told.
    pub credentials_unknown: Vec<(String, String)>,
    /// The registry version family of each running cache, told by what its
    /// `/metrics` exports, by registry name.
    pub formats: Vec<(String, Format)>,
    /// drcache's own probe of the upstream of each cache that is not serving
    /// in proxy mode (offline, stopped by an upstream failure, not
    /// answering): the answer decides between `start` and `start --offline`.
    pub upstreams: Vec<(String, Result<(), Silence>)>,
    /// Cache ports taken by something other than a container (bound on this
    /// host), with the process when /proc tells it. Any other port is free.
    pub ports_taken: Vec<(u16, Option<PortOwner>)>,
    /// `setup-host --check` in the default zone: its summary, or the missing
    /// pieces, or why it could not run (with a fix). None where not checked.
    pub firewall: Option<Result<FirewallFacts, (String, String)>>,
    /// When the caches are open to networks `clients` does not name: those
    /// interfaces and why no filter holds them. None when they are not.
    pub exposure: Option<(Vec<String>, String)>,
    /// The minikube side; None when minikube is not installed.
    pub minikube: Option<MinikubeFacts>,
    /// Where autostart stands and the time it was read at; None where not checked.
    pub autostart: Option<(crate::host::autostart::Status, i64)>,
}

/// What `setup-host --check` found.
#[derive(Debug, Clone)]
pub struct FirewallFacts {
    pub missing: Vec<String>,
    pub summary: String,
}

/// A group of checks.
pub type Group = fn(&Inputs) -> Vec<Check>;

/// Every group `doctor` runs, in order.
pub const GROUPS: &[(&str, Group)] = &[
    ("podman", podman::checks),
    ("caches", caches::checks),
    ("ports", ports::checks),
    ("firewall", firewall::checks),
    ("autostart", autostart::checks),
    ("minikube", minikube::checks),
];

/// Run every group.
pub fn run_checks(inputs: &Inputs) -> Vec<Check> {
    GROUPS.iter().flat_map(|(_, group)| group(inputs)).collect()
}
