//! `drcache hosts-toml`: its output, and a real containerd pulling through a
//! real drcache cache with it.

use std::process::Command;
use std::time::Instant;

use crate::real::*;
use crate::support::*;

#[test]
fn hosts_toml_prints_every_registry_and_writes_a_certs_d_tree() {
    let r = run(drcache(None).arg("hosts-toml")).expect(0);
    let headers: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("==> ")).collect();
    assert_eq!(
        headers,
        [
            "==> quay.io/hosts.toml <==",
            "==> docker.io/hosts.toml <==",
            "==> registry.k8s.io/hosts.toml <==",
            "==> ghcr.io/hosts.toml <==",
            "==> gcr.io/hosts.toml <==",
        ]
    );
    assert!(r.stdout.contains(
        "server = \"https://registry-1.docker.io\"\n\n[host.\"http://host.minikube.internal:5052\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
    ));

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs.d");
    run(drcache(None)
        .args(["hosts-toml", "--host", "fd00::1", "--out"])
        .arg(&out))
    .expect(0);
    let docker = std::fs::read_to_string(out.join("docker.io/hosts.toml")).unwrap();
    assert!(
        docker.contains("[host.\"http://[fd00::1]:5052\"]"),
        "{docker}"
    );
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 5);

    // Its own files are rewritten; someone else's are not.
    std::fs::write(
        out.join("gcr.io/hosts.toml"),
        "server = \"https://gcr.io\"\n",
    )
    .unwrap();
    let r = run(drcache(None).args(["hosts-toml", "--out"]).arg(&out)).expect(1);
    assert!(r
        .stderr
        .contains("not overwriting a hosts.toml that drcache did not write"));
    run(drcache(None)
        .args(["hosts-toml", "quay.io", "--out"])
        .arg(&out))
    .expect(0);

    for bad in ["a b", "x\"]", "[::1", "h:1"] {
        let r = run(drcache(None).args(["hosts-toml", "--host", bad])).expect(2);
        assert!(r.stderr.contains("error: --host: "), "{bad}: {}", r.stderr);
    }
}

#[test]
fn containerd_pulls_through_the_cache_with_drcache_hosts_toml() {
    const TEST: &str = "containerd_pulls_through_the_cache_with_drcache_hosts_toml";
    let Some(env) = real_env(TEST) else {
        return;
    };
    if !containerd_available(TEST) {
        return;
    }
    let prefix = "drtest-wire";
    let _cleanup = Cleanup::new(prefix);
    let upstream = Upstream::start(&env, &format!("{prefix}-upstream"), free_port());
    let cache_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "image = \"{}\"\nprefix = \"{prefix}\"\nbind = \"127.0.0.1\"\n\
             [[registry]]\nname = \"quay.io\"\nupstream = \"{}\"\nport = {cache_port}\n",
            env.image,
            upstream.url()
        ),
    )
    .unwrap();
    run(drcache(Some(&config)).arg("start")).expect(0);

    let certs = dir.path().join("certs.d");
    run(drcache(Some(&config))
        .args(["hosts-toml", "--host", "127.0.0.1", "--out"])
        .arg(&certs))
    .expect(0);

    let containerd = Containerd::start(&dir.path().join("ctrd"));
    let pull = || {
        let started = Instant::now();
        let out = containerd.pull_isolated(&certs, "quay.io/test/img:1");
        (out, started.elapsed())
    };

    let cache = format!("{prefix}-quay-io");
    let (out, took) = pull();
    assert!(
        out.status.success(),
        "pull through the cache failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{TEST}: pull through the cache took {took:?}");
    let out = Command::new("podman")
        .args(["logs", &cache])
        .output()
        .unwrap();
    let logs =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let blob_gets = logs
        .lines()
        .filter(|l| l.contains("GET /v2/test/img/blobs/sha256:") && l.contains("ns=quay.io"))
        .count();
    assert!(
        blob_gets >= 2,
        "the cache served no blobs to containerd:\n{logs}"
    );
    assert!(
        upstream.blob_gets() >= 1,
        "the cache did not fetch from the upstream"
    );

    // Forget the image and its content, stop the cache: the same pull fails.
    assert!(containerd
        .ctr(&["images", "rm", "--sync", "quay.io/test/img:1"])
        .status
        .success());
    let content = containerd.ctr(&["content", "ls", "-q"]);
    assert_eq!(
        String::from_utf8_lossy(&content.stdout).trim(),
        "",
        "content left behind"
    );
    run(drcache(Some(&config)).arg("stop")).expect(0);
    let (out, took) = pull();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "{TEST}: pull with the cache stopped failed after {took:?}: {}",
        stderr.trim().lines().last().unwrap_or("")
    );
    assert!(
        !out.status.success(),
        "the pull succeeded without the cache:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
