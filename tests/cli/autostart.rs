//! Autostart against a fake `systemctl` and `launchctl` that log their
//! calls: the units on disk byte for byte (and through `systemd-analyze
//! verify`, which needs no running systemd), idempotence, `--check` of a
//! unit whose drcache is gone, `--undo`; and `start` as the timer runs it:
//! a fallback offline cache stays as it is while its upstream is silent
//! (one podman call), and the run is recorded for `status`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fake::*;
use crate::support::*;
use crate::with_fake;

/// A fake systemctl keeping the timer's state in files of `d`.
fn systemctl(d: &Path, user: bool) -> FakeTool {
    let d = d.display();
    let scope: &[&str] = if user { &["--user"] } else { &[] };
    let args = |rest: &[&str]| -> Vec<String> {
        scope.iter().chain(rest).map(|s| s.to_string()).collect()
    };
    let timer = "drcache-drtauto.timer";
    let service = "drcache-drtauto.service";
    FakeTool::new("systemctl")
        .on(&args(&["daemon-reload"]), Reply::ok())
        .on(
            &args(&["is-enabled", timer]),
            Reply::script(format!(
                "if [ -f '{d}/enabled' ]; then echo enabled; else echo disabled; exit 1; fi"
            )),
        )
        .on(
            &args(&["is-active", timer]),
            Reply::script(format!(
                "if [ -f '{d}/enabled' ]; then echo active; else echo inactive; exit 3; fi"
            )),
        )
        .on(
            &args(&["enable", "--now", timer]),
            Reply::script(format!("touch '{d}/enabled'")),
        )
        .on(
            &args(&["disable", "--now", timer]),
            Reply::script(format!("rm -f '{d}/enabled'")),
        )
        .on(&args(&["start", "--no-block", service]), Reply::ok())
}

struct Host {
    fake: FakeBin,
    systemctl: PathBuf,
    firewall_cmd: PathBuf,
    config: PathBuf,
}

/// A firewall-cmd whose daemon is not running: the firewall part has
/// nothing to do.
fn firewalld_not_running(fake: &FakeBin) -> PathBuf {
    FakeTool::new("firewall-cmd")
        .on(&["--state"], Reply::fail(252, "not running\n"))
        .install(fake)
}

impl Host {
    fn new(user: bool) -> Host {
        let fake = FakeBin::new();
        let systemctl = systemctl(fake.path(), user).install(&fake);
        let firewall_cmd = firewalld_not_running(&fake);
        let config = fake.path().join("config.toml");
        std::fs::write(&config, "prefix = \"drtauto\"\n").unwrap();
        Host {
            fake,
            systemctl,
            firewall_cmd,
            config,
        }
    }

    fn drcache(&self, euid: &str, args: &[&str]) -> Command {
        let mut cmd = drcache(Some(&self.config));
        cmd.args(args)
            .env("DRCACHE_HOST_OS", "linux")
            .env("DRCACHE_TEST_INIT", "systemd")
            .env("DRCACHE_TEST_EUID", euid)
            .env("DRCACHE_TEST_ROOT", self.fake.path().join("root"))
            .env("XDG_CONFIG_HOME", self.fake.path().join("xdg"))
            .env("USER", "alice")
            .env("DRCACHE_STATE_DIR", self.fake.path().join("state"))
            .env("DRCACHE_SYSTEMCTL", &self.systemctl)
            .env("DRCACHE_FIREWALL_CMD", &self.firewall_cmd);
        cmd
    }

    /// The calls of systemctl (the firewall's `--state` left out).
    fn calls(&self) -> Vec<String> {
        self.fake
            .calls()
            .into_iter()
            .filter(|c| c.starts_with("systemctl "))
            .collect()
    }

    fn system_dir(&self) -> PathBuf {
        self.fake.path().join("root/etc/systemd/system")
    }
}

