//! `drcache setup-host` against a real firewalld, never the machine's own:
//! `setup_host_against_real_firewalld` re-runs this test binary (the `e2e` crate), limited
//! to the ignored `setup_host_firewalld::inside_firewalld_namespace` test, under
//! scripts/firewalld-ns.sh, which starts firewalld with its own system bus
//! and a scratch /etc/firewalld in a private mount and network namespace.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::support::{run, FakeBin, Run};

/// Set by the outer test for the inner one: the outer network namespace,
/// which the inner test must not be in.
const OUTER_NETNS: &str = "DRCACHE_TEST_OUTER_NETNS";

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn netns() -> String {
    std::fs::read_link("/proc/self/ns/net")
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    })
}

/// Why the namespace cannot be set up here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    if !is_root() {
        return Some("needs root (private namespaces, firewalld)".into());
    }
    let tools = [
        "unshare",
        "ip",
        "dbus-daemon",
        "firewalld",
        "firewall-cmd",
        "firewall-offline-cmd",
    ];
    let missing: Vec<&str> = tools.into_iter().filter(|t| !on_path(t)).collect();
    if !missing.is_empty() {
        return Some(format!(
            "not installed: {} (run scripts/test-env.sh)",
            missing.join(", ")
        ));
    }
    let zone = std::env::var_os("DRCACHE_TEST_LIBVIRT_ZONE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let dir =
                std::env::var_os("DRCACHE_TEST_DIR").unwrap_or("/var/tmp/drcache-test".into());
            PathBuf::from(dir).join("libvirt.xml")
        });
    if std::fs::metadata(&zone).map_or(true, |m| m.len() == 0) {
        return Some(format!(
            "no libvirt zone file at {} (run scripts/test-env.sh)",
            zone.display()
        ));
    }
    None
}

#[test]
fn setup_host_against_real_firewalld() {
    if let Some(reason) = missing_prerequisite() {
        return crate::real::missing("setup_host_against_real_firewalld", &reason);
    }
    let out = Command::new("bash")
        .arg(manifest_dir().join("scripts/firewalld-ns.sh"))
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "setup_host_firewalld::inside_firewalld_namespace",
            "--ignored",
            "--nocapture",
        ])
        .env(OUTER_NETNS, netns())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "inside the namespace:\n{text}");
    assert!(
        text.contains("1 passed"),
        "the inner test did not run:\n{text}"
    );
    // The measurements, visible without --nocapture.
    for line in text.lines().filter(|l| l.starts_with("measured:")) {
        let _ = writeln!(std::io::stderr(), "{line}");
    }
}

