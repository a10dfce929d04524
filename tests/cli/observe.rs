//! `stats`, `status`, `warm`, `doctor`, `logs`, `completions` and `man` with
//! fake executables: exact calls, exit codes, the macOS paths.

use std::path::{Path, PathBuf};

use crate::fake::*;
use crate::support::*;
use crate::with_fake;

/// A config whose caches listen on ports where nothing answers.
fn config(dir: &Path, registries: &[(&str, u16)]) -> PathBuf {
    let mut text = String::from("prefix = \"drt-obsfake\"\n");
    for (name, port) in registries {
        text.push_str(&format!("[[registry]]\nname = \"{name}\"\nport = {port}\n"));
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The `podman machine list --format json` of podman 5 on macOS with its
/// machine stopped (fields of podman's `entities.ListReporter`).
const MACHINE_STOPPED: &str = r#"[
  {
    "Name": "podman-machine-default",
    "Default": true,
    "Created": "2025-01-14T10:02:11.449193+01:00",
    "Running": false,
    "Starting": false,
    "LastUp": "2025-01-20T08:15:40.11872+01:00",
    "Stream": "default",
    "VMType": "applehv",
    "CPUs": 5,
    "Memory": "2147483648",
    "Swap": "0",
    "DiskSize": "100",
    "Port": 52634,
    "RemoteUsername": "core",
    "IdentityPath": "/Users/me/.local/share/containers/podman/machine/machine",
    "UserModeNetworking": true
  }
]"#;

#[test]
fn doctor_on_macos_with_the_machine_stopped_says_to_start_it() {
    let fake = FakeBin::new();
    let unreachable = Reply::fail(
        125,
        "Cannot connect to Podman. Please verify your connection to the Linux system using `podman system connection list`, or try `podman machine init` and `podman machine start` to manage a new Linux VM\n\
         Error: unable to connect to Podman socket: Get \"http://d/v5.3.1/libpod/_ping\": dial unix /var/folders/x/podman.sock: connect: no such file or directory\n",
    );
    let podman = FakeTool::new("podman")
        .on(
            &["machine", "list", "--format", "json"],
            Reply::stdout(MACHINE_STOPPED),
        )
        .on(&["version", "--format", "json"], unreachable.clone())
        .on(&PS, unreachable.clone())
        .on(&VOLUME_LS, unreachable)
        .install(&fake);
    let out = run(with_fake(&fake, &podman)
        .env("DRCACHE_HOST_OS", "macos")
        .args(["doctor", "--json"]))
    .expect(3);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let checks = report["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    // Then the host firewall (setup-host --check): no socketfilterfw on
    // Linux; and no minikube here, so no cluster to check.
    assert_eq!(
        names,
        [
            "podman installed",
            "podman machine",
            "podman answers",
            "host firewall",
            "reachable from other networks",
            "autostart",
            "minikube"
        ]
    );
    // macOS: drcache installs no filter, so the caches are open beyond
    // the configured clients.
    assert_eq!(checks[4]["ok"], false, "{}", checks[4]);
    assert!(
        checks[4]["detail"]
            .as_str()
            .unwrap()
            .contains("on macOS drcache installs no packet filter"),
        "{}",
        checks[4]
    );
    assert_eq!(checks[6]["ok"], true, "{}", checks[6]);
    // No service manager for tests: autostart is not available, which is no failure.
    assert_eq!(checks[5]["ok"], true, "{}", checks[5]);
    assert!(
        checks[5]["detail"]
            .as_str()
            .unwrap()
            .starts_with("not available here"),
        "{}",
        checks[5]
    );
    assert!(
        checks[3]["detail"]
            .as_str()
            .unwrap()
            .contains("socketfilterfw"),
        "{}",
        checks[3]
    );
    assert_eq!(checks[1]["ok"], false);
    assert_eq!(checks[1]["detail"], "podman-machine-default is stopped");
    assert_eq!(
        checks[1]["fix"],
        "`podman machine start podman-machine-default`"
    );
    assert_eq!(checks[2]["ok"], false);
    assert!(
        checks[2]["fix"]
            .as_str()
            .unwrap()
            .contains("podman machine start"),
        "{}",
        checks[2]
    );
    let calls = fake.calls();
    assert!(
        calls.contains(&"podman machine list --format json".to_string()),
        "{calls:?}"
    );

    // The same for people, on stderr, each failure with its fix.
    let out = run(with_fake(&fake, &podman)
        .env("DRCACHE_HOST_OS", "macos")
        .arg("doctor"))
    .expect(3);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr
            .contains("FAIL podman machine                 podman-machine-default is stopped"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("fix: `podman machine start podman-machine-default`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("error: 4 of 7 checks failed"),
        "{}",
        out.stderr
    );
}

#[test]
fn doctor_on_linux_never_asks_for_a_machine() {
    let fake = FakeBin::new();
    let podman = doctor_podman(&fake, "podman/podman-version.json");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &[("quay.io", 27991)]);
    let out = run(with_fake(&fake, &podman)
        .env("DRCACHE_HOST_OS", "linux")
        .arg("--config")
        .arg(&cfg)
        .args(["doctor", "--json"]))
    .expect(3);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let checks = report["checks"].as_array().unwrap();
    assert!(checks[0]["detail"]
        .as_str()
        .unwrap()
        .ends_with("(version 4.3.1)"));
    let cache = checks
        .iter()
        .find(|c| c["name"] == "cache quay.io")
        .unwrap();
    assert_eq!(cache["detail"], "drt-obsfake-quay-io does not exist");
    assert_eq!(cache["fix"], "`drcache start quay.io`");
    let port = checks.iter().find(|c| c["name"] == "port 27991").unwrap();
    assert_eq!(port["ok"], true, "{port}");
    assert!(!fake.calls().iter().any(|c| c.contains("machine")));
}

/// A podman that lists no containers and no volumes.
fn listing_nothing() -> FakeTool {
    FakeTool::new("podman")
        .on(&PS, Reply::stdout("[]"))
        .on(&VOLUME_LS, Reply::stdout("[]"))
}

/// A podman for doctor on Linux: its version from `version_fixture`, no
/// containers, no volumes.
fn doctor_podman(fake: &FakeBin, version_fixture: &str) -> PathBuf {
    listing_nothing()
        .on(
            &["version", "--format", "json"],
            Reply::stdout(fixture_text(version_fixture)),
        )
        .install(fake)
}

/// A firewalld that runs and has no registry-cache service.
fn firewalld_not_set_up() -> FakeTool {
    FakeTool::new("firewall-cmd")
        .on(&["--state"], Reply::stdout("running\n"))
        .on(&["--get-zones"], Reply::stdout("block libvirt public\n"))
        .on(
            &["--info-service=registry-cache"],
            Reply::fail(101, "Error: INVALID_SERVICE: registry-cache\n"),
        )
        .on(
            &["--zone=libvirt", "--query-service=registry-cache"],
            Reply::stdout("no\n").code(1),
        )
}

#[test]
fn doctor_checks_the_host_firewall_like_setup_host_check() {
    let fake = FakeBin::new();
    let podman = doctor_podman(&fake, "podman5/podman5-version.json");
    let firewall_cmd = firewalld_not_set_up().install(&fake);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &[("quay.io", 27995)]);
    let out = run(with_fake(&fake, &podman)
        .env("DRCACHE_HOST_OS", "linux")
        .env("DRCACHE_FIREWALL_CMD", &firewall_cmd)
        .arg("--config")
        .arg(&cfg)
        .args(["doctor", "--json"]))
    .expect(3);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let checks = report["checks"].as_array().unwrap();
    let firewall = checks
        .iter()
        .find(|c| c["name"] == "host firewall")
        .unwrap();
    assert_eq!(firewall["ok"], false);
    assert!(
        firewall["detail"]
            .as_str()
            .unwrap()
            .contains("service registry-cache is not in zone libvirt"),
        "{firewall}"
    );
    assert_eq!(firewall["fix"], "`drcache setup-host`");
    // Queries only: doctor changes nothing.
    let calls: Vec<String> = fake
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("firewall-cmd"))
        .collect();
    assert!(
        calls
            .iter()
            .all(|c| !c.contains("--permanent") && !c.contains("--reload")),
        "{calls:?}"
    );
}

