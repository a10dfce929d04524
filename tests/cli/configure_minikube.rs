//! `configure` / `unconfigure` against a fake `minikube` that serves
//! `profile list`, `status` and `ssh` in minikube's real JSON shapes. Its `ssh`
//! runs drcache's node script for real, in a per-node directory standing in
//! for the node's `/etc/containerd`, with fake `sudo`, `systemctl` and `curl`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::fake::{fixture_text, Arg, FakeTool, Reply};
use crate::support::{drcache, run, write_executable, FakeBin, Run};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/minikube");

/// `minikube ssh -p PROFILE -n NODE -- SCRIPT`: runs drcache's node script
/// for real in the node's directory, with the node fakes first on PATH.
const SSH: &str = r#"node="$W/nodes/$5"
[ -d "$node" ] || { echo "Node $5 does not exist." >&2; exit 80; }
[ -f "$W/hang-$5" ] && sleep 60
script=$(printf '%s' "$7" | sed -e "s|d=/etc/containerd|d=$node/etc/containerd|" \
    -e "s|c=/etc/containerd|c=$node/etc/containerd|")
PATH="$W/nodebin:$PATH" NODE_NAME="$5" sh -c "$script""#;

/// Fakes the node scripts call. curl answers from `$W/curl-<node>` lines
/// `PORT CURL_EXIT HTTP_STATUS`, else `0 200`.
const NODE_FAKES: [(&str, &str); 3] = [
    ("sudo", "exec \"$@\""),
    (
        "systemctl",
        "echo \"systemctl $* on $NODE_NAME\" >> \"$LOG\"",
    ),
    (
        "curl",
        r#"for a in "$@"; do url=$a; done
port=${url##*:}; port=${port%%/*}
r=$(grep "^$port " "$W/curl-$NODE_NAME" 2>/dev/null || echo "$port 0 200")
set -- $r
if [ "$2" = 0 ]; then printf %s "$3"; else printf 000; fi
exit "$2""#,
    ),
];

/// A fake minikube world: profiles, node directories, minikube home.
struct World {
    fake: FakeBin,
    minikube: PathBuf,
    config: PathBuf,
    ports: (u16, u16),
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl World {
    /// `list` is a profile-list fixture; `statuses` maps a profile to its
    /// status fixture and exit code; `nodes` are the running nodes' names.
    fn new(list: &str, statuses: &[(&str, &str, i32)], nodes: &[&str]) -> World {
        let fake = FakeBin::new();
        let w = fake.path().to_path_buf();
        let mut minikube = FakeTool::new("minikube").on(
            &["profile", "list", "-o", "json", "-l"],
            Reply::stdout(fixture_text(&format!("minikube/{list}"))),
        );
        for (profile, fixture, code) in statuses {
            minikube = minikube.on(
                &["status", "-p", profile, "-o", "json"],
                Reply::stdout(fixture_text(&format!("minikube/{fixture}"))).code(*code),
            );
        }
        let minikube = minikube
            .on(
                &[
                    Arg::from("ssh"),
                    Arg::from("-p"),
                    Arg::glob("*"),
                    Arg::from("-n"),
                    Arg::glob("*"),
                    Arg::from("--"),
                    Arg::glob("*"),
                ],
                Reply::script(format!("W='{}'\n{SSH}", w.display())),
            )
            .install(&fake);
        std::fs::create_dir_all(w.join("nodebin")).unwrap();
        for (name, body) in NODE_FAKES {
            let path = w.join("nodebin").join(name);
            let text = format!(
                "#!/bin/sh\nW='{}'; LOG='{}'\n{body}\n",
                w.display(),
                fake.log_path().display()
            );
            write_executable(&path, &text);
        }
        for node in nodes {
            let etc = w.join("nodes").join(node).join("etc/containerd");
            std::fs::create_dir_all(etc.join("certs.d/docker.io")).unwrap();
            std::fs::copy(
                Path::new(FIXTURES).join("node-containerd-config.toml"),
                etc.join("config.toml"),
            )
            .unwrap();
            // minikube's images ship this file; drcache must give it back.
            std::fs::write(
                etc.join("certs.d/docker.io/hosts.toml"),
                "server = \"https://registry-1.docker.io\"\n",
            )
            .unwrap();
        }
        let ports = (free_port(), free_port());
        let config = w.join("drcache.toml");
        std::fs::write(
            &config,
            format!(
                "prefix = \"drtest-wirefake\"\nbind = \"127.0.0.1\"\nhost = \"192.168.39.1\"\n\
                 [[registry]]\nname = \"quay.io\"\nport = {}\n\
                 [[registry]]\nname = \"docker.io\"\nport = {}\n",
                ports.0, ports.1
            ),
        )
        .unwrap();
        std::fs::create_dir_all(w.join("home")).unwrap();
        World {
            fake,
            minikube,
            config,
            ports,
        }
    }

    fn root(&self) -> &Path {
        self.fake.path()
    }

    fn minikube_home(&self) -> PathBuf {
        self.root().join("mkhome/.minikube")
    }

    fn file_sync(&self) -> PathBuf {
        self.minikube_home().join("files/etc/containerd/certs.d")
    }

    fn node_certs(&self, node: &str) -> PathBuf {
        self.root()
            .join("nodes")
            .join(node)
            .join("etc/containerd/certs.d")
    }

    fn drcache(&self, args: &[&str]) -> Run {
        let mut cmd = drcache(Some(&self.config));
        cmd.args(args)
            .env("DRCACHE_MINIKUBE", &self.minikube)
            .env("MINIKUBE_HOME", self.root().join("mkhome"))
            .env("HOME", self.root().join("home"));
        run(&mut cmd)
    }

    /// The calls logged since the last take, sorted (nodes run in parallel),
    /// with each node script shortened to its first words.
    fn take_calls(&self) -> Vec<String> {
        let mut calls: Vec<String> = self
            .fake
            .calls()
            .into_iter()
            .map(|c| match c.split_once(" -- ") {
                Some((head, script)) if script.starts_with("set -e") => format!("{head} -- <sync>"),
                Some((head, script)) if script.starts_with("for u in") => {
                    format!("{head} -- <check>")
                }
                _ => c,
            })
            .collect();
        calls.sort();
        let _ = std::fs::remove_file(self.fake.log_path());
        calls
    }

    /// Every file under the world's node and minikube-home trees, with content.
    fn snapshot(&self) -> BTreeMap<String, String> {
        fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let path = e.path();
                let rel = path.strip_prefix(base).unwrap().display().to_string();
                if path.is_dir() {
                    out.insert(format!("{rel}/"), String::new());
                    walk(&path, base, out);
                } else {
                    out.insert(rel, std::fs::read_to_string(&path).unwrap_or_default());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.root().join("nodes"), self.root(), &mut out);
        walk(&self.root().join("mkhome"), self.root(), &mut out);
        out
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The standard world: dr1 (one node), dr2 (three nodes), hub (stopped),
/// legacy (docker runtime), all caches answering from every node.
fn standard() -> World {
    World::new(
        "profile-list-light.json",
        &[
            ("dr1", "status-dr1.json", 0),
            ("dr2", "status-dr2.json", 0),
            ("hub", "status-hub-stopped.json", 7),
        ],
        &["dr1", "dr2", "dr2-m02", "dr2-m03"],
    )
}

fn sync_and_check(profile: &str, node: &str) -> [String; 2] {
    [
        format!("minikube ssh -p {profile} -n {node} -- <check>"),
        format!("minikube ssh -p {profile} -n {node} -- <sync>"),
    ]
}

fn expected_calls(nodes: &[(&str, &str)], statuses: &[&str]) -> Vec<String> {
    let mut calls = vec!["minikube profile list -o json -l".to_string()];
    calls.extend(
        statuses
            .iter()
            .map(|p| format!("minikube status -p {p} -o json")),
    );
    for (profile, node) in nodes {
        calls.extend(sync_and_check(profile, node));
    }
    calls.sort();
    calls
}

const ALL_NODES: [(&str, &str); 4] = [
    ("dr1", "dr1"),
    ("dr2", "dr2"),
    ("dr2", "dr2-m02"),
    ("dr2", "dr2-m03"),
];

#[test]
fn configure_reaches_every_running_node_and_the_file_sync_dir() {
    let w = standard();
    let r = w.drcache(&["configure"]).expect(0);
    assert_eq!(
        w.take_calls(),
        expected_calls(&ALL_NODES, &["dr1", "dr2", "hub"])
    );

    // The same files as `hosts-toml` prints, in the file-sync dir and on every node.
    let listing = run(drcache(Some(&w.config)).args(["hosts-toml", "--json"])).expect(0);
    let listing: serde_json::Value = serde_json::from_str(&listing.stdout).unwrap();
    for file in listing["files"].as_array().unwrap() {
        let rel = file["path"].as_str().unwrap();
        let content = file["content"].as_str().unwrap();
        assert!(
            content.contains("[host.\"http://192.168.39.1:"),
            "{content}"
        );
        assert_eq!(read(&w.file_sync().join(rel)), content);
        for (_, node) in ALL_NODES {
            assert_eq!(read(&w.node_certs(node).join(rel)), content, "{node}");
        }
    }
    // The image's own docker.io file is kept aside, not lost.
    assert!(w
        .node_certs("dr2-m03")
        .join("docker.io/hosts.toml.drcache-orig")
        .exists());

    for line in [
        "dr1      dr1      -          wrote 2 files",
        "dr2      dr2-m03  docker.io  ok",
        "hub      -        -          stopped: gets the files at its next start",
        "legacy   -        -          skipped: container runtime is docker, not containerd",
    ] {
        assert!(r.stderr.contains(line), "missing {line:?} in\n{}", r.stderr);
    }
    assert!(r
        .stderr
        .contains("minikube copies them to every node at every start"));

    // Again, as JSON: the same calls (containerd is not restarted), the same state.
    let r = w.drcache(&["configure", "--json"]).expect(0);
    assert_eq!(
        w.take_calls(),
        expected_calls(&ALL_NODES, &["dr1", "dr2", "hub"])
    );
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let profiles = report["profiles"].as_array().unwrap();
    let states: Vec<(&str, &str)> = profiles
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            ("dr1", "running"),
            ("dr2", "running"),
            ("hub", "stopped"),
            ("legacy", "skipped")
        ]
    );
    let dr2 = &profiles[1]["nodes"];
    assert_eq!(dr2.as_array().unwrap().len(), 3);
    for node in dr2.as_array().unwrap() {
        assert_eq!(node["wrote"], serde_json::json!(["quay.io", "docker.io"]));
        assert_eq!(node["config_path"], "ok");
        let checks = node["checks"].as_array().unwrap();
        assert_eq!(checks.len(), 2);
        assert!(checks.iter().all(|c| c["ok"] == true), "{node}");
    }
    assert_eq!(
        report["file_sync"]["written"],
        serde_json::json!(["quay.io", "docker.io"])
    );
}

#[test]
fn containerd_is_patched_and_restarted_only_where_config_path_is_missing() {
    let w = standard();
    let config = w.root().join("nodes/dr2-m03/etc/containerd/config.toml");
    let text = read(&config).replace("      config_path = \"/etc/containerd/certs.d\"\n", "");
    std::fs::write(&config, text).unwrap();

    let r = w.drcache(&["configure"]).expect(0);
    let calls = w.take_calls();
    let restarts: Vec<&String> = calls
        .iter()
        .filter(|c| c.starts_with("systemctl"))
        .collect();
    assert_eq!(restarts, ["systemctl restart containerd on dr2-m03"]);
    assert!(r
        .stderr
        .contains("dr2-m03  -          wrote 2 files; containerd restarted to read certs.d"));
    assert!(read(&config).contains(
        "    [plugins.\"io.containerd.grpc.v1.cri\".registry]\n      config_path = \"/etc/containerd/certs.d\"\n"
    ));

    w.drcache(&["configure"]).expect(0);
    assert!(!w.take_calls().iter().any(|c| c.starts_with("systemctl")));
}

#[test]
fn unreachable_caches_name_the_cause_and_the_fix_and_exit_3() {
    let w = standard();
    let (quay, docker) = w.ports;
    // From dr2-m02: quay.io refused, docker.io timed out.
    std::fs::write(
        w.root().join("curl-dr2-m02"),
        format!("{quay} 7 000\n{docker} 28 000\n"),
    )
    .unwrap();
    // On this host the quay.io cache answers, the docker.io one does not.
    let listener = std::net::TcpListener::bind(("127.0.0.1", quay)).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            use std::io::{Read, Write};
            let mut stream = stream;
            let _ = stream.read(&mut [0u8; 1024]);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
        }
    });

    let r = w.drcache(&["configure", "--json"]).expect(3);
    assert!(r.stderr.contains(&format!(
        "dr2      dr2-m02  quay.io    unreachable at http://192.168.39.1:{quay}: connection refused or no route, \
         while the cache answers on this host (firewall?) -> run `drcache setup-host`"
    )), "{}", r.stderr);
    assert!(r.stderr.contains(&format!(
        "dr2      dr2-m02  docker.io  unreachable at http://192.168.39.1:{docker}: the cache does not answer on \
         this host either (not running?) -> run `drcache start`"
    )), "{}", r.stderr);
    assert!(r.stderr.contains("dr2      dr2-m03  quay.io    ok"));
    assert!(r.stderr.contains(
        "error: caches unreachable from nodes: dr2/dr2-m02 quay.io, dr2/dr2-m02 docker.io"
    ));

    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let m02 = &report["profiles"][1]["nodes"][1];
    assert_eq!(m02["name"], "dr2-m02");
    assert_eq!(m02["checks"][0]["ok"], false);
    assert_eq!(m02["checks"][0]["fix"], "run `drcache setup-host`");
    assert_eq!(
        m02["checks"][0]["url"],
        format!("http://192.168.39.1:{quay}/v2/")
    );
    assert_eq!(m02["checks"][1]["fix"], "run `drcache start`");
    // The files went out all the same.
    assert!(w.node_certs("dr2-m02").join("quay.io/hosts.toml").exists());
}

