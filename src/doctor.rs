//! `drcache doctor`: a list of checks, each saying what it found and, when
//! it failed, what to do.
//!
//! Checks come in groups ([`GROUPS`]), each a function from the facts read
//! once ([`Inputs`]) to its checks, in order. To add a group, write
//! `fn(&Inputs) -> Vec<Check>` and list it in [`GROUPS`]; nothing else
//! changes: the printer, `--json` and the exit status take every group's
//! checks alike.

use std::path::PathBuf;

use serde::Serialize;

use crate::cache::{CacheSpec, Mode, LABEL_HASH, LABEL_MODE};
use crate::commands::configure::{NodeTarget, Reach, Selection};
use crate::commands::{self, configure};
use crate::config::Registry;
use crate::containerd::{self, HostsFile};
use crate::context::Context;
use crate::host;
use crate::hostinfo::{self, HostOs};
use crate::minikube::{self, Minikube, Profile};
use crate::podman::{Machine, Podman};
use crate::reconcile::Facts;
use crate::registry_http::{self, Probe};
use crate::tools;

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// What to do about a failed check.
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// What the checks look at, read once before any check runs.
pub struct Inputs<'a> {
    /// For groups that run their own queries (firewall, minikube).
    pub ctx: &'a Context,
    pub os: HostOs,
    pub specs: Vec<CacheSpec>,
    /// The podman executable, or why there is none (with its fix).
    pub podman_path: Result<PathBuf, (String, String)>,
    /// Podman's client version, when `podman version` answered.
    pub podman_version: Option<String>,
    /// `podman machine list` (macOS only): the machines, or the error.
    pub machines: Option<Result<Vec<Machine>, String>>,
    /// One `ps` and one `volume ls`, or why podman did not answer (with a hint).
    pub facts: Result<Facts, (String, Option<String>)>,
    /// The readiness probe of each running cache, by registry name.
    pub probes: Vec<(String, Probe)>,
    /// Why each cache that exited with an error stopped, from its log, by
    /// registry name.
    pub last_logs: Vec<(String, String)>,
}

/// Log lines read to find why a cache stopped (a Go panic's stack follows it).
const LOG_LINES: usize = 80;

/// The line of a registry's log that says why it stopped: the last panic,
/// fatal or error line.
pub fn stop_reason(log: &str) -> Option<String> {
    let line = log.lines().rev().find(|l| {
        l.starts_with("panic:") || l.contains("level=fatal") || l.contains("level=error")
    })?;
    // `time=... level=error msg="..."`: the message is what matters.
    let text = match line.split_once("msg=\"") {
        Some((_, rest)) => rest
            .split("\" ")
            .next()
            .unwrap_or(rest)
            .trim_end_matches('"'),
        None => line,
    };
    Some(text.trim().chars().take(300).collect())
}

/// The mode a container's label names.
fn mode_of(label: Option<&str>) -> Option<Mode> {
    match label? {
        "proxy" => Some(Mode::Proxy),
        "offline" => Some(Mode::Offline),
        _ => None,
    }
}

/// A group of checks.
pub type Group = fn(&Inputs) -> Vec<Check>;

/// Every group `doctor` runs, in order.
///
pub const GROUPS: &[(&str, Group)] = &[
    ("podman", podman_checks),
    ("caches", cache_checks),
    ("ports", port_checks),
    ("firewall", firewall_checks),
    ("minikube", minikube_checks),
];