fn exe() -> String {
    std::fs::canonicalize(BIN).unwrap().display().to_string()
}

fn expected_service(config: &Path, network: bool) -> String {
    let network = if network {
        "Wants=network-online.target\nAfter=network-online.target\n"
    } else {
        ""
    };
    format!(
        "# Written by `drcache setup-host`; `drcache setup-host --undo` removes it.\n\
         [Unit]\n\
         Description=drcache: start the registry caches of prefix drtauto\n\
         {network}\
         \n\
         [Service]\n\
         Type=oneshot\n\
         Environment=DRCACHE_AUTOSTART=1\n\
         ExecStart={} start --config {}\n\
         TimeoutStartSec=15min\n",
        exe(),
        std::fs::canonicalize(config).unwrap().display()
    )
}

fn expected_timer(at: &str, when: &str) -> String {
    format!(
        "# Written by `drcache setup-host`; `drcache setup-host --undo` removes it.\n\
         [Unit]\n\
         Description=drcache: start the registry caches of prefix drtauto at {when} and every 5 minutes\n\
         \n\
         [Timer]\n\
         {at}=15s\n\
         OnUnitActiveSec=5min\n\
         AccuracySec=30s\n\
         Unit=drcache-drtauto.service\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n"
    )
}

/// `systemd-analyze verify` of the written units: it loads them as systemd
/// would, without a running systemd. Debian's `systemd` package has it.
fn verify_units(dir: &Path) {
    let Ok(analyze) = which("systemd-analyze") else {
        panic!("systemd-analyze is not installed: install Debian's systemd package (scripts/test does)");
    };
    let out = Command::new(analyze)
        .arg("verify")
        .arg(dir.join("drcache-drtauto.service"))
        .arg(dir.join("drcache-drtauto.timer"))
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // Anything it says about our units is a finding.
    assert!(!stderr.contains("drcache-drtauto"), "{stderr}");
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

#[test]
fn as_root_units_go_to_etc_enabled_once_then_a_rerun_only_queries() {
    let host = Host::new(false);
    let out = run(&mut host.drcache("0", &["setup-host"])).expect(0);
    let dir = host.system_dir();
    let service = dir.join("drcache-drtauto.service");
    let timer = dir.join("drcache-drtauto.timer");
    assert_eq!(
        std::fs::read_to_string(&service).unwrap(),
        expected_service(&host.config, true)
    );
    assert_eq!(
        std::fs::read_to_string(&timer).unwrap(),
        expected_timer("OnBootSec", "boot")
    );
    verify_units(&dir);
    assert_eq!(
        host.calls(),
        [
            "systemctl daemon-reload",
            "systemctl is-enabled drcache-drtauto.timer",
            "systemctl is-active drcache-drtauto.timer",
            "systemctl enable --now drcache-drtauto.timer",
            "systemctl start --no-block drcache-drtauto.service",
        ]
    );
    assert!(
        out.stderr.contains(&format!("wrote {}", service.display())),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "autostart: drcache-drtauto.timer runs `{} start --config {}` at boot and every 5 minutes",
            exe(),
            std::fs::canonicalize(&host.config).unwrap().display()
        )),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("loginctl"), "{}", out.stderr);

    // A second run: queries only, the files untouched.
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let before = (mtime(&service), mtime(&timer));
    host.fake.clear_calls();
    let out = run(&mut host.drcache("0", &["setup-host", "--json"])).expect(0);
    assert_eq!(
        host.calls(),
        [
            "systemctl is-enabled drcache-drtauto.timer",
            "systemctl is-active drcache-drtauto.timer",
        ]
    );
    assert_eq!((mtime(&service), mtime(&timer)), before);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["autostart"]["state"], "done", "{report}");
    assert_eq!(report["autostart"]["changes"], serde_json::json!([]));
    assert_eq!(report["state"], "not-needed", "{report}");

    // --check agrees.
    run(&mut host.drcache("0", &["setup-host", "--check"])).expect(0);
}

