//! `drcache setup-host` on macOS, run on any Unix: fake `podman`,
//! `socketfilterfw` and `sudo` log their calls; DRCACHE_HOST_OS=macos picks
//! the macOS code and DRCACHE_TEST_ROOT stands for `/` in the places where
//! gvproxy is looked for.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fake::{FakeTool, Reply, PS, VOLUME_LS};
use crate::support::{run, FakeBin, Run};

/// socketfilterfw's answer to `--getappblocked` for the state in `$F`:
/// `none` (not in the firewall), `blocked` or `permitted`.
const GETAPPBLOCKED: &str = r#"case $(cat "$F" 2>/dev/null || echo none) in
none) echo "The application is not part of the firewall" ;;
blocked) echo "Incoming connection to the application is blocked" ;;
permitted) echo "Incoming connection to the application is permitted" ;;
esac"#;

/// Changes need root, which the fake sudo marks with FAKE_ROOT=1.
const NEEDS_ROOT: &str = r#"[ "$FAKE_ROOT" = 1 ] || { echo "Error: must be root" >&2; exit 98; }"#;

/// A fake host: tools, a root with a podman install, a home.
struct Mac {
    fake: FakeBin,
    socketfilterfw: PathBuf,
    podman: PathBuf,
    /// The gvproxy the fake firewall knows, once there is one.
    gvproxy: Option<String>,
    sudo_refuses: bool,
}

impl Mac {
    fn new() -> Self {
        let fake = FakeBin::new();
        // A podman that nothing here should need to run.
        let podman = FakeTool::new("podman").install(&fake);
        fs::create_dir_all(fake.path().join("home")).unwrap();
        Mac {
            socketfilterfw: fake.path().join("socketfilterfw"),
            fake,
            podman,
            gvproxy: None,
            sudo_refuses: false,
        }
    }

