//! End to end on real podman: `stats` against the upstream's request log,
//! `status --json`, `warm` of a multi-platform index, and `doctor` on a
//! healthy and a broken setup. Prefix `drt-obs-*`, host ports 27000-27999.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Once;

use crate::real::*;
use crate::support::*;

/// One line of a registry's access log.
#[derive(Debug, Clone, PartialEq)]
struct Access {
    method: String,
    path: String,
    status: u16,
    bytes: u64,
}

/// The access log of a registry container:
/// `10.88.0.1 - - [date] "GET /v2/... HTTP/1.1" 200 2097942 "" "agent"`.
/// The access log once it stops growing (at most 10 s).
fn settled_access_log(container: &str) -> Vec<Access> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut last = access_log(container);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let now = access_log(container);
        if now.len() == last.len() || std::time::Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

fn access_log(container: &str) -> Vec<Access> {
    let out = podman_cmd().args(["logs", container]).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines()
        .filter_map(|line| {
            let (_, request) = line.split_once("] \"")?;
            let (request, rest) = request.split_once("\" ")?;
            let mut req = request.split_whitespace();
            let method = req.next()?.to_string();
            let path = req.next()?.to_string();
            let mut rest = rest.split_whitespace();
            let status = rest.next()?.parse().ok()?;
            let bytes = rest.next()?.parse().unwrap_or(0);
            Some(Access {
                method,
                path,
                status,
                bytes,
            })
        })
        .collect()
}

fn gets<'a>(log: &'a [Access], prefix: &str) -> Vec<&'a Access> {
    log.iter()
        .filter(|a| a.method == "GET" && a.status == 200 && a.path.starts_with(prefix))
        .collect()
}

fn digests(accesses: &[&Access]) -> BTreeSet<String> {
    accesses
        .iter()
        .map(|a| a.path.rsplit('/').next().unwrap().to_string())
        .collect()
}

fn json(out: &Run) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