#[test]
fn check_names_a_unit_whose_drcache_or_config_is_gone() {
    let host = Host::new(false);
    run(&mut host.drcache("0", &["setup-host"])).expect(0);
    let service = host.system_dir().join("drcache-drtauto.service");
    let text = std::fs::read_to_string(&service).unwrap();
    let gone = host.fake.path().join("old/drcache");
    let config = std::fs::canonicalize(&host.config).unwrap();
    std::fs::write(
        &service,
        text.replace(&exe(), &gone.display().to_string())
            .replace(&config.display().to_string(), "/nonexistent/drtauto.toml"),
    )
    .unwrap();
    host.fake.clear_calls();
    let out = run(&mut host.drcache("0", &["setup-host", "--check"])).expect(3);
    for line in [
        format!(
            "missing: {} runs {}, which no longer exists",
            service.display(),
            gone.display()
        ),
        format!(
            "missing: {} uses the config file /nonexistent/drtauto.toml, which no longer exists",
            service.display()
        ),
    ] {
        assert!(out.stderr.contains(&line), "{line}\n{}", out.stderr);
    }
    // A check changes nothing.
    assert!(
        host.calls().iter().all(|c| c.contains(" is-")),
        "{:?}",
        host.calls()
    );
    // status and doctor say it too (from the files alone).
    let status = autostart_status(&host);
    assert_eq!(status["set_up"], true);
    assert_eq!(status["problems"].as_array().unwrap().len(), 2, "{status}");
    // setup-host repairs it.
    run(&mut host.drcache("0", &["setup-host"])).expect(0);
    assert_eq!(
        std::fs::read_to_string(&service).unwrap(),
        expected_service(&host.config, true)
    );
}

/// `status --json`'s autostart part, with a podman that has no caches.
fn autostart_status(host: &Host) -> serde_json::Value {
    let podman = FakeTool::new("podman")
        .on(&PS, Reply::stdout("[]"))
        .on(&VOLUME_LS, Reply::stdout("[]"))
        .install_at(&host.fake, &host.fake.path().join("bin/podman"));
    let out = run(host
        .drcache("0", &["status", "--json"])
        .env("DRCACHE_PODMAN", podman))
    .expect(3);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    report["autostart"].clone()
}

#[test]
fn undo_disables_and_removes_the_units_then_has_nothing_to_do() {
    let host = Host::new(false);
    run(&mut host.drcache("0", &["setup-host"])).expect(0);
    host.fake.clear_calls();
    run(&mut host.drcache("0", &["setup-host", "--undo"])).expect(0);
    assert_eq!(
        host.calls(),
        [
            "systemctl is-enabled drcache-drtauto.timer",
            "systemctl is-active drcache-drtauto.timer",
            "systemctl disable --now drcache-drtauto.timer",
            "systemctl daemon-reload",
        ]
    );
    assert_eq!(std::fs::read_dir(host.system_dir()).unwrap().count(), 0);
    host.fake.clear_calls();
    run(&mut host.drcache("0", &["setup-host", "--undo"])).expect(0);
    assert_eq!(host.calls().len(), 2, "{:?}", host.calls());
    run(&mut host.drcache("0", &["setup-host", "--check"])).expect(3);
}

