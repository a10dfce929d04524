//! `drcache setup-host`: let cluster VMs reach the caches through the host's
//! firewall. One interface, [`run`]; the work per OS lives in [`linux`]
//! (firewalld) and [`macos`] (the application firewall and podman's gvproxy).

pub mod autostart;
pub mod linux;
pub mod macos;
pub mod nft;

use std::cell::OnceCell;
use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use crate::errors::{exit, Hinted};
use crate::exec::{Cmd, Output, Runner};
use crate::hostinfo::{self, test_hooks, HostOs};
use crate::tools;
use crate::ui::Ui;

/// What setup-host needs and nothing more: how to run commands and talk to
/// the user, which ports the caches use, and whether to change anything.
pub struct HostEnv<'a> {
    pub runner: &'a Runner,
    pub ui: &'a Ui,
    pub ports: Vec<u16>,
    pub dry_run: bool,
    /// Who may reach the caches (the config's `clients`).
    pub clients: Vec<crate::clients::Client>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Linux,
    Macos,
}

/// The OS whose firewall setup-host deals with.
pub fn host_os() -> Result<Os, Hinted> {
    match hostinfo::host_os() {
        HostOs::Linux => Ok(Os::Linux),
        HostOs::Macos => Ok(Os::Macos),
        HostOs::Other => Err(Hinted {
            message: format!(
                "setup-host knows the firewalls of Linux and macOS, not {}",
                std::env::consts::OS
            ),
            hint: "open the cache ports to your cluster VMs by hand".into(),
            code: exit::USAGE,
        }),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Setup,
    Check,
    Undo,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Setup => "setup",
            Mode::Check => "check",
            Mode::Undo => "undo",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    /// The firewalld zone of the VMs' network (Linux only).
    pub zone: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No firewall stands between the VMs and the caches.
    NotNeeded,
    /// Set up already (setup, check), or nothing left to remove (undo).
    Done,
    Changed,
    /// `--dry-run`: these changes would be made.
    WouldChange,
    /// `--check`: something is missing.
    Missing,
}

impl State {
    /// Where a run that made `changes` (or, under `--dry-run`, would make
    /// them) leaves the host.
    pub fn after(changes: &[String], dry_run: bool) -> State {
        match (changes.is_empty(), dry_run) {
            (true, _) => State::Done,
            (false, true) => State::WouldChange,
            (false, false) => State::Changed,
        }
    }

    fn name(self) -> &'static str {
        match self {
            State::NotNeeded => "not-needed",
            State::Done => "done",
            State::Changed => "changed",
            State::WouldChange => "would-change",
            State::Missing => "missing",
        }
    }
}

/// What setup-host found and did: for people, and for `--json`.
#[derive(Debug, Clone)]
pub struct Report {
    pub os: Os,
    pub mode: Mode,
    pub state: State,
    /// One line that says where the host stands.
    pub summary: String,
    /// What was looked at, e.g. ("zone", "libvirt"), ("gvproxy", path).
    pub facts: Vec<(&'static str, String)>,
    /// Changes made (or, under `--dry-run`, that would be made).
    pub changes: Vec<String>,
    /// What `--check` found missing.
    pub missing: Vec<String>,
}

impl Report {
    fn new(os: Os, mode: Mode) -> Self {
        Report {
            os,
            mode,
            state: State::Done,
            summary: String::new(),
            facts: Vec::new(),
            changes: Vec::new(),
            missing: Vec::new(),
        }
    }

    fn finish(mut self, state: State, summary: impl Into<String>) -> Self {
        self.state = state;
        self.summary = summary.into();
        self
    }