    /// socketfilterfw and sudo for the current gvproxy: its state in a file,
    /// changed only through sudo.
    fn install_firewall(&self) {
        let mut sfw = FakeTool::new("socketfilterfw");
        let mut sudo = FakeTool::new("sudo");
        if let Some(app) = &self.gvproxy {
            let state = self.fake.path().join("sfw-state").display().to_string();
            sfw = sfw
                .on(
                    &["--getappblocked", app],
                    Reply::script(format!("F='{state}'\n{GETAPPBLOCKED}")),
                )
                .on(
                    &["--add", app],
                    Reply::script(format!(
                        "{NEEDS_ROOT}\necho \"Application at path ( {app} ) added to firewall\"; echo blocked > '{state}'"
                    )),
                )
                .on(
                    &["--unblock", app],
                    Reply::script(format!(
                        "{NEEDS_ROOT}\necho \"Incoming connection to the application is permitted\"; echo permitted > '{state}'"
                    )),
                )
                .on(
                    &["--remove", app],
                    Reply::script(format!(
                        "{NEEDS_ROOT}\necho \"Application at path ( {app} ) removed from firewall\"; echo none > '{state}'"
                    )),
                );
            let sfw_path = self.socketfilterfw.display().to_string();
            for verb in ["--add", "--unblock", "--remove"] {
                let reply = if self.sudo_refuses {
                    Reply::fail(
                        1,
                        format!("Sorry, user alice is not allowed to execute '{sfw_path} {verb} {app}' as root on mac.\n"),
                    )
                } else {
                    Reply::script(r#"FAKE_ROOT=1 exec "$@""#)
                };
                sudo = sudo.on(&[sfw_path.as_str(), verb, app], reply);
            }
        }
        sfw.install(&self.fake);
        sudo.install(&self.fake);
    }

    fn root(&self) -> PathBuf {
        self.fake.path().join("root")
    }

    fn set_state(&self, state: &str) {
        fs::write(self.fake.path().join("sfw-state"), format!("{state}\n")).unwrap();
    }

    /// The podman installer's layout: podman and gvproxy in /opt/podman/bin.
    fn install_pkg(&mut self) -> PathBuf {
        let bin = self.root().join("opt/podman/bin");
        self.podman = FakeTool::new("podman").install_at(&self.fake, &bin.join("podman"));
        self.gvproxy_at(&bin.join("gvproxy"))
    }

    /// A gvproxy at `path` (never run), which the fake firewall then knows.
    fn gvproxy_at(&mut self, path: &Path) -> PathBuf {
        let gvproxy = FakeTool::new("gvproxy").install_at(&self.fake, path);
        self.gvproxy = Some(real(&gvproxy));
        gvproxy
    }

    fn drcache(&self, args: &[&str]) -> Command {
        self.install_firewall();
        let mut cmd = crate::support::drcache(None);
        for var in [
            "DRCACHE_FIREWALL_CMD",
            "CONTAINERS_CONF",
            "CONTAINERS_CONF_OVERRIDE",
            "HOMEBREW_PREFIX",
            "FAKE_ROOT",
        ] {
            cmd.env_remove(var);
        }
        cmd.args(args)
            .env("HOME", self.fake.path().join("home"))
            .env("DRCACHE_STATE_DIR", self.fake.path().join("home"))
            .env("DRCACHE_HOST_OS", "macos")
            .env("DRCACHE_TEST_ROOT", self.root())
            .env("DRCACHE_TEST_EUID", "501")
            .env("DRCACHE_PODMAN", &self.podman)
            .env("DRCACHE_SOCKETFILTERFW", &self.socketfilterfw)
            .env("DRCACHE_SUDO", self.fake.path().join("sudo"));
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        run(&mut self.drcache(args))
    }

    fn calls(&self) -> Vec<String> {
        self.fake.calls()
    }
}

fn real(path: &Path) -> String {
    fs::canonicalize(path).unwrap().display().to_string()
}

/// The calls of a run that adds and unblocks `app` through sudo.
fn add_and_unblock(mac: &Mac, app: &str) -> Vec<String> {
    let sfw = mac.socketfilterfw.display();
    vec![
        format!("socketfilterfw --getappblocked {app}"),
        format!("sudo {sfw} --add {app}"),
        format!("socketfilterfw --add {app}"),
        format!("sudo {sfw} --unblock {app}"),
        format!("socketfilterfw --unblock {app}"),
        format!("socketfilterfw --getappblocked {app}"),
    ]
}

#[test]
fn podman_installer_gvproxy_is_added_and_unblocked_through_sudo() {
    let mut mac = Mac::new();
    let gvproxy = real(&mac.install_pkg());
    let out = mac.run(&["setup-host"]);
    let out = out.expect(0);
    assert!(
        out.stderr.contains(&format!(
            "gvproxy: {gvproxy} (where the podman installer puts it)"
        )),
        "{}",
        out.stderr
    );
    assert!(out
        .stderr
        .contains(&format!("added {gvproxy} to the application firewall")));
    assert!(out.stderr.contains("set up: the application firewall lets"));
    assert_eq!(mac.calls(), add_and_unblock(&mac, &gvproxy));
}

#[test]
fn second_run_only_queries() {
    let mut mac = Mac::new();
    let gvproxy = real(&mac.install_pkg());
    assert_eq!(mac.run(&["setup-host"]).code, 0);
    mac.fake.clear_calls();
    let out = mac.run(&["setup-host"]);
    let out = out.expect(0);
    assert!(out.stderr.contains("already set up"), "{}", out.stderr);
    assert_eq!(
        mac.calls(),
        [format!("socketfilterfw --getappblocked {gvproxy}")]
    );
}

#[test]
fn blocked_gvproxy_is_only_unblocked() {
    let mut mac = Mac::new();
    let gvproxy = real(&mac.install_pkg());
    mac.set_state("blocked");
    let out = mac.run(&["setup-host"]);
    out.expect(0);
    let sfw = mac.socketfilterfw.display();
    assert_eq!(
        mac.calls(),
        [
            format!("socketfilterfw --getappblocked {gvproxy}"),
            format!("sudo {sfw} --unblock {gvproxy}"),
            format!("socketfilterfw --unblock {gvproxy}"),
            format!("socketfilterfw --getappblocked {gvproxy}"),
        ]
    );
}

#[test]
fn homebrew_gvproxy_beside_podman_resolves_to_the_cellar() {
    let mut mac = Mac::new();
    let brew = mac.root().join("opt/homebrew");
    let cellar = brew.join("Cellar/podman/5.2.1");
    FakeTool::new("podman").install_at(&mac.fake, &cellar.join("bin/podman"));
    let gvproxy = mac.gvproxy_at(&cellar.join("libexec/podman/gvproxy"));
    fs::create_dir_all(brew.join("bin")).unwrap();
    fs::create_dir_all(brew.join("opt")).unwrap();
    symlink(cellar.join("bin/podman"), brew.join("bin/podman")).unwrap();
    symlink(&cellar, brew.join("opt/podman")).unwrap();
    mac.podman = brew.join("bin/podman");

    let out = mac.run(&["setup-host"]);
    let out = out.expect(0);
    let gvproxy = real(&gvproxy);
    assert!(
        out.stderr.contains(&format!(
            "gvproxy: {gvproxy} (beside podman ({}))",
            real(&cellar.join("bin/podman"))
        )),
        "{}",
        out.stderr
    );
    assert_eq!(mac.calls(), add_and_unblock(&mac, &gvproxy));
}

#[test]
fn homebrew_prefix_is_searched_when_podman_is_elsewhere() {
    let mut mac = Mac::new();
    let brew = mac.root().join("opt/homebrew");
    let cellar = brew.join("Cellar/podman/5.3.0");
    let gvproxy = mac.gvproxy_at(&cellar.join("libexec/podman/gvproxy"));
    fs::create_dir_all(brew.join("opt")).unwrap();
    symlink(&cellar, brew.join("opt/podman")).unwrap();
    mac.set_state("permitted");

    let out = mac.run(&["setup-host", "--check"]);
    let out = out.expect(0);
    let found = brew.join("opt/podman/libexec/podman/gvproxy");
    assert!(
        out.stderr.contains(&format!(
            "gvproxy: {} (found at {}: Homebrew's podman)",
            real(&gvproxy),
            found.display()
        )),
        "{}",
        out.stderr
    );
    // HOMEBREW_PREFIX, when set, is the one prefix searched.
    let out = run(mac
        .drcache(&["setup-host", "--check"])
        .env("HOMEBREW_PREFIX", mac.fake.path().join("elsewhere")));
    out.expect(4);
}

#[test]
fn helper_binaries_dir_in_containers_conf_comes_first() {
    let mut mac = Mac::new();
    mac.install_pkg();
    let custom = mac.fake.path().join("custom-helpers");
    let gvproxy = real(&mac.gvproxy_at(&custom.join("gvproxy")));
    let conf = mac.root().join("etc/containers/containers.conf");
    fs::create_dir_all(conf.parent().unwrap()).unwrap();
    fs::write(
        &conf,
        format!(
            "[engine]\nhelper_binaries_dir = [\"{}\"]\n",
            custom.display()
        ),
    )
    .unwrap();
    mac.set_state("permitted");

    let out = mac.run(&["setup-host", "--json"]);
    let out = out.expect(0);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["os"], "macos");
    assert_eq!(report["state"], "done");
    assert_eq!(report["facts"]["gvproxy"], gvproxy.as_str());
    assert_eq!(
        report["facts"]["gvproxy_found_by"],
        format!("helper_binaries_dir in {}", conf.display())
    );
}