/// Read what the checks need: podman's answers and one probe per running cache.
pub fn gather<'a>(ctx: &'a Context, specs: Vec<CacheSpec>) -> Inputs<'a> {
    let os = hostinfo::host_os();
    let podman_path = tools::find(&tools::PODMAN).map_err(|h| (h.message, h.hint));
    let mut inputs = Inputs {
        ctx,
        os,
        specs,
        podman_version: None,
        machines: None,
        facts: Err(("podman was not found".into(), None)),
        probes: Vec::new(),
        last_logs: Vec::new(),
        podman_path,
    };
    let Ok(path) = inputs.podman_path.clone() else {
        return inputs;
    };
    let podman = Podman::new(path, &ctx.runner);
    let (version, machines, facts) = std::thread::scope(|s| {
        let version = s.spawn(|| podman.version());
        let machines = (os == HostOs::Macos).then(|| s.spawn(|| podman.machines()));
        let facts = Facts::read(&podman);
        (
            version.join().expect("podman version panicked"),
            machines.map(|m| m.join().expect("podman machine list panicked")),
            facts,
        )
    });
    inputs.podman_version = version
        .ok()
        .and_then(|out| crate::podman::parse_version(&out.stdout));
    inputs.machines = machines.map(|m| m.map_err(|e| format!("{e:#}")));
    inputs.facts = facts.map_err(|e| {
        let hint = crate::errors::hint(&e);
        (format!("{e:#}"), hint)
    });
    if let Ok(facts) = &inputs.facts {
        let running: Vec<&CacheSpec> = inputs
            .specs
            .iter()
            .filter(|s| {
                facts
                    .container(&s.container)
                    .is_some_and(|c| c.is_running())
            })
            .collect();
        inputs.probes = crate::commands::parallel(&running, |spec| {
            (
                spec.registry.name.clone(),
                registry_http::probe(&spec.probe_addr()),
            )
        });
        // Why a cache stopped is in its log.
        let stopped: Vec<&CacheSpec> = inputs
            .specs
            .iter()
            .filter(|s| {
                facts
                    .container(&s.container)
                    .is_some_and(|c| c.state == "exited" && c.exit_code != 0)
            })
            .collect();
        inputs.last_logs = crate::commands::parallel(&stopped, |spec| {
            let line = podman
                .logs_tail(&spec.container, LOG_LINES)
                .ok()
                .and_then(|text| stop_reason(&text))
                .unwrap_or_default();
            (spec.registry.name.clone(), line)
        })
        .into_iter()
        .filter(|(_, line)| !line.is_empty())
        .collect();
    }
    inputs
}

/// Run every group.
pub fn run_checks(inputs: &Inputs) -> Vec<Check> {
    GROUPS.iter().flat_map(|(_, group)| group(inputs)).collect()
}

/// podman found; on macOS a podman machine running; podman answering.
pub fn podman_checks(inputs: &Inputs) -> Vec<Check> {
    let mut checks = Vec::new();
    let path = match &inputs.podman_path {
        Ok(p) => p,
        Err((message, fix)) => {
            checks.push(Check::fail(
                "podman installed",
                message.clone(),
                fix.clone(),
            ));
            return checks;
        }
    };
    checks.push(Check::pass(
        "podman installed",
        match &inputs.podman_version {
            Some(v) => format!("{} (version {v})", path.display()),
            None => path.display().to_string(),
        },
    ));
    if let Some(machines) = &inputs.machines {
        checks.push(match machines {
            Err(e) => Check::fail(
                "podman machine",
                format!("cannot list podman machines: {e}"),
                "check the podman installation: `podman machine list`",
            ),
            Ok(list) if list.is_empty() => Check::fail(
                "podman machine",
                "no podman machine exists; on macOS, containers run in one",
                "`podman machine init && podman machine start`",
            ),
            Ok(list) => match list.iter().find(|m| m.running) {
                Some(m) => Check::pass("podman machine", format!("{} is running", m.name)),
                None => {
                    let m = list.iter().find(|m| m.default).unwrap_or(&list[0]);
                    let state = if m.starting {
                        "is starting"
                    } else {
                        "is stopped"
                    };
                    Check::fail(
                        "podman machine",
                        format!("{} {state}", m.name),
                        format!("`podman machine start {}`", m.name),
                    )
                }
            },
        });
    }
    checks.push(match &inputs.facts {
        Ok(facts) => Check::pass(
            "podman answers",
            format!(
                "{} containers, {} volumes",
                facts.containers.len(),
                facts.volumes.len()
            ),
        ),
        Err((message, hint)) => Check::fail(
            "podman answers",
            message.clone(),
            hint.clone().unwrap_or_else(|| match inputs.os {
                HostOs::Macos => "start the podman machine: `podman machine start`".into(),
                _ => "run `podman info` to see what is wrong".into(),
            }),
        ),
    });
    checks
}

