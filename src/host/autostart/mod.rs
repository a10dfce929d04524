//! Autostart: `drcache start` run by the system at boot (or login) and
//! every few minutes after, so caches come back after a reboot and a cache
//! that fell back to offline mode returns to proxy mode once its upstream
//! answers. [`systemd`] (a oneshot service and its timer) on Linux,
//! [`launchd`] (an agent) on macOS; elsewhere, a sentence on what to run.
//!
//! The unit runs the start line as a person would type it (the absolute
//! path of this drcache binary, `start`, `--config` and the absolute path of
//! the config file in use), with [`ENV`] set: that tells `start` it runs
//! unattended (a person's `start --offline` is then kept) and makes it
//! record the run's time and outcome in the state directory, which is how
//! `status` and `doctor` tell when the last automatic run was.

pub mod launchd;
pub mod systemd;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use super::{HostEnv, Mode, Os, Report, State};
use crate::clock;
use crate::hostinfo::{self, test_hooks, HostOs};
use crate::lock;

/// Set to `1` by the units: this `start` was started by autostart.
pub const ENV: &str = "DRCACHE_AUTOSTART";
/// How often the timer (or agent) runs `start`.
pub const INTERVAL_SECS: u64 = 300;
/// How long the macOS agent's `start` waits for the podman machine.
pub const MACOS_WAIT_FOR_PODMAN: u64 = 120;

/// Whether this run was started by an autostart unit.
pub fn triggered() -> bool {
    std::env::var(ENV).is_ok_and(|v| v == "1")
}

/// What runs services on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Init {
    /// systemd; `user`: the user's own manager (rootless podman).
    Systemd {
        user: bool,
    },
    Launchd,
    /// Neither: why, for the message.
    Unavailable(String),
}

/// systemd's own test: it runs when `/run/systemd/system` exists
/// (`sd_booted()`). macOS always has launchd.
pub fn detect() -> Init {
    let user = super::effective_uid() != 0;
    let forced = test_hooks::init();
    match forced.as_deref() {
        Some("systemd") => return Init::Systemd { user },
        Some("launchd") => return Init::Launchd,
        Some(other) => return Init::Unavailable(format!("no service manager ({other})")),
        None => {}
    }
    match hostinfo::host_os() {
        HostOs::Macos => Init::Launchd,
        HostOs::Linux if Path::new("/run/systemd/system").is_dir() => Init::Systemd { user },
        HostOs::Linux => Init::Unavailable(
            "systemd does not run here (/run/systemd/system does not exist: a container, \
             WSL without systemd, another init)"
                .into(),
        ),
        HostOs::Other => Init::Unavailable(format!(
            "drcache knows no service manager of {}",
            std::env::consts::OS
        )),
    }
}

/// The command a unit runs: this drcache, `start`, the config file in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartLine {
    pub program: PathBuf,
    pub config: Option<PathBuf>,
    /// `--wait-for-podman SECONDS` (macOS: the podman machine may still boot).
    pub wait_for_podman: Option<u64>,
}

impl StartLine {
    /// This very binary (symlinks resolved) with the config file in use.
    pub fn current(config: Option<&Path>) -> Result<StartLine> {
        let exe = std::env::current_exe().context("cannot tell where this drcache binary is")?;
        let program = std::fs::canonicalize(&exe).unwrap_or(exe);
        let config = config.map(|c| std::fs::canonicalize(c).unwrap_or_else(|_| c.to_path_buf()));
        Ok(StartLine {
            program,
            config,
            wait_for_podman: None,
        })
    }

    /// The arguments after the program.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["start".to_string()];
        if let Some(wait) = self.wait_for_podman {
            args.push("--wait-for-podman".into());
            args.push(wait.to_string());
        }
        if let Some(config) = &self.config {
            args.push("--config".into());
            args.push(config.display().to_string());
        }
        args
    }

    /// What is wrong with a start line read back from a unit: a program or
    /// config file that no longer exists.
    pub fn problems(&self, unit: &Path) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.program.is_file() {
            problems.push(format!(
                "{} runs {}, which no longer exists",
                unit.display(),
                self.program.display()
            ));
        }
        if let Some(config) = self.config.as_ref().filter(|c| !c.is_file()) {
            problems.push(format!(
                "{} uses the config file {}, which no longer exists",
                unit.display(),
                config.display()
            ));
        }
        problems
    }

    /// Read a start line back from its words (program first).
    pub fn from_words(words: &[String]) -> Option<StartLine> {
        let (program, rest) = words.split_first()?;
        let mut line = StartLine {
            program: PathBuf::from(program),
            config: None,
            wait_for_podman: None,
        };
        let mut rest = rest.iter();
        while let Some(word) = rest.next() {
            match word.as_str() {
                "--config" => line.config = rest.next().map(PathBuf::from),
                "--wait-for-podman" => line.wait_for_podman = rest.next()?.parse().ok(),
                _ => {}
            }
        }
        Some(line)
    }
}

