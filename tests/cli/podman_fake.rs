//! CLI behaviour with a fake podman: exact calls, errors, exit codes, dry-run.

use crate::fake::*;
use crate::support::*;
use crate::with_fake;

/// `podman image exists` of the default image: it is here.
const IMAGE_EXISTS: [&str; 3] = ["image", "exists", "docker.io/library/registry:3"];

/// `podman run --detach --cidfile <temp file> --name NAME ...`: the rest of
/// the line is checked by each test in the calls.
fn run_prefix(name: &str) -> [Arg; 6] {
    [
        Arg::from("run"),
        Arg::from("--detach"),
        Arg::from("--cidfile"),
        Arg::glob("/*"),
        Arg::from("--name"),
        Arg::from(name),
    ]
}

/// A podman that lists no containers and no volumes, and has the image.
fn empty_lists(fake: &FakeBin) -> std::path::PathBuf {
    FakeTool::new("podman")
        .on(&PS, Reply::stdout("[]"))
        .on(&VOLUME_LS, Reply::stdout("[]"))
        .on(&IMAGE_EXISTS, Reply::ok())
        .install(fake)
}

#[test]
fn podman_not_installed_names_the_override() {
    let fake = FakeBin::new();
    let out = run(drcache(None)
        .env("DRCACHE_PODMAN", "/nonexistent/podman")
        .env("DRCACHE_STATE_DIR", fake.path())
        .arg("status"))
    .expect(4);
    assert!(
        out.stderr.contains(
            "error: DRCACHE_PODMAN is set to /nonexistent/podman, which is not an executable"
        ),
        "{}",
        out.stderr
    );
    // Without the override and without podman on PATH.
    let out = run(drcache(None)
        .env_remove("DRCACHE_PODMAN")
        .env("PATH", fake.path())
        .env("DRCACHE_STATE_DIR", fake.path())
        .arg("start"))
    .expect(4);
    assert!(
        out.stderr.contains("podman was not found on PATH"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(
            "hint: install podman (https://podman.io/docs/installation), or set DRCACHE_PODMAN"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn failing_podman_shows_command_status_stderr_and_hint() {
    let fake = FakeBin::new();
    let unreachable = Reply::fail(
        125,
        "Cannot connect to Podman. Please verify your connection to the Linux system using `podman system connection list`, or try `podman machine init` and `podman machine start` to manage a new Linux VM\n\
         Error: unable to connect to Podman socket: dial unix /var/folders/x/podman.sock: connect: no such file or directory\n",
    );
    let podman = FakeTool::new("podman")
        .on(&PS, unreachable.clone())
        .on(&VOLUME_LS, unreachable)
        .install(&fake);
    let out = run(with_fake(&fake, &podman).arg("status")).expect(1);
    assert!(
        out.stderr
            .contains("error: `podman ps --all --format json` failed (exit status 125)"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--- stderr"), "{}", out.stderr);
    assert!(out.stderr.contains("dial unix /var/folders/x/podman.sock"));
    assert!(
        out.stderr
            .contains("hint: start the podman machine: `podman machine start`"),
        "{}",
        out.stderr
    );
}

#[test]
fn dry_run_start_queries_only_and_prints_the_mutations() {
    let fake = FakeBin::new();
    let podman = empty_lists(&fake);
    let out = run(with_fake(&fake, &podman).args(["start", "--dry-run", "quay.io"])).expect(0);
    let mut calls = fake.calls();
    calls.sort();
    assert_eq!(
        calls,
        [
            "podman image exists docker.io/library/registry:3",
            "podman ps --all --format json",
            "podman volume ls --format json"
        ]
    );
    assert!(
        out.stderr.contains(
            "would run: podman volume create --label drcache.registry=quay.io --label drcache.prefix=drenv-cache drenv-cache-quay-io"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("would run: podman run --detach --name drenv-cache-quay-io --restart=on-failure:5 --publish 5051:5000"),
        "{}",
        out.stderr
    );
    assert!(out
        .stderr
        .contains("--env REGISTRY_PROXY_REMOTEURL=https://quay.io"));
    assert!(out.stderr.contains("docker.io/library/registry:3"));
    assert!(out.stderr.contains("would be created"), "{}", out.stderr);
}

#[test]
fn unknown_registry_is_a_usage_error_listing_the_configured_ones() {
    let fake = FakeBin::new();
    let podman = empty_lists(&fake);
    let out = run(with_fake(&fake, &podman).args(["start", "example.com"])).expect(2);
    assert!(
        out.stderr.contains(
            "unknown registry \"example.com\"; configured: quay.io, docker.io, registry.k8s.io, ghcr.io, gcr.io"
        ),
        "{}",
        out.stderr
    );
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

#[test]
fn invalid_config_names_file_and_line_and_calls_nothing() {
    let fake = FakeBin::new();
    let podman = empty_lists(&fake);
    let config = fake.path().join("bad.toml");
    std::fs::write(&config, "prefix = \"ok\"\n\n[[registry]]\nname = \"quay.io\"\nport = 5051\n[[registry]]\nname = \"ghcr.io\"\nport = 5051\n").unwrap();
    let out = run(with_fake(&fake, &podman)
        .arg("--config")
        .arg(&config)
        .arg("start"))
    .expect(2);
    assert!(
        out.stderr.contains(&format!(
            "{}:8: port 5051 is used by both \"quay.io\" and \"ghcr.io\"",
            config.display()
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: fix the config file"));
    assert!(fake.calls().is_empty());

    // Unknown keys and TOML syntax errors name their line too.
    std::fs::write(&config, "prefix = \"ok\"\nimagee = \"x\"\n").unwrap();
    let out = run(with_fake(&fake, &podman)
        .arg("--config")
        .arg(&config)
        .arg("start"))
    .expect(2);
    assert!(
        out.stderr.contains(":2: unknown field `imagee`"),
        "{}",
        out.stderr
    );

    // A config file named but missing.
    let out =
        run(with_fake(&fake, &podman).args(["--config", "/nonexistent/drcache.toml", "status"]))
            .expect(2);
    assert!(out
        .stderr
        .contains("/nonexistent/drcache.toml: cannot read the config file"));
    assert!(fake.calls().is_empty());
}

#[test]
fn config_comes_from_env_then_xdg() {
    let fake = FakeBin::new();
    let podman = empty_lists(&fake);
    let xdg = fake.path().join("xdg");
    std::fs::create_dir_all(xdg.join("drcache")).unwrap();
    std::fs::write(
        xdg.join("drcache/config.toml"),
        "prefix = \"fromxdg\"\n[[registry]]\nname = \"quay.io\"\n",
    )
    .unwrap();
    let out = run(with_fake(&fake, &podman)
        .env("XDG_CONFIG_HOME", &xdg)
        .args(["status", "--json"]))
    .expect(3);
    assert!(
        out.stdout.contains("\"container\":\"fromxdg-quay-io\""),
        "{}",
        out.stdout
    );

    let env_file = fake.path().join("env.toml");
    std::fs::write(&env_file, "prefix = \"fromenv\"\n").unwrap();
    let out = run(with_fake(&fake, &podman)
        .env("XDG_CONFIG_HOME", &xdg)
        .env("DRCACHE_CONFIG", &env_file)
        .args(["status", "--json"]))
    .expect(3);
    assert!(out.stdout.contains("\"container\":\"fromenv-quay-io\""));
    // Five default registries, none running.
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["caches"].as_array().unwrap().len(), 5);
    assert!(v["caches"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["state"] == "missing" && c["ready"] == false));
}

#[test]
fn clean_with_volumes_removes_only_what_drcache_owns() {
    let fake = FakeBin::new();
    // A drcache-labelled volume, an exact-name one from the older helper, one
    // sharing the prefix, and one with drcache labels of another prefix.
    let mut foreign = ps_row("running", "drenv-cache", "mine", 5099);
    foreign["Labels"] = serde_json::json!({});
    let podman = FakeTool::new("podman")
        .on(
            &PS,
            Reply::stdout(ps_json(&[
                ps_row("exited", "drenv-cache", "quay.io", 5051),
                foreign,
            ])),
        )
        .on(
            &VOLUME_LS,
            Reply::stdout(ps_json(&[
                volume_row("drenv-cache-quay-io", &[]),
                volume_row(
                    "renamed",
                    &[
                        ("drcache.registry", "ghcr.io"),
                        ("drcache.prefix", "drenv-cache"),
                    ],
                ),
                volume_row("drenv-cache-mine", &[]),
                volume_row(
                    "other-ghcr-io",
                    &[("drcache.registry", "ghcr.io"), ("drcache.prefix", "other")],
                ),
            ])),
        )
        .on(
            &["rm", "--force", "--ignore", "drenv-cache-quay-io"],
            Reply::ok(),
        )
        .on(
            &["volume", "rm", "drenv-cache-quay-io", "renamed"],
            Reply::ok(),
        )
        .on(
            &["secret", "ls", "--format", "{{.Name}}"],
            Reply::stdout("drenv-cache-quay-io-config\nunrelated\n"),
        )
        .on(&["secret", "rm", "drenv-cache-quay-io-config"], Reply::ok())
        .install(&fake);
    run(with_fake(&fake, &podman).args(["clean", "--volumes"])).expect(0);
    let calls = fake.calls();
    assert!(
        calls.contains(&"podman rm --force --ignore drenv-cache-quay-io".to_string()),
        "{calls:?}"
    );
    assert!(
        calls.contains(&"podman volume rm drenv-cache-quay-io renamed".to_string()),
        "{calls:?}"
    );
    assert!(
        calls.contains(&"podman secret rm drenv-cache-quay-io-config".to_string()),
        "{calls:?}"
    );
}

#[test]
fn stop_stops_only_running_caches_in_one_call() {
    let fake = FakeBin::new();
    let podman = FakeTool::new("podman")
        .on(
            &PS,
            Reply::stdout(ps_json(&[
                ps_row("running", "drenv-cache", "quay.io", 5051),
                ps_row("exited", "drenv-cache", "ghcr.io", 5054),
                ps_row("running", "drenv-cache", "gcr.io", 5055),
            ])),
        )
        .on(
            &[
                "stop",
                "--ignore",
                "drenv-cache-quay-io",
                "drenv-cache-gcr-io",
            ],
            Reply::ok(),
        )
        .install(&fake);
    run(with_fake(&fake, &podman).arg("stop")).expect(0);
    assert_eq!(
        fake.calls(),
        [
            "podman ps --all --format json",
            "podman stop --ignore drenv-cache-quay-io drenv-cache-gcr-io"
        ]
    );
}

#[test]
fn help_lists_commands_and_an_unknown_flag_is_a_usage_error() {
    let out = run(drcache(None).arg("--help")).expect(0);
    for word in [
        "start",
        "stop",
        "status",
        "clean",
        "--dry-run",
        "--json",
        "--config",
    ] {
        assert!(out.stdout.contains(word), "{word}: {}", out.stdout);
    }
    let out = run(drcache(None).args(["start", "--no-such-flag"])).expect(2);
    assert!(out.stderr.contains("--no-such-flag"));
}

#[test]
fn a_listing_racing_a_removal_is_retried() {
    let fake = FakeBin::new();
    // The first `volume ls` fails as podman 4.3 does when another process
    // removes a volume while it lists.
    let podman = FakeTool::new("podman")
        .on(&PS, Reply::stdout("[]"))
        .on(
            &VOLUME_LS,
            Reply::fail(
                125,
                "Error: no volume with name 3a43dc found in database: no such volume\n",
            )
            .times(1),
        )
        .on(&VOLUME_LS, Reply::stdout("[]"))
        .install(&fake);
    run(with_fake(&fake, &podman).args(["status", "--json"])).expect(3);
    let volume_calls = fake
        .calls()
        .iter()
        .filter(|c| c.starts_with("podman volume ls"))
        .count();
    assert_eq!(volume_calls, 2);
}

#[test]
fn credentials_reach_podman_on_stdin_only() {
    let fake = FakeBin::new();
    let stdin_log = fake.path().join("stdin.log");
    let podman = FakeTool::new("podman")
        .on(&PS, Reply::stdout("[]"))
        .on(&VOLUME_LS, Reply::stdout("[]"))
        .on(
            &[
                "volume",
                "create",
                "--label",
                "drcache.registry=docker.io",
                "--label",
                "drcache.prefix=drenv-cache",
                "drenv-cache-docker-io",
            ],
            Reply::stdout("drenv-cache-docker-io\n"),
        )
        .on(
            &["secret", "rm", "drenv-cache-docker-io-config"],
            Reply::fail(
                125,
                "Error: no secret with name or id \"drenv-cache-docker-io-config\": no such secret\n",
            ),
        )
        .on(
            &["secret", "create", "drenv-cache-docker-io-config", "-"],
            Reply::stdout("4f1c7a0e2d3b5a6c8e9f0a1b2\n").stdin_to(&stdin_log),
        )
        .on(&IMAGE_EXISTS, Reply::ok())
        // The run line is checked below, in the calls.
        .on_prefix(&run_prefix("drenv-cache-docker-io"), Reply::stdout("0123abcd\n"))
        .install(&fake);
    let config = fake.path().join("c.toml");
    std::fs::write(
        &config,
        "[[registry]]\nname = \"docker.io\"\nport = 29999\nusername_env = \"T_USER\"\npassword_env = \"T_PASS\"\n",
    )
    .unwrap();
    let out = run(with_fake(&fake, &podman)
        .env("T_USER", "user-7c1e")
        .env("T_PASS", "pass-51d0")
        .arg("--config")
        .arg(&config)
        .args(["-v", "start", "--timeout", "1"]))
    .expect(3);
    let calls = fake.calls().join("\n");
    assert!(
        calls.contains("podman secret create drenv-cache-docker-io-config -"),
        "{calls}"
    );
    assert!(calls
        .contains("--secret drenv-cache-docker-io-config,type=mount,target=drcache-registry.yml"));
    for text in [&calls, &out.stderr, &out.stdout] {
        assert!(
            !text.contains("pass-51d0") && !text.contains("user-7c1e"),
            "{text}"
        );
    }
    // The secret's content arrived on stdin.
    let stdin = std::fs::read_to_string(&stdin_log).unwrap();
    assert!(stdin.contains("password: \"pass-51d0\""), "{stdin}");
}

#[test]
fn a_default_port_taken_elsewhere_names_the_file_and_the_line() {
    let fake = FakeBin::new();
    let podman = empty_lists(&fake);
    let config = fake.path().join("dup.toml");
    std::fs::write(
        &config,
        "prefix = \"p\"\n\n[[registry]]\nname = \"ghcr.io\"\nport = 5051\n\n[[registry]]\nname = \"quay.io\"\n",
    )
    .unwrap();
    let out = run(with_fake(&fake, &podman)
        .arg("--config")
        .arg(&config)
        .arg("start"))
    .expect(2);
    assert_eq!(
        out.stderr,
        format!(
            "error: {}:8: port 5051 is used by both \"ghcr.io\" and \"quay.io\" (its default); \
             give one of them another port\nhint: fix the config file, or see `drcache --help` for where the \
             configuration is read from\n",
            config.display()
        )
    );
    assert!(fake.calls().is_empty());
}

#[test]
fn clean_volumes_spares_volumes_whose_names_only_start_with_a_cache_volume() {
    let fake = FakeBin::new();
    // The strict fake is the assertion: a `volume rm` naming any other
    // volume is a call it was not written for, and fails the test.
    let podman = FakeTool::new("podman")
        .on(&PS, Reply::stdout("[]"))
        .on(
            &VOLUME_LS,
            Reply::stdout(ps_json(&[
                volume_row("drenv-cache-quay-io-backup", &[]),
                volume_row("drenv-cache-quay-io", &[]),
                volume_row("drenv-cache-quay-io2", &[]),
                volume_row("drenv-cache-docker-io.old", &[]),
            ])),
        )
        .on(&["volume", "rm", "drenv-cache-quay-io"], Reply::ok())
        .on(&["secret", "ls", "--format", "{{.Name}}"], Reply::ok())
        .install(&fake);
    run(with_fake(&fake, &podman).args(["clean", "--volumes"])).expect(0);
    let calls = fake.calls();
    assert!(
        calls.contains(&"podman volume rm drenv-cache-quay-io".to_string()),
        "{calls:?}"
    );
}

#[test]
fn an_unreachable_upstream_falls_back_to_the_offline_spec() {
    let fake = FakeBin::new();
    let port = unused_port();
    let config = fake.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "prefix = \"drt-offline\"\n[[registry]]\nname = \"quay.io\"\n\
             upstream = \"http://host.containers.internal:16100\"\nport = {port}\n"
        ),
    )
    .unwrap();
    // The proxy container starts, and its log shows the registry's panic
    // (real registry 3.1.1 log of an unreachable upstream).
    let podman = FakeTool::new("podman")
        .on(&PS, Reply::stdout("[]"))
        .on(&VOLUME_LS, Reply::stdout("[]"))
        .on(
            &[
                "volume",
                "create",
                "--label",
                "drcache.registry=quay.io",
                "--label",
                "drcache.prefix=drt-offline",
                "drt-offline-quay-io",
            ],
            Reply::stdout("drt-offline-quay-io\n"),
        )
        .on(&IMAGE_EXISTS, Reply::ok())
        .on_prefix(
            &run_prefix("drt-offline-quay-io"),
            Reply::stdout("0123abcd\n"),
        )
        .on(
            &[
                Arg::from("logs"),
                Arg::from("--since"),
                Arg::glob("[0-9]*"),
                Arg::from("drt-offline-quay-io"),
            ],
            Reply::stdout(fixture_text(
                "registry3/registry-3.1.1-log-upstream-unreachable.txt",
            )),
        )
        // A registry hanging on its upstream may ignore SIGTERM: no grace.
        .on(
            &[
                "rm",
                "--force",
                "--ignore",
                "--time",
                "0",
                "drt-offline-quay-io",
            ],
            Reply::ok(),
        )
        .install(&fake);
    let out = run(with_fake(&fake, &podman)
        .arg("--config")
        .arg(&config)
        .args(["start", "--json", "--timeout", "2"]))
    .expect(3);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let cache = &report["caches"][0];
    assert_eq!(cache["mode"], "offline", "{report}");
    assert_eq!(
        cache["offline_reason"],
        "panic: Get \"http://host.containers.internal:16100/v2/\": dial tcp 10.88.0.1:16100: connect: connection refused"
    );
    let calls = fake.calls();
    let kinds: Vec<&str> = calls
        .iter()
        .map(|c| {
            let words: Vec<&str> = c.split(' ').collect();
            match words[1] {
                "run" if c.contains("--label drcache.mode=proxy") => "run proxy",
                "run" if c.contains("--label drcache.mode=offline") => "run offline",
                "logs" => "logs",
                "rm" => "rm",
                "volume" => words[2],
                "ps" => "ps",
                "image" => "image exists",
                _ => c.as_str(),
            }
        })
        .collect();
    // The volume listing only because a container must be created; the
    // image is checked before any container is touched.
    assert_eq!(
        kinds,
        [
            "ps",
            "ls",
            "image exists",
            "create",
            "run proxy",
            "logs",
            "rm",
            "run offline"
        ],
        "{calls:#?}"
    );
    // The log since this start (now, less a second of slack).
    let since: u64 = calls[5].split(' ').nth(3).unwrap().parse().unwrap();
    assert!(
        since + 5 >= unix_now() && since <= unix_now(),
        "{}",
        calls[5]
    );
    let offline_run = &calls[7];
    assert!(
        offline_run.contains("--env REGISTRY_STORAGE_MAINTENANCE_READONLY"),
        "{offline_run}"
    );
    assert!(
        !offline_run.contains("REGISTRY_PROXY_REMOTEURL"),
        "{offline_run}"
    );
    assert!(
        calls[4].contains("--env REGISTRY_PROXY_REMOTEURL=http://host.containers.internal:16100")
    );
}

#[test]
fn a_hung_podman_is_killed_at_the_command_timeout() {
    let fake = FakeBin::new();
    let pid_file = fake.path().join("sleeper.pid");
    let podman = fake.script(
        "podman",
        &format!(
            "sleep 30 & echo $! > '{}'; echo 'still thinking' >&2; wait",
            pid_file.display()
        ),
    );
    let started = std::time::Instant::now();
    let out = run(with_fake(&fake, &podman).args(["--command-timeout", "1", "status"])).expect(1);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(
        out.stderr.contains(
            "error: `podman ps --all --format json` timed out after 1 s and was killed\n--- stderr\nstill thinking"
        ),
        "{}",
        out.stderr
    );
    // The grandchild went with it.
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "sleep survived: {stat}"
    );
    // The same from the environment; 0 is refused.
    let out = run(with_fake(&fake, &podman)
        .env("DRCACHE_COMMAND_TIMEOUT", "1")
        .arg("status"))
    .expect(1);
    assert!(out.stderr.contains("timed out after 1 s"), "{}", out.stderr);
    let out = run(with_fake(&fake, &podman).args(["--command-timeout", "0", "status"])).expect(2);
    assert!(out.stderr.contains("--command-timeout"), "{}", out.stderr);
}

/// A config of one quay.io cache under `prefix` on `port`, published on
/// 127.0.0.1, with an upstream no test reaches.
fn one_cache(fake: &FakeBin, prefix: &str, port: u16) -> std::path::PathBuf {
    let config = fake.path().join("one.toml");
    std::fs::write(
        &config,
        format!(
            "prefix = \"{prefix}\"\nbind = \"127.0.0.1\"\n[[registry]]\nname = \"quay.io\"\n\
             upstream = \"http://host.containers.internal:16100\"\nport = {port}\n"
        ),
    )
    .unwrap();
    config
}

/// The config hash drcache labels a proxy cache of `config` with, as its
/// dry run prints it.
fn config_hash(config: &std::path::Path) -> String {
    let fake = FakeBin::new();
    let podman = empty_lists(&fake);
    let out = run(with_fake(&fake, &podman)
        .arg("--config")
        .arg(config)
        .args(["start", "--dry-run"]))
    .expect(0);
    let at = out
        .stderr
        .find("drcache.config-hash=")
        .expect("a hash label")
        + 20;
    out.stderr[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Answer every HTTP request on `listener` with 200 `{}`.
fn answer_200(listener: std::net::TcpListener) {
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            use std::io::{Read, Write};
            let _ = stream.read(&mut [0u8; 1024]);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
        }
    });
}

#[test]
fn a_current_running_cache_that_answers_is_ready_and_left_alone() {
    let fake = FakeBin::new();
    let port = unused_port();
    let config = one_cache(&fake, "drt-ready", port);
    let mut row = ps_row("running", "drt-ready", "quay.io", port);
    // The hash first: its dry run checks that the port is free.
    row["Labels"]["drcache.config-hash"] = config_hash(&config).into();
    answer_200(std::net::TcpListener::bind(("127.0.0.1", port)).unwrap());
    let podman = FakeTool::new("podman")
        .on(&PS, Reply::stdout(ps_json(&[row])))
        .on(
            &VOLUME_LS,
            Reply::stdout(ps_json(&[volume_row(
                "drt-ready-quay-io",
                &[
                    ("drcache.registry", "quay.io"),
                    ("drcache.prefix", "drt-ready"),
                ],
            )])),
        )
        .install(&fake);
    let out = run(with_fake(&fake, &podman)
        .arg("--config")
        .arg(&config)
        .args(["start", "--json"]))
    .expect(0);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["caches"][0]["action"], "unchanged", "{report}");
    assert_eq!(report["caches"][0]["ready"], true, "{report}");
    // Running and current: the container listing alone (its mounted volume
    // proves the volume is there).
    assert_eq!(fake.calls(), ["podman ps --all --format json"]);
}

#[test]
fn a_cache_whose_port_is_taken_names_the_container_holding_it_and_fails() {
    let fake = FakeBin::new();
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = one_cache(&fake, "drt-taken", port);
    // The cache itself (of another configuration, so it is recreated)
    // published the port when it last ran; an exited container of another
    // port comes first; the running one that publishes the port holds it.
    let cache = ps_row("exited", "drt-taken", "quay.io", port);
    let mut old = ps_row("exited", "drt-other", "old.io", port + 1);
    old["Labels"] = serde_json::json!({});
    let mut holder = ps_row("running", "drt-other", "holder.io", port);
    holder["Labels"] = serde_json::json!({});
    let podman = FakeTool::new("podman")
        .on(&PS, Reply::stdout(ps_json(&[cache, old, holder])))
        .on(
            &VOLUME_LS,
            Reply::stdout(ps_json(&[volume_row("drt-taken-quay-io", &[])])),
        )
        .on(&IMAGE_EXISTS, Reply::ok())
        .on(
            &["rm", "--force", "--ignore", "drt-taken-quay-io"],
            Reply::ok(),
        )
        .install(&fake);
    let out = run(with_fake(&fake, &podman)
        .arg("--config")
        .arg(&config)
        .arg("start"))
    .expect(1);
    assert!(
        out.stderr.contains(&format!(
            "port {port} for quay.io is already in use by container drt-other-holder-io; \
             stop it or set another port for quay.io in the config"
        )),
        "{}",
        out.stderr
    );
    drop(listener);
}

/// An unchanged running proxy cache that does not answer, whose log shows
/// the upstream panic: drcache reads the log since the container's start
/// (podman's StartedAt, less a second), or since now when podman knows no
/// start, then falls back to offline mode.
#[test]
fn an_unchanged_cache_is_judged_by_its_log_since_its_last_start() {
    for started_at in [1_796_186_585u64, 0] {
        let fake = FakeBin::new();
        let port = unused_port();
        let config = one_cache(&fake, "drt-loop", port);
        let mut row = ps_row("running", "drt-loop", "quay.io", port);
        row["Labels"]["drcache.config-hash"] = config_hash(&config).into();
        row["StartedAt"] = started_at.into();
        let since = match started_at {
            0 => Arg::glob("[1-9]*"),
            s => Arg::from((s - 1).to_string()),
        };
        let podman = FakeTool::new("podman")
            .on(&PS, Reply::stdout(ps_json(&[row])))
            .on(
                &VOLUME_LS,
                Reply::stdout(ps_json(&[volume_row("drt-loop-quay-io", &[])])),
            )
            .on(
                &[
                    Arg::from("logs"),
                    Arg::from("--since"),
                    since,
                    Arg::from("drt-loop-quay-io"),
                ],
                Reply::stdout(fixture_text(
                    "registry3/registry-3.1.1-log-upstream-unreachable.txt",
                )),
            )
            // A registry hanging on its upstream may ignore SIGTERM: no grace.
            .on(
                &[
                    "rm",
                    "--force",
                    "--ignore",
                    "--time",
                    "0",
                    "drt-loop-quay-io",
                ],
                Reply::ok(),
            )
            .on_prefix(&run_prefix("drt-loop-quay-io"), Reply::stdout("0123abcd\n"))
            .install(&fake);
        let before = unix_now();
        let out = run(with_fake(&fake, &podman)
            .arg("--config")
            .arg(&config)
            .args(["start", "--json", "--timeout", "2"]))
        .expect(3);
        let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(report["caches"][0]["mode"], "offline", "{report}");
        let calls = fake.calls();
        let logs: Vec<&String> = calls.iter().filter(|c| c.contains(" logs ")).collect();
        assert_eq!(logs.len(), 1, "{calls:#?}");
        if started_at == 0 {
            let n: u64 = logs[0].split(' ').nth(3).unwrap().parse().unwrap();
            assert!(n + 2 >= before && n <= unix_now(), "{n} vs {before}");
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
