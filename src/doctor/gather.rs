//! Doctor's one gathering step: all the I/O the checks need.

use std::path::PathBuf;

use crate::cache::{CacheSpec, Mode, DEBUG_PORT, LABEL_MODE};
use crate::cluster::reach::ssh_failure;
use crate::cluster::select::{nodes_of, select_profiles, NodeTarget, Selection};
use crate::config::Registry;
use crate::containerd::{self, HostsFile};
use crate::context::Context;
use crate::doctor::{FirewallFacts, Inputs, MinikubeFacts, NodeFacts, ProfileFacts};
use crate::host;
use crate::hostinfo::{self, HostOs};
use crate::metrics::{Format, Metrics};
use crate::minikube::{self, node_scripts, Minikube, Profile};
use crate::parallel;
use crate::podman::Podman;
use crate::reconcile::{Facts, UPSTREAM_PROBE_TIMEOUT};
use crate::registry_http::{self, Probe};
use crate::tools;
use crate::upstream;

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

/// Read everything the checks look at: podman's answers, one probe per
/// running cache, the upstreams of caches not serving as proxies, the
/// ports, the host firewall and the minikube nodes. All of doctor's I/O.
pub fn gather(
    ctx: &Context,
    specs: Vec<CacheSpec>,
    credentials_unknown: Vec<(String, String)>,
) -> Inputs {
    let os = hostinfo::host_os();
    let podman_path = tools::find(&tools::PODMAN).map_err(|h| (h.message, h.hint));
    let mut inputs = Inputs {
        os,
        specs,
        podman_version: None,
        machines: None,
        facts: Err(("podman was not found".into(), None)),
        probes: Vec::new(),
        last_logs: Vec::new(),
        credentials_unknown,
        formats: Vec::new(),
        upstreams: Vec::new(),
        ports_taken: Vec::new(),
        firewall: None,
        exposure: None,
        minikube: None,
        autostart: None,
        podman_path,
    };
    // The host side needs no podman.
    inputs.firewall = (os != HostOs::Other).then(|| firewall_facts(ctx));
    inputs.autostart = (os != HostOs::Other).then(|| {
        (
            host::autostart::Status::read(&ctx.config.prefix),
            crate::clock::unix_now(),
        )
    });
    inputs.exposure = exposure(ctx, os, inputs.firewall.as_ref());
    inputs.minikube = minikube_facts(ctx, &inputs.specs);
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
        inputs.probes = parallel::map(&running, |spec| {
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
        inputs.last_logs = parallel::map(&stopped, |spec| {
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
        inputs.formats = parallel::map(&running, |spec| {
            let port = facts
                .container(&spec.container)
                .and_then(|c| c.host_port(DEBUG_PORT))?;
            let text = registry_http::get_text(&format!("127.0.0.1:{port}"), "/metrics").ok()?;
            let format = Format::detect(&Metrics::parse(&text).ok()?)?;
            Some((spec.registry.name.clone(), format))
        })
        .into_iter()
        .flatten()
        .collect();
        let not_serving: Vec<&CacheSpec> = inputs
            .specs
            .iter()
            .filter(|s| not_serving_as_proxy(s, facts, &inputs.probes))
            .collect();
        inputs.upstreams = parallel::map(&not_serving, |spec| {
            (
                spec.registry.name.clone(),
                upstream::answers(&spec.registry.upstream, UPSTREAM_PROBE_TIMEOUT),
            )
        });
        inputs.ports_taken = inputs
            .specs
            .iter()
            .filter(|spec| {
                let port = spec.registry.port;
                let published = facts
                    .container(&spec.container)
                    .is_some_and(|c| c.is_running() && c.ports.iter().any(|p| p.host_port == port));
                !published
                    && facts.port_holder(port, &spec.container).is_none()
                    && !hostinfo::port_free(&spec.bind, port)
            })
            .map(|spec| (spec.registry.port, hostinfo::port_owner(spec.registry.port)))
            .collect();
    }
    inputs
}

/// The interfaces beyond `clients` that reach the caches, and why.
fn exposure(
    ctx: &Context,
    os: HostOs,
    firewall: Option<&Result<FirewallFacts, (String, String)>>,
) -> Option<(Vec<String>, String)> {
    use crate::host::nft::{enforcement, Enforcement, TABLE};
    let config = &ctx.config;
    let why = match enforcement(&config.bind, &config.clients, os) {
        Enforcement::NotNeeded => return None,
        Enforcement::Impossible(why) => why,
        Enforcement::Possible => {
            let missing = match firewall {
                Some(Ok(facts)) => facts.missing.iter().any(|m| m.contains(TABLE)),
                _ => false,
            };
            if !missing {
                return None;
            }
            format!("the nftables table {TABLE} is not in place (`drcache setup-host`)")
        }
    };
    let others = crate::clients::others(&config.clients, &crate::clients::interfaces());
    Some((others, why))
}

/// `setup-host --check` with its default zone.
fn firewall_facts(ctx: &Context) -> Result<FirewallFacts, (String, String)> {
    let opts = host::Options {
        mode: host::Mode::Check,
        zone: DEFAULT_ZONE.into(),
    };
    match host::run(&ctx.host_env(), &opts) {
        Ok(report) => Ok(FirewallFacts {
            missing: match report.state {
                host::State::Missing => report.missing,
                _ => Vec::new(),
            },
            summary: report.summary,
        }),
        Err(e) => Err((
            format!("{e:#}"),
            crate::errors::hint(&e).unwrap_or_else(|| "see `drcache setup-host --check`".into()),
        )),
    }
}

/// The minikube side, when minikube is installed: the hosts.toml files
/// `configure` writes, whether the file-sync directory holds them, and each
/// running node's own check of every cache.
fn minikube_facts(ctx: &Context, specs: &[CacheSpec]) -> Option<MinikubeFacts> {
    let program = tools::find(&tools::MINIKUBE).ok()?;
    let registries: Vec<&Registry> = specs.iter().map(|s| &s.registry).collect();
    let host = ctx.config.host.clone();
    let files = match containerd::hosts_files(&registries, &host) {
        Ok(files) => files,
        Err(m) => {
            return Some(MinikubeFacts {
                host,
                files: Err(m),
                file_sync: Err(String::new()),
                profiles: Ok(Vec::new()),
            })
        }
    };
    let file_sync = stale_file_sync(&files);
    let mk = Minikube::new(program, &ctx.runner);
    let profiles = mk
        .profiles()
        .map_err(|e| format!("{e:#}").replace('\n', "; "))
        .map(|list| {
            let live: Vec<&Profile> = select_profiles(&list, &[])
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, selection)| *selection == Selection::Live)
                .map(|(profile, _)| profile)
                .collect();
            parallel::map(&live, |profile| profile_facts(&mk, profile, &files))
        });
    Some(MinikubeFacts {
        host,
        files: Ok(files),
        file_sync,
        profiles,
    })
}

/// The file-sync directory and the registries whose hosts.toml there is
/// missing or not what `configure` writes.
fn stale_file_sync(files: &[HostsFile]) -> Result<(PathBuf, Vec<String>), String> {
    let home = minikube::minikube_home_from_env()
        .ok_or_else(|| "neither MINIKUBE_HOME nor HOME is set".to_string())?;
    let dir = minikube::file_sync_certs_d(&home);
    let stale = files
        .iter()
        .filter(|f| {
            std::fs::read_to_string(dir.join(f.relative_path()))
                .ok()
                .as_deref()
                != Some(f.content.as_str())
        })
        .map(|f| f.registry.clone())
        .collect();
    Ok((dir, stale))
}

/// Each running node of `profile` checks every cache from inside.
fn profile_facts(mk: &Minikube, profile: &Profile, files: &[HostsFile]) -> ProfileFacts {
    let statuses = match mk.status(&profile.name) {
        Ok(s) => s,
        Err(e) => {
            return ProfileFacts {
                name: profile.name.clone(),
                nodes: Err(format!("{e:#}").replace('\n', "; ")),
            }
        }
    };
    let targets: Vec<(String, String)> = files
        .iter()
        .map(|f| (f.registry.clone(), f.mirror.clone()))
        .collect();
    let script = node_scripts::check_script(&targets);
    let running: Vec<NodeTarget> = nodes_of(profile, &statuses)
        .into_iter()
        .filter(NodeTarget::running)
        .collect();
    let nodes = parallel::map(&running, |node| NodeFacts {
        machine: node.machine.clone(),
        lines: mk
            .ssh(&profile.name, &node.machine, &script, false)
            .map(|out| node_scripts::parse_checks(&out.stdout))
            .map_err(|e| ssh_failure(&e, &profile.name, &node.machine)),
    });
    ProfileFacts {
        name: profile.name.clone(),
        nodes: Ok(nodes),
    }
}

/// The zone `setup-host` uses unless told otherwise (kvm2's libvirt network).
const DEFAULT_ZONE: &str = "libvirt";

/// A cache that exists but does not serve as a proxy right now: running
/// offline, running without answering, or stopped by an error.
fn not_serving_as_proxy(spec: &CacheSpec, facts: &Facts, probes: &[(String, Probe)]) -> bool {
    let Some(c) = facts.container(&spec.container) else {
        return false;
    };
    if c.is_running() {
        let ready = probes
            .iter()
            .any(|(r, p)| *r == spec.registry.name && p.is_ready());
        !ready || c.label(LABEL_MODE) == Some(Mode::Offline.as_str())
    } else {
        c.state == "exited" && c.exit_code != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
