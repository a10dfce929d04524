//! macOS: cluster VMs reach the caches through podman's `gvproxy`, which
//! listens for the published ports on the host. The application firewall
//! blocks incoming connections to it until it is added and unblocked, and a
//! podman upgrade can move it (Homebrew keeps it under a versioned Cellar
//! path), so drcache finds the gvproxy podman really uses at every run.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::Deserialize;

use super::{HostEnv, Mode, Options, Os, Privilege, Progress, Report, State};
use crate::errors::{exit, Hinted};
use crate::exec::{Cmd, Runner};
use crate::tools;

/// How the application firewall treats an executable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppState {
    /// Not in the firewall's list: incoming connections are blocked (or
    /// prompted for, which a headless gvproxy never answers).
    NotAdded,
    Blocked,
    Permitted,
}

/// Parse `socketfilterfw --getappblocked PATH`. Its wording differs between
/// macOS versions ("The application is not part of the firewall",
/// "Incoming connection to the application is blocked/permitted",
/// "... is not blocked from accepting incoming connections"), so only the
/// telling words are looked at.
pub fn parse_app_state(output: &str) -> Option<AppState> {
    let text = output.to_lowercase();
    if text.contains("not part of the firewall") {
        Some(AppState::NotAdded)
    } else if text.contains("permitted") || text.contains("not blocked") {
        Some(AppState::Permitted)
    } else if text.contains("blocked") {
        Some(AppState::Blocked)
    } else {
        None
    }
}

/// `[engine] helper_binaries_dir` of a containers.conf text, when it is set.
pub fn helper_dirs_from(text: &str) -> Option<Vec<String>> {
    #[derive(Deserialize)]
    struct Conf {
        engine: Option<Engine>,
    }
    #[derive(Deserialize)]
    struct Engine {
        helper_binaries_dir: Option<Vec<String>>,
    }
    toml::from_str::<Conf>(text)
        .ok()?
        .engine?
        .helper_binaries_dir
}

/// What podman's search for gvproxy depends on.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    /// Stands for `/` in fixed paths (tests only).
    pub root: PathBuf,
    pub home: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    /// `CONTAINERS_CONF`: when set, podman reads only this file...
    pub containers_conf: Option<PathBuf>,
    /// ...and `CONTAINERS_CONF_OVERRIDE` last of all.
    pub containers_conf_override: Option<PathBuf>,
    pub homebrew_prefix: Option<PathBuf>,
    /// The podman executable, whose directory is podman's `$BINDIR`.
    pub podman: Option<PathBuf>,
}

impl Lookup {
    pub fn from_env() -> Self {
        let path = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Lookup {
            root: crate::hostinfo::test_hooks::root().unwrap_or_else(|| PathBuf::from("/")),
            home: path("HOME"),
            xdg_config_home: path("XDG_CONFIG_HOME").filter(|p| p.is_absolute()),
            containers_conf: path("CONTAINERS_CONF"),
            containers_conf_override: path("CONTAINERS_CONF_OVERRIDE"),
            homebrew_prefix: path("HOMEBREW_PREFIX"),
            podman: tools::find(&tools::PODMAN).ok(),
        }
    }

    fn fixed(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// containers.conf files in the order podman reads them (a later one
    /// wins): the main files, each followed by its `.d` drop-ins.
    fn containers_conf_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        if let Some(file) = &self.containers_conf {
            files.push(file.clone());
        } else {
            let user = self
                .xdg_config_home
                .clone()
                .or_else(|| self.home.as_ref().map(|h| h.join(".config")))
                .map(|d| d.join("containers"));
            let dirs = [
                Some(self.fixed("/usr/share/containers")),
                Some(self.fixed("/etc/containers")),
                user,
            ];
            for dir in dirs.into_iter().flatten() {
                files.push(dir.join("containers.conf"));
                let mut drop_ins: Vec<PathBuf> = std::fs::read_dir(dir.join("containers.conf.d"))
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                    .collect();
                drop_ins.sort();
                files.extend(drop_ins);
            }
        }
        files.extend(self.containers_conf_override.clone());
        files
    }

    /// The directories to look for gvproxy in, each with why.
    pub fn candidates(&self) -> Vec<(PathBuf, String)> {
        let podman = self
            .podman
            .as_ref()
            .and_then(|p| std::fs::canonicalize(p).ok());
        let bindir = podman
            .as_ref()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf);
        let mut dirs: Vec<(PathBuf, String)> = Vec::new();

