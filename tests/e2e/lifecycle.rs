//! End to end on real podman: the cache lifecycle against a local upstream.
//! Each test has its own prefix and ports, so tests run in parallel and never
//! touch a user's caches.

use std::path::PathBuf;

use crate::real::*;
use crate::support::*;

#[test]
fn lifecycle_idempotency_and_cache_hits() {
    let Some(env) = real_env("lifecycle_idempotency_and_cache_hits") else {
        return;
    };
    let prefix = "drt-life";
    let _cleanup = Cleanup::new(prefix);
    let upstream = Upstream::start(&env, &format!("{prefix}-upstream"), 26100);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &env,
        prefix,
        &upstream.url(),
        &[("quay.io", 26101), ("docker.io", 26102)],
        "",
        "",
    );

    // First start creates volumes and containers and waits until ready.
    let first = run(drcache(Some(&config)).args(["start", "--json"])).expect(0);
    let report: serde_json::Value = serde_json::from_str(&first.stdout).unwrap();
    for cache in report["caches"].as_array().unwrap() {
        assert_eq!(cache["action"], "created", "{cache}");
        assert_eq!(cache["ready"], true, "{cache}");
        assert_eq!(cache["volume_created"], true, "{cache}");
    }
    let quay = format!("{prefix}-quay-io");
    let docker = format!("{prefix}-docker-io");
    let ids = (container_id(&quay), container_id(&docker));
    let labels = podman(&["volume", "inspect", "--format", "{{.Labels}}", &quay]);
    assert!(labels.contains("drcache.registry:quay.io"), "{labels}");

    // Second start: nothing changes, and only the container listing runs.
    let second = run(drcache(Some(&config)).args(["-v", "start"])).expect(0);
    let calls: Vec<&str> = second
        .stderr
        .lines()
        .filter(|l| l.starts_with("+ podman"))
        .collect();
    assert_eq!(
        calls,
        ["+ podman ps --all --format json"],
        "{}",
        second.stderr
    );
    assert!(second.stderr.contains("unchanged"), "{}", second.stderr);
    assert_eq!((container_id(&quay), container_id(&docker)), ids);

    // Pull through the cache twice: the upstream serves the blobs once.
    skopeo_pull("127.0.0.1:26101", "test/img:1").unwrap();
    let after_first_pull = upstream.blob_gets();
    assert!(
        after_first_pull >= 1,
        "the first pull must reach the upstream"
    );
    skopeo_pull("127.0.0.1:26101", "test/img:1").unwrap();
    assert_eq!(
        upstream.blob_gets(),
        after_first_pull,
        "the second pull must be served from the cache"
    );

    // status --json reports every field.
    let status = run(drcache(Some(&config)).args(["status", "--json"])).expect(0);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let first_row = &status["caches"][0];
    assert_eq!(first_row["registry"], "quay.io");
    assert_eq!(first_row["upstream"], upstream.url());
    assert_eq!(first_row["port"], 26101);
    assert_eq!(first_row["container"], quay);
    assert_eq!(first_row["volume"], quay);
    assert_eq!(first_row["state"], "running");
    assert_eq!(first_row["ready"], true);

    // stop keeps containers; status then exits 3; start restarts the same ones.
    run(drcache(Some(&config)).arg("stop")).expect(0);
    assert_eq!(container_state(&quay), "exited");
    let stopped = run(drcache(Some(&config)).args(["status", "--json"])).expect(3);
    assert!(stopped.stdout.contains("\"state\":\"exited\""));
    let restarted = run(drcache(Some(&config)).arg("start")).expect(0);
    assert!(restarted.stderr.contains("started"), "{}", restarted.stderr);
    assert_eq!(container_id(&quay), ids.0);
    assert_eq!(container_state(&quay), "running");

    // A cache stopped behind drcache's back is started again.
    podman(&["stop", &docker]);
    let repaired = run(drcache(Some(&config)).args(["start", "docker.io"])).expect(0);
    assert!(repaired.stderr.contains("started"), "{}", repaired.stderr);

    // clean keeps the volumes (and the cached image in them).
    podman(&["volume", "create", &format!("{prefix}-mine")]);
    run(drcache(Some(&config)).arg("clean")).expect(0);
    assert!(!podman_ok(&["container", "exists", &quay]));
    assert!(podman_ok(&["volume", "exists", &quay]));
    run(drcache(Some(&config)).arg("start")).expect(0);
    skopeo_pull("127.0.0.1:26101", "test/img:1").unwrap();
    assert_eq!(
        upstream.blob_gets(),
        after_first_pull,
        "volume kept the cache"
    );

    // clean --volumes removes drcache's volumes only.
    run(drcache(Some(&config)).args(["clean", "--volumes"])).expect(0);
    assert!(!podman_ok(&["volume", "exists", &quay]));
    assert!(!podman_ok(&["volume", "exists", &docker]));
    assert!(podman_ok(&["volume", "exists", &format!("{prefix}-mine")]));
    let again = run(drcache(Some(&config)).args(["clean", "--volumes"])).expect(0);
    assert!(
        again.stderr.contains("nothing to clean"),
        "{}",
        again.stderr
    );
}

