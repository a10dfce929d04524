//! Autostart with systemd: `drcache-<prefix>.service` (Type=oneshot, the
//! start line as it is typed, no specifiers) and `drcache-<prefix>.timer`,
//! which starts it at boot (system units) or at the start of the user's
//! manager (user units, rootless podman) and every [`INTERVAL_SECS`] after
//! its last run. Root's units go to `/etc/systemd/system/`, a user's to
//! `$XDG_CONFIG_HOME/systemd/user/` (default `~/.config/systemd/user/`).

use std::path::PathBuf;

use anyhow::{bail, Result};

use super::{StartLine, Target, ENV, INTERVAL_SECS};
use crate::exec::Cmd;
use crate::host::{HostEnv, Mode, Os, Progress, Report, State};
use crate::hostinfo::test_hooks;
use crate::tools;

/// The unit names of `prefix`.
pub fn names(prefix: &str) -> (String, String) {
    (
        format!("drcache-{prefix}.service"),
        format!("drcache-{prefix}.timer"),
    )
}

/// Where the units go.
pub fn unit_dir(user: bool) -> Result<PathBuf> {
    if !user {
        let root = test_hooks::root().unwrap_or_else(|| PathBuf::from("/"));
        return Ok(root.join("etc/systemd/system"));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let config = match config {
        Some(dir) => dir,
        None => super::home()?.join(".config"),
    };
    Ok(config.join("systemd/user"))
}

/// One word of ExecStart=: plain, or in double quotes when it has spaces.
/// Characters systemd would expand or unescape are refused, so the line
/// reads (and runs) exactly as written.
fn exec_word(word: &str) -> Result<String> {
    if let Some(c) = word
        .chars()
        .find(|c| matches!(c, '%' | '$' | '\\' | '"' | '\'' | ';') || c.is_control())
    {
        bail!(
            "{word:?} has a {c:?}, which systemd would read as a specifier, variable or \
             escape: move drcache or its config file to a path without it"
        );
    }
    Ok(if word.contains(' ') {
        format!("\"{word}\"")
    } else {
        word.to_string()
    })
}

/// The words of an ExecStart= line, as [`exec_word`] writes them.
fn split_exec(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            words.push(quoted[..end].to_string());
            rest = quoted.get(end + 1..).unwrap_or("").trim_start();
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            words.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    words
}

pub fn render_service(prefix: &str, line: &StartLine, user: bool) -> Result<String> {
    let words = std::iter::once(line.program.display().to_string())
        .chain(line.args())
        .map(|w| exec_word(&w))
        .collect::<Result<Vec<_>>>()?;
    // A system service waits for the network (when something defines
    // "online"); a user manager has no such target.
    let network = if user {
        ""
    } else {
        "Wants=network-online.target\nAfter=network-online.target\n"
    };
    Ok(format!(
        "# Written by `drcache setup-host`; `drcache setup-host --undo` removes it.\n\
         [Unit]\n\
         Description=drcache: start the registry caches of prefix {prefix}\n\
         {network}\
         \n\
         [Service]\n\
         Type=oneshot\n\
         Environment={ENV}=1\n\
         ExecStart={}\n\
         TimeoutStartSec=15min\n",
        words.join(" ")
    ))
}

pub fn render_timer(prefix: &str, user: bool) -> String {
    let (service, _) = names(prefix);
    let at_start = if user {
        "OnStartupSec=15s"
    } else {
        "OnBootSec=15s"
    };
    format!(
        "# Written by `drcache setup-host`; `drcache setup-host --undo` removes it.\n\
         [Unit]\n\
         Description=drcache: start the registry caches of prefix {prefix} at {} and every {} minutes\n\
         \n\
         [Timer]\n\
         {at_start}\n\
         OnUnitActiveSec={}min\n\
         AccuracySec=30s\n\
         Unit={service}\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n",
        if user { "login" } else { "boot" },
        INTERVAL_SECS / 60,
        INTERVAL_SECS / 60,
    )
}

/// The start line of an installed service file.
pub fn read_start_line(text: &str) -> Option<StartLine> {
    let exec = text.lines().find_map(|l| l.strip_prefix("ExecStart="))?;
    StartLine::from_words(&split_exec(exec))
}

/// The installed timer and the service's start line, from files alone.
pub fn installed(prefix: &str, user: bool) -> Option<(PathBuf, Option<StartLine>)> {
    let dir = unit_dir(user).ok()?;
    let (service, timer) = names(prefix);
    let timer = dir.join(timer);
    if !timer.is_file() {
        return None;
    }
    let line = std::fs::read_to_string(dir.join(service))
        .ok()
        .and_then(|t| read_start_line(&t));
    Some((timer, line))
}

struct Systemctl<'a> {
    env: &'a HostEnv<'a>,
    program: PathBuf,
    user: bool,
}