#[test]
fn rootless_units_are_user_units_with_the_linger_note() {
    let host = Host::new(true);
    let out = run(&mut host.drcache("1000", &["setup-host"])).expect(0);
    let dir = host.fake.path().join("xdg/systemd/user");
    assert_eq!(
        std::fs::read_to_string(dir.join("drcache-drtauto.service")).unwrap(),
        expected_service(&host.config, false)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("drcache-drtauto.timer")).unwrap(),
        expected_timer("OnStartupSec", "login")
    );
    verify_units(&dir);
    assert_eq!(host.calls()[0], "systemctl --user daemon-reload");
    assert!(host
        .calls()
        .iter()
        .all(|c| c.starts_with("systemctl --user ")));
    assert!(!host.system_dir().exists());
    assert!(
        out.stderr.contains(
            "note: user units run only while alice is logged in; to start the caches at boot \
             without a login, run `loginctl enable-linger alice`"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn dry_run_and_no_autostart_change_nothing() {
    let host = Host::new(false);
    let out = run(&mut host.drcache("0", &["--dry-run", "setup-host"])).expect(0);
    assert!(!host.system_dir().exists());
    assert!(out.stderr.contains("would write"), "{}", out.stderr);
    assert!(
        host.calls().is_empty(),
        "only dry-run lines, no calls: {:?}",
        host.calls()
    );
    run(&mut host.drcache("0", &["setup-host", "--no-autostart"])).expect(0);
    assert!(!host.system_dir().exists());
    assert!(host.calls().is_empty());
}

#[test]
fn without_a_service_manager_autostart_is_not_available_and_says_what_to_run() {
    let host = Host::new(false);
    let out = run(host
        .drcache("0", &["setup-host"])
        .env("DRCACHE_TEST_INIT", "none"))
    .expect(0);
    assert!(
        out.stderr.contains(&format!(
            "autostart is not available: no service manager (none); run `{} start --config {}` after each boot",
            exe(),
            std::fs::canonicalize(&host.config).unwrap().display()
        )),
        "{}",
        out.stderr
    );
    run(host
        .drcache("0", &["setup-host", "--check"])
        .env("DRCACHE_TEST_INIT", "none"))
    .expect(0);
    assert!(host.calls().is_empty());
}

#[test]
fn launchd_agent_is_written_and_bootstrapped_once() {
    let fake = FakeBin::new();
    let d = fake.path().display().to_string();
    let launchctl = FakeTool::new("launchctl")
        .on(
            &["print", "gui/501/io.drcache.drtauto"],
            Reply::script(format!(
                "[ -f '{d}/loaded' ] || {{ echo 'Could not find service' >&2; exit 113; }}"
            )),
        )
        .on(
            &[
                Arg::from("bootstrap"),
                Arg::from("gui/501"),
                Arg::glob("*/io.drcache.drtauto.plist"),
            ],
            Reply::script(format!("touch '{d}/loaded'")),
        )
        .on(
            &["bootout", "gui/501/io.drcache.drtauto"],
            Reply::script(format!("rm -f '{d}/loaded'")),
        )
        .install(&fake);
    let firewall_cmd = firewalld_not_running(&fake);
    // As a user, setup-host also looks for its nftables table through sudo:
    // a fake sudo running a fake nft that has none.
    let sudo = fake.script("sudo", "exec \"$@\"");
    let nft = FakeTool::new("nft")
        .on(
            &["list", "table", "inet", "drcache"],
            Reply::fail(1, "Error: No such file or directory\n"),
        )
        .install(&fake);
    let home = fake.path().join("home");
    let drcache_mac = |args: &[&str]| {
        let mut cmd = drcache(None);
        // The launchd code on this Linux host: the firewall part is Linux's
        // (no firewalld here), autostart is launchd's.
        cmd.args(args)
            .env("DRCACHE_HOST_OS", "linux")
            .env("DRCACHE_TEST_INIT", "launchd")
            .env("DRCACHE_TEST_EUID", "501")
            .env("HOME", &home)
            .env("DRCACHE_STATE_DIR", fake.path().join("state"))
            .env("DRCACHE_LAUNCHCTL", &launchctl)
            .env("DRCACHE_FIREWALL_CMD", &firewall_cmd)
            .env("DRCACHE_SUDO", &sudo)
            .env("DRCACHE_NFT", &nft);
        cmd
    };
    let plist = home.join("Library/LaunchAgents/io.drcache.drtauto.plist");
    let config = fake.path().join("c.toml");
    // Every network allowed: this test is about launchd, not the clients filter.
    std::fs::write(&config, "prefix = \"drtauto\"\nclients = [\"*\"]\n").unwrap();
    let with_config = |args: &[&str]| {
        let mut cmd = drcache_mac(args);
        cmd.arg("--config").arg(&config);
        cmd
    };
    run(&mut with_config(&["setup-host"])).expect(0);
    let text = std::fs::read_to_string(&plist).unwrap();
    let args = format!(
        "  <array>\n    <string>{}</string>\n    <string>start</string>\n    \
         <string>--wait-for-podman</string>\n    <string>120</string>\n    \
         <string>--config</string>\n    <string>{}</string>\n  </array>\n",
        exe(),
        std::fs::canonicalize(&config).unwrap().display()
    );
    assert!(text.contains(&args), "{text}");
    assert!(text.contains("<key>RunAtLoad</key>\n  <true/>\n  <key>StartInterval</key>\n  <integer>300</integer>\n"), "{text}");
    let calls = || -> Vec<String> {
        fake.calls()
            .into_iter()
            .filter(|c| c.starts_with("launchctl "))
            .collect()
    };
    assert_eq!(
        calls(),
        [
            "launchctl print gui/501/io.drcache.drtauto".to_string(),
            format!("launchctl bootstrap gui/501 {}", plist.display()),
        ]
    );
    fake.clear_calls();
    run(&mut with_config(&["setup-host"])).expect(0);
    assert_eq!(calls(), ["launchctl print gui/501/io.drcache.drtauto"]);
    run(&mut with_config(&["setup-host", "--check"])).expect(0);
    fake.clear_calls();
    run(&mut with_config(&["setup-host", "--undo"])).expect(0);
    assert_eq!(
        calls(),
        [
            "launchctl print gui/501/io.drcache.drtauto",
            "launchctl bootout gui/501/io.drcache.drtauto",
        ]
    );
    assert!(!plist.exists());
    run(&mut with_config(&["setup-host", "--check"])).expect(3);
}

/// A cache that answers `/v2/` with 200, as a running registry would.
fn serve_ready(port: u16) {
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut s = stream;
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
        }
    });
}

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The config hash `start --offline` gives the cache, read from a dry run.
fn offline_hash(fake: &FakeBin, config: &Path) -> String {
    let podman = FakeTool::new("podman")
        .on(&PS, Reply::stdout("[]"))
        .on(&VOLUME_LS, Reply::stdout("[]"))
        .on(
            &["image", "exists", "docker.io/library/registry:3"],
            Reply::ok(),
        )
        .install_at(fake, &fake.path().join("dry/podman"));
    let out = run(with_fake(fake, &podman).arg("--config").arg(config).args([
        "--dry-run",
        "start",
        "--offline",
    ]))
    .expect(0);
    let at = out.stderr.find("drcache.config-hash=").expect(&out.stderr);
    out.stderr[at + "drcache.config-hash=".len()..][..16].to_string()
}

