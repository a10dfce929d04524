//! `prune` with fake executables: flag errors, the refusal without a keep
//! criterion, and nodes that cannot be read, all before any cache is touched.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::fake::*;
use crate::support::*;
use crate::with_fake;

/// A podman that lists no containers and no volumes.
fn podman(fake: &FakeBin) -> PathBuf {
    FakeTool::new("podman")
        .on(&PS, Reply::stdout("[]"))
        .on(&VOLUME_LS, Reply::stdout("[]"))
        .install(fake)
}

const PROFILE_LIST: [&str; 5] = ["profile", "list", "-o", "json", "-l"];

/// A minikube without profiles.
fn no_profiles(fake: &FakeBin) -> PathBuf {
    FakeTool::new("minikube")
        .on(&PROFILE_LIST, Reply::stdout(r#"{"invalid":[],"valid":[]}"#))
        .install(fake)
}

/// A containerd profile `c1` with one running node whose
/// `minikube ssh ... sudo crictl images -o json` answers `crictl`.
fn one_node_minikube(fake: &FakeBin, crictl: Reply) -> PathBuf {
    FakeTool::new("minikube")
        .on(
            &PROFILE_LIST,
            Reply::stdout(r#"{"invalid":[],"valid":[{"Name":"c1","Status":"Skipped","Config":{"Name":"c1","Driver":"kvm2","KubernetesConfig":{"ContainerRuntime":"containerd"},"Nodes":[{"Name":"","ControlPlane":true,"Worker":true}]}}]}"#),
        )
        .on(
            &["status", "-p", "c1", "-o", "json"],
            Reply::stdout(r#"{"Name":"c1","Host":"Running","Kubelet":"Running","APIServer":"Running","Kubeconfig":"Configured","Worker":false}"#),
        )
        .on(
            &["ssh", "-p", "c1", "-n", "c1", "--", "sudo crictl images -o json"],
            crictl,
        )
        .install(fake)
}

fn prune(fake: &FakeBin, minikube: &std::path::Path, args: &[&str]) -> Run {
    let podman = podman(fake);
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
        let out = prune(&fake, &no_profiles(&fake), args).expect(2);
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
    let out = prune(&fake, &no_profiles(&fake), &[]).expect(2);
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
    prune(
        &fake,
        &no_profiles(&fake),
        &["--keep-file", list.to_str().unwrap()],
    )
    .expect(2);
}

#[test]
fn minikube_set_to_nothing_is_a_missing_tool() {
    let fake = FakeBin::new();
    let podman = podman(&fake);
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
        &one_node_minikube(&fake, Reply::script("sleep 30")),
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
        &one_node_minikube(&fake, Reply::stdout("sudo: crictl: command not found\n")),
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
        &one_node_minikube(&fake, Reply::fail(1, "")),
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
    let crictl = Reply::stdout(fixture_text("minikube/crictl-images.json"));
    let out = prune(
        &fake,
        &one_node_minikube(&fake, crictl),
        &["--json", "docker.io"],
    )
    .expect(0);
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