#[test]
fn stats_match_the_upstream_log_after_cold_and_warm_pulls() {
    let Some(env) = real_env("stats_match_the_upstream_log_after_cold_and_warm_pulls") else {
        return;
    };
    let prefix = "drt-obs-stats";
    let _cleanup = Cleanup::new(prefix);
    let upstream = Upstream::start(&env, &format!("{prefix}-upstream"), 27100);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &env,
        prefix,
        &upstream.url(),
        &[("quay.io", 27101), ("docker.io", 27102)],
        "",
        "",
    );
    run(drcache(Some(&config)).arg("start")).expect(0);
    run(drcache(Some(&config)).args(["stop", "docker.io"])).expect(0);
    let cache = format!("{prefix}-quay-io");
    let stats = |label: &str| {
        let out = run(drcache(Some(&config)).args(["stats", "--json"])).expect(0);
        let v = json(&out);
        eprintln!("stats {label}: {}", v["caches"][0]);
        v
    };

    // Fresh: nothing counted; the stopped cache is reported, not an error.
    let fresh = stats("fresh");
    let quay = &fresh["caches"][0];
    assert_eq!(quay["running"], true);
    assert_eq!(quay["format"], "registry-2.8");
    assert_eq!(quay["blobs"]["requests"], 0);
    assert_eq!(fresh["caches"][1]["registry"], "docker.io");
    assert_eq!(fresh["caches"][1]["running"], false);
    assert_eq!(fresh["caches"][1]["state"], "exited");

    // Cold pull: every blob and the manifest come from the upstream.
    let blob_path = "/v2/test/img/blobs/";
    let manifest_path = "/v2/test/img/manifests/";
    skopeo_pull("127.0.0.1:27101", "test/img:1").unwrap();
    let up = access_log(&upstream.name);
    let up_blobs = gets(&up, blob_path);
    let up_manifests = gets(&up, manifest_path);
    let served = access_log(&cache);
    let served_blobs = gets(&served, blob_path);
    let cold = stats("cold");
    let s = &cold["caches"][0];
    assert_eq!(
        s["blobs"]["misses"],
        digests(&up_blobs).len() as u64,
        "one miss per blob fetched"
    );
    assert_eq!(
        s["blobs"]["upstream_bytes"],
        up_blobs.iter().map(|a| a.bytes).sum::<u64>(),
        "bytes the upstream sent for blobs: {up_blobs:?}"
    );
    assert_eq!(s["blobs"]["requests"], served_blobs.len() as u64);
    assert_eq!(s["blobs"]["hits"], 0);
    assert_eq!(
        s["blobs"]["served_bytes"],
        served_blobs.iter().map(|a| a.bytes).sum::<u64>()
    );
    assert_eq!(s["manifests"]["misses"], up_manifests.len() as u64);
    assert_eq!(
        s["manifests"]["upstream_bytes"],
        up_manifests.iter().map(|a| a.bytes).sum::<u64>()
    );
    assert_eq!(s["hit_rate"], 0.0);

    // Warm pull: the upstream serves nothing more; every blob is a hit.
    skopeo_pull("127.0.0.1:27101", "test/img:1").unwrap();
    let up_after = access_log(&upstream.name);
    assert_eq!(
        gets(&up_after, blob_path).len(),
        up_blobs.len(),
        "no blob from the upstream"
    );
    assert_eq!(gets(&up_after, manifest_path).len(), up_manifests.len());
    let served_after = access_log(&cache);
    let served_blobs_after = gets(&served_after, blob_path);
    let warm = stats("warm");
    let s = &warm["caches"][0];
    let new_requests = (served_blobs_after.len() - served_blobs.len()) as u64;
    assert_eq!(s["blobs"]["requests"], served_blobs_after.len() as u64);
    assert_eq!(s["blobs"]["hits"], new_requests);
    assert_eq!(s["blobs"]["misses"], cold["caches"][0]["blobs"]["misses"]);
    assert_eq!(
        s["blobs"]["upstream_bytes"],
        cold["caches"][0]["blobs"]["upstream_bytes"]
    );
    assert_eq!(s["manifests"]["requests"], 2);
    assert_eq!(s["manifests"]["hits"], 1);
    assert_eq!(s["manifests"]["misses"], 1);
    assert_eq!(s["hit_rate"], 0.5);

    // People get a table and the note that counters reset on restart.
    let out = run(drcache(Some(&config)).arg("stats")).expect(0);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.contains("MANIFESTS req/hit/miss"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("quay.io"), "{}", out.stderr);
    assert!(out.stderr.contains("2/1/1"), "{}", out.stderr);
    assert!(out.stderr.contains("4/2/2"), "{}", out.stderr);
    assert!(out.stderr.contains("50%"), "{}", out.stderr);
    assert!(out.stderr.contains("docker.io  exited"), "{}", out.stderr);
    assert!(
        out.stderr.contains("reset when a cache restarts"),
        "{}",
        out.stderr
    );

    // ...and they do: a restart starts from zero.
    run(drcache(Some(&config)).args(["stop", "quay.io"])).expect(0);
    run(drcache(Some(&config)).args(["start", "quay.io"])).expect(0);
    let restarted = stats("restarted");
    assert_eq!(restarted["caches"][0]["blobs"]["requests"], 0);
}

#[test]
fn status_json_reports_mode_image_repositories_disk_and_uptime() {
    let Some(env) = real_env("status_json_reports_mode_image_repositories_disk_and_uptime") else {
        return;
    };
    let prefix = "drt-obs-status";
    let _cleanup = Cleanup::new(prefix);
    let upstream = Upstream::start(&env, &format!("{prefix}-upstream"), 27200);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &env,
        prefix,
        &upstream.url(),
        &[("quay.io", 27201), ("ghcr.io", 27202)],
        "",
        "",
    );
    run(drcache(Some(&config)).arg("start")).expect(0);
    skopeo_pull("127.0.0.1:27201", "test/img:1").unwrap();

    let out = run(drcache(Some(&config)).args(["-v", "status", "--json"])).expect(0);
    let mut calls: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("+ podman"))
        .collect();
    calls.sort();
    assert_eq!(
        calls,
        [
            "+ podman ps --all --format json",
            "+ podman volume ls --format json"
        ],
        "still one ps and one volume ls"
    );
    let v = json(&out);
    let quay = &v["caches"][0];
    for key in [
        "registry",
        "upstream",
        "port",
        "container",
        "volume",
        "volume_exists",
        "state",
        "ready",
    ] {
        assert!(!quay[key].is_null(), "existing key {key} kept: {quay}");
    }
    assert_eq!(quay["mode"], "proxy");
    assert_eq!(quay["image"], env.image);
    assert_eq!(quay["repositories"], 1);
    let disk = quay["disk_bytes"].as_u64().unwrap();
    assert!(disk >= 2_097_942, "the cached layer is on disk: {disk}");
    let uptime = quay["uptime_seconds"].as_u64().unwrap();
    assert!(uptime < 600, "{uptime}");
    let ghcr = &v["caches"][1];
    assert_eq!(ghcr["repositories"], 0);
    assert!(ghcr["disk_bytes"].as_u64().unwrap() < disk);

    // Stopped: state and mode stay, the live numbers go.
    run(drcache(Some(&config)).args(["stop", "ghcr.io"])).expect(0);
    let out = run(drcache(Some(&config)).args(["status", "--json"])).expect(3);
    let ghcr = &json(&out)["caches"][1];
    assert_eq!(ghcr["state"], "exited");
    assert_eq!(ghcr["mode"], "proxy");
    assert!(ghcr["repositories"].is_null());
    assert!(ghcr["uptime_seconds"].is_null());
    assert!(ghcr["disk_bytes"].as_u64().is_some());

    let out = run(drcache(Some(&config)).arg("status")).expect(3);
    for column in ["MODE", "REPOS", "DISK", "UP", "IMAGE"] {
        assert!(out.stderr.contains(column), "{}", out.stderr);
    }
}

