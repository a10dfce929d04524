//! End to end on real podman with Debian's registry: `prune` removes what
//! is not kept from a cache through the registry's own API and
//! garbage-collect, frees the disk, and brings the cache back in its mode;
//! images a cluster node uses (a fake minikube serving `crictl images -o
//! json`) are kept, and a node that cannot be read stops the prune.

use std::path::Path;

use crate::real::*;
use crate::support::*;
use serde_json::Value;

/// A FROM-scratch image with `size` random bytes, pushed to the upstream as `name`.
fn push_random_image(upstream: &Upstream, local: &str, name: &str, size: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut data = vec![0u8; size];
    let mut f = std::fs::File::open("/dev/urandom").unwrap();
    std::io::Read::read_exact(&mut f, &mut data).unwrap();
    std::fs::write(dir.path().join("blob.bin"), data).unwrap();
    std::fs::write(
        dir.path().join("Containerfile"),
        "FROM scratch\nCOPY blob.bin /blob.bin\n",
    )
    .unwrap();
    podman(&[
        "build",
        "-q",
        "--layers=false",
        "-t",
        local,
        dir.path().to_str().unwrap(),
    ]);
    podman(&[
        "push",
        "-q",
        "--tls-verify=false",
        local,
        &format!("docker://127.0.0.1:{}/{name}", upstream.port),
    ]);
    podman(&["rmi", local]);
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn status(cfg: &Path) -> Value {
    let out = run(drcache(Some(cfg)).args(["status", "--json"])).expect(0);
    json(&out)["caches"][0].clone()
}

/// The cache's disk use once it stops changing: registry 2.8 stores a
/// missed blob in the background after the client got it.
fn settled_disk(cfg: &Path) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut last = status(cfg)["disk_bytes"].as_u64().unwrap();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let now = status(cfg)["disk_bytes"].as_u64().unwrap();
        if now == last || std::time::Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

fn started_at(name: &str) -> String {
    podman(&["inspect", "--format", "{{.State.StartedAt}} {{.Id}}", name])
}

/// The upstream's access-log lines for the base `/v2/` (which a proxy
/// registry asks at its own start-up, as at every start) and for anything else.
fn upstream_log_lines(upstream: &Upstream) -> (usize, usize) {
    let out = std::process::Command::new("podman")
        .args(["logs", &upstream.name])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let requests: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"GET /v2/") || l.contains("\"HEAD /v2/"))
        .collect();
    let base = requests.iter().filter(|l| l.contains(" /v2/ HTTP")).count();
    (base, requests.len() - base)
}