impl Systemctl<'_> {
    fn cmd(&self, mutation: bool, args: &[&str]) -> Cmd {
        let cmd = if mutation {
            Cmd::mutation(&self.program, "systemctl")
        } else {
            Cmd::query(&self.program, "systemctl")
        };
        let cmd = if self.user { cmd.arg("--user") } else { cmd };
        cmd.args(args.iter().copied())
    }

    /// `is-enabled` and `is-active` of the timer: their words are answers.
    fn timer_state(&self, timer: &str) -> Result<(bool, bool)> {
        let enabled = self
            .env
            .runner
            .run(&self.cmd(false, &["is-enabled", timer]).accept(&[0, 1, 4]))?;
        let active = self
            .env
            .runner
            .run(&self.cmd(false, &["is-active", timer]).accept(&[0, 3, 4]))?;
        Ok((
            enabled.code == 0 && enabled.stdout.trim() == "enabled",
            active.code == 0 && active.stdout.trim() == "active",
        ))
    }

    fn change(&self, args: &[&str]) -> Result<()> {
        self.env.runner.run(&self.cmd(true, args))?;
        Ok(())
    }
}

pub fn run(env: &HostEnv, mode: Mode, target: &Target, os: Os, user: bool) -> Result<Report> {
    let mut report = Report::new(os, mode);
    let dir = unit_dir(user)?;
    let (service_name, timer_name) = names(&target.prefix);
    let service_path = dir.join(&service_name);
    let timer_path = dir.join(&timer_name);
    let manager = if user { "systemd --user" } else { "systemd" };
    report.facts.push(("autostart", manager.into()));
    report
        .facts
        .push(("service", service_path.display().to_string()));
    report
        .facts
        .push(("timer", timer_path.display().to_string()));
    // systemd runs here: its systemctl must be found.
    let program = tools::find(&tools::SYSTEMCTL)?;
    let systemctl = Systemctl { env, program, user };
    let service = render_service(&target.prefix, &target.line, user)?;
    let timer = render_timer(&target.prefix, user);
    let scope = if user { " --user" } else { "" };
    match mode {
        Mode::Check => {
            for (path, want) in [(&service_path, &service), (&timer_path, &timer)] {
                match std::fs::read_to_string(path) {
                    Err(_) => report
                        .missing
                        .push(format!("{} does not exist", path.display())),
                    Ok(text) if &text != want => {
                        if let Some(line) = read_start_line(&text) {
                            report.missing.extend(line.problems(path));
                        }
                        report.missing.push(format!(
                            "{} is not what this drcache writes (another drcache binary or config?)",
                            path.display()
                        ));
                    }
                    Ok(_) => {}
                }
            }
            let (enabled, active) = systemctl.timer_state(&timer_name)?;
            if !enabled {
                report.missing.push(format!("{timer_name} is not enabled"));
            }
            if !active {
                report.missing.push(format!("{timer_name} is not active"));
            }
            if report.missing.is_empty() {
                return Ok(report.finish(
                    State::Done,
                    format!("autostart is set up: {timer_name} runs {service_name}"),
                ));
            }
            Ok(report.finish(State::Missing, "autostart is not set up"))
        }
        Mode::Setup => {
            let mut progress = Progress::new(env);
            let mut wrote = false;
            for (path, text) in [(&service_path, &service), (&timer_path, &timer)] {
                if std::fs::read_to_string(path).is_ok_and(|t| &t == text) {
                    continue;
                }
                let shown = path.display().to_string();
                progress.step(&format!("write {shown}"), &format!("wrote {shown}"), || {
                    if env.dry_run {
                        return Ok(());
                    }
                    super::write_if_changed(path, text).map(drop)
                })?;
                wrote = true;
            }
            if wrote {
                progress.step(
                    &format!("run systemctl{scope} daemon-reload"),
                    "reloaded systemd's units",
                    || systemctl.change(&["daemon-reload"]),
                )?;
            }
            let (enabled, active) = if wrote && env.dry_run {
                (false, false)
            } else {
                systemctl.timer_state(&timer_name)?
            };
            if !enabled || !active {
                progress.step(
                    &format!("enable and start {timer_name}"),
                    &format!("enabled and started {timer_name}"),
                    || systemctl.change(&["enable", "--now", &timer_name]),
                )?;
                // The timer counts from the service's last run: run it once now.
                progress.step(
                    &format!("start {service_name} once now"),
                    &format!("started {service_name}"),
                    || systemctl.change(&["start", "--no-block", &service_name]),
                )?;
            }
            if user {
                env.ui.info(&linger_note());
            }
            report.changes = progress.done;
            let state = State::after(&report.changes, env.dry_run);
            let summary = format!(
                "autostart: {timer_name} runs `{}` at {} and every {} minutes",
                super::display_line(&target.line),
                if user { "login" } else { "boot" },
                INTERVAL_SECS / 60
            );
            Ok(report.finish(state, summary))
        }
        Mode::Undo => {
            let mut progress = Progress::new(env);
            let present = service_path.exists() || timer_path.exists();
            let (enabled, active) = systemctl.timer_state(&timer_name)?;
            if enabled || active {
                progress.step(
                    &format!("disable and stop {timer_name}"),
                    &format!("disabled and stopped {timer_name}"),
                    || systemctl.change(&["disable", "--now", &timer_name]),
                )?;
            }
            for path in [&timer_path, &service_path]
                .into_iter()
                .filter(|p| p.exists())
            {
                let shown = path.display().to_string();
                progress.step(
                    &format!("remove {shown}"),
                    &format!("removed {shown}"),
                    || {
                        if env.dry_run {
                            return Ok(());
                        }
                        super::remove_file(path).map(drop)
                    },
                )?;
            }
            if present {
                progress.step(
                    &format!("run systemctl{scope} daemon-reload"),
                    "reloaded systemd's units",
                    || systemctl.change(&["daemon-reload"]),
                )?;
            }
            report.changes = progress.done;
            let state = State::after(&report.changes, env.dry_run);
            Ok(report.finish(state, "autostart is removed"))
        }
    }
}

