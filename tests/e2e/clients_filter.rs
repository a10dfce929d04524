//! Only the configured clients reach a cache, decided by the kernel: two
//! network namespaces of this test, `drsec-a` behind a bridge named like
//! libvirt's (`virbr97`, allowed by the default `clients`, 203.0.113.0/24)
//! and `drsec-b` on a plain veth (not allowed, 198.51.100.0/24): ranges
//! reserved for documentation, checked unused on this host first. From
//! both the cache answers; after `setup-host` only from the first; after `setup-host --undo` from both again. Everything made here is
//! removed on drop, also when the test fails.

use std::process::Command;

use crate::real::{real_env, write_config, Cleanup, Upstream};
use crate::support::{drcache, run};

const PREFIX: &str = "drtsec-net";
const PORT: u16 = 22120;
const BRIDGE: &str = "virbr97";

fn sh(args: &[&str]) -> std::process::Output {
    Command::new(args[0]).args(&args[1..]).output().unwrap()
}

fn must(args: &[&str]) {
    let out = sh(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespaces, links and the bridge; and drcache's nft table.
struct Net;

impl Net {
    fn create() -> Net {
        // The documentation ranges must be free here: some machines use
        // one for their own network (a machine's own network may be 192.0.2.0/24).
        let routes = String::from_utf8_lossy(&sh(&["ip", "route", "show", "table", "all"]).stdout)
            .into_owned();
        for range in ["203.0.113.", "198.51.100."] {
            assert!(
                !routes.contains(range),
                "{range}0/24 is in use on this host; the test needs it for its own veths:\n{routes}"
            );
        }
        let net = Net;
        net.remove();
        must(&["ip", "link", "add", BRIDGE, "type", "bridge"]);
        must(&["ip", "addr", "add", "203.0.113.1/24", "dev", BRIDGE]);
        must(&["ip", "link", "set", BRIDGE, "up"]);
        for (ns, host_side, ns_side) in [
            ("drsec-a", "drsec-a1", "drsec-a0"),
            ("drsec-b", "drsec-b1", "drsec-b0"),
        ] {
            must(&["ip", "netns", "add", ns]);
            must(&[
                "ip", "link", "add", host_side, "type", "veth", "peer", "name", ns_side,
            ]);
            must(&["ip", "link", "set", ns_side, "netns", ns]);
            must(&["ip", "link", "set", host_side, "up"]);
            must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            must(&["ip", "-n", ns, "link", "set", ns_side, "up"]);
        }
        must(&["ip", "link", "set", "drsec-a1", "master", BRIDGE]);
        must(&[
            "ip",
            "-n",
            "drsec-a",
            "addr",
            "add",
            "203.0.113.2/24",
            "dev",
            "drsec-a0",
        ]);
        must(&["ip", "addr", "add", "198.51.100.1/24", "dev", "drsec-b1"]);
        must(&[
            "ip",
            "-n",
            "drsec-b",
            "addr",
            "add",
            "198.51.100.2/24",
            "dev",
            "drsec-b0",
        ]);
        net
    }

    fn remove(&self) {
        for ns in ["drsec-a", "drsec-b"] {
            let _ = sh(&["ip", "netns", "del", ns]);
        }
        for link in ["drsec-a1", "drsec-b1", BRIDGE] {
            let _ = sh(&["ip", "link", "del", link]);
        }
        let _ = sh(&["nft", "delete", "table", "inet", "drcache"]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Whether `GET /v2/` at `addr` answers from inside `ns`.
fn answers_from(ns: &str, addr: &str) -> bool {
    let out = sh(&[
        "ip",
        "netns",
        "exec",
        ns,
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "3",
        &format!("http://{addr}:{PORT}/v2/"),
    ]);
    String::from_utf8_lossy(&out.stdout) == "200"
}

#[test]
fn only_the_configured_clients_reach_the_cache_once_setup_host_ran() {
    let Some(env) = real_env("only_the_configured_clients_reach_the_cache_once_setup_host_ran")
    else {
        return;
    };
    if !crate::real::root_available(
        "only_the_configured_clients_reach_the_cache_once_setup_host_ran",
        "network namespaces and an nftables table",
    ) {
        return;
    }
    for tool in ["nft", "ip", "curl"] {
        if sh(&["sh", "-c", &format!("command -v {tool}")])
            .stdout
            .is_empty()
        {
            crate::real::missing(
                "only_the_configured_clients_reach_the_cache_once_setup_host_ran",
                tool,
            );
            return;
        }
    }
    let _cleanup = Cleanup::new(PREFIX);
    let _net = Net::create();
    let upstream = Upstream::start(&env, &format!("{PREFIX}-upstream"), PORT + 1);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &env,
        PREFIX,
        &upstream.url(),
        &[("quay.io", PORT)],
        "",
        "",
    );
    let state = tempfile::tempdir().unwrap();
    let drc = |args: &[&str]| {
        let mut cmd = drcache(Some(&cfg));
        for var in [
            "DRCACHE_FIREWALL_CMD",
            "DRCACHE_SUDO",
            "DRCACHE_TEST_EUID",
            "DRCACHE_TEST_ROOT",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("DRCACHE_HOST_OS", "linux")
            .env("DRCACHE_STATE_DIR", state.path())
            .args(args);
        run(&mut cmd)
    };
    drc(&["start"]).expect(0);
    assert!(
        answers_from("drsec-a", "203.0.113.1"),
        "before: through the bridge"
    );
    assert!(
        answers_from("drsec-b", "198.51.100.1"),
        "before: on the plain veth"
    );
    drc(&["setup-host", "--check"]).expect(3);

    let started = std::time::Instant::now();
    let out = drc(&["-v", "setup-host"]).expect(0);
    let setup_s = started.elapsed().as_secs_f64();
    assert!(out.stderr.contains("nft: /usr/sbin/nft"), "{}", out.stderr);
    assert!(
        out.stderr.contains("(nftables table inet drcache)"),
        "{}",
        out.stderr
    );
    assert!(
        answers_from("drsec-a", "203.0.113.1"),
        "after: the bridge is a client"
    );
    assert!(
        !answers_from("drsec-b", "198.51.100.1"),
        "after: the veth is not"
    );
    // From this host itself it still answers (loopback).
    assert_eq!(
        crate::real::http_status(&format!("http://127.0.0.1:{PORT}/v2/")),
        Some(200)
    );
    let out = drc(&["setup-host", "--check"]).expect(0);
    assert!(
        out.stderr.contains("client filter in place"),
        "{}",
        out.stderr
    );
    let out = drc(&["setup-host"]).expect(0);
    assert!(
        !out.stderr.contains("let only"),
        "idempotent: {}",
        out.stderr
    );

    // Another client list: the table is replaced, and the veth's network gets in.
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text = text.replacen(
        "prefix =",
        "clients = [\"lo\", \"198.51.100.0/24\"]\nprefix =",
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    drc(&["setup-host", "--check"]).expect(3);
    drc(&["setup-host"]).expect(0);
    assert!(
        answers_from("drsec-b", "198.51.100.1"),
        "the network is a client now"
    );
    assert!(
        !answers_from("drsec-a", "203.0.113.1"),
        "the bridge is not any more"
    );

    let out = drc(&["setup-host", "--undo"]).expect(0);
    assert!(
        out.stderr.contains("deleted nftables table inet drcache"),
        "{}",
        out.stderr
    );
    assert!(answers_from("drsec-a", "203.0.113.1"), "undone: the bridge");
    assert!(answers_from("drsec-b", "198.51.100.1"), "undone: the veth");
    assert!(!sh(&["nft", "list", "table", "inet", "drcache"])
        .status
        .success());
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "measured: setup-host with the nft filter {setup_s:.2}s"
    );
}