/// Whose caches the units start, and with what.
#[derive(Debug, Clone)]
pub struct Target {
    pub prefix: String,
    pub line: StartLine,
}

/// Set up, check or undo autostart; a report like the firewall's.
pub fn run(env: &HostEnv, mode: Mode, target: &Target) -> Result<Report> {
    let os = match hostinfo::host_os() {
        HostOs::Macos => Os::Macos,
        _ => Os::Linux,
    };
    match detect() {
        Init::Systemd { user } => systemd::run(env, mode, target, os, user),
        Init::Launchd => launchd::run(env, mode, target, os),
        Init::Unavailable(why) => Ok(Report::new(os, mode).finish(
            State::NotNeeded,
            format!(
                "autostart is not available: {why}; run `{}` after each boot \
                 (and `drcache start` again when the network returns after an offline start)",
                display_line(&target.line)
            ),
        )),
    }
}

/// The start line as a person would type it.
pub fn display_line(line: &StartLine) -> String {
    std::iter::once(line.program.display().to_string())
        .chain(line.args())
        .map(|w| crate::exec::shell_quote(&w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Write `text` to `path` when its content differs, atomically: a temporary
/// file in the same directory, renamed over it. Returns whether it changed.
pub fn write_if_changed(path: &Path, text: &str) -> Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    let dir = path
        .parent()
        .with_context(|| format!("{} has no directory", path.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".drcache-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(true)
}

/// Remove `path`; true when there was something to remove.
pub fn remove_file(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// The last automatic run, as `start` recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    /// Unix time at the end of the run.
    pub time: i64,
    /// drcache's exit status.
    pub code: i32,
    pub summary: String,
}

fn record_path(prefix: &str) -> Result<PathBuf> {
    Ok(lock::state_dir()?.join(format!("{prefix}.autostart.json")))
}

/// Record an automatic run (its end) in the state directory.
pub fn record_run(prefix: &str, code: i32, summary: &str) -> Result<()> {
    lock::ensure_state_dir()?;
    let run = LastRun {
        time: clock::unix_now(),
        code,
        summary: summary.to_string(),
    };
    write_if_changed(&record_path(prefix)?, &serde_json::to_string(&run)?)?;
    Ok(())
}

/// The last recorded automatic run, if any.
pub fn last_run(prefix: &str) -> Option<LastRun> {
    let text = std::fs::read_to_string(record_path(prefix).ok()?).ok()?;
    serde_json::from_str(&text).ok()
}

/// Where autostart stands, from files alone (no service manager is asked):
/// for `status` and `doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// `systemd`, `systemd --user`, `launchd`, or None when unavailable.
    pub manager: Option<&'static str>,
    /// The unit (the timer, or the agent) when it is installed.
    pub unit: Option<PathBuf>,
    /// A unit that points at a drcache or config file that no longer exists.
    pub problems: Vec<String>,
    pub last_run: Option<LastRun>,
    /// Why autostart cannot be had here, when it cannot.
    pub unavailable: Option<String>,
}

impl Status {
    pub fn read(prefix: &str) -> Status {
        let last_run = last_run(prefix);
        let (manager, installed) = match detect() {
            Init::Systemd { user } => (
                Some(if user { "systemd --user" } else { "systemd" }),
                systemd::installed(prefix, user),
            ),
            Init::Launchd => (Some("launchd"), launchd::installed(prefix)),
            Init::Unavailable(why) => {
                return Status {
                    manager: None,
                    unit: None,
                    problems: Vec::new(),
                    last_run,
                    unavailable: Some(why),
                }
            }
        };
        let (unit, problems) = match installed {
            Some((unit, line)) => {
                let problems = match &line {
                    Some(line) => line.problems(&unit),
                    None => vec![format!("{} has no drcache start line", unit.display())],
                };
                (Some(unit), problems)
            }
            None => (None, Vec::new()),
        };
        Status {
            manager,
            unit,
            problems,
            last_run,
            unavailable: None,
        }
    }

    /// One line for people.
    pub fn describe(&self, now: i64) -> String {
        let last = match &self.last_run {
            Some(run) => format!(
                "last automatic run {} ago ({}): {}",
                crate::ui::human_duration(now.saturating_sub(run.time).max(0) as u64),
                if run.code == 0 {
                    "ok".to_string()
                } else {
                    format!("exit {}", run.code)
                },
                run.summary
            ),
            None => "no automatic run recorded yet".into(),
        };
        match (&self.unit, &self.unavailable) {
            (_, Some(why)) => format!("not available ({why})"),
            (None, None) => "not set up (`drcache setup-host` sets it up)".into(),
            (Some(unit), None) if !self.problems.is_empty() => {
                format!("broken: {} ({})", self.problems.join("; "), unit.display())
            }
            (Some(unit), None) => format!(
                "set up ({}, {}); {last}",
                self.manager.unwrap_or("?"),
                unit.display()
            ),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "available": self.unavailable.is_none(),
            "manager": self.manager,
            "set_up": self.unit.is_some(),
            "unit": self.unit.as_ref().map(|u| u.display().to_string()),
            "problems": self.problems,
            "last_run": self.last_run.as_ref().map(|r| serde_json::json!({
                "time": r.time, "exit_code": r.code, "summary": r.summary,
            })),
        })
    }
}

/// The user's home (for per-user units and agents).
fn home() -> Result<PathBuf> {
    match std::env::var_os("HOME").map(PathBuf::from) {
        Some(home) if home.is_absolute() => Ok(home),
        _ => bail!("HOME is not set to an absolute path: cannot find where user units go"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_line_words_round_trip() {
        let line = StartLine {
            program: "/usr/local/bin/drcache".into(),
            config: Some("/etc/drcache/config.toml".into()),
            wait_for_podman: Some(120),
        };
        assert_eq!(
            line.args(),
            [
                "start",
                "--wait-for-podman",
                "120",
                "--config",
                "/etc/drcache/config.toml"
            ]
        );
        let words: Vec<String> = std::iter::once(line.program.display().to_string())
            .chain(line.args())
            .collect();
        assert_eq!(StartLine::from_words(&words), Some(line.clone()));
        assert_eq!(
            display_line(&StartLine {
                config: Some("/home/a b/c.toml".into()),
                wait_for_podman: None,
                ..line
            }),
            "/usr/local/bin/drcache start --config '/home/a b/c.toml'"
        );
    }

    #[test]
    fn problems_name_what_no_longer_exists() {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("drcache");
        std::fs::write(&program, "").unwrap();
        let unit = Path::new("/u/drcache-p.service");
        let mut line = StartLine {
            program: program.clone(),
            config: None,
            wait_for_podman: None,
        };
        assert!(line.problems(unit).is_empty());
        line.config = Some(dir.path().join("gone.toml"));
        assert_eq!(
            line.problems(unit),
            [format!(
                "/u/drcache-p.service uses the config file {}, which no longer exists",
                dir.path().join("gone.toml").display()
            )]
        );
        line.program = dir.path().join("old-drcache");
        assert_eq!(line.problems(unit).len(), 2);
        assert!(line.problems(unit)[0].contains("old-drcache, which no longer exists"));
    }

    #[test]
    fn files_are_written_only_when_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/unit");
        assert!(write_if_changed(&path, "a\n").unwrap());
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert!(!write_if_changed(&path, "a\n").unwrap());
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            before
        );
        assert!(write_if_changed(&path, "b\n").unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b\n");
        // No temporary file is left next to it.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
        assert!(remove_file(&path).unwrap());
        assert!(!remove_file(&path).unwrap());
    }

    #[test]
    fn status_lines() {
        let mut s = Status {
            manager: Some("systemd"),
            unit: Some("/etc/systemd/system/drcache-p.timer".into()),
            problems: vec![],
            last_run: Some(LastRun {
                time: 1000,
                code: 0,
                summary: "5 ready, 0 changed".into(),
            }),
            unavailable: None,
        };
        assert_eq!(
            s.describe(1120),
            "set up (systemd, /etc/systemd/system/drcache-p.timer); last automatic run 2m00s ago (ok): 5 ready, 0 changed"
        );
        s.last_run = None;
        assert!(s.describe(0).ends_with("no automatic run recorded yet"));
        s.unit = None;
        assert_eq!(
            s.describe(0),
            "not set up (`drcache setup-host` sets it up)"
        );
        s.unavailable = Some("no systemd".into());
        assert_eq!(s.describe(0), "not available (no systemd)");
    }
}