#[test]
fn missing_gvproxy_says_where_it_looked() {
    let mac = Mac::new();
    let out = mac.run(&["setup-host"]);
    let out = out.expect(4);
    let root = mac.root();
    assert!(
        out.stderr
            .contains("error: podman's gvproxy was not found; looked in"),
        "{}",
        out.stderr
    );
    assert!(out
        .stderr
        .contains(&format!("{}/opt/podman/bin", root.display())));
    assert!(out.stderr.contains(&format!(
        "{}/opt/homebrew/opt/podman/libexec/podman",
        root.display()
    )));
    assert!(out.stderr.contains("hint: install podman"));
    assert!(mac.calls().is_empty(), "{:?}", mac.calls());
}

#[test]
fn check_reports_what_is_missing_and_changes_nothing() {
    let mut mac = Mac::new();
    let gvproxy = real(&mac.install_pkg());
    let out = mac.run(&["setup-host", "--check"]);
    let out = out.expect(3);
    assert!(
        out.stderr.contains(&format!(
            "missing: {gvproxy} is not in the application firewall"
        )),
        "{}",
        out.stderr
    );
    mac.set_state("blocked");
    let out = mac.run(&["setup-host", "--check"]);
    let out = out.expect(3);
    assert!(out
        .stderr
        .contains("missing: the application firewall blocks incoming connections"));
    mac.set_state("permitted");
    let out = mac.run(&["setup-host", "--check"]);
    out.expect(0);
    let query = format!("socketfilterfw --getappblocked {gvproxy}");
    assert_eq!(mac.calls(), [query.clone(), query.clone(), query]);
}