/// Each cache running, answering, in proxy mode and current.
pub fn cache_checks(inputs: &Inputs) -> Vec<Check> {
    let Ok(facts) = &inputs.facts else {
        return Vec::new();
    };
    inputs
        .specs
        .iter()
        .map(|spec| {
            let name = format!("cache {}", spec.registry.name);
            let reg = &spec.registry.name;
            let start = format!("`drcache start {reg}`");
            let Some(c) = facts.container(&spec.container) else {
                return Check::fail(name, format!("{} does not exist", spec.container), start);
            };
            if !c.is_running() {
                let why = if c.state == "exited" && c.exit_code != 0 {
                    let reason = inputs
                        .last_logs
                        .iter()
                        .find(|(r, _)| r == reg)
                        .map(|(_, line)| line.as_str());
                    let upstream = reason.is_some_and(|r| r.contains("/v2/"));
                    let detail = format!(
                        "{} exited with status {}{}",
                        spec.container,
                        c.exit_code,
                        reason.map(|r| format!(": {r}")).unwrap_or_default()
                    );
                    if upstream {
                        // distribution issue 4038: proxy mode does not start
                        // while its upstream is unreachable.
                        return Check::fail(
                            name,
                            detail,
                            format!(
                                "the registry could not reach its upstream {} when it started; \
                                 check the network, then {start}",
                                spec.registry.upstream
                            ),
                        );
                    }
                    detail
                } else {
                    format!("{} is {}", spec.container, c.state)
                };
                return Check::fail(name, why, format!("{start}; `drcache logs {reg}` shows why it stopped"));
            }
            let probe = inputs
                .probes
                .iter()
                .find(|(r, _)| r == reg)
                .map(|(_, p)| p.clone())
                .unwrap_or(Probe::Unreachable("not probed".into()));
            let addr = spec.probe_addr();
            match probe {
                Probe::Ready => {}
                Probe::Status(code) => {
                    return Check::fail(
                        name,
                        format!("running, but http://{addr}/v2/ answers {code}"),
                        format!("`drcache logs {reg}`; {start} recreates it if its configuration changed"),
                    )
                }
                Probe::Unreachable(why) => {
                    return Check::fail(
                        name,
                        format!("running, but http://{addr}/v2/ does not answer: {why}"),
                        format!("`drcache logs {reg}`, then `drcache stop {reg}` and {start}"),
                    )
                }
            }
            match mode_of(c.label(LABEL_MODE)) {
                Some(Mode::Proxy) => {}
                Some(Mode::Offline) => {
                    return Check::fail(
                        name,
                        "answers, but runs in offline mode: it serves what it has and fetches nothing new",
                        format!("{start} returns it to proxy mode"),
                    )
                }
                None => {
                    return Check::fail(
                        name,
                        "answers, but was not created by drcache (no mode label)",
                        format!("{start} recreates it and keeps its cached data"),
                    )
                }
            }
            if c.label(LABEL_HASH) != Some(spec.config_hash().as_str()) {
                return Check::fail(
                    name,
                    "answers, but was created with another configuration (or by another tool)",
                    format!("{start} recreates it and keeps its cached data"),
                );
            }
            Check::pass(name, format!("running, ready on {addr}, proxy of {}", spec.registry.upstream))
        })
        .collect()
}

/// Each cache's port: held by the cache itself or free; otherwise by whom.
pub fn port_checks(inputs: &Inputs) -> Vec<Check> {
    let Ok(facts) = &inputs.facts else {
        return Vec::new();
    };
    inputs
        .specs
        .iter()
        .map(|spec| {
            let port = spec.registry.port;
            let name = format!("port {port}");
            let ours = facts
                .container(&spec.container)
                .is_some_and(|c| c.is_running() && c.ports.iter().any(|p| p.host_port == port));
            if ours {
                return Check::pass(name, format!("published by {}", spec.container));
            }
            let fix = format!(
                "stop it, or set another `port` for {} in the config",
                spec.registry.name
            );
            if let Some(holder) = facts.port_holder(port, &spec.container) {
                return Check::fail(
                    name,
                    format!(
                        "{} needs it, but container {} holds it",
                        spec.registry.name,
                        holder.name()
                    ),
                    fix,
                );
            }
            if hostinfo::port_free(&spec.bind, port) {
                return Check::pass(name, format!("free for {}", spec.registry.name));
            }
            let by = match hostinfo::port_owner(port) {
                Some(owner) => format!("process {owner}"),
                None => "another process".into(),
            };
            Check::fail(
                name,
                format!("{} needs it, but {by} holds it", spec.registry.name),
                fix,
            )
        })
        .collect()
}

/// The host firewall lets cluster VMs reach the caches: `setup-host --check`
/// with its default zone.
pub fn firewall_checks(inputs: &Inputs) -> Vec<Check> {
    let name = "host firewall";
    if inputs.os == HostOs::Other {
        return vec![Check::pass(
            name,
            format!("not checked on {}", std::env::consts::OS),
        )];
    }
    let opts = host::Options {
        mode: host::Mode::Check,
        zone: DEFAULT_ZONE.into(),
    };
    let check = match host::run(inputs.ctx, &opts) {
        Ok(report) => match report.state {
            host::State::Missing => Check::fail(
                name,
                format!("not set up: {}", report.missing.join("; ")),
                "`drcache setup-host`",
            ),
            _ => Check::pass(name, report.summary),
        },
        Err(e) => Check::fail(
            name,
            format!("cannot check: {e:#}"),
            crate::errors::hint(&e).unwrap_or_else(|| "see `drcache setup-host --check`".into()),
        ),
    };
    vec![check]
}

