//! `drcache setup-host` on Linux against a fake `firewall-cmd` and `sudo`
//! that log their calls: the exact commands, privilege, failures. The real
//! firewalld is exercised in tests/setup_host_firewalld.rs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fake::{Arg, FakeTool, Reply};
use crate::support::{run, FakeBin, Run};

/// A firewalld in files: `perm-*` is the permanent configuration, `live-*`
/// the runtime one, copied over by --reload. Changes need root (FAKE_ROOT=1,
/// set by the fake sudo); a user gets firewalld's NOT_AUTHORIZED.
fn firewall_cmd(d: &Path) -> FakeTool {
    let d = d.display();
    let root = |body: &str| {
        Reply::script(format!(
            "[ \"$FAKE_ROOT\" = 1 ] || {{ echo \"Authorization failed.\" >&2; exit 253; }}\n{body}"
        ))
    };
    FakeTool::new("firewall-cmd")
        .on(&["--state"], Reply::stdout("running\n"))
        .on(&["--get-zones"], Reply::stdout("block libvirt public\n"))
        .on(
            &["--info-service=registry-cache"],
            Reply::script(format!(
                "[ -f '{d}/live-ports' ] || {{ echo \"Error: INVALID_SERVICE: registry-cache\" >&2; exit 101; }}\n\
                 printf 'registry-cache\\n  ports: %s\\n  protocols: \\n  source-ports: \\n' \"$(cat '{d}/live-ports')\""
            )),
        )
        .on(
            &["--zone=libvirt", "--query-service=registry-cache"],
            Reply::script(format!(
                "if [ -f '{d}/live-zone' ]; then echo yes; else echo no; exit 1; fi"
            )),
        )
        .on(
            &["--permanent", "--list-all-zones"],
            root(&format!(
                "printf 'block\\n  services: \\nlibvirt\\n  services: dns%s\\n' \"$([ -f '{d}/perm-zone' ] && echo ' registry-cache')\""
            )),
        )
        .on(
            &[
                Arg::from("--permanent"),
                Arg::glob("--new-service-from-file=*.xml"),
                Arg::from("--name=registry-cache"),
            ],
            root(&format!(
                "file=${{2#--new-service-from-file=}}\ncp \"$file\" '{d}/service.xml'\n\
                 sed -n 's/.*port=\"\\([^\"]*\\)\".*/\\1\\/tcp/p' \"$file\" > '{d}/perm-ports'\necho success"
            )),
        )
        .on(
            &["--permanent", "--zone=libvirt", "--add-service=registry-cache"],
            root(&format!("touch '{d}/perm-zone'; echo success")),
        )
        .on(
            &["--permanent", "--zone=libvirt", "--remove-service=registry-cache"],
            root(&format!("rm -f '{d}/perm-zone'; echo success")),
        )
        .on(
            &["--permanent", "--delete-service=registry-cache"],
            root(&format!("rm -f '{d}/perm-ports'; echo success")),
        )
        .on(
            &["--reload"],
            root(&format!(
                "rm -f '{d}/live-ports' '{d}/live-zone'\n\
                 if [ -f '{d}/perm-ports' ]; then cp '{d}/perm-ports' '{d}/live-ports'; fi\n\
                 if [ -f '{d}/perm-zone' ]; then cp '{d}/perm-zone' '{d}/live-zone'; fi\n\
                 echo success"
            )),
        )
}

/// sudo running the fake firewall-cmd (`fw`) as root.
fn sudo(fw: &Path) -> FakeTool {
    FakeTool::new("sudo").on_prefix(&[fw.display().to_string()], Reply::script(SUDO))
}

const SUDO: &str = r#"FAKE_ROOT=1 exec "$@""#;

struct Host {
    fake: FakeBin,
    firewall_cmd: PathBuf,
}

impl Host {
    fn new() -> Self {
        let fake = FakeBin::new();
        let firewall_cmd = firewall_cmd(fake.path()).install(&fake);
        sudo(&firewall_cmd).install(&fake);
        Host { fake, firewall_cmd }
    }

    /// Both configurations hold the service with `ports`, in the zone or not.
    fn set_up_as(&self, ports: &str, in_zone: bool) {
        for side in ["perm", "live"] {
            fs::write(self.fake.path().join(format!("{side}-ports")), ports).unwrap();
            if in_zone {
                fs::write(self.fake.path().join(format!("{side}-zone")), "").unwrap();
            }
        }
    }

