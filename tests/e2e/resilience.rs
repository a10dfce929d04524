//! End to end on real podman: the bad days. Offline fallback and return,
//! self-healing, concurrent runs, upstream credentials that never leak.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::real::*;
use crate::support::*;

fn start_json(config: &Path, args: &[&str]) -> serde_json::Value {
    let out = run(drcache(Some(config)).arg("start").arg("--json").args(args)).expect(0);
    serde_json::from_str(&out.stdout).unwrap()
}

#[test]
fn offline_fallback_serves_the_cache_and_returns_to_proxy_mode() {
    let Some(env) = real_env("offline_fallback") else {
        return;
    };
    let prefix = "drt-offline";
    let _cleanup = Cleanup::new(prefix);
    let upstream = Upstream::start(&env, &format!("{prefix}-upstream"), 26500);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &env,
        prefix,
        &upstream.url(),
        &[("quay.io", 26501)],
        "",
        "",
    );
    let cache = format!("{prefix}-quay-io");

    let report = start_json(&cfg, &[]);
    assert_eq!(report["caches"][0]["mode"], "proxy");
    skopeo_pull("127.0.0.1:26501", "test/img:1").unwrap();
    let digest = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            "docker://127.0.0.1:26501/test/img:1",
        ])
        .output()
        .unwrap();
    let digest = String::from_utf8(digest.stdout).unwrap();
    assert!(digest.starts_with("sha256:"), "{digest}");

    // The upstream goes away and the cache restarts, as after a reboot on a train:
    // the registry in proxy mode refuses to run.
    podman(&["stop", &upstream.name]);
    podman(&["restart", &cache]);
    let report = start_json(&cfg, &[]);
    let row = &report["caches"][0];
    assert_eq!(row["mode"], "offline", "{report}");
    assert_eq!(row["ready"], true, "{report}");
    assert!(
        row["offline_reason"]
            .as_str()
            .is_some_and(|r| r.contains("host.containers.internal:26500")),
        "{report}"
    );
    assert_eq!(
        podman(&[
            "inspect",
            "--format",
            "{{index .Config.Labels \"drcache.mode\"}}",
            &cache
        ])
        .trim(),
        "offline"
    );
    // Everything cached before pulls by tag and by digest; anything else
    // answers "not found" at once.
    skopeo_pull("127.0.0.1:26501", "test/img:1").unwrap();
    skopeo_pull("127.0.0.1:26501", &format!("test/img@{}", digest.trim())).unwrap();
    // And as a cluster node pulls it: containerd through drcache's hosts.toml.
    if containerd_available("offline_fallback (containerd part)") {
        let certs = dir.path().join("certs.d");
        run(drcache(Some(&cfg))
            .args(["hosts-toml", "--host", "127.0.0.1", "--out"])
            .arg(&certs))
        .expect(0);
        let containerd = Containerd::start(&dir.path().join("ctrd"));
        let out = containerd.pull_isolated(&certs, "quay.io/test/img:1");
        assert!(
            out.status.success(),
            "containerd pull from the offline cache failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let started = Instant::now();
    let err = skopeo_pull("127.0.0.1:26501", "test/never-cached:1").unwrap_err();
    assert!(err.contains("manifest unknown"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Read-only: nothing can be pushed into an offline cache.
    let push = Command::new("podman")
        .args([
            "push",
            "-q",
            "--tls-verify=false",
            TEST_IMAGE,
            "docker://127.0.0.1:26501/test/pushed:1",
        ])
        .output()
        .unwrap();
    assert!(!push.status.success());

    // Back online: the next start returns to proxy mode, same volume, and a
    // new image pulls through it.
    podman(&["start", &upstream.name]);
    wait_http_200("http://127.0.0.1:26500/v2/");
    let report = start_json(&cfg, &[]);
    assert_eq!(report["caches"][0]["mode"], "proxy", "{report}");
    assert_eq!(report["caches"][0]["action"], "recreated");
    let gets = upstream.blob_gets();
    skopeo_pull("127.0.0.1:26501", "test/img:1").unwrap();
    assert_eq!(
        upstream.blob_gets(),
        gets,
        "the volume kept the cached blobs"
    );
    podman(&[
        "push",
        "-q",
        "--tls-verify=false",
        TEST_IMAGE,
        "docker://127.0.0.1:26500/test/new:1",
    ]);
    skopeo_pull("127.0.0.1:26501", "test/new:1").unwrap();

    // Planned travel: --offline forces serve mode with the upstream up.
    let report = start_json(&cfg, &["--offline"]);
    assert_eq!(report["caches"][0]["mode"], "offline");
    assert_eq!(
        report["caches"][0]["offline_reason"],
        serde_json::Value::Null
    );
    skopeo_pull("127.0.0.1:26501", "test/new:1").unwrap();
}

#[test]
fn a_killed_cache_comes_back_by_itself() {
    let Some(env) = real_env("a_killed_cache_comes_back_by_itself") else {
        return;
    };
    let prefix = "drt-heal";
    let _cleanup = Cleanup::new(prefix);
    let upstream = Upstream::start(&env, &format!("{prefix}-upstream"), 26600);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &env,
        prefix,
        &upstream.url(),
        &[("quay.io", 26601)],
        "",
        "",
    );
    run(drcache(Some(&cfg)).arg("start")).expect(0);
    let cache = format!("{prefix}-quay-io");
    let pid = podman(&["inspect", "--format", "{{.State.Pid}}", &cache]);
    let killed = Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    // The restart policy brings it back without drcache.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut restarted = false;
    while Instant::now() < deadline {
        let new_pid = podman(&["inspect", "--format", "{{.State.Pid}}", &cache]);
        if new_pid.trim() != pid.trim()
            && new_pid.trim() != "0"
            && http_status("http://127.0.0.1:26601/v2/") == Some(200)
        {
            restarted = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(restarted, "the killed cache did not come back");
    skopeo_pull("127.0.0.1:26601", "test/img:1").unwrap();
}

#[test]
fn concurrent_runs_end_with_one_container_per_cache() {
    let Some(env) = real_env("concurrent_runs") else {
        return;
    };
    let prefix = "drt-race";
    let _cleanup = Cleanup::new(prefix);
    let upstream = Upstream::start(&env, &format!("{prefix}-upstream"), 26700);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &env,
        prefix,
        &upstream.url(),
        &[("quay.io", 26701), ("ghcr.io", 26702), ("gcr.io", 26703)],
        "",
        "",
    );
    let spawn = |args: &[&str]| {
        drcache(Some(&cfg))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Four starts at once, as parallel cluster set-ups do.
    let children: Vec<_> = (0..4).map(|_| spawn(&["start"])).collect();
    for child in children {
        Run::from(child.wait_with_output().unwrap()).expect(0);
    }
    for registry in ["quay-io", "ghcr-io", "gcr-io"] {
        let name = format!("{prefix}-{registry}");
        let names = podman(&[
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            &format!("name=^{name}$"),
        ]);
        assert_eq!(names.trim(), name, "exactly one container");
        let state = podman(&["inspect", "--format", "{{.State.Status}}", &name]);
        assert_eq!(state.trim(), "running");
    }
    // start and clean racing: each ends with a zero exit and a coherent state.
    let children: Vec<_> = [["start"], ["clean"], ["start"], ["clean"]]
        .iter()
        .map(|a| spawn(a))
        .collect();
    for child in children {
        Run::from(child.wait_with_output().unwrap()).expect(0);
    }
    let out = run(drcache(Some(&cfg)).args(["start", "--json"])).expect(0);
    assert!(
        out.stdout.matches("\"ready\":true").count() == 3,
        "{}",
        out.stdout
    );
}

#[test]
fn upstream_credentials_never_leak() {
    let Some(env) = real_env("upstream_credentials_never_leak") else {
        return;
    };
    let prefix = "drt-cred";
    let _cleanup = Cleanup::new(prefix);
    let secret_user = "drcache-test-user";
    let secret_password = "pw-9f2c61d8-not-in-any-log";
    // Registry 2.8 answers only bearer-token challenges with proxy
    // credentials, so the upstream here is open and the test reads the
    // config file the cache's registry really loads.
    let upstream = Upstream::start(&env, &format!("{prefix}-upstream"), 26800);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &env,
        prefix,
        &upstream.url(),
        &[("docker.io", 26801)],
        "",
        "username_env = \"DRT_USER\"\npassword_env = \"DRT_PASSWORD\"",
    );
    let cache = format!("{prefix}-docker-io");
    // drcache's once-only warning marker goes to a state dir of the test's own.
    let state = tempfile::tempdir().unwrap();
    let start = |password: &str, extra: &[&str]| {
        run(drcache(Some(&cfg))
            .env("DRT_USER", secret_user)
            .env("DRT_PASSWORD", password)
            .env("DRCACHE_STATE_DIR", state.path())
            .args(["-v", "start"])
            .args(extra))
    };
    let out = start(secret_password, &[]).expect(0);
    assert!(
        out.stderr
            .contains("warning: docker.io logs in to its upstream"),
        "{}",
        out.stderr
    );
    for text in [&out.stdout, &out.stderr] {
        assert!(
            !text.contains(secret_password) && !text.contains(secret_user),
            "{text}"
        );
    }
    let inspect = podman(&["inspect", &cache]);
    assert!(
        !inspect.contains(secret_password),
        "podman inspect shows the password"
    );
    assert!(!inspect.contains(secret_user));
    let loaded = registry_config_of(&cache);
    assert!(
        loaded.contains(&format!("username: \"{secret_user}\"")),
        "{loaded}"
    );
    assert!(loaded.contains(&format!("password: \"{secret_password}\"")));
    skopeo_pull("127.0.0.1:26801", "test/img:1").unwrap();

    // The warning is given once; the same login changes nothing.
    let out = start(secret_password, &[]).expect(0);
    assert!(!out.stderr.contains("warning:"), "{}", out.stderr);
    assert!(out.stderr.contains("unchanged"), "{}", out.stderr);
    // A new password recreates the cache with it; still nothing in argv or logs.
    let out = start("another-pw-3e1b", &[]).expect(0);
    assert!(out.stderr.contains("recreated"), "{}", out.stderr);
    assert!(!out.stderr.contains("another-pw-3e1b"));
    assert!(!podman(&["inspect", &cache]).contains("another-pw-3e1b"));
    assert!(registry_config_of(&cache).contains("password: \"another-pw-3e1b\""));
    // A missing variable is a clear error before anything changes.
    let out = run(drcache(Some(&cfg))
        .env_remove("DRT_USER")
        .env_remove("DRT_PASSWORD")
        .arg("start"))
    .expect(2);
    assert!(
        out.stderr
            .contains("docker.io: environment variable DRT_USER is not set"),
        "{}",
        out.stderr
    );
    // clean removes the secret with the container.
    run(drcache(Some(&cfg)).arg("clean")).expect(0);
    assert!(!podman(&["secret", "ls", "--format", "{{.Name}}"]).contains(&cache));
}

/// The registry config file a cache with a login runs with (its secret).
fn registry_config_of(container: &str) -> String {
    read_container_file(container, "/run/secrets/drcache-registry.yml")
}