/// minikube clusters: the file-sync directory holds the current hosts.toml
/// of every cache (so nodes get them at every start), and each running node
/// of each containerd profile reaches each cache. Without minikube there is
/// nothing to check.
pub fn minikube_checks(inputs: &Inputs) -> Vec<Check> {
    let ctx = inputs.ctx;
    let Ok(program) = tools::find(&tools::MINIKUBE) else {
        return vec![Check::pass(
            "minikube",
            "not installed: no clusters to check",
        )];
    };
    let registries: Vec<&Registry> = inputs.specs.iter().map(|s| &s.registry).collect();
    let files = match containerd::hosts_files(&registries, &ctx.config.host) {
        Ok(files) => files,
        Err(m) => {
            return vec![Check::fail(
                "minikube files",
                format!("host: {m}"),
                "set `host` in the config to a name or address the nodes resolve",
            )]
        }
    };
    let mut checks = vec![file_sync_check(&files)];
    let mk = Minikube::new(program, &ctx.runner);
    let list = match mk.profiles() {
        Ok(list) => list,
        Err(e) => {
            checks.push(Check::fail(
                "minikube profiles",
                format!("cannot list them: {e:#}").replace('\n', "; "),
                "check `minikube profile list`",
            ));
            return checks;
        }
    };
    let live: Vec<&Profile> = configure::select_profiles(&list, &[])
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, selection)| *selection == Selection::Live)
        .map(|(profile, _)| profile)
        .collect();
    let answers_here: Vec<(String, bool)> = inputs
        .specs
        .iter()
        .map(|s| {
            let ready = inputs
                .probes
                .iter()
                .any(|(r, p)| r == &s.registry.name && p.is_ready());
            (s.registry.name.clone(), ready)
        })
        .collect();
    for profile_checks in commands::parallel(&live, |profile| {
        node_checks(&mk, profile, &files, &ctx.config.host, &answers_here)
    }) {
        checks.extend(profile_checks);
    }
    checks
}

/// The file-sync directory has exactly the hosts.toml `configure` writes.
fn file_sync_check(files: &[HostsFile]) -> Check {
    let name = "minikube files";
    let Some(home) = minikube::minikube_home_from_env() else {
        return Check::fail(
            name,
            "neither MINIKUBE_HOME nor HOME is set",
            "set MINIKUBE_HOME as you do for minikube",
        );
    };
    let dir = minikube::file_sync_certs_d(&home);
    let stale: Vec<&str> = files
        .iter()
        .filter(|f| {
            std::fs::read_to_string(dir.join(f.relative_path()))
                .ok()
                .as_deref()
                != Some(f.content.as_str())
        })
        .map(|f| f.registry.as_str())
        .collect();
    if stale.is_empty() {
        Check::pass(
            name,
            format!("{} current hosts.toml in {}", files.len(), dir.display()),
        )
    } else {
        Check::fail(
            name,
            format!(
                "missing or out of date in {}: {}",
                dir.display(),
                stale.join(", ")
            ),
            "`drcache configure`",
        )
    }
}

/// One check per running node of `profile`: does it reach every cache?
fn node_checks(
    mk: &Minikube,
    profile: &Profile,
    files: &[HostsFile],
    host: &str,
    answers_here: &[(String, bool)],
) -> Vec<Check> {
    let statuses = match mk.status(&profile.name) {
        Ok(s) => s,
        Err(e) => {
            return vec![Check::fail(
                format!("minikube {}", profile.name),
                format!("cannot read its status: {e:#}").replace('\n', "; "),
                format!("check `minikube status -p {}`", profile.name),
            )]
        }
    };
    let targets: Vec<(String, String)> = files
        .iter()
        .map(|f| (f.registry.clone(), f.mirror.clone()))
        .collect();
    let script = minikube::check_script(&targets);
    let running: Vec<NodeTarget> = configure::nodes_of(profile, &statuses)
        .into_iter()
        .filter(NodeTarget::running)
        .collect();
    commands::parallel(&running, |node| {
        let name = format!("minikube {} {}", profile.name, node.machine);
        let lines = match mk.ssh(&profile.name, &node.machine, &script, false) {
            Ok(out) => minikube::parse_checks(&out.stdout),
            Err(e) => {
                return Check::fail(
                    name,
                    configure::ssh_failure(&e, &profile.name, &node.machine),
                    format!(
                        "check `minikube ssh -p {} -n {}`",
                        profile.name, node.machine
                    ),
                )
            }
        };
        let mut problems = Vec::new();
        let mut fixes = Vec::new();
        for f in files {
            let line = lines.iter().find(|l| l.registry == f.registry);
            let here = answers_here
                .iter()
                .any(|(r, ready)| r == &f.registry && *ready);
            if let Reach::Unreachable { cause, fix } = configure::classify(line, host, here) {
                problems.push(format!("{}: {cause}", f.registry));
                if !fixes.contains(&fix) {
                    fixes.push(fix);
                }
            }
        }
        if problems.is_empty() {
            Check::pass(name, format!("reaches all {} caches", files.len()))
        } else {
            Check::fail(name, problems.join("; "), fixes.join("; "))
        }
    })
}