    /// drcache as a user who is not root, on Linux, with the fakes.
    fn drcache(&self, args: &[&str]) -> Command {
        let mut cmd = crate::support::drcache(None);
        cmd.env_remove("FAKE_ROOT")
            .args(args)
            .env("DRCACHE_HOST_OS", "linux")
            .env("DRCACHE_TEST_EUID", "1000")
            .env("DRCACHE_FIREWALL_CMD", &self.firewall_cmd)
            .env("DRCACHE_SUDO", self.fake.path().join("sudo"))
            // No nft in the (empty) system directories: the firewalld part
            // alone. The nftables filter is tested for real in tests/e2e.
            .env("DRCACHE_TEST_ROOT", self.fake.path().join("no-system-dirs"));
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        run(&mut self.drcache(args))
    }

    /// The calls, with the temporary service file's name replaced by FILE.
    fn calls(&self) -> Vec<String> {
        self.fake
            .calls()
            .into_iter()
            .map(|call| {
                call.split(' ')
                    .map(|arg| match arg.strip_prefix("--new-service-from-file=") {
                        Some(_) => "--new-service-from-file=FILE",
                        None => arg,
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    fn fw(&self) -> String {
        self.firewall_cmd.display().to_string()
    }
}

const QUERIES_WHEN_SET_UP: [&str; 4] = [
    "firewall-cmd --state",
    "firewall-cmd --get-zones",
    "firewall-cmd --info-service=registry-cache",
    "firewall-cmd --zone=libvirt --query-service=registry-cache",
];

#[test]
fn user_setup_runs_changes_through_sudo_then_a_second_run_only_queries() {
    let host = Host::new();
    let out = host.run(&["setup-host"]).expect(0);
    let fw = host.fw();
    assert_eq!(
        host.calls(),
        [
            "firewall-cmd --state".to_string(),
            "firewall-cmd --get-zones".into(),
            "firewall-cmd --info-service=registry-cache".into(),
            format!("sudo {fw} --permanent --new-service-from-file=FILE --name=registry-cache"),
            "firewall-cmd --permanent --new-service-from-file=FILE --name=registry-cache".into(),
            format!("sudo {fw} --permanent --zone=libvirt --add-service=registry-cache"),
            "firewall-cmd --permanent --zone=libvirt --add-service=registry-cache".into(),
            format!("sudo {fw} --reload"),
            "firewall-cmd --reload".into(),
            "firewall-cmd --info-service=registry-cache".into(),
            "firewall-cmd --zone=libvirt --query-service=registry-cache".into(),
        ]
    );
    // The file firewall-cmd read is the shipped one, and is gone now.
    assert_eq!(
        fs::read_to_string(host.fake.path().join("service.xml")).unwrap(),
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("linux/registry-cache.xml"))
            .unwrap()
    );
    let file = host.fake.calls()[3].split(' ').nth(3).unwrap().to_string();
    let file = file.trim_start_matches("--new-service-from-file=");
    assert!(
        file.ends_with(".xml") && !Path::new(file).exists(),
        "{file}"
    );
    for line in [
        "created service registry-cache (5051-5055/tcp)",
        "added service registry-cache to zone libvirt",
        "reloaded firewalld",
        "set up: zone libvirt opens 5051-5055/tcp to the caches",
    ] {
        assert!(out.stderr.contains(line), "{line:?} in\n{}", out.stderr);
    }
    assert!(
        !out.stderr.contains("success"),
        "firewall-cmd's output stays captured"
    );

    host.fake.clear_calls();
    let out = host.run(&["setup-host"]).expect(0);
    assert!(out.stderr.contains("already set up"), "{}", out.stderr);
    assert_eq!(host.calls(), QUERIES_WHEN_SET_UP);
}

#[test]
fn json_report_on_stdout() {
    let host = Host::new();
    host.set_up_as("5051-5055/tcp", true);
    let out = host.run(&["setup-host", "--json"]).expect(0);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["state"], "done");
    assert_eq!(report["facts"]["zone"], "libvirt");
    assert_eq!(report["facts"]["ports"], "5051-5055/tcp");
}

#[test]
fn changed_ports_are_updated_in_place() {
    let host = Host::new();
    host.set_up_as("5051-5054/tcp", true);
    // The fake takes ports only from a new service file, so check the calls.
    let out = host.run(&["setup-host", "--dry-run"]).expect(0);
    let fw = host.fw();
    assert!(
        out.stderr.contains(&format!(
            "would run: sudo {fw} --permanent --service=registry-cache --remove-port=5051-5054/tcp"
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(&format!(
        "would run: sudo {fw} --permanent --service=registry-cache --add-port=5051-5055/tcp"
    )));
    assert!(out
        .stderr
        .contains(&format!("would run: sudo {fw} --reload")));
    assert!(!out.stderr.contains("--add-service"), "already in the zone");
}

#[test]
fn dry_run_prints_privileged_commands_and_runs_only_queries() {
    let host = Host::new();
    let out = host.run(&["setup-host", "--dry-run"]).expect(0);
    let fw = host.fw();
    for line in [
        format!("would run: sudo {fw} --permanent --new-service-from-file="),
        format!("would run: sudo {fw} --permanent --zone=libvirt --add-service=registry-cache"),
        format!("would run: sudo {fw} --reload"),
        "<port protocol=\"tcp\" port=\"5051-5055\"/>".to_string(),
        "dry run: nothing was changed".to_string(),
    ] {
        assert!(out.stderr.contains(&line), "{line:?} in\n{}", out.stderr);
    }
    assert_eq!(
        host.calls(),
        [
            "firewall-cmd --state",
            "firewall-cmd --get-zones",
            "firewall-cmd --info-service=registry-cache",
        ]
    );
}

#[test]
fn check_says_what_is_missing_and_changes_nothing() {
    let host = Host::new();
    let out = host.run(&["setup-host", "--check"]).expect(3);
    assert!(
        out.stderr
            .contains("missing: firewalld has no service registry-cache"),
        "{}",
        out.stderr
    );
    assert!(out
        .stderr
        .contains("missing: service registry-cache is not in zone libvirt"));
    assert!(out
        .stderr
        .contains("error: the host is not set up for the caches: run `drcache setup-host`"));

    host.set_up_as("5051-5053/tcp", true);
    let out = host.run(&["setup-host", "--check"]).expect(3);
    assert!(
        out.stderr.contains(
            "missing: service registry-cache opens 5051-5053/tcp, the configuration needs 5051-5055/tcp"
        ),
        "{}",
        out.stderr
    );
    host.set_up_as("5051-5055/tcp", true);
    host.run(&["setup-host", "--check"]).expect(0);
    assert!(
        host.calls().iter().all(|c| !c.starts_with("sudo")),
        "{:?}",
        host.calls()
    );
}

#[test]
fn undo_takes_the_service_out_of_every_zone_before_deleting_it() {
    let host = Host::new();
    host.set_up_as("5051-5055/tcp", true);
    let out = host.run(&["setup-host", "--undo"]).expect(0);
    let fw = host.fw();
    assert_eq!(
        host.calls(),
        [
            "firewall-cmd --state".to_string(),
            "firewall-cmd --info-service=registry-cache".into(),
            format!("sudo {fw} --permanent --list-all-zones"),
            "firewall-cmd --permanent --list-all-zones".into(),
            format!("sudo {fw} --permanent --zone=libvirt --remove-service=registry-cache"),
            "firewall-cmd --permanent --zone=libvirt --remove-service=registry-cache".into(),
            format!("sudo {fw} --permanent --delete-service=registry-cache"),
            "firewall-cmd --permanent --delete-service=registry-cache".into(),
            format!("sudo {fw} --reload"),
            "firewall-cmd --reload".into(),
            "firewall-cmd --info-service=registry-cache".into(),
        ]
    );
    assert!(out
        .stderr
        .contains("undone: firewalld has no service registry-cache"));
    host.fake.clear_calls();
    let out = host.run(&["setup-host", "--undo"]).expect(0);
    assert!(out.stderr.contains("nothing to undo"), "{}", out.stderr);
    assert_eq!(host.calls().len(), 2);
}

#[test]
fn sudo_refused_midway_says_what_was_changed() {
    let host = Host::new();
    // sudo lets the first command through, then refuses.
    FakeTool::new("sudo")
        .on_prefix(&[host.fw()], Reply::script(SUDO).times(1))
        .on_prefix(
            &[host.fw()],
            Reply::fail(1, "sudo: a password is required\n"),
        )
        .install(&host.fake);
    let out = host.run(&["setup-host"]).expect(1);
    assert!(
        out.stderr.contains(
            "error: could not add service registry-cache to zone libvirt, after these changes: \
             created service registry-cache (5051-5055/tcp). Fix the cause and run `drcache \
             setup-host` again, or `drcache setup-host --undo` to remove them"
        ),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("sudo: a password is required"));
    assert!(out
        .stderr
        .contains("hint: drcache needs root for this change"));
    assert!(!host.calls().iter().any(|c| c.contains("--reload")));
}

#[test]
fn missing_sudo_stops_before_any_change() {
    let host = Host::new();
    let out = run(host
        .drcache(&["setup-host"])
        .env("DRCACHE_SUDO", "/nonexistent/sudo"))
    .expect(4);
    assert!(
        out.stderr
            .contains("changing the firewall needs root, and sudo cannot be used"),
        "{}",
        out.stderr
    );
    assert!(out
        .stderr
        .contains("hint: run `drcache setup-host` as root"));
    assert_eq!(host.calls().len(), 3, "queries only: {:?}", host.calls());
}

#[test]
fn a_foreign_service_of_the_same_name_is_left_alone() {
    let host = Host::new();
    host.set_up_as("5051/udp", true);
    for args in [&["setup-host"][..], &["setup-host", "--undo"]] {
        let out = host.run(args).expect(1);
        assert!(
            out.stderr.contains(
                "error: firewalld already has a service named registry-cache that drcache did not write (port 5051/udp)"
            ),
            "{}",
            out.stderr
        );
        assert!(out
            .stderr
            .contains("hint: see it with `firewall-cmd --info-service=registry-cache`"));
    }
    assert!(
        host.calls().iter().all(|c| !c.starts_with("sudo")),
        "{:?}",
        host.calls()
    );
}

#[test]
fn unknown_zone_lists_the_zones() {
    let host = Host::new();
    let out = host.run(&["setup-host", "--zone", "libvrt"]).expect(2);
    assert!(
        out.stderr
            .contains("error: firewalld has no zone \"libvrt\"; its zones: block, libvirt, public"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: name the zone"));
}

#[test]
fn firewalld_not_running_or_not_installed_needs_no_rule() {
    let host = Host::new();
    for (status, message) in [
        (252, "firewalld is not running: no firewall rule is needed"),
        (36, "firewalld is not running (there is no system D-Bus)"),
    ] {
        let state = FakeTool::new("firewall-cmd-stopped")
            .on(&["--state"], Reply::fail(status, "not running\n"))
            .install(&host.fake);
        for args in [
            &["setup-host"][..],
            &["setup-host", "--check"],
            &["setup-host", "--undo"],
        ] {
            let out = run(host.drcache(args).env("DRCACHE_FIREWALL_CMD", &state)).expect(0);
            assert!(out.stderr.contains(message), "{}", out.stderr);
        }
    }
    assert!(host
        .calls()
        .iter()
        .all(|c| c == "firewall-cmd-stopped --state"));

    // Not installed: no override and nothing in the system directories
    // (under an empty test root), whatever PATH holds.
    let out = run(host
        .drcache(&["setup-host", "--check"])
        .env_remove("DRCACHE_FIREWALL_CMD")
        .env("DRCACHE_TEST_ROOT", host.fake.path().join("empty"))
        .env("PATH", host.fake.path()))
    .expect(0);
    assert!(
        out.stderr.contains(
            "firewalld is not installed (no firewall-cmd in the system directories): \
             no firewall rule is needed"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn firewall_cmd_override_that_points_nowhere_is_an_error() {
    let host = Host::new();
    let out = run(host
        .drcache(&["setup-host"])
        .env("DRCACHE_FIREWALL_CMD", "/nonexistent/firewall-cmd"))
    .expect(4);
    assert!(
        out.stderr
            .contains("DRCACHE_FIREWALL_CMD is set to /nonexistent/firewall-cmd"),
        "{}",
        out.stderr
    );
}

#[test]
fn firewalld_that_failed_is_an_error_with_a_hint() {
    let host = Host::new();
    let state = FakeTool::new("firewall-cmd-failed")
        .on(&["--state"], Reply::stdout("failed\n").code(251))
        .install(&host.fake);
    let out = run(host
        .drcache(&["setup-host"])
        .env("DRCACHE_FIREWALL_CMD", &state))
    .expect(1);
    assert!(
        out.stderr
            .contains("firewalld is running but failed to load its configuration"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: see firewalld's log"));
}

/// The nftables filter as a user: every nft call through sudo, the ruleset
/// on nft's stdin, `--check` never asking for a password.
#[test]
fn the_clients_filter_goes_through_sudo_and_nft_reads_the_ruleset_on_stdin() {
    let fake = FakeBin::new();
    let d = fake.path().display().to_string();
    let root_only = |body: String| {
        Reply::script(format!(
            "[ \"$FAKE_ROOT\" = 1 ] || {{ echo 'Error: Operation not permitted' >&2; exit 1; }}\n{body}"
        ))
    };
    let nft = FakeTool::new("nft")
        .on(
            &["list", "table", "inet", "drcache"],
            root_only(format!(
                "[ -f '{d}/table' ] || {{ echo 'Error: No such file or directory' >&2; exit 1; }}\ncat '{d}/table'"
            )),
        )
        .on(
            &["-f", "-"],
            root_only(format!("cat > '{d}/table'")),
        )
        .on(
            &["delete", "table", "inet", "drcache"],
            root_only(format!("rm '{d}/table'")),
        )
        .install(&fake);
    let stopped = FakeTool::new("firewall-cmd")
        .on(&["--state"], Reply::fail(252, "not running\n"))
        .install(&fake);
    FakeTool::new("sudo")
        .on_prefix(&[nft.display().to_string()], Reply::script(SUDO))
        .install(&fake);
    let config = fake.path().join("config.toml");
    fs::write(
        &config,
        "clients = [\"lo\", \"virbr*\", \"198.51.100.0/24\"]\n\
         [[registry]]\nname = \"quay.io\"\nport = 5051\n[[registry]]\nname = \"ghcr.io\"\nport = 5054\n",
    )
    .unwrap();
    let drc = |args: &[&str], euid: &str| {
        let mut cmd = crate::support::drcache(Some(&config));
        cmd.env_remove("FAKE_ROOT")
            .args(args)
            .env("DRCACHE_HOST_OS", "linux")
            .env("DRCACHE_TEST_EUID", euid)
            .env("DRCACHE_FIREWALL_CMD", &stopped)
            .env("DRCACHE_NFT", &nft)
            .env("DRCACHE_SUDO", fake.path().join("sudo"));
        if euid == "0" {
            cmd.env("FAKE_ROOT", "1");
        }
        run(&mut cmd)
    };

    // A user's --check cannot list the table and does not ask sudo.
    let out = drc(&["setup-host", "--check"], "1000").expect(3);
    assert!(
        out.stderr.contains(
            "missing: whether nftables table inet drcache is in place cannot be told without root"
        ),
        "{}",
        out.stderr
    );
    assert!(
        fake.calls().iter().all(|c| c.starts_with("firewall-cmd")),
        "{:?}",
        fake.calls()
    );
    fake.clear_calls();

    let out = drc(&["-v", "setup-host"], "1000").expect(0);
    assert!(
        out.stderr.contains(&format!("nft: {}", nft.display())),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(
            "let only lo virbr* 198.51.100.0/24 reach the cache ports (nftables table inet drcache)"
        ),
        "{}",
        out.stderr
    );
    let table = fs::read_to_string(fake.path().join("table")).unwrap();
    assert!(
        table.starts_with("table inet drcache\ndelete table inet drcache\n"),
        "{table}"
    );
    assert!(
        table.contains("\t\ttcp dport != { 5051, 5054 } accept\n"),
        "{table}"
    );
    assert!(
        table.contains("\t\tip saddr 198.51.100.0/24 accept\n"),
        "{table}"
    );
    let n = nft.display();
    assert_eq!(
        fake.calls(),
        [
            "firewall-cmd --state".to_string(),
            format!("sudo {n} list table inet drcache"),
            "nft list table inet drcache".to_string(),
            format!("sudo {n} -f -"),
            "nft -f -".to_string(),
        ]
    );
    fake.clear_calls();

    // As root: checked directly (no sudo), in place; a second setup changes nothing.
    let out = drc(&["setup-host", "--check"], "0").expect(0);
    assert!(
        out.stderr.contains("client filter in place"),
        "{}",
        out.stderr
    );
    drc(&["setup-host"], "0").expect(0);
    assert_eq!(
        fake.calls(),
        [
            "firewall-cmd --state".to_string(),
            "nft list table inet drcache".to_string(),
            "firewall-cmd --state".to_string(),
            "nft list table inet drcache".to_string(),
        ]
    );
    fake.clear_calls();
    // nft failing for another reason is an error, not "no table".
    let out = {
        let mut cmd = crate::support::drcache(Some(&config));
        cmd.env_remove("FAKE_ROOT")
            .args(["setup-host", "--check"])
            .env("DRCACHE_HOST_OS", "linux")
            .env("DRCACHE_TEST_EUID", "0")
            .env("DRCACHE_FIREWALL_CMD", &stopped)
            .env("DRCACHE_NFT", &nft);
        run(&mut cmd).expect(1)
    };
    assert!(
        out.stderr.contains("Error: Operation not permitted"),
        "{}",
        out.stderr
    );
    fake.clear_calls();

    let out = drc(&["setup-host", "--undo"], "1000").expect(0);
    assert!(
        out.stderr.contains("deleted nftables table inet drcache"),
        "{}",
        out.stderr
    );
    assert!(!fake.path().join("table").exists());
}
