//! `drcache hosts-toml`: its output, and a real containerd pulling through a
//! real drcache cache with it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::*;

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

/// A private containerd from scripts/start-containerd.sh, stopped on drop.
struct Containerd {
    dir: PathBuf,
    socket: String,
}

impl Containerd {
    fn start(dir: &Path) -> Containerd {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/start-containerd.sh");
        let out = Command::new(script).arg(dir).output().unwrap();
        assert!(
            out.status.success(),
            "start-containerd.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Containerd {
            dir: dir.to_path_buf(),
            socket: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        }
    }

    fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("containerd.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

/// The components this test needs besides podman, or why they are missing.
fn containerd_missing() -> Option<String> {
    let missing: Vec<&str> = ["containerd", "ctr", "unshare", "mount"]
        .into_iter()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if !missing.is_empty() {
        return Some(format!("not installed: {}", missing.join(", ")));
    }
    let uid = Command::new("id").arg("-u").output().unwrap();
    (String::from_utf8_lossy(&uid.stdout).trim() != "0")
        .then(|| "needs root (a private containerd, a mount namespace)".to_string())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn containerd_pulls_through_the_cache_with_drcache_hosts_toml() {
    const TEST: &str = "containerd_pulls_through_the_cache_with_drcache_hosts_toml";
    let Some(env) = real_env(TEST) else {
        return;
    };
    if let Some(reason) = containerd_missing() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{TEST}: real components required in CI: {reason}");
        }
        eprintln!("SKIPPED {TEST}: {reason}");
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

    // containerd falls back to `server` when the mirror fails; here that is the
    // upstream (http://host.containers.internal:PORT), published on every IPv4
    // address of this host. So every upstream name points where nothing
    // listens: a pull can only succeed through the cache.
    let hosts = dir.path().join("hosts");
    std::fs::write(
        &hosts,
        "127.0.0.1 localhost\n\
         127.0.0.1 quay.io registry-1.docker.io registry.k8s.io ghcr.io gcr.io\n\
         ::1 host.containers.internal\n",
    )
    .unwrap();
    let containerd = Containerd::start(&dir.path().join("ctrd"));
    let pull = || {
        let started = Instant::now();
        let out = Command::new("unshare")
            .args([
                "-m",
                "sh",
                "-c",
                "mount --bind \"$1\" /etc/hosts && exec ctr --address \"$2\" images pull --hosts-dir \"$3\" quay.io/test/img:1",
                "sh",
            ])
            .arg(&hosts)
            .arg(&containerd.socket)
            .arg(&certs)
            .output()
            .unwrap();
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