/// `localhost/drt-obs-multi:1`: a list of two tiny FROM scratch images,
/// linux/arm64 and linux/amd64 (COPY only: no emulation needed).
const MULTI: &str = "localhost/drt-obs-multi:1";

fn ensure_multi_image() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if podman_ok(&["manifest", "exists", MULTI]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let _ = Command::new("podman")
            .args(["manifest", "rm", MULTI])
            .output();
        podman(&["manifest", "create", MULTI]);
        for arch in ["arm64", "amd64"] {
            let ctx = dir.path().join(arch);
            std::fs::create_dir_all(&ctx).unwrap();
            let mut data = vec![0u8; 300_000];
            let mut f = std::fs::File::open("/dev/urandom").unwrap();
            std::io::Read::read_exact(&mut f, &mut data).unwrap();
            std::fs::write(ctx.join("data.bin"), data).unwrap();
            std::fs::write(
                ctx.join("Containerfile"),
                "FROM scratch\nCOPY data.bin /data.bin\n",
            )
            .unwrap();
            let tag = format!("localhost/drt-obs-multi-{arch}:1");
            podman(&[
                "build",
                "-q",
                "--platform",
                &format!("linux/{arch}"),
                "-t",
                &tag,
                ctx.to_str().unwrap(),
            ]);
            podman(&[
                "manifest",
                "add",
                MULTI,
                &format!("containers-storage:{tag}"),
            ]);
        }
    });
}

/// The config and layer digests of one platform's manifest in the upstream.
fn platform_blobs(upstream: u16, index: &serde_json::Value, arch: &str) -> BTreeSet<String> {
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == arch)
        .unwrap_or_else(|| panic!("no {arch} in {index}"));
    let raw = skopeo_inspect_raw(&format!(
        "127.0.0.1:{upstream}/test/multi@{}",
        entry["digest"].as_str().unwrap()
    ));
    let mut set = BTreeSet::from([raw["config"]["digest"].as_str().unwrap().to_string()]);
    for layer in raw["layers"].as_array().unwrap() {
        set.insert(layer["digest"].as_str().unwrap().to_string());
    }
    set
}