#[test]
fn doctor_without_podman_fails_the_first_check_with_the_install_hint() {
    let fake = FakeBin::new();
    let out = run(drcache(None)
        .env("DRCACHE_PODMAN", "/nonexistent/podman")
        .env("DRCACHE_STATE_DIR", fake.path())
        .args(["doctor", "--json"]))
    .expect(3);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let checks = report["checks"].as_array().unwrap();
    assert!(checks[0]["fix"]
        .as_str()
        .unwrap()
        .contains("install podman"));
    // Nothing about the caches can be known without podman.
    assert!(
        !checks
            .iter()
            .any(|c| c["name"].as_str().unwrap().starts_with("cache ")),
        "{checks:?}"
    );
}

#[test]
fn logs_passes_follow_and_tail_to_podman() {
    let fake = FakeBin::new();
    let podman = FakeTool::new("podman")
        .on(
            &["logs", "--follow", "--tail", "5", "drenv-cache-quay-io"],
            Reply::stdout("registry log line\n"),
        )
        .install(&fake);
    let out =
        run(with_fake(&fake, &podman).args(["logs", "quay.io", "--follow", "-n", "5"])).expect(0);
    assert_eq!(out.stdout, "registry log line\n");
    assert_eq!(
        fake.calls(),
        ["podman logs --follow --tail 5 drenv-cache-quay-io"]
    );
    let out = run(with_fake(&fake, &podman).args(["logs", "nope.io"])).expect(2);
    assert!(
        out.stderr
            .contains("unknown registry \"nope.io\"; configured: quay.io, docker.io"),
        "{}",
        out.stderr
    );
}