        let configured = self
            .containers_conf_files()
            .into_iter()
            .filter_map(|f| Some((helper_dirs_from(&std::fs::read_to_string(&f).ok()?)?, f)))
            .next_back();
        if let Some((list, file)) = configured {
            for dir in list {
                let dir = match (&bindir, dir.contains("$BINDIR")) {
                    (_, false) => PathBuf::from(dir),
                    (Some(bin), true) => {
                        PathBuf::from(dir.replace("$BINDIR", &bin.to_string_lossy()))
                    }
                    (None, true) => continue,
                };
                dirs.push((dir, format!("helper_binaries_dir in {}", file.display())));
            }
        }
        if let (Some(bin), Some(podman)) = (&bindir, &podman) {
            let libexec = bin.parent().unwrap_or(bin).join("libexec/podman");
            dirs.push((libexec, format!("beside podman ({})", podman.display())));
        }
        dirs.push((
            self.fixed("/opt/podman/bin"),
            "where the podman installer puts it".into(),
        ));
        let brew_prefixes = match &self.homebrew_prefix {
            Some(prefix) => vec![prefix.clone()],
            None => vec![self.fixed("/opt/homebrew"), self.fixed("/usr/local")],
        };
        for prefix in brew_prefixes {
            dirs.push((
                prefix.join("opt/podman/libexec/podman"),
                "Homebrew's podman".into(),
            ));
            dirs.push((prefix.join("bin"), "Homebrew's bin".into()));
        }
        let mut seen = Vec::new();
        dirs.retain_mut(|(dir, _)| {
            *dir = normalize(dir);
            let new = !seen.contains(dir);
            seen.push(dir.clone());
            new
        });
        dirs
    }
}