fn image_names(cache: &Value, key: &str) -> Vec<String> {
    let mut names: Vec<String> = cache[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {cache}"))
        .iter()
        .map(|i| i["image"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn assert_manifest_unknown(addr: &str, image: &str) {
    let err = skopeo_pull(addr, image).expect_err(image);
    assert!(
        err.to_lowercase().contains("manifest unknown"),
        "{image}: {err}"
    );
}

const IMAGES: [&str; 3] = ["other/app:1", "test/img:1", "test/img:2"];

/// Upstream with three images, a quay.io cache on `port` that pulled them all.
fn world(
    env: &RealEnv,
    prefix: &str,
    up_port: u16,
    port: u16,
    dir: &Path,
) -> (Upstream, std::path::PathBuf) {
    let upstream = Upstream::start(env, &format!("{prefix}-upstream"), up_port);
    push_random_image(
        &upstream,
        &format!("localhost/{prefix}-b:1"),
        "test/img:2",
        3 << 20,
    );
    push_random_image(
        &upstream,
        &format!("localhost/{prefix}-c:1"),
        "other/app:1",
        4 << 20,
    );
    let cfg = write_config(
        dir,
        env,
        prefix,
        &upstream.url(),
        &[("quay.io", port)],
        "",
        "",
    );
    run(drcache(Some(&cfg)).arg("start")).expect(0);
    let addr = format!("127.0.0.1:{port}");
    for image in IMAGES {
        skopeo_pull(&addr, image).unwrap();
    }
    (upstream, cfg)
}

#[test]
fn prune_keeps_what_is_named_frees_the_rest_and_restores_the_mode() {
    let Some(env) = real_env("prune_keeps_what_is_named") else {
        return;
    };
    let prefix = "drtprune-a";
    let _cleanup = Cleanup::new(prefix);
    let dir = tempfile::tempdir().unwrap();
    let (upstream, cfg) = world(&env, prefix, 24100, 24101, dir.path());
    let addr = "127.0.0.1:24101";
    let cache = format!("{prefix}-quay-io");
    let state = dir.path().join("state");
    let fake = FakeBin::new();
    let minikube = fake.script("minikube", "echo '{\"invalid\":[],\"valid\":[]}'");
    let prune = |args: &[&str]| {
        let mut cmd = drcache(Some(&cfg));
        cmd.env("DRCACHE_MINIKUBE", &minikube)
            .env("DRCACHE_STATE_DIR", &state);
        run(cmd.arg("prune").args(args))
    };

    // No criterion: nothing happens, exit 2, with how to choose.
    let out = prune(&[]).expect(2);
    assert!(
        out.stderr.contains("--keep") && out.stderr.contains("--unused-for"),
        "{}",
        out.stderr
    );

    let before = settled_disk(&cfg);
    let container_before = started_at(&cache);
    let requests_before = upstream_log_lines(&upstream);

    // --dry-run: the plan, and nothing changes (the cache keeps running).
    let out = prune(&["--keep", "quay.io/test/img:1", "--dry-run", "--json"]).expect(0);
    let report = json(&out);
    let c = &report["caches"][0];
    assert_eq!(image_names(c, "removed"), ["other/app:1", "test/img:2"]);
    assert_eq!(image_names(c, "kept"), ["test/img:1"]);
    let estimate = c["bytes_freed_estimate"].as_u64().unwrap();
    assert!(estimate >= 7 << 20, "estimate {estimate}");
    assert!(c["downtime_seconds"].is_null());
    assert_eq!(
        started_at(&cache),
        container_before,
        "dry run touched the cache"
    );
    assert_eq!(status(&cfg)["disk_bytes"].as_u64().unwrap(), before);
    assert!(!podman_ok(&[
        "container",
        "exists",
        &format!("{cache}-prune")
    ]));

    // The prune itself.
    let out = prune(&["--keep", "quay.io/test/img:1", "--json"]).expect(0);
    let report = json(&out);
    let c = &report["caches"][0];
    assert_eq!(image_names(c, "removed"), ["other/app:1", "test/img:2"]);
    assert_eq!(c["restored"]["mode"], "proxy");
    assert_eq!(c["restored"]["ready"], true);
    let gc = c["gc"].as_str().unwrap();
    assert!(gc.contains("eligible for deletion"), "{gc}");
    let downtime = c["downtime_seconds"].as_f64().unwrap();
    assert!(downtime > 0.0 && downtime < 60.0, "{downtime}");
    let (b, a) = (
        c["bytes_before"].as_u64().unwrap(),
        c["bytes_after"].as_u64().unwrap(),
    );
    assert_eq!(b, before);
    assert!(b - a >= 7 << 20, "freed only {} of 7 MiB of layers", b - a);
    assert!(a >= 2 << 20, "the kept 2 MiB layer is gone: {a}");
    eprintln!("measured: bytes before {b}, after {a}, downtime {downtime} s");
    eprintln!("{}", out.stderr);
    assert!(
        out.stderr.contains("removed 2 images, kept 1")
            && out.stderr.contains("back in proxy mode")
            && out.stderr.contains("  removed test/img:2")
            && out.stderr.contains("  kept test/img:1 (named)"),
        "{}",
        out.stderr
    );
    let requests_after = upstream_log_lines(&upstream);
    assert_eq!(
        requests_after.1, requests_before.1,
        "prune asked the upstream"
    );
    eprintln!(
        "upstream: {} GET /v2/ during prune (the restarted proxy's start-up check), nothing else",
        requests_after.0 - requests_before.0
    );
    assert!(!podman_ok(&[
        "container",
        "exists",
        &format!("{cache}-prune")
    ]));

    // Back as `start` makes it: nothing to change, proxy mode, ready.
    let out = run(drcache(Some(&cfg)).args(["start", "--json"])).expect(0);
    assert_eq!(
        json(&out)["caches"][0]["action"],
        "unchanged",
        "{}",
        out.stdout
    );
    let s = status(&cfg);
    assert_eq!(
        (s["mode"].as_str(), s["ready"].as_bool()),
        (Some("proxy"), Some(true))
    );

    // Upstream down: the kept image pulls, the others are gone.
    podman(&["stop", &upstream.name]);
    skopeo_pull(addr, "test/img:1").unwrap();
    assert_manifest_unknown(addr, "test/img:2");
    assert_manifest_unknown(addr, "other/app:1");
    // Upstream up: they come back through the cache.
    podman(&["start", &upstream.name]);
    wait_http_200(&format!("http://127.0.0.1:{}/v2/", upstream.port));
    for image in IMAGES {
        skopeo_pull(addr, image).unwrap();
    }

    // An offline cache comes back offline.
    run(drcache(Some(&cfg)).args(["start", "--offline"])).expect(0);
    let out = prune(&["--keep", "quay.io/test/img:2", "--json"]).expect(0);
    let c = &json(&out)["caches"][0];
    assert_eq!(image_names(c, "removed"), ["other/app:1", "test/img:1"]);
    assert_eq!(c["mode"], "offline");
    assert_eq!(c["restored"]["mode"], "offline");
    let out = run(drcache(Some(&cfg)).args(["start", "--offline", "--json"])).expect(0);
    assert_eq!(
        json(&out)["caches"][0]["action"],
        "unchanged",
        "{}",
        out.stdout
    );
    skopeo_pull(addr, "test/img:2").unwrap();
    assert_manifest_unknown(addr, "test/img:1");
    assert_manifest_unknown(addr, "other/app:1");
}

/// A fake minikube: one containerd profile with two running nodes; each
/// node's `crictl images -o json` is the file `<machine>.json` in `dir`,
/// and a node without one fails like an unreachable VM.
fn fake_minikube(fake: &FakeBin, dir: &Path) -> std::path::PathBuf {
    let list = r#"{"invalid":[],"valid":[{"Name":"drtprune-c1","Status":"Skipped","Config":{"Name":"drtprune-c1","Driver":"kvm2","KubernetesConfig":{"ContainerRuntime":"containerd"},"Nodes":[{"Name":"","ControlPlane":true,"Worker":true},{"Name":"m02","ControlPlane":false,"Worker":true}]}}]}"#;
    let status = r#"[{"Name":"drtprune-c1","Host":"Running","Kubelet":"Running","APIServer":"Running","Kubeconfig":"Configured","Worker":false},{"Name":"drtprune-c1-m02","Host":"Running","Kubelet":"Running","APIServer":"Irrelevant","Kubeconfig":"Irrelevant","Worker":true}]"#;
    fake.script(
        "minikube",
        &format!(
            r#"case "$1" in
profile) echo '{list}' ;;
status) echo '{status}' ;;
ssh) f='{dir}/'"$5".json
     [ "$7" = "sudo crictl images -o json" ] || {{ echo "unexpected script: $7" >&2; exit 9; }}
     if [ -f "$f" ]; then cat "$f"; else echo 'ssh: connect to host 192.168.39.9 port 22: No route to host' >&2; exit 1; fi ;;
*) exit 9 ;;
esac"#,
            dir = dir.display()
        ),
    )
}