#[test]
fn named_profiles_only_and_minikube_home_ending_in_dot_minikube() {
    let w = standard();
    let mut cmd = drcache(Some(&w.config));
    cmd.args(["configure", "-p", "dr1", "--profile", "legacy"])
        .env("DRCACHE_MINIKUBE", &w.minikube)
        .env("MINIKUBE_HOME", w.minikube_home())
        .env("HOME", "/nonexistent");
    let r = run(&mut cmd).expect(0);
    assert_eq!(w.take_calls(), expected_calls(&[("dr1", "dr1")], &["dr1"]));
    assert!(w.file_sync().join("quay.io/hosts.toml").is_file());
    assert!(!w.node_certs("dr2").join("quay.io").exists());
    let legacy = r.stderr.lines().find(|l| l.starts_with("legacy")).unwrap();
    assert!(
        legacy.ends_with("skipped: container runtime is docker, not containerd"),
        "{legacy}"
    );
}

#[test]
fn unknown_or_invalid_profiles_are_usage_errors_and_change_nothing() {
    let w = standard();
    let before = w.snapshot();
    let r = w
        .drcache(&["configure", "-p", "dr1", "-p", "nope"])
        .expect(2);
    assert!(r
        .stderr
        .contains("error: no minikube profile named \"nope\"; profiles: dr1, dr2, hub, legacy"));
    assert_eq!(w.take_calls(), ["minikube profile list -o json -l"]);
    assert_eq!(w.snapshot(), before);
}