    pub fn to_json(&self) -> serde_json::Value {
        let facts: serde_json::Map<String, serde_json::Value> = self
            .facts
            .iter()
            .map(|(k, v)| ((*k).to_string(), json!(v)))
            .collect();
        json!({
            "os": match self.os { Os::Linux => "linux", Os::Macos => "macos" },
            "mode": self.mode.name(),
            "state": self.state.name(),
            "summary": self.summary,
            "facts": facts,
            "changes": self.changes,
            "missing": self.missing,
        })
    }
}

/// Set up, check or undo what the host's firewall needs.
pub fn run(env: &HostEnv, opts: &Options) -> Result<Report> {
    match host_os()? {
        Os::Linux => {
            let mut report = linux::run(env, opts)?;
            let filter = nft::run(env, opts.mode, &mut report)?;
            Ok(combine(report, filter))
        }
        Os::Macos => macos::run(env, opts),
    }
}

/// The firewalld report with the state of the nftables filter folded in.
fn combine(report: Report, filter: State) -> Report {
    use State::*;
    let state = match (report.state, filter) {
        (Missing, _) | (_, Missing) => Missing,
        (WouldChange, _) | (_, WouldChange) => WouldChange,
        (Changed, _) | (_, Changed) => Changed,
        (NotNeeded, NotNeeded) => NotNeeded,
        _ => Done,
    };
    let undo = report.mode == Mode::Undo;
    let filter_line = match filter {
        NotNeeded => None,
        Missing => Some("the client filter is not in place"),
        Changed if undo => Some("client filter removed"),
        Changed => Some("client filter updated"),
        WouldChange => Some("the client filter would be updated"),
        Done if undo => Some("no client filter to remove"),
        Done => Some("client filter in place"),
    };
    let summary = match filter_line {
        Some(line) => format!("{}; {line}", report.summary),
        None => report.summary.clone(),
    };
    Report {
        state,
        summary,
        ..report
    }
}

/// For `drcache start`: a warning when cluster VMs cannot reach the caches
/// because of the host's firewall. Only macOS is checked, where every podman
/// upgrade moves gvproxy and so undoes the setup.
pub fn start_warning(runner: &Runner) -> Option<String> {
    match host_os() {
        Ok(Os::Macos) => macos::start_warning(runner),
        _ => None,
    }
}

fn effective_uid() -> u32 {
    if let Some(uid) = test_hooks::euid() {
        return uid;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Runs privileged commands: directly as root, else through sudo.
pub struct Privilege {
    root: bool,
    dry_run: bool,
    sudo: OnceCell<PathBuf>,
}

impl Privilege {
    pub fn detect(dry_run: bool) -> Self {
        Privilege {
            root: effective_uid() == 0,
            dry_run,
            sudo: OnceCell::new(),
        }
    }

    pub fn is_root(&self) -> bool {
        self.root
    }

    /// `cmd` as it must run to change the system.
    pub fn elevate(&self, cmd: Cmd) -> Result<Cmd, Hinted> {
        if self.root {
            return Ok(cmd);
        }
        if let Some(sudo) = self.sudo.get() {
            return Ok(cmd.via_sudo(sudo));
        }
        let sudo = match crate::privileged::find(&tools::SUDO) {
            Ok(path) => path,
            // A dry run only shows the command line.
            Err(_) if self.dry_run => PathBuf::from("sudo"),
            Err(e) => {
                return Err(Hinted {
                    message: format!(
                        "changing the firewall needs root, and sudo cannot be used: {}",
                        e.message
                    ),
                    hint: format!(
                        "run `drcache setup-host` as root, or install sudo (or set {})",
                        tools::SUDO.env_var
                    ),
                    code: exit::TOOL_MISSING,
                })
            }
        };
        Ok(cmd.via_sudo(self.sudo.get_or_init(|| sudo)))
    }

    /// Run a privileged command; a refusal by sudo gets a hint.
    pub fn run(&self, runner: &Runner, cmd: Cmd) -> Result<Output> {
        let cmd = self.elevate(cmd)?;
        runner.run(&cmd).map_err(|mut err| {
            if !self.root && err.hint.is_none() && sudo_refused(&err.stderr_tail) {
                err.hint = Some(
                    "drcache needs root for this change: make sure your user may run it \
                     with sudo, or run `drcache setup-host` as root"
                        .into(),
                );
            }
            anyhow::Error::new(err)
        })
    }
}

/// Whether stderr is sudo's own complaint rather than the tool's.
fn sudo_refused(stderr: &str) -> bool {
    stderr.lines().any(|l| {
        l.starts_with("sudo:")
            || l.starts_with("Sorry, try again")
            || l.contains("is not in the sudoers file")
            || l.contains("is not allowed to execute")
    })
}

/// Changes made so far, so that a failure says what it left behind.
struct Progress<'a> {
    env: &'a HostEnv<'a>,
    done: Vec<String>,
}

impl<'a> Progress<'a> {
    fn new(env: &'a HostEnv<'a>) -> Self {
        Progress {
            env,
            done: Vec::new(),
        }
    }

    /// Run one change, described as `what` ("add service X to zone Y"), and
    /// print it as done ("added ...", or "would ..." under `--dry-run`).
    fn step<T>(
        &mut self,
        what: &str,
        done: &str,
        change: impl FnOnce() -> Result<T, anyhow::Error>,
    ) -> Result<T> {
        match change() {
            Ok(value) => {
                let line = if self.env.dry_run {
                    format!("would {what}")
                } else {
                    done.to_string()
                };
                self.env.ui.info(&line);
                self.done.push(line);
                Ok(value)
            }
            Err(err) if self.done.is_empty() || self.env.dry_run => {
                Err(err.context(format!("could not {what}")))
            }
            Err(err) => Err(err.context(format!(
                "could not {what}, after these changes: {}. Fix the cause and run \
                 `drcache setup-host` again, or `drcache setup-host --undo` to remove them",
                self.done.join("; ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sudo_refusals_are_recognized() {
        assert!(sudo_refused("sudo: 3 incorrect password attempts"));
        assert!(sudo_refused(
            "alice is not in the sudoers file.  This incident will be reported."
        ));
        assert!(sudo_refused(
            "Sorry, user alice is not allowed to execute '/usr/bin/firewall-cmd --reload' as root on host."
        ));
        assert!(sudo_refused(
            "sudo: a terminal is required to read the password"
        ));
        assert!(!sudo_refused("Error: INVALID_ZONE: nope"));
    }

    #[test]
    fn report_json_has_every_part() {
        let mut report = Report::new(Os::Linux, Mode::Check);
        report.facts.push(("zone", "libvirt".into()));
        report
            .missing
            .push("service registry-cache does not exist".into());
        let report = report.finish(State::Missing, "not set up");
        assert_eq!(
            report.to_json(),
            json!({
                "os": "linux", "mode": "check", "state": "missing", "summary": "not set up",
                "facts": {"zone": "libvirt"}, "changes": [],
                "missing": ["service registry-cache does not exist"],
            })
        );
    }
}