fn skopeo_inspect_raw(reference: &str) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn warm_fetches_exactly_the_requested_platform_and_serves_it_offline() {
    let Some(env) = real_env("warm_fetches_exactly_the_requested_platform_and_serves_it_offline")
    else {
        return;
    };
    let prefix = "drt-obs-warm";
    let _cleanup = Cleanup::new(prefix);
    let upstream = Upstream::start(&env, &format!("{prefix}-upstream"), 27300);
    ensure_multi_image();
    podman(&[
        "manifest",
        "push",
        "-q",
        "--all",
        "--tls-verify=false",
        MULTI,
        "docker://127.0.0.1:27300/test/multi:1",
    ]);
    let index = skopeo_inspect_raw("127.0.0.1:27300/test/multi:1");
    let arm64 = platform_blobs(27300, &index, "arm64");
    let amd64 = platform_blobs(27300, &index, "amd64");
    assert!(arm64.is_disjoint(&amd64));

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &env,
        prefix,
        &upstream.url(),
        &[("quay.io", 27301)],
        "",
        "",
    );
    run(drcache(Some(&config)).arg("start")).expect(0);
    let before = access_log(&upstream.name);

    // An image list as people write them: comments, duplicates.
    let list = dir.path().join("images.txt");
    std::fs::write(
        &list,
        "# before going offline\nquay.io/test/multi:1   # twice\nquay.io/test/multi:1\n",
    )
    .unwrap();
    let out = run(drcache(Some(&config))
        .args(["warm", "--json", "--platform", "linux/arm64", "--file"])
        .arg(&list))
    .expect(0);
    let report = json(&out);
    let image = &report["images"][0];
    assert_eq!(
        report["images"].as_array().unwrap().len(),
        1,
        "duplicates kept once"
    );
    assert_eq!(image["image"], "quay.io/test/multi:1");
    assert_eq!(image["platforms"], serde_json::json!(["linux/arm64"]));
    assert_eq!(image["manifests"], 2, "the index and the arm64 manifest");
    assert_eq!(image["blobs"], arm64.len());
    assert!(image["error"].is_null());
    assert!(
        out.stderr.contains("warmed 1 of 1 images"),
        "{}",
        out.stderr
    );

    // The upstream served exactly the arm64 blobs, and no amd64 manifest.
    // Registry 2.8 fetches each missed blob a second time, in the
    // background, to store it: read the log once that has settled.
    let after = settled_access_log(&upstream.name);
    let new = &after[before.len()..];
    let fetched = digests(&gets(new, "/v2/test/multi/blobs/"));
    assert_eq!(fetched, arm64, "upstream requests: {new:?}");
    let manifests: Vec<&str> = gets(new, "/v2/test/multi/manifests/")
        .iter()
        .map(|a| a.path.as_str())
        .collect();
    assert!(
        !manifests
            .iter()
            .any(|p| amd64_manifest(&index).is_some_and(|d| p.ends_with(&d))),
        "{manifests:?}"
    );

    // Warming again costs the upstream nothing.
    let out = run(drcache(Some(&config)).args([
        "warm",
        "--platform",
        "linux/arm64",
        "quay.io/test/multi:1",
    ]))
    .expect(0);
    assert!(
        out.stderr
            .contains("warmed quay.io/test/multi:1 (linux/arm64)"),
        "{}",
        out.stderr
    );
    let again = access_log(&upstream.name);
    assert_eq!(
        gets(&again, "/v2/test/multi/blobs/").len(),
        gets(&after, "/v2/test/multi/blobs/").len()
    );

    // With the upstream gone, the warmed platform still pulls from the cache:
    // through containerd with drcache's hosts.toml, as a cluster node would.
    podman(&["stop", "-t", "1", &upstream.name]);
    const TEST: &str = "warm (containerd part)";
    if containerd_available(TEST) {
        let certs = dir.path().join("certs.d");
        run(drcache(Some(&config))
            .args(["hosts-toml", "--host", "127.0.0.1", "--out"])
            .arg(&certs))
        .expect(0);
        let containerd = Containerd::start(&dir.path().join("ctrd"));
        let out = containerd.pull_isolated_with(
            &certs,
            &["--platform", "linux/arm64"],
            "quay.io/test/multi:1",
        );
        assert!(
            out.status.success(),
            "containerd pull of the warmed platform failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let images = containerd.ctr(&["images", "ls", "-q"]);
        assert!(String::from_utf8_lossy(&images.stdout).contains("quay.io/test/multi:1"));
        // It came through the cache (containerd names the upstream in `ns`).
        let through_cache = access_log(&format!("{prefix}-quay-io"));
        assert!(
            through_cache.iter().any(|a| a
                .path
                .starts_with("/v2/test/multi/manifests/1?ns=quay.io")
                && a.status == 200),
            "{through_cache:?}"
        );
        let contents = containerd.ctr(&["content", "ls", "-q"]);
        let contents = String::from_utf8_lossy(&contents.stdout).into_owned();
        for digest in &arm64 {
            assert!(
                contents.contains(digest.as_str()),
                "{digest} in containerd: {contents}"
            );
        }
    }
    // The other platform was never cached.
    let out = Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--override-os",
            "linux",
            "--override-arch",
            "amd64",
            "--src-tls-verify=false",
            "docker://127.0.0.1:27301/test/multi:1",
            &format!("dir:{}", dir.path().join("amd64").display()),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "amd64 must not be in the cache");
}

fn amd64_manifest(index: &serde_json::Value) -> Option<String> {
    index["manifests"]
        .as_array()?
        .iter()
        .find(|m| m["platform"]["architecture"] == "amd64")
        .and_then(|m| m["digest"].as_str())
        .map(str::to_string)
}