#[test]
fn invalid_profiles_are_skipped_and_naming_one_is_a_usage_error() {
    // The listing minikube prints without -l, where invalid profiles show.
    let w = World::new(
        "profile-list-invalid.json",
        &[
            ("dr1", "status-dr1.json", 0),
            ("dr2", "status-dr2.json", 0),
            ("hub", "status-hub-stopped.json", 7),
        ],
        &["dr1", "dr2", "dr2-m02", "dr2-m03"],
    );
    let r = w.drcache(&["unconfigure", "-p", "broken"]).expect(2);
    assert!(
        r.stderr
            .contains("error: minikube profile \"broken\" is invalid"),
        "{}",
        r.stderr
    );
    assert_eq!(w.take_calls(), ["minikube profile list -o json -l"]);

    let r = w.drcache(&["configure"]).expect(0);
    for name in ["broken", "half"] {
        let line = r.stderr.lines().find(|l| l.starts_with(name)).unwrap();
        assert!(
            line.ends_with("skipped: invalid profile: minikube cannot load it"),
            "{line}"
        );
    }
    assert!(!w
        .take_calls()
        .iter()
        .any(|c| c.contains("broken") || c.contains("half")));
}

#[test]
fn a_stopped_worker_is_not_reached_and_a_failing_node_does_not_stop_the_others() {
    let w = World::new(
        "profile-list-light.json",
        &[
            ("dr1", "status-dr1.json", 0),
            ("dr2", "status-dr2-worker-stopped.json", 7),
            ("hub", "status-hub-stopped.json", 7),
        ],
        // dr1 says Running but the fake has no such node: its ssh fails.
        &["dr2", "dr2-m02"],
    );
    let r = w.drcache(&["configure"]).expect(1);
    let calls = w.take_calls();
    assert!(!calls.iter().any(|c| c.contains("-n dr2-m03")), "{calls:?}");
    assert!(
        r.stderr
            .contains("dr2      dr2-m03  -          stopped: not reached"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(
        "dr1      dr1      -          failed: `minikube ssh -p dr1 -n dr1` failed (exit status 80): Node dr1 does not exist."
    ), "{}", r.stderr);
    assert!(r.stderr.contains("error: could not configure: dr1/dr1"));
    assert!(w.node_certs("dr2-m02").join("quay.io/hosts.toml").exists());
}

#[test]
fn a_node_that_hangs_is_that_nodes_failure_and_the_others_go_on() {
    let w = standard();
    std::fs::write(w.root().join("hang-dr2-m02"), "").unwrap();
    let started = std::time::Instant::now();
    let r = w
        .drcache(&["--command-timeout", "2", "configure"])
        .expect(1);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert!(
        r.stderr.contains(
            "dr2      dr2-m02  -          failed: `minikube ssh -p dr2 -n dr2-m02` failed (timed out after 2 s and was killed)"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("error: could not configure: dr2/dr2-m02"),
        "{}",
        r.stderr
    );
    // The nodes that answer were configured all the same.
    assert!(w.node_certs("dr2").join("quay.io/hosts.toml").exists());
    assert!(!w.node_certs("dr2-m02").join("quay.io/hosts.toml").exists());
}

#[test]
fn dry_run_only_queries() {
    let w = standard();
    let before = w.snapshot();
    let r = w.drcache(&["--dry-run", "configure"]).expect(0);
    assert_eq!(w.snapshot(), before);
    let calls = w.take_calls();
    assert!(!calls.iter().any(|c| c.ends_with("<sync>")), "{calls:?}");
    assert_eq!(calls.iter().filter(|c| c.ends_with("<check>")).count(), 4);
    assert!(r.stderr.contains(
        "would run: minikube ssh -p dr2 -n dr2-m02 -- 'set -e; d=/etc/containerd/certs.d;"
    ));
    assert!(r.stderr.contains("would write 2 hosts.toml files in"));
    assert!(r
        .stderr
        .contains("dr2      dr2-m02  -          would write 2 files"));

    w.drcache(&["configure"]).expect(0);
    let configured = w.snapshot();
    w.take_calls();
    w.drcache(&["--dry-run", "unconfigure"]).expect(0);
    assert_eq!(w.snapshot(), configured);
    assert!(!w.take_calls().iter().any(|c| c.ends_with("<sync>")));
}

#[test]
fn unconfigure_removes_exactly_what_configure_wrote() {
    let w = standard();
    // Someone else's files in the file-sync tree.
    let files = w.minikube_home().join("files");
    std::fs::create_dir_all(files.join("etc/containerd/certs.d/registry.example")).unwrap();
    std::fs::write(
        files.join("etc/containerd/certs.d/registry.example/hosts.toml"),
        "server = \"x\"\n",
    )
    .unwrap();
    std::fs::write(files.join("etc/motd"), "hi\n").unwrap();
    let before = w.snapshot();

    w.drcache(&["configure"]).expect(0);
    assert_ne!(w.snapshot(), before);
    w.take_calls();
    let r = w.drcache(&["unconfigure"]).expect(0);
    assert_eq!(w.snapshot(), before);

    let mut expect = vec!["minikube profile list -o json -l".to_string()];
    expect.extend(["dr1", "dr2", "hub"].map(|p| format!("minikube status -p {p} -o json")));
    expect.extend(ALL_NODES.map(|(p, n)| format!("minikube ssh -p {p} -n {n} -- <sync>")));
    expect.sort();
    assert_eq!(w.take_calls(), expect);
    assert!(r.stderr.contains("removed 2 hosts.toml files from"));
    assert!(
        r.stderr
            .contains("dr2      dr2-m02  removed: docker.io, quay.io")
            || r.stderr
                .contains("dr2      dr2-m02  removed: quay.io, docker.io"),
        "{}",
        r.stderr
    );
    assert!(r
        .stderr
        .contains("hub      -        stopped: no longer gets the files at its next start"));

    // Nothing left to remove.
    let r = w.drcache(&["unconfigure"]).expect(0);
    assert!(r.stderr.contains("dr1      dr1      nothing to remove"));
}

#[test]
fn a_foreign_file_in_the_way_is_not_overwritten() {
    let w = standard();
    std::fs::create_dir_all(w.file_sync().join("quay.io")).unwrap();
    std::fs::write(
        w.file_sync().join("quay.io/hosts.toml"),
        "server = \"https://quay.io\"\n",
    )
    .unwrap();
    let before = w.snapshot();
    let r = w.drcache(&["configure"]).expect(1);
    assert!(r
        .stderr
        .contains("not overwriting a hosts.toml that drcache did not write"));
    assert!(r.stderr.contains("hint: move the file away"));
    assert_eq!(w.snapshot(), before);
    assert!(w.take_calls().is_empty());
}

#[test]
fn no_profiles_still_writes_the_file_sync_dir_and_missing_minikube_is_exit_4() {
    let w = World::new("profile-list-empty.json", &[], &[]);
    let r = w.drcache(&["configure"]).expect(0);
    assert!(r
        .stderr
        .contains("no minikube profiles: the files apply to clusters started from now on"));
    assert!(w.file_sync().join("docker.io/hosts.toml").is_file());

    let mut cmd = drcache(Some(&w.config));
    cmd.args(["configure"])
        .env("DRCACHE_MINIKUBE", "/nonexistent/minikube")
        .env("MINIKUBE_HOME", w.root().join("other"));
    let r = run(&mut cmd).expect(4);
    assert!(r
        .stderr
        .contains("DRCACHE_MINIKUBE is set to /nonexistent/minikube"));
    assert!(!w.root().join("other").exists());
}

#[test]
fn doctor_checks_the_file_sync_dir_and_every_running_node() {
    let w = standard();
    std::fs::write(
        w.root().join("curl-dr2-m02"),
        format!("{} 7 000\n", w.ports.0),
    )
    .unwrap();
    let check = |w: &World| {
        let out = w.drcache(&["doctor", "--json"]).expect(3);
        let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let checks: BTreeMap<String, serde_json::Value> = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"].as_str().unwrap().starts_with("minikube"))
            .map(|c| (c["name"].as_str().unwrap().to_string(), c.clone()))
            .collect();
        checks
    };

    // Before configure: the persistent files are missing.
    let checks = check(&w);
    let files = &checks["minikube files"];
    assert_eq!(files["ok"], false, "{files}");
    assert_eq!(files["fix"], "`drcache configure`");

    let _ = w.drcache(&["configure"]);
    w.take_calls();
    let checks = check(&w);
    assert_eq!(checks["minikube files"]["ok"], true, "{checks:?}");
    // Every running node of each containerd profile, and nothing else: the
    // stopped profile and the docker-runtime one have no node checks.
    let names: Vec<&str> = checks.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "minikube dr1 dr1",
            "minikube dr2 dr2",
            "minikube dr2 dr2-m02",
            "minikube dr2 dr2-m03",
            "minikube files"
        ]
    );
    for ok in [
        "minikube dr1 dr1",
        "minikube dr2 dr2",
        "minikube dr2 dr2-m03",
    ] {
        assert_eq!(checks[ok]["ok"], true, "{ok}: {}", checks[ok]);
    }
    let broken = &checks["minikube dr2 dr2-m02"];
    assert_eq!(broken["ok"], false);
    assert!(
        broken["detail"]
            .as_str()
            .unwrap()
            .starts_with("quay.io: the cache does not answer on this host either"),
        "{broken}"
    );
    assert_eq!(broken["fix"], "run `drcache start`");
    // doctor only looks: profile list, status and the check script.
    let calls = w.take_calls();
    assert!(calls.iter().all(|c| !c.ends_with("<sync>")), "{calls:?}");
    assert!(calls.contains(&"minikube ssh -p dr2 -n dr2-m02 -- <check>".to_string()));
}