/// firewall-cmd (or firewall-offline-cmd): exit status and trimmed stdout.
fn fw(program: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(program).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

fn firewall_cmd(args: &[&str]) -> (i32, String) {
    fw("firewall-cmd", args)
}

fn ports(text: &str) -> BTreeSet<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// drcache as root on Linux, with the real firewall-cmd from PATH.
fn drcache(args: &[&str]) -> Command {
    let mut cmd = crate::support::drcache(None);
    for var in ["DRCACHE_FIREWALL_CMD", "DRCACHE_SUDO", "DRCACHE_TEST_EUID"] {
        cmd.env_remove(var);
    }
    cmd.env("DRCACHE_HOST_OS", "linux").args(args);
    cmd
}

fn timed(args: &[&str]) -> (Run, f64) {
    let started = Instant::now();
    let out = run(&mut drcache(args));
    (out, started.elapsed().as_secs_f64())
}

#[test]
#[ignore = "runs inside scripts/firewalld-ns.sh, started by setup_host_against_real_firewalld"]
fn inside_firewalld_namespace() {
    let outer = std::env::var(OUTER_NETNS).expect("started by setup_host_against_real_firewalld");
    assert_ne!(
        outer,
        netns(),
        "refusing to touch the machine's own firewall"
    );
    assert_eq!(firewall_cmd(&["--state"]), (0, "running".into()));

    // The shipped file, as firewalld itself reads it.
    let shipped = manifest_dir().join("linux/registry-cache.xml");
    let offline = "firewall-offline-cmd";
    let from_file = format!("--new-service-from-file={}", shipped.display());
    assert_eq!(fw(offline, &[&from_file, "--name=offline-check"]).0, 0);
    assert_eq!(
        fw(offline, &["--service=offline-check", "--get-ports"]),
        (0, "5051-5055/tcp".into())
    );
    assert_eq!(
        fw(offline, &["--service=offline-check", "--get-short"]),
        (0, "Registry Cache".into())
    );
    assert_eq!(fw(offline, &["--delete-service=offline-check"]).0, 0);

    // Not set up yet.
    let out = run(&mut drcache(&["setup-host", "--check"])).expect(3);
    assert!(
        out.stderr
            .contains("missing: firewalld has no service registry-cache"),
        "{}",
        out.stderr
    );

    // Set up: service with the default ports, in the zone, at runtime too.
    let (out, first) = timed(&["setup-host"]);
    let out = out.expect(0);
    assert!(
        out.stderr
            .contains("set up: zone libvirt opens 5051-5055/tcp"),
        "{}",
        out.stderr
    );
    let service = ["--permanent", "--service=registry-cache"];
    assert_eq!(
        firewall_cmd(&[&service[..], &["--get-ports"]].concat()),
        (0, "5051-5055/tcp".into())
    );
    assert_eq!(
        firewall_cmd(&[&service[..], &["--get-short"]].concat()),
        (0, "Registry Cache".into())
    );
    assert_eq!(
        firewall_cmd(&["--zone=libvirt", "--query-service=registry-cache"]),
        (0, "yes".into())
    );
    assert_eq!(
        firewall_cmd(&[
            "--permanent",
            "--zone=libvirt",
            "--query-service=registry-cache"
        ]),
        (0, "yes".into())
    );

    // A second run only queries.
    let (out, second) = timed(&["setup-host", "-v"]);
    let out = out.expect(0);
    assert!(out.stderr.contains("already set up"), "{}", out.stderr);
    let calls: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("+ firewall-cmd"))
        .collect();
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert!(
        calls
            .iter()
            .all(|c| !c.contains("--permanent") && !c.contains("--reload")),
        "{calls:?}"
    );
    run(&mut drcache(&["setup-host", "--check"])).expect(0);
    println!(
        "measured: setup-host against real firewalld: {first:.2}s to set up, {second:.2}s for an idempotent run of {} firewall-cmd queries",
        calls.len()
    );

    // Another port set updates the service, here through sudo as a user would.
    let fake = FakeBin::new();
    let sudo = fake.script("sudo", r#"exec "$@""#);
    let config = fake.path().join("config.toml");
    std::fs::write(
        &config,
        "[[registry]]\nname = \"quay.io\"\nport = 5051\n[[registry]]\nname = \"docker.io\"\nport = 5052\n\
         [[registry]]\nname = \"registry.k8s.io\"\nport = 5053\n[[registry]]\nname = \"ghcr.io\"\nport = 5060\n",
    )
    .unwrap();
    let config_arg = config.display().to_string();
    let out = run(drcache(&["setup-host", "--config", &config_arg])
        .env("DRCACHE_TEST_EUID", "1000")
        .env("DRCACHE_SUDO", &sudo))
    .expect(0);
    assert!(
        out.stderr
            .contains("removed port 5051-5055/tcp from service registry-cache"),
        "{}",
        out.stderr
    );
    assert_eq!(
        runtime_ports(),
        ports("5051/tcp 5052/tcp 5053/tcp 5060/tcp")
    );
    assert_eq!(
        ports(&firewall_cmd(&[&service[..], &["--get-ports"]].concat()).1),
        ports("5051/tcp 5052/tcp 5053/tcp 5060/tcp")
    );
    let firewall_cmd_path = which("firewall-cmd");
    assert!(
        fake.calls().contains(&format!(
            "sudo {firewall_cmd_path} --permanent --service=registry-cache --remove-port=5051-5055/tcp"
        )),
        "{:?}",
        fake.calls()
    );
    let out = run(&mut drcache(&["setup-host", "--check"])).expect(3);
    assert!(
        out.stderr.contains("the configuration needs 5051-5055/tcp"),
        "{}",
        out.stderr
    );
    run(&mut drcache(&["setup-host"])).expect(0);
    assert_eq!(
        firewall_cmd(&[&service[..], &["--get-ports"]].concat()),
        (0, "5051-5055/tcp".into())
    );

    // Undo takes it out of every zone, so that reloads keep working.
    assert_eq!(
        firewall_cmd(&[
            "--permanent",
            "--zone=public",
            "--add-service=registry-cache"
        ])
        .0,
        0
    );
    assert_eq!(firewall_cmd(&["--reload"]).0, 0);
    let out = run(&mut drcache(&["setup-host", "--undo"])).expect(0);
    assert!(
        out.stderr
            .contains("removed service registry-cache from zone public"),
        "{}",
        out.stderr
    );
    assert_eq!(firewall_cmd(&["--info-service=registry-cache"]).0, 101);
    assert_eq!(
        firewall_cmd(&["--permanent", "--info-service=registry-cache"]).0,
        101
    );
    assert_eq!(firewall_cmd(&["--reload"]).0, 0);
    run(&mut drcache(&["setup-host", "--check"])).expect(3);
    let out = run(&mut drcache(&["setup-host", "--undo"])).expect(0);
    assert!(out.stderr.contains("nothing to undo"), "{}", out.stderr);

    // Bad input.
    let out = run(&mut drcache(&["setup-host", "--zone", "libvrt"])).expect(2);
    assert!(
        out.stderr.contains("its zones: block, dmz, drop"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("libvirt"));

    // A service of the same name that drcache did not write stays as it is.
    for args in [
        &["--permanent", "--new-service=registry-cache"][..],
        &[
            "--permanent",
            "--service=registry-cache",
            "--add-port=5051/udp",
        ],
        &["--reload"],
    ] {
        assert_eq!(firewall_cmd(args).0, 0, "{args:?}");
    }
    let out = run(&mut drcache(&["setup-host"])).expect(1);
    assert!(
        out.stderr
            .contains("that drcache did not write (port 5051/udp)"),
        "{}",
        out.stderr
    );
    run(&mut drcache(&["setup-host", "--undo"])).expect(1);
    assert_eq!(
        firewall_cmd(&[&service[..], &["--get-ports"]].concat()),
        (0, "5051/udp".into())
    );
}

/// The ports of the service in the running firewalld.
fn runtime_ports() -> BTreeSet<String> {
    let info = firewall_cmd(&["--info-service=registry-cache"]).1;
    let line = info.lines().find_map(|l| l.trim().strip_prefix("ports:"));
    ports(line.unwrap_or_default())
}

fn which(tool: &str) -> String {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap()
        .display()
        .to_string()
}
