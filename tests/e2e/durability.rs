//! End to end on real podman: a working cache is never lost. An image that
//! cannot be had, starts from different environments at once, upstreams
//! that hang or drop packets, Ctrl-C, and logins that change nothing else.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::real::*;
use crate::support::*;

fn set_image(config: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains(from));
    std::fs::write(config, text.replace(from, to)).unwrap();
}

#[test]
fn an_image_that_cannot_be_had_leaves_every_running_cache_alone() {
    let Some(env) = real_env("an_image_that_cannot_be_had") else {
        return;
    };
    let prefix = "drt-dur-img";
    let _cleanup = Cleanup::new(prefix);
    let upstream = Upstream::start(&env, &format!("{prefix}-upstream"), 25100);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &env,
        prefix,
        &upstream.url(),
        &[("quay.io", 25101), ("ghcr.io", 25102)],
        "",
        "",
    );
    run(drcache(Some(&cfg)).arg("start")).expect(0);
    let quay = format!("{prefix}-quay-io");
    let ghcr = format!("{prefix}-ghcr-io");
    let ids = (container_id(&quay), container_id(&ghcr));

    // A typo in the image: not here, and it cannot be pulled.
    let missing = "localhost/drcache-test-no-such-image:1";
    set_image(&cfg, &env.image, missing);
    let out = run(drcache(Some(&cfg)).args(["-v", "start"])).expect(1);
    let pulls: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("+ podman pull"))
        .collect();
    assert_eq!(
        pulls,
        [format!("+ podman pull {missing} --quiet")],
        "one pull for both caches"
    );
    assert!(
        out.stderr.contains(&format!(
            "warning: image {missing} is not on this machine and cannot be pulled"
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: check `image` in the config"));
    assert!(
        out.stderr.contains("the running cache was left as it is"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("+ podman rm"), "{}", out.stderr);
    // Both caches still run, the very same containers, and still serve.
    assert_eq!((container_id(&quay), container_id(&ghcr)), ids);
    assert_eq!(container_state(&quay), "running");
    skopeo_pull("127.0.0.1:25101", "test/img:1").unwrap();

    // Back to an image that exists: the change is applied.
    set_image(&cfg, missing, &env.image);
    run(drcache(Some(&cfg)).arg("start")).expect(0);
}

/// Five caches, as the built-in configuration has, on ports from `base`.
fn five_registries(base: u16) -> [(&'static str, u16); 5] {
    [
        ("quay.io", base + 1),
        ("docker.io", base + 2),
        ("registry.k8s.io", base + 3),
        ("ghcr.io", base + 4),
        ("gcr.io", base + 5),
    ]
}

#[test]
fn starts_from_different_environments_share_one_lock() {
    let Some(env) = real_env("starts_from_different_environments") else {
        return;
    };
    let prefix = "drt-dur-lock";
    let _cleanup = Cleanup::new(prefix);
    let upstream = Upstream::start(&env, &format!("{prefix}-upstream"), 25200);
    let dir = tempfile::tempdir().unwrap();
    let registries = five_registries(25200);
    let cfg = write_config(
        dir.path(),
        &env,
        prefix,
        &upstream.url(),
        &registries,
        "",
        "",
    );
    // A desktop terminal, `su`, cron and CI: each sees other variables. As
    // root, podman ignores XDG_RUNTIME_DIR and HOME, so any value will do;
    // rootless podman keeps its runtime state in XDG_RUNTIME_DIR and its
    // store under HOME, so there only the user's own or none is realistic.
    let runtime_a = tempfile::tempdir().unwrap();
    let runtime_b = tempfile::tempdir().unwrap();
    let own_runtime = std::env::var_os("XDG_RUNTIME_DIR").map(std::path::PathBuf::from);
    let (first, second) = if is_root() {
        (
            Some(runtime_a.path().to_path_buf()),
            Some(runtime_b.path().to_path_buf()),
        )
    } else {
        (own_runtime.clone(), own_runtime)
    };
    let other_home = tempfile::tempdir().unwrap();
    for round in 0..4 {
        let children: Vec<_> = [first.clone(), None, second.clone(), None, first.clone()]
            .into_iter()
            .enumerate()
            .map(|(n, runtime)| {
                let mut cmd = drcache(Some(&cfg));
                cmd.arg("start")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                match runtime {
                    Some(dir) => cmd.env("XDG_RUNTIME_DIR", dir),
                    None => cmd
                        .env_remove("XDG_RUNTIME_DIR")
                        .env_remove("XDG_STATE_HOME"),
                };
                // `sudo -E` or `su` without `-`: another user's HOME.
                if n == 1 && is_root() {
                    cmd.env("HOME", other_home.path());
                }
                cmd.spawn().unwrap()
            })
            .collect();
        for child in children {
            Run::from(child.wait_with_output().unwrap()).expect(0);
        }
        for (registry, _) in registries {
            let name = format!("{prefix}-{}", registry.replace('.', "-"));
            assert_eq!(container_state(&name), "running", "round {round}: {name}");
        }
        // Next round from scratch: every container created under the race.
        run(drcache(Some(&cfg)).arg("clean")).expect(0);
    }
}

/// A port on every interface that accepts connections and never answers:
/// a captive portal, a half-up VPN.
fn silent_listener(port: u16) -> TcpListener {
    TcpListener::bind(("0.0.0.0", port)).unwrap()
}

/// Fill a cache from a real upstream, then point it at `dead_upstream`.
fn cached_then_repointed(
    env: &RealEnv,
    prefix: &str,
    port: u16,
    dead_upstream: &str,
) -> (Upstream, std::path::PathBuf, tempfile::TempDir) {
    let upstream = Upstream::start(env, &format!("{prefix}-upstream"), port);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        env,
        prefix,
        &upstream.url(),
        &[("quay.io", port + 1)],
        "",
        "",
    );
    run(drcache(Some(&cfg)).arg("start")).expect(0);
    skopeo_pull(&format!("127.0.0.1:{}", port + 1), "test/img:1").unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace(&upstream.url(), dead_upstream)).unwrap();
    (upstream, cfg, dir)
}

fn assert_offline_within(cfg: &Path, cache_port: u16, limit: Duration, why: &str) {
    let started = Instant::now();
    let out = run(drcache(Some(cfg)).args(["start", "--json"])).expect(0);
    let took = started.elapsed();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let cache = &report["caches"][0];
    assert_eq!(cache["mode"], "offline", "{}", out.stdout);
    assert_eq!(cache["ready"], true);
    let reason = cache["offline_reason"].as_str().unwrap();
    assert!(reason.contains(why), "{reason}");
    assert!(took <= limit, "offline only after {took:?}");
    // It serves what it cached.
    skopeo_pull(&format!("127.0.0.1:{cache_port}"), "test/img:1").unwrap();
}

#[test]
fn an_upstream_that_accepts_and_never_answers_gets_offline_mode_in_15_s() {
    let Some(env) = real_env("an_upstream_that_never_answers") else {
        return;
    };
    let prefix = "drt-dur-hang";
    let _cleanup = Cleanup::new(prefix);
    let silent = silent_listener(25390);
    let (_upstream, cfg, _dir) =
        cached_then_repointed(&env, prefix, 25300, "http://host.containers.internal:25390");
    assert_offline_within(
        &cfg,
        25301,
        Duration::from_secs(15),
        "which does not answer this host either (timeout: no answer within 3 s)",
    );
    drop(silent);
}

/// An iptables rule dropping TCP to one test port, removed when dropped.
struct DropRule {
    port: u16,
}

impl DropRule {
    fn args(&self, op: &str) -> Vec<String> {
        [op, "INPUT", "-p", "tcp", "--dport", &self.port.to_string()]
            .iter()
            .map(|s| s.to_string())
            .chain(["-m", "comment", "--comment", "drcache-test", "-j", "DROP"].map(String::from))
            .collect()
    }

    fn add(port: u16) -> DropRule {
        let rule = DropRule { port };
        let out = Command::new("iptables")
            .args(rule.args("-I"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "iptables: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        rule
    }
}

impl Drop for DropRule {
    fn drop(&mut self) {
        let _ = Command::new("iptables").args(self.args("-D")).output();
    }
}

#[test]
fn an_upstream_that_drops_packets_gets_offline_mode_in_15_s() {
    let Some(env) = real_env("an_upstream_that_drops_packets") else {
        return;
    };
    if !root_available("an_upstream_that_drops_packets", "an iptables DROP rule") {
        return;
    }
    let prefix = "drt-dur-drop";
    let _cleanup = Cleanup::new(prefix);
    let (_upstream, cfg, _dir) =
        cached_then_repointed(&env, prefix, 25400, "http://host.containers.internal:25490");
    let _rule = DropRule::add(25490);
    assert_offline_within(
        &cfg,
        25401,
        Duration::from_secs(15),
        "which does not answer this host either (timeout: no answer within 3 s)",
    );
}

#[test]
fn ctrl_c_during_start_finishes_the_step_and_leaves_no_created_container() {
    let Some(env) = real_env("ctrl_c_during_start") else {
        return;
    };
    let prefix = "drt-dur-int";
    let _cleanup = Cleanup::new(prefix);
    let upstream = Upstream::start(&env, &format!("{prefix}-upstream"), 25500);
    let dir = tempfile::tempdir().unwrap();
    let registries = five_registries(25500);
    let cfg = write_config(
        dir.path(),
        &env,
        prefix,
        &upstream.url(),
        &registries,
        "",
        "",
    );
    // Ctrl-C at several moments of a cold start.
    let mut interrupted_midway = 0;
    for delay_ms in [50u64, 150, 300, 600] {
        let child = drcache(Some(&cfg))
            .arg("start")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        send_sigint(child.id());
        let out = Run::from(child.wait_with_output().unwrap());
        // 0 when it was done before the signal arrived. Interrupted while
        // changing caches, it says so; before that it just ends.
        assert!(
            out.code == 130 || out.code == 0,
            "{}: {}",
            out.code,
            out.stderr
        );
        if out.code == 130 && out.stderr.contains("created") {
            assert!(out.stderr.contains("error: interrupted"), "{}", out.stderr);
        }
        if out.stderr.contains("error: interrupted") {
            interrupted_midway += 1;
        }
        let states = podman(&[
            "ps",
            "-a",
            "--format",
            "{{.Names}} {{.State}}",
            "--filter",
            &format!("name=^{prefix}-"),
        ]);
        for line in states.lines() {
            assert!(
                !line.ends_with(" created") && !line.ends_with(" configured"),
                "after Ctrl-C at {delay_ms} ms: {states}"
            );
        }
        run(drcache(Some(&cfg)).arg("clean")).expect(0);
    }
    assert!(
        interrupted_midway > 0,
        "no Ctrl-C landed while caches were being made"
    );
}

fn send_sigint(pid: u32) {
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// `key.path=value` lines of a simple YAML mapping (no lists of maps).
fn yaml_settings(text: &str) -> BTreeSet<String> {
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut settings = BTreeSet::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let Some((key, value)) = line.trim().split_once(':') else {
            continue;
        };
        path.retain(|(i, _)| *i < indent);
        let full: Vec<&str> = path
            .iter()
            .map(|(_, k)| k.as_str())
            .chain([key.trim()])
            .collect();
        let value = value.trim().trim_matches('"');
        if value.is_empty() {
            path.push((indent, key.trim().to_string()));
        } else {
            settings.insert(format!("{}={value}", full.join(".")));
        }
    }
    settings
}

#[test]
fn a_cache_with_a_login_keeps_every_setting_of_the_image() {
    let Some(env) = real_env("a_cache_with_a_login_keeps_every_setting") else {
        return;
    };
    let prefix = "drt-dur-auth";
    let _cleanup = Cleanup::new(prefix);
    let upstream = Upstream::start(&env, &format!("{prefix}-upstream"), 25600);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &env,
        prefix,
        &upstream.url(),
        &[("quay.io", 25601), ("docker.io", 25602)],
        "",
        "",
    );
    // docker.io logs in; quay.io does not. Same image, same upstream.
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "port = 25602\n",
        "port = 25602\nusername_env = \"DRT_AUTH_USER\"\npassword_env = \"DRT_AUTH_PASSWORD\"\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let state = tempfile::tempdir().unwrap();
    run(drcache(Some(&cfg))
        .env("DRT_AUTH_USER", "someone")
        .env("DRT_AUTH_PASSWORD", "pw-d1e5")
        .env("DRCACHE_STATE_DIR", state.path())
        .arg("start"))
    .expect(0);

    // The image's own config, as a cache without a login reads it.
    let probe = format!("{prefix}-probe");
    podman(&["create", "--name", &probe, &env.image]);
    let image_config = podman(&[
        "cp",
        &format!("{probe}:/etc/docker/registry/config.yml"),
        "-",
    ]);
    podman(&["rm", &probe]);
    let image_config = untar_single_file(&image_config);
    let loaded = read_container_file(
        &format!("{prefix}-docker-io"),
        "/run/secrets/drcache-registry.yml",
    );
    let ours = yaml_settings(&loaded);
    let missing: Vec<String> = yaml_settings(&image_config)
        .into_iter()
        .filter(|s| !ours.contains(s))
        .collect();
    assert!(
        missing.is_empty(),
        "lost from the image's config: {missing:?}\n{loaded}"
    );

    // And both caches behave alike: they pull, and both count in the
    // blob descriptor cache the image's config enables.
    for port in [25601, 25602] {
        skopeo_pull(&format!("127.0.0.1:{port}"), "test/img:1").unwrap();
    }
    let stats = run(drcache(Some(&cfg)).args(["stats", "--json"])).expect(0);
    let report: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
    let caches = report["caches"].as_array().unwrap();
    assert_eq!(caches.len(), 2);
    for cache in caches {
        assert!(
            cache["descriptor_cache"]["requests"].as_u64().unwrap_or(0) > 0,
            "{cache}"
        );
        assert_eq!(cache["blobs"]["misses"], caches[0]["blobs"]["misses"]);
    }
}

/// `podman cp ... -` writes a tar stream: the content of its only file.
fn untar_single_file(tar: &str) -> String {
    let bytes = tar.as_bytes();
    let size_field = std::str::from_utf8(&bytes[124..136]).unwrap();
    let size =
        usize::from_str_radix(size_field.trim_matches(|c| c == '\0' || c == ' '), 8).unwrap();
    String::from_utf8_lossy(&bytes[512..512 + size]).into_owned()
}