#[test]
fn undo_removes_gvproxy_and_then_has_nothing_to_do() {
    let mut mac = Mac::new();
    let gvproxy = real(&mac.install_pkg());
    mac.set_state("permitted");
    let out = mac.run(&["setup-host", "--undo"]);
    let out = out.expect(0);
    assert!(out
        .stderr
        .contains(&format!("removed {gvproxy} from the application firewall")));
    let sfw = mac.socketfilterfw.display();
    assert_eq!(
        mac.calls(),
        [
            format!("socketfilterfw --getappblocked {gvproxy}"),
            format!("sudo {sfw} --remove {gvproxy}"),
            format!("socketfilterfw --remove {gvproxy}"),
            format!("socketfilterfw --getappblocked {gvproxy}"),
        ]
    );
    mac.fake.clear_calls();
    let out = mac.run(&["setup-host", "--undo"]);
    let out = out.expect(0);
    assert!(out.stderr.contains("nothing to undo"), "{}", out.stderr);
    assert_eq!(mac.calls().len(), 1);
}

#[test]
fn dry_run_prints_the_privileged_commands_and_runs_none() {
    let mut mac = Mac::new();
    let gvproxy = real(&mac.install_pkg());
    let out = mac.run(&["setup-host", "--dry-run"]);
    let out = out.expect(0);
    let sfw = mac.socketfilterfw.display();
    assert!(
        out.stderr
            .contains(&format!("would run: sudo {sfw} --add {gvproxy}")),
        "{}",
        out.stderr
    );
    assert!(out
        .stderr
        .contains(&format!("would run: sudo {sfw} --unblock {gvproxy}")));
    assert!(out.stderr.contains("dry run: nothing was changed"));
    assert_eq!(
        mac.calls(),
        [format!("socketfilterfw --getappblocked {gvproxy}")]
    );
}

#[test]
fn as_root_no_sudo_is_used() {
    let mut mac = Mac::new();
    let gvproxy = real(&mac.install_pkg());
    let out = run(mac
        .drcache(&["setup-host"])
        .env("DRCACHE_TEST_EUID", "0")
        .env("FAKE_ROOT", "1"));
    out.expect(0);
    assert_eq!(
        mac.calls(),
        [
            format!("socketfilterfw --getappblocked {gvproxy}"),
            format!("socketfilterfw --add {gvproxy}"),
            format!("socketfilterfw --unblock {gvproxy}"),
            format!("socketfilterfw --getappblocked {gvproxy}"),
        ]
    );
}