#[test]
fn a_timer_run_keeps_a_fallback_cache_while_its_upstream_is_silent_in_one_podman_call() {
    let fake = FakeBin::new();
    let port = closed_port();
    let config = fake.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "prefix = \"drtauto\"\n[[registry]]\nname = \"quay.io\"\n\
             upstream = \"http://127.0.0.1:{}\"\nport = {port}\n",
            closed_port()
        ),
    )
    .unwrap();
    let hash = offline_hash(&fake, &config);
    // The cache answers from now on (the dry run needed the port free).
    serve_ready(port);
    let mut row = ps_row("running", "drtauto", "quay.io", port);
    row["Labels"]["drcache.mode"] = "offline".into();
    row["Labels"]["drcache.config-hash"] = hash.into();
    row["Labels"]["drcache.offline"] = "fallback".into();
    let podman = FakeTool::new("podman")
        .on(&PS, Reply::stdout(ps_json(&[row])))
        .install(&fake);
    fake.clear_calls();
    let out = run(with_fake(&fake, &podman)
        .arg("--config")
        .arg(&config)
        .env("DRCACHE_AUTOSTART", "1")
        .args(["start", "--json"]))
    .expect(0);
    assert_eq!(fake.calls(), ["podman ps --all --format json"]);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let cache = &report["caches"][0];
    assert_eq!(cache["action"], "unchanged", "{report}");
    assert_eq!(cache["mode"], "offline", "{report}");
    assert!(
        cache["stays_offline"]
            .as_str()
            .unwrap()
            .contains("still does not answer (connection refused)"),
        "{report}"
    );
    assert!(
        out.stderr.contains("offline: stays offline (read-only)"),
        "{}",
        out.stderr
    );
    // The run is recorded where status finds it.
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fake.path().join("drtauto.autostart.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["code"], 0, "{record}");
    assert_eq!(record["summary"], "1 ready, 0 changed, 1 offline");
    // A start by a person is not recorded.
    std::fs::remove_file(fake.path().join("drtauto.autostart.json")).unwrap();
    run(with_fake(&fake, &podman)
        .arg("--config")
        .arg(&config)
        .arg("start"))
    .expect(0);
    assert!(!fake.path().join("drtauto.autostart.json").exists());
}