#[test]
fn logs_of_a_missing_container_fails_with_a_hint() {
    let fake = FakeBin::new();
    let podman = FakeTool::new("podman")
        .on(
            &["logs", "drenv-cache-ghcr-io"],
            Reply::fail(
                125,
                "Error: no container with name or ID \"drenv-cache-ghcr-io\" found: no such container\n",
            ),
        )
        .install(&fake);
    let out = run(with_fake(&fake, &podman).args(["logs", "ghcr.io"])).expect(1);
    assert!(out.stderr.contains("no such container"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("`podman logs drenv-cache-ghcr-io` failed (exit status 125)"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint:"), "{}", out.stderr);
}

#[test]
fn stats_reports_stopped_and_missing_caches_and_succeeds() {
    let fake = FakeBin::new();
    let podman = FakeTool::new("podman")
        .on(
            &PS,
            Reply::stdout(ps_json(&[ps_row("exited", "drenv-cache", "quay.io", 5051)])),
        )
        .install(&fake);
    let out = run(with_fake(&fake, &podman).args(["stats", "quay.io", "docker.io"])).expect(0);
    assert!(out.stderr.contains("quay.io    exited"), "{}", out.stderr);
    assert!(out.stderr.contains("docker.io  missing"), "{}", out.stderr);
    assert!(
        out.stderr.contains("reset when a cache restarts"),
        "{}",
        out.stderr
    );
    // One podman call: stats needs no volume listing.
    assert_eq!(fake.calls(), ["podman ps --all --format json"]);

    let out = run(with_fake(&fake, &podman).args(["stats", "--json"])).expect(0);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["caches"][0]["running"], false);
    assert_eq!(report["caches"][0]["state"], "exited");
    assert!(report["caches"][0]["blobs"].is_null());
    assert!(report["note"].as_str().unwrap().contains("reset"));
}

#[test]
fn stats_of_a_running_cache_without_a_debug_port_is_an_error_with_the_fix() {
    let fake = FakeBin::new();
    // A cache of an older drcache: no debug port published.
    let mut row = ps_row("running", "drenv-cache", "quay.io", 5051);
    row["Ports"].as_array_mut().unwrap().truncate(1);
    let podman = FakeTool::new("podman")
        .on(&PS, Reply::stdout(ps_json(&[row])))
        .install(&fake);
    let out = run(with_fake(&fake, &podman).args(["stats", "quay.io"])).expect(1);
    assert!(
        out.stderr.contains("publishes no debug port"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("`drcache start quay.io` recreates it"));
}

#[test]
fn status_reports_disk_use_on_linux_and_null_on_macos() {
    let fake = FakeBin::new();
    let volume_dir = fake.path().join("volume-data");
    std::fs::create_dir_all(volume_dir.join("docker/registry")).unwrap();
    std::fs::write(volume_dir.join("docker/registry/blob"), vec![0u8; 200_000]).unwrap();
    let mut row = ps_row("exited", "drt-obsfake", "quay.io", 27992);
    row["Image"] = "localhost/reg:1".into();
    let mut volume = volume_row("drt-obsfake-quay-io", &[]);
    volume["Mountpoint"] = volume_dir.display().to_string().into();
    let podman = FakeTool::new("podman")
        .on(&PS, Reply::stdout(ps_json(&[row])))
        .on(&VOLUME_LS, Reply::stdout(ps_json(&[volume])))
        .install(&fake);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &[("quay.io", 27992)]);
    let status = |os: &str| {
        let out = run(with_fake(&fake, &podman)
            .env("DRCACHE_HOST_OS", os)
            .arg("--config")
            .arg(&cfg)
            .args(["status", "--json"]))
        .expect(3);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v["caches"][0].clone()
    };
    let linux = status("linux");
    assert!(linux["disk_bytes"].as_u64().unwrap() >= 200_000, "{linux}");
    assert_eq!(linux["mode"], "proxy");
    assert_eq!(linux["image"], "localhost/reg:1");
    assert!(
        linux["repositories"].is_null(),
        "a stopped cache has no catalog"
    );
    assert!(linux["uptime_seconds"].is_null());
    let macos = status("macos");
    assert!(macos["disk_bytes"].is_null(), "{macos}");
}

#[test]
fn warm_checks_every_reference_before_fetching_anything() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &[("quay.io", 27993), ("docker.io", 27994)]);
    let out =
        run(drcache(Some(&cfg)).args(["warm", "nginx", "ghcr.io/x/y:1", "Bad/Ref"])).expect(2);
    assert!(
        out.stderr
            .contains("ghcr.io/x/y:1: no cache for registry ghcr.io; caches: quay.io, docker.io"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("invalid image reference \"Bad/Ref\""),
        "{}",
        out.stderr
    );

    // All known, but the caches do not answer: nothing is fetched, exit 3.
    let list = dir.path().join("images.txt");
    std::fs::write(&list, "# for CI\nnginx:1.25  # web\nquay.io/test/img:1\n").unwrap();
    let out = run(drcache(Some(&cfg)).args(["warm", "--file"]).arg(&list)).expect(3);
    assert!(
        out.stderr.contains(
            "these caches do not answer: docker.io (127.0.0.1:27994), quay.io (127.0.0.1:27993)"
        ),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: start them with `drcache start`"));

    let out = run(drcache(Some(&cfg)).args(["warm", "--platform", "linux", "nginx"])).expect(2);
    assert!(
        out.stderr.contains("invalid platform \"linux\""),
        "{}",
        out.stderr
    );
    let out = run(drcache(Some(&cfg)).args(["warm", "--file", "/nonexistent/list"])).expect(2);
    assert!(out
        .stderr
        .contains("cannot read the image list /nonexistent/list"));
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(drcache(None).args(["completions", shell])).expect(0);
        assert!(out.stdout.contains("drcache"), "{shell}");
        assert!(out.stdout.contains("warm"), "{shell}");
    }
    // They need no configuration, not even a valid one.
    let out = run(drcache(None)
        .env("DRCACHE_CONFIG", "/nonexistent/config.toml")
        .args(["completions", "bash"]))
    .expect(0);
    assert!(out.stdout.contains("_drcache"));
    let out = run(drcache(None).arg("man")).expect(0);
    assert!(
        out.stdout.starts_with(".ie"),
        "{}",
        &out.stdout[..80.min(out.stdout.len())]
    );
    assert!(out.stdout.contains(".TH drcache 1"), "{}", out.stdout);
    let dir = tempfile::tempdir().unwrap();
    run(drcache(None).args(["man", "--dir"]).arg(dir.path())).expect(0);
    for page in [
        "drcache.1",
        "drcache-warm.1",
        "drcache-stats.1",
        "drcache-doctor.1",
    ] {
        assert!(dir.path().join(page).is_file(), "{page}");
    }
    run(drcache(None).args(["completions", "tcsh"])).expect(2);
}