#[test]
fn doctor_passes_when_healthy_and_names_each_problem_when_broken() {
    let Some(env) = real_env("doctor_passes_when_healthy_and_names_each_problem_when_broken")
    else {
        return;
    };
    let prefix = "drt-obs-doctor";
    let _cleanup = Cleanup::new(prefix);
    let upstream = Upstream::start(&env, &format!("{prefix}-upstream"), 27400);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &env,
        prefix,
        &upstream.url(),
        &[("quay.io", 27401), ("docker.io", 27402), ("ghcr.io", 27403)],
        // Every network on purpose: this host's nftables do not decide the
        // test (the clients filter has its own, tests/e2e/clients_filter.rs).
        "clients = [\"*\"]",
        "",
    );
    run(drcache(Some(&config)).arg("start")).expect(0);
    // The host firewall check runs firewall-cmd: a fake one, so this host's
    // own firewalld does not decide the test (setup-host has its own tests).
    let fake = FakeBin::new();
    let firewall_cmd = fake.script("firewall-cmd", "echo 'not running'; exit 252");
    let doctor = || {
        let mut cmd = drcache(Some(&config));
        cmd.env("DRCACHE_HOST_OS", "linux")
            .env("DRCACHE_FIREWALL_CMD", &firewall_cmd)
            .arg("doctor");
        cmd
    };

    let out = run(doctor().arg("--json")).expect(0);
    let report = json(&out);
    assert_eq!(report["ok"], true, "{report}");
    let checks = report["checks"].as_array().unwrap();
    assert!(
        checks.iter().all(|c| c["ok"] == true && c["fix"].is_null()),
        "{report}"
    );
    assert!(checks.iter().any(|c| c["name"] == "cache ghcr.io"));
    // The test image is registry 2.8: each cache gets the expiry note.
    let notes: Vec<&str> = checks
        .iter()
        .filter(|c| !c["tip"].is_null())
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(notes.contains(&"expiry ghcr.io"), "{report}");
    assert!(notes.iter().all(|n| n.starts_with("expiry ")), "{notes:?}");
    let firewall = checks
        .iter()
        .find(|c| c["name"] == "host firewall")
        .unwrap();
    assert!(firewall["detail"]
        .as_str()
        .unwrap()
        .contains("firewalld is not running"));
    let out = run(&mut doctor()).expect(0);
    assert!(
        out.stderr.contains("all 12 checks passed"),
        "{}",
        out.stderr
    );

    // Break it: a cache stopped behind drcache's back, another one stopped
    // with its port taken by someone else (this test process).
    podman(&["stop", "-t", "1", &format!("{prefix}-docker-io")]);
    run(drcache(Some(&config)).args(["stop", "ghcr.io"])).expect(0);
    let _taken = std::net::TcpListener::bind("0.0.0.0:27403").unwrap();
    let out = run(doctor().arg("--json")).expect(3);
    let report = json(&out);
    assert_eq!(report["ok"], false);
    let check = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {report}"))
            .clone()
    };
    assert_eq!(check("cache quay.io")["ok"], true);
    let docker = check("cache docker.io");
    assert_eq!(docker["ok"], false);
    assert!(
        docker["detail"].as_str().unwrap().contains("exited"),
        "{docker}"
    );
    assert!(docker["fix"]
        .as_str()
        .unwrap()
        .contains("drcache start docker.io"));
    let port = check("port 27403");
    assert_eq!(port["ok"], false);
    let detail = port["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("(pid {})", std::process::id())),
        "the holder is named: {detail}"
    );
    assert!(port["fix"]
        .as_str()
        .unwrap()
        .contains("another `port` for ghcr.io"));
    assert_eq!(check("port 27401")["ok"], true);
    let out = run(&mut doctor()).expect(3);
    assert!(
        out.stderr.contains("FAIL cache docker.io"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("error: 3 of 12 checks failed"),
        "{}",
        out.stderr
    );
}

#[test]
fn logs_shows_the_cache_log() {
    let Some(env) = real_env("logs_shows_the_cache_log") else {
        return;
    };
    let prefix = "drt-obs-logs";
    let _cleanup = Cleanup::new(prefix);
    let upstream = Upstream::start(&env, &format!("{prefix}-upstream"), 27500);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &env,
        prefix,
        &upstream.url(),
        &[("quay.io", 27501)],
        "",
        "",
    );
    run(drcache(Some(&config)).arg("start")).expect(0);
    skopeo_pull("127.0.0.1:27501", "test/img:1").unwrap();
    let out = run(drcache(Some(&config)).args(["logs", "quay.io"])).expect(0);
    let all = out.stdout + &out.stderr;
    assert!(all.contains("GET /v2/test/img/manifests/1"), "{all}");
    let out = run(drcache(Some(&config)).args(["logs", "quay.io", "--tail", "1"])).expect(0);
    let last = out.stdout + &out.stderr;
    assert_eq!(last.lines().count(), 1, "{last}");
}
