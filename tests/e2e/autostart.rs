//! Autostart on real podman: a simulated reboot. `setup-host` writes the
//! systemd units (into a test root, with a systemctl that does nothing:
//! no systemd runs here); then the service's `ExecStart=` line is run as
//! systemd runs it, in a clean environment (`env -i`, PATH and HOME as
//! systemd gives them, the unit's `Environment=`), after every cache was
//! stopped: online, then with the upstream down (offline mode, cached
//! images pull), then as the timer runs it once the upstream is back (proxy
//! mode again), and on healthy caches (no more podman calls than a warm
//! `start`, no container changed).
//!
//! The clean environment also carries this machine's test podman
//! configuration (CONTAINERS_CONF, CONTAINERS_REGISTRIES_CONF: podman
//! cannot run containers here without it), when set, and a private DRCACHE_STATE_DIR
//! (so the run's record is read from, and left in, the test's own dir).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::real::*;
use crate::support::*;

/// PATH as systemd's manager gives services.
const SYSTEMD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const PREFIX: &str = "drtauto";
const UPSTREAM_PORT: u16 = 23100;
const PORTS: [(&str, u16); 2] = [("quay.io", 23101), ("docker.io", 23102)];

/// The service's ExecStart= words and Environment= pairs.
fn unit_command(service: &Path) -> (Vec<String>, Vec<(String, String)>) {
    let text = std::fs::read_to_string(service).unwrap();
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart= line");
    let words: Vec<String> = exec.split(' ').map(str::to_string).collect();
    let env = text
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (words, env)
}

struct Unit {
    words: Vec<String>,
    env: Vec<(String, String)>,
    state_dir: PathBuf,
}

impl Unit {
    /// Run the ExecStart= line as systemd would, with `extra` arguments;
    /// how long it took is printed (shown with `--nocapture`).
    fn run(&self, what: &str, extra: &[&str]) -> Run {
        let started = std::time::Instant::now();
        let out = self.run_quietly(extra);
        eprintln!(
            "autostart run, {what}: {:.2} s",
            started.elapsed().as_secs_f64()
        );
        out
    }

    fn run_quietly(&self, extra: &[&str]) -> Run {
        let mut cmd = Command::new("env");
        // HOME is the user's, as the manager sets it from the password database.
        let home = std::env::var("HOME").unwrap();
        cmd.arg("-i")
            .arg(format!("PATH={SYSTEMD_PATH}"))
            .arg(format!("HOME={home}"));
        for (k, v) in &self.env {
            cmd.arg(format!("{k}={v}"));
        }
        for var in ["CONTAINERS_CONF", "CONTAINERS_REGISTRIES_CONF"] {
            if let Ok(value) = std::env::var(var) {
                cmd.arg(format!("{var}={value}"));
            }
        }
        cmd.arg(format!("DRCACHE_STATE_DIR={}", self.state_dir.display()));
        cmd.args(&self.words).args(extra);
        run(&mut cmd)
    }

