//! `prune` with fake executables: flag errors, the refusal without a keep
//! criterion, and nodes that cannot be read, all before any cache is touched.

mod common;

use std::time::{Duration, Instant};

use common::*;

const EMPTY_LISTS: &str = r#"
case "$1 $2" in
  "ps --all") echo '[]' ;;
  "volume ls") echo '[]' ;;
  *) echo "unexpected call: $*" >&2; exit 99 ;;
esac"#;

const NO_PROFILES: &str = r#"echo '{"invalid":[],"valid":[]}'"#;

/// A containerd profile `c1` with one running node whose `minikube ssh` runs `ssh_body`.
fn one_node_minikube(ssh_body: &str) -> String {
    format!(
        r#"case "$1" in
profile) echo '{{"invalid":[],"valid":[{{"Name":"c1","Status":"Skipped","Config":{{"Name":"c1","Driver":"kvm2","KubernetesConfig":{{"ContainerRuntime":"containerd"}},"Nodes":[{{"Name":"","ControlPlane":true,"Worker":true}}]}}}}]}}' ;;
status) echo '{{"Name":"c1","Host":"Running","Kubelet":"Running","APIServer":"Running","Kubeconfig":"Configured","Worker":false}}' ;;
ssh) {ssh_body} ;;
esac"#
    )
}

fn prune(fake: &FakeBin, minikube: &str, args: &[&str]) -> Run {
    let podman = fake.script("podman", EMPTY_LISTS);
    let minikube = fake.script("minikube", minikube);
    run(with_fake(fake, &podman)
        .env("DRCACHE_MINIKUBE", minikube)
        .arg("prune")
        .args(args))
}

fn podman_calls(fake: &FakeBin) -> Vec<String> {
    fake.calls()
        .into_iter()
        .filter(|c| c.starts_with("podman "))
        .collect()
}

#[test]
fn flag_errors_are_usage_errors_and_touch_nothing() {
    for (args, message) in [
        (&["--unused-for", "30"][..], "is not a duration like 30d"),
        (&["--unused-for", "1y"][..], "is not a duration like 30d"),
        (&["--keep", "Not A Ref"][..], "invalid image reference"),
        (
            &["nosuch.io", "--keep", "nginx"][..],
            "unknown registry \"nosuch.io\"",
        ),
        (
            &["--keep-file", "/nonexistent/drtprune-list"][..],
            "cannot read the keep file",
        ),
    ] {
        let fake = FakeBin::new();
        let out = prune(&fake, NO_PROFILES, args).expect(2);
        assert!(out.stderr.contains(message), "{args:?}: {}", out.stderr);
        assert!(
            podman_calls(&fake).is_empty(),
            "{args:?}: {:?}",
            fake.calls()
        );
    }
}

#[test]
fn without_a_keep_criterion_nothing_is_removed_and_the_ways_are_named() {
    let fake = FakeBin::new();
    let out = prune(&fake, NO_PROFILES, &[]).expect(2);
    for way in [
        "--keep",
        "--keep-file",
        "--unused-for",
        "minikube",
        "clean --volumes",
    ] {
        assert!(out.stderr.contains(way), "{way}: {}", out.stderr);
    }
    assert!(out.stderr.contains("nothing was removed"), "{}", out.stderr);
    assert!(podman_calls(&fake).is_empty(), "{:?}", fake.calls());
    // A keep file holding only comments names nothing either.
    let list = fake.path().join("keep.txt");
    std::fs::write(&list, "# nothing yet\n\n").unwrap();
    prune(&fake, NO_PROFILES, &["--keep-file", list.to_str().unwrap()]).expect(2);
}

#[test]
fn minikube_set_to_nothing_is_a_missing_tool() {
    let fake = FakeBin::new();
    let podman = fake.script("podman", EMPTY_LISTS);
    let out = run(with_fake(&fake, &podman)
        .env("DRCACHE_MINIKUBE", "/nonexistent/minikube")
        .args(["prune", "--keep", "nginx"]))
    .expect(4);
    assert!(out.stderr.contains("DRCACHE_MINIKUBE"), "{}", out.stderr);
}

#[test]
fn a_node_that_hangs_or_fails_stops_the_prune_before_any_cache_is_touched() {
    let fake = FakeBin::new();
    let started = Instant::now();
    let out = prune(
        &fake,
        &one_node_minikube("sleep 30"),
        &["--command-timeout", "1", "--keep", "nginx"],
    )
    .expect(1);
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(
        out.stderr
            .contains("c1/c1: `minikube ssh -p c1 -n c1` failed (timed out after 1 s"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--ignore-clusters"), "{}", out.stderr);
    assert!(podman_calls(&fake).is_empty(), "{:?}", fake.calls());

    // Output that is not crictl's JSON is just as unreadable.
    let fake = FakeBin::new();
    let out = prune(
        &fake,
        &one_node_minikube("echo 'sudo: crictl: command not found'"),
        &["--keep", "nginx"],
    )
    .expect(1);
    assert!(
        out.stderr
            .contains("no JSON in the output of `crictl images -o json`"),
        "{}",
        out.stderr
    );
    assert!(podman_calls(&fake).is_empty(), "{:?}", fake.calls());

    // --ignore-clusters goes on, saying what it ignored; no cache exists here.
    let fake = FakeBin::new();
    let out = prune(
        &fake,
        &one_node_minikube("exit 1"),
        &["--ignore-clusters", "--keep", "nginx"],
    )
    .expect(0);
    assert!(
        out.stderr.contains("ignored (--ignore-clusters): c1/c1"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("skipped: no cache container"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_readable_node_alone_is_a_keep_criterion() {
    let fake = FakeBin::new();
    let crictl = format!(
        "cat '{}/tests/fixtures/minikube/crictl-images.json'",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = prune(&fake, &one_node_minikube(&crictl), &["--json", "docker.io"]).expect(0);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["nodes"][0]["machine"], "c1");
    assert_eq!(
        report["nodes"][0]["images"], 10,
        "5 images, a name and a digest each"
    );
    assert_eq!(
        report["caches"][0]["skipped"],
        "no cache container: run `drcache start` first"
    );
    let ssh: Vec<String> = fake
        .calls()
        .into_iter()
        .filter(|c| c.contains(" ssh "))
        .collect();
    assert_eq!(
        ssh,
        ["minikube ssh -p c1 -n c1 -- sudo crictl images -o json"]
    );
}