#[test]
fn sudo_refusal_is_explained_and_nothing_changes() {
    let mut mac = Mac::new();
    let gvproxy = real(&mac.install_pkg());
    mac.sudo_refuses = true;
    let out = mac.run(&["setup-host"]);
    let out = out.expect(1);
    assert!(
        out.stderr.contains(&format!(
            "error: could not add {gvproxy} to the application firewall"
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Sorry, user alice is not allowed"));
    assert!(out
        .stderr
        .contains("hint: drcache needs root for this change"));
    let sfw = mac.socketfilterfw.display();
    assert_eq!(
        mac.calls(),
        [
            format!("socketfilterfw --getappblocked {gvproxy}"),
            format!("sudo {sfw} --add {gvproxy}"),
        ]
    );
}

#[test]
fn missing_sudo_is_a_missing_tool() {
    let mut mac = Mac::new();
    mac.install_pkg();
    let out = run(mac
        .drcache(&["setup-host"])
        .env("DRCACHE_SUDO", "/nonexistent/sudo"));
    let out = out.expect(4);
    assert!(
        out.stderr
            .contains("changing the firewall needs root, and sudo cannot be used"),
        "{}",
        out.stderr
    );
    assert!(out
        .stderr
        .contains("hint: run `drcache setup-host` as root"));
    assert_eq!(
        mac.calls().len(),
        1,
        "only the query ran: {:?}",
        mac.calls()
    );
}

/// The podman of the installer, answering only what `start --dry-run` asks:
/// no containers, no volumes.
fn listing_nothing(mac: &Mac) -> PathBuf {
    FakeTool::new("podman")
        .on(&PS, Reply::stdout("[]"))
        .on(&VOLUME_LS, Reply::stdout("[]"))
        .on(
            &["image", "exists", "docker.io/library/registry:3"],
            Reply::ok(),
        )
        .install_at(&mac.fake, &mac.root().join("opt/podman/bin/podman"))
}

/// A config with one cache on a port unlikely to be taken.
fn one_cache_config(mac: &Mac) -> PathBuf {
    let path = mac.fake.path().join("config.toml");
    fs::write(&path, "[[registry]]\nname = \"quay.io\"\nport = 45951\n").unwrap();
    path
}

#[test]
fn start_warns_when_gvproxy_is_not_allowed() {
    let mut mac = Mac::new();
    let gvproxy = real(&mac.install_pkg());
    mac.podman = listing_nothing(&mac);
    let config = one_cache_config(&mac);
    let start = |mac: &Mac| {
        run(mac
            .drcache(&["start", "--dry-run", "--config"])
            .arg(&config))
    };

    let out = start(&mac);
    let out = out.expect(0);
    assert!(
        out.stderr.contains(&format!(
            "warning: the macOS application firewall does not let {gvproxy} (podman's gvproxy) accept connections"
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("run `drcache setup-host`"));

    mac.set_state("permitted");
    let out = start(&mac);
    let out = out.expect(0);
    assert!(
        !out.stderr.contains("application firewall does not let"),
        "{}",
        out.stderr
    );
    // Said on every run: nothing holds the caches to their clients here.
    assert!(
        out.stderr
            .contains("warning: the caches are reachable from other networks ("),
        "{}",
        out.stderr
    );

    // A login on such a cache needs the config's explicit opt-in.
    let login = mac.fake.path().join("login");
    fs::write(&login, "me:pw\n").unwrap();
    fs::set_permissions(&login, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let with_login = mac.fake.path().join("login.toml");
    let text = format!(
        "[[registry]]\nname = \"quay.io\"\nport = 45951\ncredentials_file = \"{}\"\n",
        login.display()
    );
    fs::write(&with_login, &text).unwrap();
    let out = run(mac
        .drcache(&["start", "--dry-run", "--config"])
        .arg(&with_login))
    .expect(2);
    assert!(
        out.stderr.contains(
            "error: quay.io log in to their upstream, and their caches would be reachable from other networks"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("allow_unfiltered_login = true"),
        "{}",
        out.stderr
    );
    fs::write(
        &with_login,
        format!("allow_unfiltered_login = true\n{text}"),
    )
    .unwrap();
    let out = run(mac
        .drcache(&["start", "--dry-run", "--config"])
        .arg(&with_login))
    .expect(0);
    assert!(
        out.stderr.contains("warning: the caches are reachable"),
        "{}",
        out.stderr
    );
    assert!(!mac
        .calls()
        .iter()
        .any(|c| c.contains("--add") || c.contains("--unblock")));
}

#[test]
fn start_on_linux_does_not_ask_socketfilterfw() {
    let mut mac = Mac::new();
    mac.install_pkg();
    mac.podman = listing_nothing(&mac);
    let config = one_cache_config(&mac);
    let out = run(mac
        .drcache(&["start", "--dry-run", "--config"])
        .arg(&config)
        .env("DRCACHE_HOST_OS", "linux"));
    out.expect(0);
    assert!(
        !mac.calls().iter().any(|c| c.starts_with("socketfilterfw")),
        "{:?}",
        mac.calls()
    );
}

#[test]
fn a_gvproxy_others_could_swap_is_not_let_through_the_firewall() {
    use std::os::unix::fs::PermissionsExt;
    let mut mac = Mac::new();
    let gvproxy = mac.install_pkg();
    let bin = gvproxy.parent().unwrap().to_path_buf();
    // Its directory writable by every user: anyone could replace it.
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o777)).unwrap();
    let out = mac.run(&["setup-host"]).expect(1);
    assert!(
        out.stderr.contains(&format!(
            "refusing to let {} through the application firewall: {} is writable by others (mode 0777)",
            real(&gvproxy),
            bin.display()
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("reinstall podman"), "{}", out.stderr);
    assert!(
        !mac.calls()
            .iter()
            .any(|c| c.contains("--add") || c.contains("--unblock")),
        "{:?}",
        mac.calls()
    );
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&gvproxy, fs::Permissions::from_mode(0o757)).unwrap();
    let out = mac.run(&["setup-host"]).expect(1);
    assert!(
        out.stderr
            .contains("gvproxy is writable by others (mode 0757)"),
        "{}",
        out.stderr
    );
}