    fn last_run(&self) -> serde_json::Value {
        let path = self.state_dir.join(format!("{PREFIX}.autostart.json"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }
}

/// The podman calls a `-v` run made.
fn podman_calls(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("+ podman "))
        .collect()
}

fn modes(report: &serde_json::Value) -> Vec<String> {
    report["caches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["mode"].as_str().unwrap().to_string())
        .collect()
}

fn caches() -> Vec<String> {
    PORTS
        .iter()
        .map(|(name, _)| format!("{PREFIX}-{}", name.replace('.', "-")))
        .collect()
}

fn pull_all(image: &str) {
    for (_, port) in PORTS {
        skopeo_pull(&format!("127.0.0.1:{port}"), image)
            .unwrap_or_else(|e| panic!("pull of {image} through :{port}: {e}"));
    }
}

#[test]
fn a_simulated_reboot_brings_the_caches_back_online_and_offline_and_the_timer_returns_them_to_proxy_mode(
) {
    let Some(env) = real_env("autostart_simulated_reboot") else {
        return;
    };
    let _cleanup = Cleanup::new(PREFIX);
    let upstream = Upstream::start(&env, &format!("{PREFIX}-upstream"), UPSTREAM_PORT);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &env, PREFIX, &upstream.url(), &PORTS, "", "");
    let state_dir = dir.path().join("state");

    // The caches run and hold the test image.
    let command = |args: &[&str]| {
        let mut cmd = drcache(Some(&cfg));
        cmd.env("DRCACHE_STATE_DIR", &state_dir).args(args);
        cmd
    };
    let manual = |args: &[&str]| run(&mut command(args));
    manual(&["start"]).expect(0);
    pull_all("test/img:1");

    // setup-host writes the units (a test root; systemctl does nothing here,
    // firewalld is "not running" so the host's own firewall is left alone).
    let fake = FakeBin::new();
    let systemctl = fake.script("systemctl", "exit 0");
    let firewall_cmd = fake.script("firewall-cmd", "echo 'not running' >&2; exit 252");
    let root = dir.path().join("root");
    let as_systemd_root = |args: &[&str]| {
        let mut cmd = command(args);
        cmd.env("DRCACHE_TEST_INIT", "systemd")
            .env("DRCACHE_TEST_EUID", "0")
            .env("DRCACHE_TEST_ROOT", &root)
            .env("DRCACHE_SYSTEMCTL", &systemctl)
            .env("DRCACHE_FIREWALL_CMD", &firewall_cmd);
        run(&mut cmd)
    };
    as_systemd_root(&["setup-host"]).expect(0);
    let (words, unit_env) = unit_command(&root.join("etc/systemd/system/drcache-drtauto.service"));
    assert_eq!(
        words,
        [
            std::fs::canonicalize(BIN).unwrap().display().to_string(),
            "start".into(),
            "--config".into(),
            std::fs::canonicalize(&cfg).unwrap().display().to_string(),
        ]
    );
    assert_eq!(
        unit_env,
        [("DRCACHE_AUTOSTART".to_string(), "1".to_string())]
    );
    let unit = Unit {
        words,
        env: unit_env,
        state_dir: state_dir.clone(),
    };

    // Reboot, online: every cache is down; the unit's line brings them back.
    for c in caches() {
        podman(&["stop", &c]);
    }
    unit.run("reboot, online", &[]).expect(0);
    for c in caches() {
        assert_eq!(container_state(&c), "running", "{c}");
    }
    pull_all("test/img:1");
    assert_eq!(unit.last_run()["code"], 0, "{}", unit.last_run());

    // Reboot, offline: caches and upstream down. The caches come back in
    // offline mode and serve what they hold.
    for c in caches() {
        podman(&["stop", &c]);
    }
    podman(&["stop", &upstream.name]);
    let out = unit.run("reboot, upstream down", &["--json"]).expect(0);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(modes(&report), ["offline", "offline"], "{report}");
    pull_all("test/img:1");
    let offline_ids: Vec<String> = caches().iter().map(|c| container_id(c)).collect();

    // A timer run while the upstream is still down: drcache asks the
    // upstream itself, nothing changes, one podman call.
    let out = unit
        .run("timer, upstream still down", &["--json", "-v"])
        .expect(0);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(modes(&report), ["offline", "offline"], "{report}");
    for cache in report["caches"].as_array().unwrap() {
        assert_eq!(cache["action"], "unchanged", "{report}");
        assert!(
            cache["stays_offline"]
                .as_str()
                .is_some_and(|r| r.contains("still does not answer")),
            "{report}"
        );
    }
    assert_eq!(
        podman_calls(&out.stderr),
        ["+ podman ps --all --format json"],
        "{}",
        out.stderr
    );
    let ids: Vec<String> = caches().iter().map(|c| container_id(c)).collect();
    assert_eq!(ids, offline_ids);

    // The upstream is back: one timer run returns every cache to proxy mode.
    podman(&["start", &upstream.name]);
    wait_http_200(&format!("http://127.0.0.1:{UPSTREAM_PORT}/v2/"));
    let out = unit.run("timer, upstream back", &["--json"]).expect(0);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(modes(&report), ["proxy", "proxy"], "{report}");
    for c in caches() {
        assert_eq!(
            podman(&[
                "inspect",
                "--format",
                "{{index .Config.Labels \"drcache.mode\"}}",
                &c
            ])
            .trim(),
            "proxy"
        );
    }
    pull_all("test/img:1");
    assert_eq!(unit.last_run()["summary"], "2 ready, 2 changed");

    // On healthy caches a timer run costs what a warm start costs: one
    // podman call, no container changed.
    let ids: Vec<String> = caches().iter().map(|c| container_id(c)).collect();
    let started = std::time::Instant::now();
    let warm = manual(&["start", "-v"]).expect(0);
    eprintln!(
        "warm start by hand: {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let timer = unit.run("timer, healthy caches", &["-v"]).expect(0);
    assert_eq!(
        podman_calls(&warm.stderr),
        ["+ podman ps --all --format json"],
        "{}",
        warm.stderr
    );
    assert_eq!(
        podman_calls(&timer.stderr),
        podman_calls(&warm.stderr),
        "{}",
        timer.stderr
    );
    assert_eq!(
        caches().iter().map(|c| container_id(c)).collect::<Vec<_>>(),
        ids
    );
    assert_eq!(unit.last_run()["summary"], "2 ready, 0 changed");

    // status says autostart is set up and when it last ran.
    let out = as_systemd_root(&["status", "--json"]).expect(0);
    let status: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(status["autostart"]["set_up"], true, "{status}");
    assert_eq!(
        status["autostart"]["problems"],
        serde_json::json!([]),
        "{status}"
    );
    assert_eq!(status["autostart"]["last_run"]["exit_code"], 0, "{status}");
}