#[test]
fn a_symlinked_directory_in_the_file_sync_tree_is_refused_and_not_written_through() {
    let w = standard();
    let outside = w.root().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(w.file_sync()).unwrap();
    std::os::unix::fs::symlink(&outside, w.file_sync().join("quay.io")).unwrap();
    let r = w.drcache(&["configure"]).expect(1);
    assert!(
        r.stderr.contains(&format!(
            "refusing to follow the symbolic link {} (to {})",
            w.file_sync().join("quay.io").display(),
            outside.display()
        )),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert!(w.take_calls().is_empty(), "refused before any call");
}

#[test]
fn node_scripts_neither_write_nor_remove_through_a_symlinked_registry_directory() {
    let w = standard();
    // On node dr1, certs.d/quay.io points elsewhere, at a file that looks
    // like drcache's.
    let elsewhere = w.root().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let bait = "# Written by drcache\nserver = \"https://quay.io\"\n";
    std::fs::write(elsewhere.join("hosts.toml"), bait).unwrap();
    let link = w.node_certs("dr1").join("quay.io");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();

    let r = w.drcache(&["configure"]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "dr1      dr1      -          refused to follow the symbolic link {}",
            link.display()
        )),
        "{}",
        r.stderr
    );
    assert_eq!(read(&elsewhere.join("hosts.toml")), bait);
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 1);
    // The other nodes got their files.
    assert!(w.node_certs("dr2").join("quay.io/hosts.toml").is_file());

    w.drcache(&["unconfigure"]);
    assert_eq!(read(&elsewhere.join("hosts.toml")), bait);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!w.node_certs("dr2").join("quay.io").exists());
}