/// `crictl images -o json` of a node holding these (tags, digests).
fn crictl_json(images: &[(&[String], &[String])]) -> String {
    let list: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, (tags, digests))| {
            serde_json::json!({"id": format!("sha256:{:064x}", i + 1), "repoTags": tags,
                "repoDigests": digests, "size": "2097152", "uid": null, "username": "",
                "spec": null, "pinned": false})
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({ "images": list })).unwrap()
}

fn digest_of(addr: &str, image: &str) -> String {
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
        .arg(format!("docker://{addr}/{image}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn images_in_use_on_cluster_nodes_are_kept_and_an_unreadable_node_stops_prune() {
    let Some(env) = real_env("images_in_use_on_cluster_nodes") else {
        return;
    };
    let prefix = "drtprune-k";
    let _cleanup = Cleanup::new(prefix);
    let dir = tempfile::tempdir().unwrap();
    let (upstream, cfg) = world(&env, prefix, 24110, 24111, dir.path());
    let addr = "127.0.0.1:24111";
    let cache = format!("{prefix}-quay-io");
    let nodes = tempfile::tempdir().unwrap();
    let fake = FakeBin::new();
    let minikube = fake_minikube(&fake, nodes.path());
    let prune = |args: &[&str]| {
        let mut cmd = drcache(Some(&cfg));
        cmd.env("DRCACHE_MINIKUBE", &minikube)
            .env("DRCACHE_STATE_DIR", fake.path());
        run(cmd.arg("prune").args(args))
    };
    // The first node runs test/img:2 (by tag); the second other/app by digest only.
    let app_digest = digest_of(addr, "other/app:1");
    std::fs::write(
        nodes.path().join("drtprune-c1.json"),
        crictl_json(&[(
            &["quay.io/test/img:2".to_string()],
            &[format!(
                "quay.io/test/img@{}",
                digest_of(addr, "test/img:2")
            )],
        )]),
    )
    .unwrap();

    // The second node cannot be read: nothing is removed, and it is named.
    let container_before = started_at(&cache);
    let out = prune(&["--keep", "quay.io/test/img:1"]).expect(1);
    assert!(
        out.stderr.contains("drtprune-c1/drtprune-c1-m02")
            && out.stderr.contains("No route to host"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("nothing was removed"), "{}", out.stderr);
    assert_eq!(
        started_at(&cache),
        container_before,
        "the cache was touched"
    );
    let out = prune(&["--ignore-clusters", "--dry-run", "--json"]).expect(0);
    let c = &json(&out)["caches"][0];
    assert_eq!(image_names(c, "kept"), ["test/img:2"]);
    assert_eq!(image_names(c, "removed"), ["other/app:1", "test/img:1"]);

    // Both nodes answer: what they hold is kept, by tag or by digest.
    std::fs::write(
        nodes.path().join("drtprune-c1-m02.json"),
        crictl_json(&[(&[], &[format!("quay.io/other/app@{app_digest}")])]),
    )
    .unwrap();
    let out = prune(&["--json"]).expect(0);
    let report = json(&out);
    let c = &report["caches"][0];
    assert_eq!(image_names(c, "kept"), ["other/app:1", "test/img:2"]);
    assert_eq!(image_names(c, "removed"), ["test/img:1"]);
    let reasons: Vec<&str> = c["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&"in use on drtprune-c1/drtprune-c1-m02"),
        "{reasons:?}"
    );
    assert_eq!(report["nodes"].as_array().unwrap().len(), 2);

    podman(&["stop", &upstream.name]);
    skopeo_pull(addr, "test/img:2").unwrap();
    skopeo_pull(addr, "other/app:1").unwrap();
    assert_manifest_unknown(addr, "test/img:1");
}

/// A registry image FROM scratch, like the test image, with Debian's
/// registry binary at /usr/local/bin/registry instead of /bin/registry.
fn build_moved_registry(dir: &Path, image: &str) {
    let root = dir.join("rootfs");
    let copy = |from: &str, to: &str| {
        let target = root.join(to.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(from, &target).unwrap_or_else(|e| panic!("{from}: {e}"));
    };
    copy("/usr/bin/docker-registry", "/usr/local/bin/registry");
    let ldd = std::process::Command::new("ldd")
        .arg("/usr/bin/docker-registry")
        .output()
        .unwrap();
    for word in String::from_utf8_lossy(&ldd.stdout).split_whitespace() {
        if word.starts_with('/') {
            copy(word, word);
        }
    }
    let config = root.join("etc/docker/registry/config.yml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n\
         http:\n  addr: :5000\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("Containerfile"),
        "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/usr/local/bin/registry\", \"serve\"]\n\
         CMD [\"/etc/docker/registry/config.yml\"]\n",
    )
    .unwrap();
    podman(&[
        "build",
        "-q",
        "--layers=false",
        "-t",
        image,
        dir.to_str().unwrap(),
    ]);
}

#[test]
fn a_prune_that_fails_halfway_still_brings_the_cache_back() {
    let Some(_env) = real_env("a_prune_that_fails_halfway") else {
        return;
    };
    let prefix = "drtprune-f";
    let _cleanup = Cleanup::new(prefix);
    // The registry binary lives elsewhere in this image: it serves (its
    // entrypoint says where), but `garbage-collect`, which prune runs as
    // /bin/registry, cannot start: the prune fails after its deletions.
    let image = format!("localhost/{prefix}-registry:1");
    let ctx = tempfile::tempdir().unwrap();
    build_moved_registry(ctx.path(), &image);
    let moved = RealEnv {
        image: image.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let (upstream, cfg) = world(&moved, prefix, 24120, 24121, dir.path());
    let addr = "127.0.0.1:24121";
    let state = dir.path().join("state");
    let fake = FakeBin::new();
    let minikube = fake.script("minikube", "echo '{\"invalid\":[],\"valid\":[]}'");
    let drc = |args: &[&str]| {
        let mut cmd = drcache(Some(&cfg));
        cmd.env("DRCACHE_MINIKUBE", &minikube)
            .env("DRCACHE_STATE_DIR", &state);
        run(cmd.args(args))
    };
    let cache = format!("{prefix}-quay-io");
    let id_before = podman(&["inspect", "--format", "{{.Id}}", &cache]);

    let out = drc(&["prune", "--keep", "quay.io/test/img:1", "--json"]).expect(1);
    let c = &json(&out)["caches"][0];
    let error = c["error"].as_str().unwrap();
    assert!(
        error.contains("garbage-collect") && error.contains("/bin/registry"),
        "{error}"
    );
    assert_eq!(c["restored"]["ready"], true, "{c}");
    assert_eq!(c["restored"]["mode"], "proxy");
    assert!(c["downtime_seconds"].as_f64().unwrap() < 30.0, "{c}");
    assert!(
        out.stderr.contains("was to remove 2 images"),
        "{}",
        out.stderr
    );
    // The same container, started again, as `start` wants it.
    assert_eq!(
        podman(&["inspect", "--format", "{{.Id}}", &cache]),
        id_before
    );
    assert!(!podman_ok(&[
        "container",
        "exists",
        &format!("{cache}-prune")
    ]));
    let out = drc(&["start", "--json"]).expect(0);
    assert_eq!(
        json(&out)["caches"][0]["action"],
        "unchanged",
        "{}",
        out.stdout
    );
    // Halfway: the manifests were deleted (their blobs stay until a GC runs).
    podman(&["stop", &upstream.name]);
    skopeo_pull(addr, "test/img:1").unwrap();
    assert_manifest_unknown(addr, "test/img:2");
    podman(&["rm", "-f", &upstream.name]);
    run(drcache(Some(&cfg)).arg("clean")).expect(0);
    podman(&["rmi", "-f", &image]);
}

#[test]
fn unused_for_keeps_what_was_pulled_lately_and_everything_when_the_log_is_too_young() {
    let Some(env) = real_env("unused_for_keeps_what_was_pulled_lately") else {
        return;
    };
    let prefix = "drtprune-u";
    let _cleanup = Cleanup::new(prefix);
    let dir = tempfile::tempdir().unwrap();
    let (_upstream, cfg) = world(&env, prefix, 24130, 24131, dir.path());
    let state = dir.path().join("state");
    let fake = FakeBin::new();
    let minikube = fake.script("minikube", "echo '{\"invalid\":[],\"valid\":[]}'");
    let prune = |args: &[&str]| {
        let mut cmd = drcache(Some(&cfg));
        cmd.env("DRCACHE_MINIKUBE", &minikube)
            .env("DRCACHE_STATE_DIR", &state);
        run(cmd.arg("prune").args(args))
    };
    // The cache's log reaches back less than an hour: every last pull is unknown.
    let out = prune(&["--unused-for", "1h", "--json"]).expect(0);
    let c = &json(&out)["caches"][0];
    assert_eq!(image_names(c, "kept"), IMAGES);
    assert!(c["removed"].as_array().unwrap().is_empty());
    assert!(c["kept"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["reason"] == "last pull unknown"));

    // Older than the window, and one image pulled again within it.
    std::thread::sleep(std::time::Duration::from_secs(10));
    skopeo_pull("127.0.0.1:24131", "test/img:2").unwrap();
    let out = prune(&["--unused-for", "6s", "--json"]).expect(0);
    let c = &json(&out)["caches"][0];
    assert_eq!(image_names(c, "kept"), ["test/img:2"]);
    assert_eq!(c["kept"][0]["reason"], "pulled recently");
    assert_eq!(image_names(c, "removed"), ["other/app:1", "test/img:1"]);
}

/// Push an index of two platforms (amd64 1 MB, arm64 1.5 MB of random bytes) as `name`.
fn push_index(upstream: &Upstream, prefix: &str, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let list = format!("localhost/{prefix}-list");
    let mut locals = Vec::new();
    for (arch, size) in [("amd64", 1_000_000), ("arm64", 1_500_000)] {
        let mut data = vec![0u8; size];
        let mut f = std::fs::File::open("/dev/urandom").unwrap();
        std::io::Read::read_exact(&mut f, &mut data).unwrap();
        std::fs::write(dir.path().join(format!("{arch}.bin")), data).unwrap();
        let file = dir.path().join(format!("Containerfile.{arch}"));
        std::fs::write(&file, format!("FROM scratch\nCOPY {arch}.bin /blob\n")).unwrap();
        let local = format!("localhost/{prefix}-{arch}");
        podman(&[
            "build",
            "-q",
            "--layers=false",
            "--arch",
            arch,
            "-t",
            &local,
            "-f",
            file.to_str().unwrap(),
            dir.path().to_str().unwrap(),
        ]);
        locals.push(local);
    }
    let _ = std::process::Command::new("podman")
        .args(["manifest", "rm", &list])
        .output();
    podman(&["manifest", "create", &list]);
    for local in &locals {
        podman(&[
            "manifest",
            "add",
            &list,
            &format!("containers-storage:{local}"),
        ]);
    }
    podman(&[
        "manifest",
        "push",
        "--all",
        "--tls-verify=false",
        &list,
        &format!("docker://127.0.0.1:{}/{name}", upstream.port),
    ]);
    podman(&["manifest", "rm", &list]);
    for local in &locals {
        podman(&["rmi", local]);
    }
}

/// Pull the linux/amd64 image of `image` through the cache at `addr`.
fn pull_amd64(addr: &str, image: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("skopeo")
        .args([
            "--override-os",
            "linux",
            "--override-arch",
            "amd64",
            "copy",
            "-q",
        ])
        .args([
            "--src-tls-verify=false",
            &format!("docker://{addr}/{image}"),
        ])
        .arg(format!("dir:{}", dir.path().display()))
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn a_kept_multi_platform_image_keeps_its_platform_and_a_pruned_one_goes_whole() {
    let Some(env) = real_env("a_kept_multi_platform_image") else {
        return;
    };
    let prefix = "drtprune-m";
    let _cleanup = Cleanup::new(prefix);
    let upstream = Upstream::start(&env, &format!("{prefix}-upstream"), 24140);
    push_index(&upstream, prefix, "multi/app:1");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &env,
        prefix,
        &upstream.url(),
        &[("quay.io", 24141)],
        "",
        "",
    );
    let state = dir.path().join("state");
    let fake = FakeBin::new();
    let minikube = fake.script("minikube", "echo '{\"invalid\":[],\"valid\":[]}'");
    let drc = |args: &[&str]| {
        let mut cmd = drcache(Some(&cfg));
        cmd.env("DRCACHE_MINIKUBE", &minikube)
            .env("DRCACHE_STATE_DIR", &state);
        run(cmd.args(args))
    };
    drc(&["start"]).expect(0);
    let addr = "127.0.0.1:24141";
    pull_amd64(addr, "multi/app:1").unwrap();
    skopeo_pull(addr, "test/img:1").unwrap();

    // Kept: the index and the platform the cache holds stay, offline too.
    let out = drc(&["prune", "--keep", "quay.io/multi/app:1", "--json"]).expect(0);
    let c = &json(&out)["caches"][0];
    assert_eq!(image_names(c, "removed"), ["test/img:1"]);
    assert_eq!(image_names(c, "kept"), ["multi/app:1"]);
    podman(&["stop", &upstream.name]);
    pull_amd64(addr, "multi/app:1").unwrap();
    assert_manifest_unknown(addr, "test/img:1");
    podman(&["start", &upstream.name]);
    wait_http_200(&format!("http://127.0.0.1:{}/v2/", upstream.port));
    skopeo_pull(addr, "test/img:1").unwrap();

    // Pruned: the index, its platform manifest and its 1 MB layer all go.
    let out = drc(&["prune", "--keep", "quay.io/test/img:1", "--json"]).expect(0);
    let c = &json(&out)["caches"][0];
    assert_eq!(image_names(c, "removed"), ["multi/app:1"]);
    let estimate = c["bytes_freed_estimate"].as_u64().unwrap();
    assert!((1_000_000..1_100_000).contains(&estimate), "{estimate}");
    let (b, a) = (
        c["bytes_before"].as_u64().unwrap(),
        c["bytes_after"].as_u64().unwrap(),
    );
    assert!(b - a >= 1_000_000, "freed {}", b - a);
    podman(&["stop", &upstream.name]);
    skopeo_pull(addr, "test/img:1").unwrap();
    assert_manifest_unknown(addr, "multi/app:1");

    // Nothing to remove: the cache is not even stopped.
    let cache = format!("{prefix}-quay-io");
    let before = started_at(&cache);
    let out = drc(&["prune", "--keep", "quay.io/test/img:1", "--json"]).expect(0);
    let c = &json(&out)["caches"][0];
    assert!(c["removed"].as_array().unwrap().is_empty() && c["downtime_seconds"].is_null());
    assert_eq!(started_at(&cache), before);

    // The upstream is down when the proxy cache comes back: offline, as
    // `start` would bring it up, saying why.
    let out = drc(&["prune", "--keep", "quay.io/other/thing:1", "--json"]).expect(0);
    let c = &json(&out)["caches"][0];
    assert_eq!(image_names(c, "removed"), ["test/img:1"]);
    assert_eq!(c["restored"]["mode"], "offline", "{c}");
    assert!(c["restored"]["offline_reason"].is_string(), "{c}");
    assert!(
        out.stderr.contains("upstream unreachable"),
        "{}",
        out.stderr
    );
    // It came back as it was: a fallback offline cache, which a plain start
    // leaves as it is while the upstream is down.
    let out = drc(&["start", "--json"]).expect(0);
    assert_eq!(
        json(&out)["caches"][0]["action"],
        "unchanged",
        "{}",
        out.stdout
    );
}

#[test]
fn ctrl_c_during_prune_still_brings_the_cache_back() {
    use std::io::BufRead;
    let Some(env) = real_env("ctrl_c_during_prune") else {
        return;
    };
    let prefix = "drtprune-i";
    let _cleanup = Cleanup::new(prefix);
    let dir = tempfile::tempdir().unwrap();
    let (upstream, cfg) = world(&env, prefix, 24150, 24151, dir.path());
    let state = dir.path().join("state");
    let fake = FakeBin::new();
    let minikube = fake.script("minikube", "echo '{\"invalid\":[],\"valid\":[]}'");
    let cache = format!("{prefix}-quay-io");
    let mut child = drcache(Some(&cfg))
        .env("DRCACHE_MINIKUBE", &minikube)
        .env("DRCACHE_STATE_DIR", &state)
        .args(["prune", "--keep", "quay.io/test/img:1"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("pruning quay.io") {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "{seen}");
        seen += &line;
    }
    // The cache is being stopped (or the temporary registry started) now.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(130), "{seen}{rest}");
    assert!(rest.contains("back in proxy mode"), "{seen}{rest}");
    assert!(rest.contains("interrupted"), "{seen}{rest}");
    assert_eq!(
        podman(&["inspect", "--format", "{{.State.Status}}", &cache]).trim(),
        "running"
    );
    assert!(!podman_ok(&[
        "container",
        "exists",
        &format!("{cache}-prune")
    ]));
    let out = run(drcache(Some(&cfg)).args(["start", "--json"])).expect(0);
    assert_eq!(
        json(&out)["caches"][0]["action"],
        "unchanged",
        "{}",
        out.stdout
    );
    podman(&["stop", &upstream.name]);
    skopeo_pull("127.0.0.1:24151", "test/img:1").unwrap();
}