/// The zone `setup-host` uses unless told otherwise (kvm2's libvirt network).
const DEFAULT_ZONE: &str = "libvirt";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Mode;
    use crate::config;
    use crate::exec::Runner;
    use crate::podman::{Container, PortMapping};
    use crate::ui::Ui;
    use std::collections::HashMap;

    /// Every group but the firewall's and minikube's, which run real tools
    /// (tested through the CLI with fakes).
    fn local_checks(inputs: &Inputs) -> Vec<Check> {
        GROUPS
            .iter()
            .filter(|(name, _)| !["firewall", "minikube"].contains(name))
            .flat_map(|(_, group)| group(inputs))
            .collect()
    }

    fn ctx() -> Context {
        Context {
            ui: Ui::plain_for_tests(),
            runner: Runner::new(Ui::plain_for_tests(), false),
            config: config::load(None).unwrap(),
            json: false,
            dry_run: false,
        }
    }

    fn specs(ctx: &Context) -> Vec<CacheSpec> {
        ctx.config
            .registries
            .iter()
            .take(2)
            .map(|r| CacheSpec::new(&ctx.config, r, Mode::Proxy))
            .collect()
    }

    fn container(spec: &CacheSpec, state: &str, mode: &str, hash: &str) -> Container {
        let labels: HashMap<String, String> = [
            (LABEL_MODE.to_string(), mode.to_string()),
            (LABEL_HASH.to_string(), hash.to_string()),
        ]
        .into();
        Container {
            id: "id".into(),
            names: vec![spec.container.clone()],
            state: state.into(),
            labels,
            ports: vec![PortMapping {
                host_ip: String::new(),
                container_port: 5000,
                host_port: spec.registry.port,
            }],
            ..Container::default()
        }
    }

    fn inputs<'a>(
        ctx: &'a Context,
        containers: Vec<Container>,
        probes: Vec<(String, Probe)>,
    ) -> Inputs<'a> {
        Inputs {
            ctx,
            os: HostOs::Linux,
            specs: specs(ctx),
            podman_path: Ok(PathBuf::from("/usr/bin/podman")),
            podman_version: Some("4.3.1".into()),
            machines: None,
            facts: Ok(Facts {
                containers,
                volumes: vec![],
            }),
            probes,
            last_logs: vec![],
        }
    }

    #[test]
    fn healthy_caches_pass() {
        let ctx = ctx();
        let s = specs(&ctx);
        let containers = s
            .iter()
            .map(|spec| container(spec, "running", "proxy", &spec.config_hash()))
            .collect();
        let probes = s
            .iter()
            .map(|spec| (spec.registry.name.clone(), Probe::Ready))
            .collect();
        let checks = local_checks(&inputs(&ctx, containers, probes));
        assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "podman installed",
                "podman answers",
                "cache quay.io",
                "cache docker.io",
                "port 5051",
                "port 5052"
            ]
        );
        assert_eq!(checks[0].detail, "/usr/bin/podman (version 4.3.1)");
        assert!(checks[4]
            .detail
            .contains("published by drenv-cache-quay-io"));
    }

    #[test]
    fn each_cache_problem_has_its_fix() {
        let ctx = ctx();
        let s = specs(&ctx);
        let mut exited = container(&s[0], "exited", "proxy", &s[0].config_hash());
        exited.exit_code = 2;
        let offline = container(&s[1], "running", "offline", &s[1].config_hash());
        let mut i = inputs(
            &ctx,
            vec![exited, offline],
            vec![("docker.io".into(), Probe::Ready)],
        );
        let panic = r#"panic: Get "https://quay.io/v2/": dial tcp: connection refused"#;
        i.last_logs = vec![("quay.io".into(), panic.into())];
        let checks = cache_checks(&i);
        assert!(!checks[0].ok);
        assert_eq!(
            checks[0].detail,
            format!("drenv-cache-quay-io exited with status 2: {panic}")
        );
        let fix = checks[0].fix.as_deref().unwrap();
        assert!(
            fix.contains("could not reach its upstream https://quay.io"),
            "{fix}"
        );
        assert!(fix.contains("drcache start quay.io"), "{fix}");
        assert!(
            checks[1].detail.contains("offline mode"),
            "{}",
            checks[1].detail
        );

        let stale = container(&s[0], "running", "proxy", "0000");
        let unready = container(&s[1], "running", "proxy", &s[1].config_hash());
        let i = inputs(
            &ctx,
            vec![stale, unready],
            vec![
                ("quay.io".into(), Probe::Ready),
                (
                    "docker.io".into(),
                    Probe::Unreachable("connection refused".into()),
                ),
            ],
        );
        let checks = cache_checks(&i);
        assert!(
            checks[0].detail.contains("another configuration"),
            "{checks:#?}"
        );
        assert!(checks[1]
            .detail
            .contains("does not answer: connection refused"));
        assert!(checks[1]
            .fix
            .as_deref()
            .unwrap()
            .contains("drcache logs docker.io"));

        let i = inputs(&ctx, vec![], vec![]);
        let checks = cache_checks(&i);
        assert_eq!(checks[0].detail, "drenv-cache-quay-io does not exist");
    }

    #[test]
    fn stop_reason_finds_the_panic_or_error() {
        let log = "time=\"t\" level=info msg=\"listening on [::]:5000\" go.version=go1.19.8\n\
                   panic: Get \"http://up:1/v2/\": dial tcp 10.88.0.1:1: connect: connection refused\n\
                   \n\
                   goroutine 1 [running]:\n\
                   \tgithub.com/spf13/cobra/command.go:968\n";
        assert_eq!(
            stop_reason(log).as_deref(),
            Some(
                "panic: Get \"http://up:1/v2/\": dial tcp 10.88.0.1:1: connect: connection refused"
            )
        );
        let log = "time=\"t\" level=error msg=\"cannot open storage\" go.version=go1.19.8\nx\n";
        assert_eq!(stop_reason(log).as_deref(), Some("cannot open storage"));
        assert_eq!(
            stop_reason("10.88.0.1 - - \"GET /v2/ HTTP/1.1\" 200\n"),
            None
        );
    }

    #[test]
    fn a_port_held_by_another_container_is_named() {
        let ctx = ctx();
        let s = specs(&ctx);
        let mut other = container(&s[0], "running", "proxy", "x");
        other.names = vec!["someone-else".into()];
        let i = inputs(&ctx, vec![other], vec![]);
        let checks = port_checks(&i);
        assert!(!checks[0].ok);
        assert_eq!(
            checks[0].detail,
            "quay.io needs it, but container someone-else holds it"
        );
        assert!(checks[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("another `port` for quay.io"));
    }

    #[test]
    fn podman_missing_or_not_answering() {
        let ctx = ctx();
        let mut i = inputs(&ctx, vec![], vec![]);
        i.podman_path = Err((
            "podman was not found on PATH".into(),
            "install podman".into(),
        ));
        i.facts = Err(("podman was not found".into(), None));
        let checks = local_checks(&i);
        assert_eq!(checks.len(), 1, "nothing else can be checked: {checks:#?}");
        assert_eq!(checks[0].fix.as_deref(), Some("install podman"));

        let mut i = inputs(&ctx, vec![], vec![]);
        i.os = HostOs::Macos;
        i.facts = Err(("`podman ps` failed".into(), None));
        i.machines = Some(Ok(vec![Machine {
            name: "podman-machine-default".into(),
            default: true,
            running: false,
            starting: false,
        }]));
        let checks = local_checks(&i);
        assert_eq!(checks.len(), 3, "{checks:#?}");
        assert_eq!(checks[1].detail, "podman-machine-default is stopped");
        assert_eq!(
            checks[1].fix.as_deref(),
            Some("`podman machine start podman-machine-default`")
        );
        assert!(checks[2]
            .fix
            .as_deref()
            .unwrap()
            .contains("podman machine start"));
    }
}