#[test]
fn changed_config_recreates_and_keeps_the_volume() {
    let Some(env) = real_env("changed_config_recreates_and_keeps_the_volume") else {
        return;
    };
    let prefix = "drt-change";
    let _cleanup = Cleanup::new(prefix);
    let upstream = Upstream::start(&env, &format!("{prefix}-upstream"), 26200);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &env,
        prefix,
        &upstream.url(),
        &[("quay.io", 26201)],
        "",
        "",
    );
    run(drcache(Some(&config)).arg("start")).expect(0);
    let name = format!("{prefix}-quay-io");
    let old_id = container_id(&name);
    skopeo_pull("127.0.0.1:26201", "test/img:1").unwrap();
    let gets = upstream.blob_gets();

    // A new port (and bind address) is a new container definition.
    let config = write_config(
        dir.path(),
        &env,
        prefix,
        &upstream.url(),
        &[("quay.io", 26202)],
        "bind = \"127.0.0.1\"",
        "",
    );
    let out = run(drcache(Some(&config)).arg("start")).expect(0);
    assert!(out.stderr.contains("recreated"), "{}", out.stderr);
    assert_ne!(container_id(&name), old_id);
    let ports = podman(&["port", &name]);
    assert!(ports.contains("127.0.0.1:26202"), "{ports}");
    skopeo_pull("127.0.0.1:26202", "test/img:1").unwrap();
    assert_eq!(
        upstream.blob_gets(),
        gets,
        "the recreated cache kept its data"
    );
}

#[test]
fn adopts_an_existing_unlabelled_volume() {
    let Some(env) = real_env("adopts_an_existing_unlabelled_volume") else {
        return;
    };
    let prefix = "drt-adopt";
    let _cleanup = Cleanup::new(prefix);
    let upstream = Upstream::start(&env, &format!("{prefix}-upstream"), 26300);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &env,
        prefix,
        &upstream.url(),
        &[("quay.io", 26301)],
        "",
        "",
    );
    // The older helper's volume: same name, no drcache label, data inside.
    let volume = format!("{prefix}-quay-io");
    podman(&["volume", "create", &volume]);
    let mountpoint = podman(&["volume", "inspect", "--format", "{{.Mountpoint}}", &volume]);
    std::fs::write(PathBuf::from(mountpoint.trim()).join("marker"), "old data").unwrap();

    let out = run(drcache(Some(&config)).args(["start", "--json"])).expect(0);
    assert!(
        out.stdout.contains("\"volume_created\":false"),
        "{}",
        out.stdout
    );
    let mounts = podman(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{.Name}}{{end}}",
        &volume,
    ]);
    assert_eq!(mounts.trim(), volume);
    // The old data is still there, in the volume the cache uses.
    assert_eq!(
        std::fs::read_to_string(PathBuf::from(mountpoint.trim()).join("marker")).unwrap(),
        "old data"
    );
}

#[test]
fn port_conflict_fails_that_cache_only_and_leaves_nothing_behind() {
    let Some(env) = real_env("port_conflict_fails_that_cache_only") else {
        return;
    };
    let prefix = "drt-port";
    let _cleanup = Cleanup::new(prefix);
    let upstream = Upstream::start(&env, &format!("{prefix}-upstream"), 26400);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &env,
        prefix,
        &upstream.url(),
        &[("quay.io", 26401), ("ghcr.io", 26402)],
        "",
        "",
    );
    let _taken = std::net::TcpListener::bind("0.0.0.0:26402").unwrap();
    let out = run(drcache(Some(&config)).arg("start")).expect(1);
    assert!(
        out.stderr
            .contains("port 26402 for ghcr.io is already in use by another process"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("1 of 2 caches failed: ghcr.io"),
        "{}",
        out.stderr
    );
    assert!(!podman_ok(&[
        "container",
        "exists",
        &format!("{prefix}-ghcr-io")
    ]));
    assert_eq!(container_state(&format!("{prefix}-quay-io")), "running");
}

#[test]
fn invalid_config_changes_nothing() {
    let Some(_env) = real_env("invalid_config_changes_nothing") else {
        return;
    };
    let prefix = "drt-badcfg";
    let _cleanup = Cleanup::new(prefix);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("prefix = \"{prefix}\"\n[[registry]]\nname = \"quay.io\"\nport = 70000\n"),
    )
    .unwrap();
    let out = run(drcache(Some(&config)).arg("start")).expect(2);
    assert!(
        out.stderr.contains(&format!(
            "{}:4: port 70000 is outside 1..65535",
            config.display()
        )),
        "{}",
        out.stderr
    );
    assert!(!podman_ok(&[
        "container",
        "exists",
        &format!("{prefix}-quay-io")
    ]));
    assert!(!podman_ok(&[
        "volume",
        "exists",
        &format!("{prefix}-quay-io")
    ]));
}
