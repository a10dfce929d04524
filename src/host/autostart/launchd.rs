//! Autostart with launchd (macOS): an agent `io.drcache.<prefix>` in
//! `~/Library/LaunchAgents/` that runs the start line at login
//! (`RunAtLoad`) and every [`INTERVAL_SECS`] (`StartInterval`). The podman
//! machine may still be starting at login: the agent's `start` waits up to
//! [`MACOS_WAIT_FOR_PODMAN`] seconds for podman to answer
//! (`--wait-for-podman`), and a later interval tries again anyway.

use std::path::PathBuf;

use anyhow::Result;

use super::{StartLine, Target, ENV, INTERVAL_SECS, MACOS_WAIT_FOR_PODMAN};
use crate::exec::Cmd;
use crate::host::{effective_uid, HostEnv, Mode, Os, Progress, Report, State};
use crate::tools;

/// launchd starts agents with this PATH and no more: podman.pkg's and
/// Homebrew's (Apple silicon, Intel) directories are added.
const AGENT_PATH: &str =
    "/opt/podman/bin:/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

/// `launchctl print` of a service that is not loaded.
const NOT_LOADED: i32 = 113;

pub fn label(prefix: &str) -> String {
    format!("io.drcache.{prefix}")
}

pub fn plist_path(prefix: &str) -> Result<PathBuf> {
    Ok(super::home()?
        .join("Library/LaunchAgents")
        .join(format!("{}.plist", label(prefix))))
}