#[test]
fn a_failed_automatic_run_is_recorded_with_its_status() {
    let fake = FakeBin::new();
    let config = fake.path().join("c.toml");
    std::fs::write(&config, "prefix = \"drtauto\"\n").unwrap();
    let podman = FakeTool::new("podman")
        .on(&PS, Reply::fail(125, "Cannot connect to Podman.\n"))
        .install(&fake);
    run(with_fake(&fake, &podman)
        .arg("--config")
        .arg(&config)
        .env("DRCACHE_AUTOSTART", "1")
        .arg("start"))
    .expect(1);
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fake.path().join("drtauto.autostart.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["code"], 1, "{record}");
    assert!(
        record["summary"]
            .as_str()
            .unwrap()
            .contains("podman ps --all --format json` failed (exit status 125)"),
        "{record}"
    );
    assert!(record["time"].as_i64().unwrap() > 1_700_000_000, "{record}");
}

#[test]
fn wait_for_podman_retries_until_the_machine_answers() {
    let fake = FakeBin::new();
    let port = closed_port();
    let config = fake.path().join("c.toml");
    std::fs::write(
        &config,
        format!("prefix = \"drtauto\"\n[[registry]]\nname = \"quay.io\"\nport = {port}\n"),
    )
    .unwrap();
    let podman = FakeTool::new("podman")
        .on(
            &PS,
            Reply::fail(125, "Cannot connect to Podman.\n").times(2),
        )
        .on(&PS, Reply::stdout("[]"))
        .on(&VOLUME_LS, Reply::stdout("[]"))
        .on(
            &["image", "exists", "docker.io/library/registry:3"],
            Reply::ok(),
        )
        .install(&fake);
    let out = run(with_fake(&fake, &podman)
        .arg("--config")
        .arg(&config)
        .args(["--dry-run", "start", "--wait-for-podman", "10"]))
    .expect(0);
    let ps: Vec<String> = fake
        .calls()
        .into_iter()
        .filter(|c| c.contains(" ps "))
        .collect();
    assert_eq!(ps.len(), 3, "{:?}\n{}", fake.calls(), out.stderr);
    // Without the option, the first failure is the answer.
    let failing = FakeTool::new("podman")
        .on(
            &PS,
            Reply::fail(125, "Cannot connect to Podman.\n").times(1),
        )
        .install_at(&fake, &fake.path().join("down/podman"));
    run(with_fake(&fake, &failing)
        .arg("--config")
        .arg(&config)
        .arg("start"))
    .expect(1);
}