/// A user's units run while their manager runs: from login to logout,
/// unless lingering is on.
fn linger_note() -> String {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "$USER".into());
    let root = test_hooks::root().unwrap_or_else(|| PathBuf::from("/"));
    if root.join("var/lib/systemd/linger").join(&user).exists() {
        return format!("lingering is enabled for {user}: the caches start at boot");
    }
    format!(
        "note: user units run only while {user} is logged in; to start the caches at boot \
         without a login, run `loginctl enable-linger {user}`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(config: Option<&str>) -> StartLine {
        StartLine {
            program: "/usr/local/bin/drcache".into(),
            config: config.map(PathBuf::from),
            wait_for_podman: None,
        }
    }

    #[test]
    fn system_units_byte_for_byte() {
        assert_eq!(
            render_service(
                "drenv-cache",
                &line(Some("/etc/drcache/config.toml")),
                false
            )
            .unwrap(),
            "# Written by `drcache setup-host`; `drcache setup-host --undo` removes it.\n\
             [Unit]\n\
             Description=drcache: start the registry caches of prefix drenv-cache\n\
             Wants=network-online.target\n\
             After=network-online.target\n\
             \n\
             [Service]\n\
             Type=oneshot\n\
             Environment=DRCACHE_AUTOSTART=1\n\
             ExecStart=/usr/local/bin/drcache start --config /etc/drcache/config.toml\n\
             TimeoutStartSec=15min\n"
        );
        assert_eq!(
            render_timer("drenv-cache", false),
            "# Written by `drcache setup-host`; `drcache setup-host --undo` removes it.\n\
             [Unit]\n\
             Description=drcache: start the registry caches of prefix drenv-cache at boot and every 5 minutes\n\
             \n\
             [Timer]\n\
             OnBootSec=15s\n\
             OnUnitActiveSec=5min\n\
             AccuracySec=30s\n\
             Unit=drcache-drenv-cache.service\n\
             \n\
             [Install]\n\
             WantedBy=timers.target\n"
        );
    }

    #[test]
    fn user_units_start_at_login_without_the_network_target() {
        let service = render_service("p", &line(None), true).unwrap();
        assert!(!service.contains("network-online"), "{service}");
        assert!(service.contains("\nExecStart=/usr/local/bin/drcache start\n"));
        let timer = render_timer("p", true);
        assert!(timer.contains("\nOnStartupSec=15s\n") && !timer.contains("OnBootSec"));
    }

    #[test]
    fn exec_start_is_quoted_or_refused_never_expanded() {
        let spaced = render_service("p", &line(Some("/home/a b/c.toml")), false).unwrap();
        assert!(spaced
            .contains("ExecStart=/usr/local/bin/drcache start --config \"/home/a b/c.toml\"\n"));
        assert_eq!(
            read_start_line(&spaced).unwrap().config,
            Some(PathBuf::from("/home/a b/c.toml"))
        );
        for bad in ["/home/%u/c.toml", "/home/$USER/c.toml", "/a\\b", "/a\"b"] {
            let err = render_service("p", &line(Some(bad)), false).unwrap_err();
            assert!(
                err.to_string().contains("move drcache or its config file"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_start_line_is_read_back_from_the_service() {
        let text = render_service("p", &line(Some("/etc/c.toml")), false).unwrap();
        assert_eq!(read_start_line(&text), Some(line(Some("/etc/c.toml"))));
        assert_eq!(read_start_line("[Service]\n"), None);
    }
}