/// The start line the agent runs: it waits for the podman machine.
pub fn agent_line(line: &StartLine) -> StartLine {
    StartLine {
        wait_for_podman: Some(MACOS_WAIT_FOR_PODMAN),
        ..line.clone()
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn render_plist(prefix: &str, line: &StartLine) -> String {
    let args: String = std::iter::once(line.program.display().to_string())
        .chain(line.args())
        .map(|w| format!("    <string>{}</string>\n", xml_escape(&w)))
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <!-- Written by `drcache setup-host`; `drcache setup-host --undo` removes it. -->\n\
         <plist version=\"1.0\">\n\
         <dict>\n\
         \x20 <key>Label</key>\n\
         \x20 <string>{label}</string>\n\
         \x20 <key>ProgramArguments</key>\n\
         \x20 <array>\n\
         {args}\
         \x20 </array>\n\
         \x20 <key>EnvironmentVariables</key>\n\
         \x20 <dict>\n\
         \x20   <key>{ENV}</key>\n\
         \x20   <string>1</string>\n\
         \x20   <key>PATH</key>\n\
         \x20   <string>{AGENT_PATH}</string>\n\
         \x20 </dict>\n\
         \x20 <key>RunAtLoad</key>\n\
         \x20 <true/>\n\
         \x20 <key>StartInterval</key>\n\
         \x20 <integer>{INTERVAL_SECS}</integer>\n\
         \x20 <key>ProcessType</key>\n\
         \x20 <string>Background</string>\n\
         </dict>\n\
         </plist>\n",
        label = xml_escape(&label(prefix)),
    )
}

/// The start line of an installed agent: its ProgramArguments strings.
pub fn read_start_line(text: &str) -> Option<StartLine> {
    let (_, rest) = text.split_once("<key>ProgramArguments</key>")?;
    let (array, _) = rest.split_once("</array>")?;
    let words: Vec<String> = array
        .split("<string>")
        .skip(1)
        .filter_map(|s| s.split_once("</string>").map(|(w, _)| w))
        .map(|w| {
            w.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
        })
        .collect();
    StartLine::from_words(&words)
}

/// The installed agent and its start line, from files alone.
pub fn installed(prefix: &str) -> Option<(PathBuf, Option<StartLine>)> {
    let path = plist_path(prefix).ok()?;
    let text = std::fs::read_to_string(&path).ok()?;
    Some((path, read_start_line(&text)))
}

pub fn run(env: &HostEnv, mode: Mode, target: &Target, os: Os) -> Result<Report> {
    let mut report = Report::new(os, mode);
    let path = plist_path(&target.prefix)?;
    let label = label(&target.prefix);
    let domain = format!("gui/{}", effective_uid());
    let service = format!("{domain}/{label}");
    report.facts.push(("autostart", "launchd".into()));
    report.facts.push(("agent", path.display().to_string()));
    let launchctl = tools::find(&tools::LAUNCHCTL)?;
    let cmd = |mutation: bool| {
        if mutation {
            Cmd::mutation(&launchctl, "launchctl")
        } else {
            Cmd::query(&launchctl, "launchctl")
        }
    };
    let loaded = || -> Result<bool> {
        let out = env.runner.run(
            &cmd(false)
                .args(["print", service.as_str()])
                .accept(&[0, NOT_LOADED]),
        )?;
        Ok(out.code == 0)
    };
    let plist = render_plist(&target.prefix, &agent_line(&target.line));
    let shown = path.display().to_string();
    match mode {
        Mode::Check => {
            match std::fs::read_to_string(&path) {
                Err(_) => report.missing.push(format!("{shown} does not exist")),
                Ok(text) if text != plist => {
                    if let Some(line) = read_start_line(&text) {
                        report.missing.extend(line.problems(&path));
                    }
                    report.missing.push(format!(
                        "{shown} is not what this drcache writes (another drcache binary or config?)"
                    ));
                }
                Ok(_) => {}
            }
            if !loaded()? {
                report
                    .missing
                    .push(format!("{label} is not loaded in {domain}"));
            }
            if report.missing.is_empty() {
                return Ok(report.finish(State::Done, format!("autostart is set up: {label}")));
            }
            Ok(report.finish(State::Missing, "autostart is not set up"))
        }
        Mode::Setup => {
            let mut progress = Progress::new(env);
            let changed = !std::fs::read_to_string(&path).is_ok_and(|t| t == plist);
            let was_loaded = loaded()?;
            if changed {
                if was_loaded {
                    // launchd reads the file at bootstrap only.
                    progress.step(
                        &format!("unload the old {label}"),
                        &format!("unloaded the old {label}"),
                        || {
                            env.runner
                                .run(&cmd(true).args(["bootout", service.as_str()]))
                                .map(drop)
                                .map_err(Into::into)
                        },
                    )?;
                }
                progress.step(&format!("write {shown}"), &format!("wrote {shown}"), || {
                    if env.dry_run {
                        return Ok(());
                    }
                    super::write_if_changed(&path, &plist).map(drop)
                })?;
            }
            if changed || !was_loaded {
                progress.step(
                    &format!("load {label} into {domain}"),
                    &format!("loaded {label} into {domain}"),
                    || {
                        env.runner
                            .run(&cmd(true).args(["bootstrap", domain.as_str(), shown.as_str()]))
                            .map(drop)
                            .map_err(Into::into)
                    },
                )?;
            }
            report.changes = progress.done;
            let state = State::after(&report.changes, env.dry_run);
            let summary = format!(
                "autostart: {label} runs `{}` at login and every {} minutes",
                super::display_line(&agent_line(&target.line)),
                INTERVAL_SECS / 60
            );
            Ok(report.finish(state, summary))
        }
        Mode::Undo => {
            let mut progress = Progress::new(env);
            if loaded()? {
                progress.step(
                    &format!("unload {label}"),
                    &format!("unloaded {label}"),
                    || {
                        env.runner
                            .run(&cmd(true).args(["bootout", service.as_str()]))
                            .map(drop)
                            .map_err(Into::into)
                    },
                )?;
            }
            if path.exists() {
                progress.step(
                    &format!("remove {shown}"),
                    &format!("removed {shown}"),
                    || {
                        if env.dry_run {
                            return Ok(());
                        }
                        super::remove_file(&path).map(drop)
                    },
                )?;
            }
            report.changes = progress.done;
            let state = State::after(&report.changes, env.dry_run);
            Ok(report.finish(state, "autostart is removed"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plist_byte_for_byte_and_read_back() {
        let line = agent_line(&StartLine {
            program: "/opt/homebrew/bin/drcache".into(),
            config: Some("/Users/a&b/c.toml".into()),
            wait_for_podman: None,
        });
        let plist = render_plist("drenv-cache", &line);
        assert_eq!(
            plist,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
             <!-- Written by `drcache setup-host`; `drcache setup-host --undo` removes it. -->\n\
             <plist version=\"1.0\">\n\
             <dict>\n\
             \x20 <key>Label</key>\n\
             \x20 <string>io.drcache.drenv-cache</string>\n\
             \x20 <key>ProgramArguments</key>\n\
             \x20 <array>\n\
             \x20   <string>/opt/homebrew/bin/drcache</string>\n\
             \x20   <string>start</string>\n\
             \x20   <string>--wait-for-podman</string>\n\
             \x20   <string>120</string>\n\
             \x20   <string>--config</string>\n\
             \x20   <string>/Users/a&amp;b/c.toml</string>\n\
             \x20 </array>\n\
             \x20 <key>EnvironmentVariables</key>\n\
             \x20 <dict>\n\
             \x20   <key>DRCACHE_AUTOSTART</key>\n\
             \x20   <string>1</string>\n\
             \x20   <key>PATH</key>\n\
             \x20   <string>/opt/podman/bin:/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin</string>\n\
             \x20 </dict>\n\
             \x20 <key>RunAtLoad</key>\n\
             \x20 <true/>\n\
             \x20 <key>StartInterval</key>\n\
             \x20 <integer>300</integer>\n\
             \x20 <key>ProcessType</key>\n\
             \x20 <string>Background</string>\n\
             </dict>\n\
             </plist>\n"
        );
        assert_eq!(read_start_line(&plist), Some(line));
    }
}