/// `dir` with `.` and `..` resolved by name: `$BINDIR/../libexec/podman`
/// names a directory beside podman's real one, so no symbolic link is crossed.
fn normalize(dir: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in dir.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The gvproxy executable podman uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gvproxy {
    /// Its real path (symbolic links resolved): what the firewall knows.
    pub path: PathBuf,
    /// Where it was found.
    pub found: PathBuf,
    pub why: String,
}

pub fn find_gvproxy(lookup: &Lookup) -> Result<Gvproxy, Hinted> {
    let candidates = lookup.candidates();
    for (dir, why) in &candidates {
        let found = dir.join("gvproxy");
        if let (true, Ok(path)) = (found.is_file(), std::fs::canonicalize(&found)) {
            return Ok(Gvproxy {
                path,
                found,
                why: why.clone(),
            });
        }
    }
    let looked: Vec<String> = candidates
        .iter()
        .map(|(d, _)| d.display().to_string())
        .collect();
    Err(Hinted {
        message: format!(
            "podman's gvproxy was not found; looked in {}",
            looked.join(", ")
        ),
        hint: "install podman (its installer, or `brew install podman`), or name gvproxy's \
               directory in helper_binaries_dir under [engine] in containers.conf"
            .into(),
        code: exit::TOOL_MISSING,
    })
}

/// Ask the application firewall about `app`; needs no privilege.
fn query(runner: &Runner, socketfilterfw: &Path, app: &Path) -> Result<AppState> {
    // Its exit status is not documented: the words are the answer.
    let codes: Vec<i32> = (1..=255).collect();
    let cmd = Cmd::query(socketfilterfw, "socketfilterfw")
        .arg("--getappblocked")
        .arg(app.to_string_lossy())
        .accept(&codes);
    let out = runner.run(&cmd)?;
    match parse_app_state(&format!("{}\n{}", out.stdout, out.stderr)) {
        Some(state) => Ok(state),
        None => bail!(
            "cannot read the answer of `{}` (exit status {}): {}",
            cmd.display(),
            out.code,
            format!("{} {}", out.stdout.trim(), out.stderr.trim()).trim()
        ),
    }
}

pub fn run(env: &HostEnv, opts: &Options) -> Result<Report> {
    let mut report = Report::new(Os::Macos, opts.mode);
    let socketfilterfw = crate::privileged::find(&tools::SOCKETFILTERFW)?;
    env.ui
        .detail(&format!("socketfilterfw: {}", socketfilterfw.display()));
    let lookup = Lookup::from_env();
    let gvproxy = find_gvproxy(&lookup)?;
    let app = gvproxy.path.display().to_string();
    if let Some(why) = crate::privileged::gvproxy_untrusted(&lookup.root, &gvproxy.path) {
        return Err(Hinted {
            message: format!(
                "refusing to let {app} through the application firewall: {why}; another \
                 program of yours could have put it there"
            ),
            hint: "gvproxy must be owned by root (podman's installer) or by the owner of \
                   Homebrew's prefix (`brew install podman`), in directories nobody else may \
                   write: reinstall podman"
                .into(),
            code: exit::FAILURE,
        }
        .into());
    }
    if gvproxy.found == gvproxy.path {
        env.ui.info(&format!("gvproxy: {app} ({})", gvproxy.why));
    } else {
        let found = gvproxy.found.display();
        env.ui.info(&format!(
            "gvproxy: {app} (found at {found}: {})",
            gvproxy.why
        ));
    }
    report
        .facts
        .push(("firewall", "application firewall".into()));
    report.facts.push(("gvproxy", app.clone()));
    report
        .facts
        .push(("gvproxy_found_at", gvproxy.found.display().to_string()));
    report.facts.push(("gvproxy_found_by", gvproxy.why.clone()));

    let state = query(env.runner, &socketfilterfw, &gvproxy.path)?;
    let allowed = format!("the application firewall lets {app} accept incoming connections");
    let changes: Vec<(&str, String, String)> = match (opts.mode, state) {
        (Mode::Setup | Mode::Check, AppState::Permitted) => {
            return Ok(report.finish(State::Done, format!("already set up: {allowed}")));
        }
        (Mode::Undo, AppState::NotAdded) => {
            return Ok(report.finish(
                State::Done,
                format!("nothing to undo: {app} is not in the application firewall"),
            ));
        }
        (Mode::Check, state) => {
            report.missing.push(match state {
                AppState::NotAdded => format!("{app} is not in the application firewall"),
                _ => format!("the application firewall blocks incoming connections to {app}"),
            });
            return Ok(report.finish(State::Missing, "not set up: run `drcache setup-host`"));
        }
        (Mode::Setup, AppState::NotAdded) => vec![add(&app), unblock(&app)],
        (Mode::Setup, _) => vec![unblock(&app)],
        (Mode::Undo, _) => vec![(
            "--remove",
            format!("remove {app} from the application firewall"),
            format!("removed {app} from the application firewall"),
        )],
    };

    let privilege = Privilege::detect(env.dry_run);
    let mut progress = Progress::new(env);
    for (flag, what, done) in &changes {
        progress.step(what, done, || {
            let cmd = Cmd::mutation(&socketfilterfw, "socketfilterfw").args([*flag, app.as_str()]);
            privilege.run(env.runner, cmd).map(drop)
        })?;
    }
    report.changes = progress.done.clone();
    if env.dry_run {
        return Ok(report.finish(State::WouldChange, "dry run: nothing was changed"));
    }
    let after = query(env.runner, &socketfilterfw, &gvproxy.path)?;
    match (opts.mode, after) {
        (Mode::Undo, AppState::NotAdded) => Ok(report.finish(
            State::Changed,
            format!("undone: {app} is no longer in the application firewall"),
        )),
        (Mode::Setup, AppState::Permitted) => {
            Ok(report.finish(State::Changed, format!("set up: {allowed}")))
        }
        (_, after) => bail!(
            "socketfilterfw made the changes but still reports {app} as {after:?}; after: {}",
            report.changes.join("; ")
        ),
    }
}

fn add(app: &str) -> (&'static str, String, String) {
    (
        "--add",
        format!("add {app} to the application firewall"),
        format!("added {app} to the application firewall"),
    )
}

fn unblock(app: &str) -> (&'static str, String, String) {
    (
        "--unblock",
        format!("allow incoming connections to {app}"),
        format!("allowed incoming connections to {app}"),
    )
}

/// For `drcache start`: why cluster VMs may not reach the caches, if so.
pub fn start_warning(runner: &Runner) -> Option<String> {
    let socketfilterfw = crate::privileged::find(&tools::SOCKETFILTERFW).ok()?;
    let gvproxy = match find_gvproxy(&Lookup::from_env()) {
        Ok(g) => g,
        Err(e) => {
            return Some(format!(
                "{}: cluster VMs may not reach the caches; see `drcache setup-host`",
                e.message
            ))
        }
    };
    match query(runner, &socketfilterfw, &gvproxy.path) {
        Ok(AppState::Permitted) => None,
        Ok(_) => Some(format!(
            "the macOS application firewall does not let {} (podman's gvproxy) accept \
             connections, so cluster VMs pull from the upstream registries instead of the \
             caches (a podman upgrade moves gvproxy); run `drcache setup-host`",
            gvproxy.path.display()
        )),
        Err(e) => Some(format!(
            "cannot tell whether the application firewall lets gvproxy accept connections: {e:#}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn app_states_in_every_known_wording() {
        use AppState::*;
        let cases = [
            ("The application is not part of the firewall \n", NotAdded),
            ("The application /opt/podman/bin/gvproxy is not part of the firewall", NotAdded),
            ("Incoming connection to the application is blocked\n", Blocked),
            ("Incoming connection to the application is permitted\n", Permitted),
            (
                "The application at path ( /opt/podman/bin/gvproxy ) is not blocked from accepting incoming connections.",
                Permitted,
            ),
            (
                "Application at path ( /opt/podman/bin/gvproxy ) is blocked from accepting incoming connections.",
                Blocked,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_app_state(text), Some(want), "{text}");
        }
        assert_eq!(parse_app_state("Usage: socketfilterfw ..."), None);
    }

    #[test]
    fn helper_dirs_only_when_set() {
        let text = "[containers]\nlog_size_max = -1\n[engine]\nhelper_binaries_dir = [\"/opt/podman/bin\", \"$BINDIR/../libexec/podman\"]\nfoo = 1\n";
        assert_eq!(
            helper_dirs_from(text),
            Some(vec![
                "/opt/podman/bin".to_string(),
                "$BINDIR/../libexec/podman".to_string()
            ])
        );
        assert_eq!(
            helper_dirs_from("[engine]\ncgroup_manager = \"cgroupfs\"\n"),
            None
        );
        assert_eq!(helper_dirs_from("not toml ["), None);
    }

    fn executable(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, "#!/bin/sh\nexit 99\n").unwrap();
    }

    fn lookup(root: &Path) -> Lookup {
        Lookup {
            root: root.to_path_buf(),
            home: Some(root.join("home")),
            ..Lookup::default()
        }
    }

    #[test]
    fn configured_dirs_come_first_and_bindir_is_podmans_real_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let cellar = root.join("brew/Cellar/podman/5.2.1");
        executable(&cellar.join("bin/podman"));
        fs::create_dir_all(root.join("brew/bin")).unwrap();
        std::os::unix::fs::symlink(cellar.join("bin/podman"), root.join("brew/bin/podman"))
            .unwrap();
        let conf_d = root.join("home/.config/containers/containers.conf.d");
        fs::create_dir_all(&conf_d).unwrap();
        fs::write(
            conf_d.join("50-helpers.conf"),
            "[engine]\nhelper_binaries_dir = [\"/x\", \"$BINDIR/../libexec/podman\"]\n",
        )
        .unwrap();

        let mut l = lookup(root);
        l.podman = Some(root.join("brew/bin/podman"));
        l.homebrew_prefix = Some(root.join("brew"));
        let dirs: Vec<PathBuf> = l.candidates().into_iter().map(|(d, _)| d).collect();
        let real_bindir = fs::canonicalize(cellar.join("bin")).unwrap();
        assert_eq!(
            dirs,
            [
                PathBuf::from("/x"),
                real_bindir.parent().unwrap().join("libexec/podman"),
                root.join("opt/podman/bin"),
                root.join("brew/opt/podman/libexec/podman"),
                root.join("brew/bin"),
            ]
        );
        let candidates = l.candidates();
        assert!(candidates[0]
            .1
            .ends_with("containers.conf.d/50-helpers.conf"));
        assert_eq!(
            candidates[1].1, candidates[0].1,
            "$BINDIR is expanded and deduplicated"
        );
    }

    #[test]
    fn gvproxy_resolves_to_its_real_path() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let real = root.join("opt/homebrew/Cellar/podman/5.2.1/libexec/podman/gvproxy");
        executable(&real);
        let link_dir = root.join("opt/homebrew/opt/podman");
        fs::create_dir_all(link_dir.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(root.join("opt/homebrew/Cellar/podman/5.2.1"), &link_dir)
            .unwrap();

        let found = find_gvproxy(&lookup(root)).unwrap();
        assert_eq!(found.path, fs::canonicalize(&real).unwrap());
        assert_eq!(found.found, link_dir.join("libexec/podman/gvproxy"));
        assert_eq!(found.why, "Homebrew's podman");
    }

    #[test]
    fn missing_gvproxy_says_where_it_looked() {
        let tmp = tempfile::tempdir().unwrap();
        let err = find_gvproxy(&lookup(tmp.path())).unwrap_err();
        assert_eq!(err.code, exit::TOOL_MISSING);
        assert!(err
            .message
            .contains(&format!("{}/opt/podman/bin", tmp.path().display())));
        assert!(err
            .message
            .contains(&format!("{}/usr/local/bin", tmp.path().display())));
    }

    #[test]
    fn containers_conf_env_replaces_the_default_files() {
        let mut l = lookup(Path::new("/r"));
        l.containers_conf = Some(PathBuf::from("/c/containers.conf"));
        l.containers_conf_override = Some(PathBuf::from("/c/override.conf"));
        assert_eq!(
            l.containers_conf_files(),
            [
                PathBuf::from("/c/containers.conf"),
                PathBuf::from("/c/override.conf")
            ]
        );
        let l = lookup(Path::new("/r"));
        assert_eq!(
            l.containers_conf_files(),
            [
                PathBuf::from("/r/usr/share/containers/containers.conf"),
                PathBuf::from("/r/etc/containers/containers.conf"),
                PathBuf::from("/r/home/.config/containers/containers.conf"),
            ]
        );
    }
}
