//! Desired caches vs what podman has -> a plan per cache -> applied in parallel.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cache::{CacheSpec, Mode, LABEL_HASH};
use crate::hostinfo;
use crate::podman::{Container, Podman, Volume};
use crate::registry_http::{self, Probe};

/// What podman has, read once: one `ps` and one `volume ls`.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub containers: Vec<Container>,
    pub volumes: Vec<Volume>,
}

impl Facts {
    /// Read containers and volumes, the two calls side by side.
    pub fn read(podman: &Podman) -> anyhow::Result<Facts> {
        let (containers, volumes) = std::thread::scope(|s| {
            let volumes = s.spawn(|| podman.volumes());
            let containers = podman.containers();
            (containers, volumes.join().expect("volume listing panicked"))
        });
        Ok(Facts {
            containers: containers?,
            volumes: volumes?,
        })
    }

    pub fn container(&self, name: &str) -> Option<&Container> {
        self.containers.iter().find(|c| c.name() == name)
    }

    pub fn volume(&self, name: &str) -> Option<&Volume> {
        self.volumes.iter().find(|v| v.name == name)
    }

    /// The container (other than `except`) publishing `port` on the host.
    pub fn port_holder(&self, port: u16, except: &str) -> Option<&Container> {
        self.containers.iter().find(|c| {
            c.name() != except && c.is_running() && c.ports.iter().any(|p| p.host_port == port)
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    /// The container exists but no longer matches the configuration.
    Recreate,
    Start,
    Unchanged,
}

impl Action {
    pub fn past_tense(self) -> &'static str {
        match self {
            Action::Create => "created",
            Action::Recreate => "recreated",
            Action::Start => "started",
            Action::Unchanged => "unchanged",
        }
    }
}

/// Decide what to do with one cache.
pub fn plan(spec: &CacheSpec, existing: Option<&Container>) -> Action {
    let Some(c) = existing else {
        return Action::Create;
    };
    if c.label(LABEL_HASH) != Some(spec.config_hash().as_str()) {
        return Action::Recreate;
    }
    match c.state.as_str() {
        "running" => Action::Unchanged,
        "exited" | "stopped" | "created" | "configured" | "initialized" => Action::Start,
        // paused, dead, removing, unknown: start over from a clean container.
        _ => Action::Recreate,
    }
}

/// How one cache ended up.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub registry: String,
    pub port: u16,
    pub action: Action,
    /// The mode the cache ended in.
    pub mode: Mode,
    /// Why a proxy cache fell back to offline mode, when it did.
    pub offline_reason: Option<String>,
    /// Whether the volume was created now (false: it existed and was adopted or kept).
    pub volume_created: bool,
    /// The probe after the action; None under --dry-run.
    pub probe: Option<Probe>,
    pub error: Option<String>,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    pub fn ready(&self) -> bool {
        self.probe.as_ref().is_some_and(Probe::is_ready)
    }
}

/// How often the logs of a starting proxy cache are read for an upstream failure.
const LOG_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The line of a registry log that says it could not reach its upstream.
/// The registry checks its upstream at start and panics when that fails
/// (distribution issue 4038), so the container exits.
pub fn upstream_failure(log: &str, upstream: &str) -> Option<String> {
    let host = upstream
        .split_once("://")
        .map_or(upstream, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or(upstream);
    log.lines()
        .find(|l| l.contains("panic:") && l.contains(host))
        .map(|l| l.trim().to_string())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Bring one cache to its desired state and wait until it answers. A proxy
/// cache whose upstream cannot be reached falls back to offline mode.
pub fn apply(
    podman: &Podman,
    spec: &CacheSpec,
    facts: &Facts,
    timeout: Duration,
    dry_run: bool,
) -> Outcome {
    let started = Instant::now();
    let existing = facts.container(&spec.container);
    let action = plan(spec, existing);
    let mut outcome = Outcome {
        registry: spec.registry.name.clone(),
        port: spec.registry.port,
        action,
        mode: spec.mode,
        offline_reason: None,
        volume_created: false,
        probe: None,
        error: None,
        elapsed: Duration::ZERO,
    };
    // Logs of this run of the container: since our action, or for one left
    // running (perhaps in podman's restart loop) since its last start. A
    // second of slack: podman's clock and ours are read apart.
    let since = match existing {
        Some(c) if action == Action::Unchanged && c.started_at > 0 => c.started_at as u64,
        _ => unix_now(),
    }
    .saturating_sub(1);
    if let Err(e) = converge(podman, spec, facts, action, &mut outcome) {
        outcome.error = Some(e);
    } else if !dry_run {
        let watch_logs = spec.mode == Mode::Proxy;
        let failure = RefCell::new(None);
        let last_check = Cell::new(Instant::now());
        let probe = registry_http::wait_ready(&spec.probe_addr(), timeout, &|| {
            if !watch_logs || last_check.get().elapsed() < LOG_CHECK_INTERVAL {
                return true;
            }
            last_check.set(Instant::now());
            let log = podman
                .logs_since(&spec.container, since)
                .unwrap_or_default();
            *failure.borrow_mut() = upstream_failure(&log, &spec.registry.upstream);
            failure.borrow().is_none()
        });
        let failure = failure.into_inner();
        match failure {
            Some(reason) => fall_back_offline(podman, spec, timeout, reason, &mut outcome),
            None => outcome.probe = Some(probe),
        }
    }
    outcome.elapsed = started.elapsed();
    outcome
}

/// Serve the cached images read-only from the same volume, without upstream.
fn fall_back_offline(
    podman: &Podman,
    spec: &CacheSpec,
    timeout: Duration,
    reason: String,
    outcome: &mut Outcome,
) {
    let offline = CacheSpec {
        mode: Mode::Offline,
        ..spec.clone()
    };
    outcome.mode = Mode::Offline;
    outcome.offline_reason = Some(reason);
    let result = podman
        .remove(std::slice::from_ref(&offline.container))
        .and_then(|_| podman.run_container(&offline.run_spec()));
    match result {
        Ok(_) => {
            outcome.probe = Some(registry_http::wait_ready(
                &offline.probe_addr(),
                timeout,
                &|| true,
            ))
        }
        Err(e) => {
            let _ = podman.remove(std::slice::from_ref(&offline.container));
            outcome.error = Some(e.to_string());
        }
    }
}

fn converge(
    podman: &Podman,
    spec: &CacheSpec,
    facts: &Facts,
    action: Action,
    outcome: &mut Outcome,
) -> Result<(), String> {
    // An existing volume of exactly this name is adopted as it is: that is how
    // users of the older helper keep their cached images.
    if facts.volume(&spec.volume).is_none() {
        podman
            .create_volume(&spec.volume, &spec.volume_labels())
            .map_err(|e| format!("{e:#}"))?;
        outcome.volume_created = true;
    }
    match action {
        Action::Unchanged => Ok(()),
        Action::Start => podman
            .start(std::slice::from_ref(&spec.container))
            .map_err(|e| {
                // Leave no half-started container behind; the volume stays.
                let _ = podman.remove(std::slice::from_ref(&spec.container));
                describe_failure(spec, facts, &e.to_string())
            }),
        Action::Create | Action::Recreate => {
            if action == Action::Recreate {
                podman
                    .remove(std::slice::from_ref(&spec.container))
                    .map_err(|e| e.to_string())?;
            }
            if !hostinfo::port_free(&spec.bind, spec.registry.port) {
                return Err(describe_failure(spec, facts, "address already in use"));
            }
            for (name, value) in spec.secret_values() {
                podman
                    .replace_secret(&name, &value)
                    .map_err(|e| e.to_string())?;
            }
            podman
                .run_container(&spec.run_spec())
                .map(drop)
                .map_err(|e| {
                    // `podman run` may leave the container in `created` state.
                    let _ = podman.remove(std::slice::from_ref(&spec.container));
                    describe_failure(spec, facts, &e.to_string())
                })
        }
    }
}

fn describe_failure(spec: &CacheSpec, facts: &Facts, error: &str) -> String {
    if error.contains("address already in use") {
        let by = facts
            .port_holder(spec.registry.port, &spec.container)
            .map(|c| format!("container {}", c.name()))
            .unwrap_or_else(|| "another process".into());
        format!(
            "port {} for {} is already in use by {by}; stop it or set another port for {} in the config",
            spec.registry.port, spec.registry.name, spec.registry.name
        )
    } else {
        error.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Mode;
    use crate::config;
    use std::collections::HashMap;

    fn spec() -> CacheSpec {
        let c = config::load(None).unwrap();
        CacheSpec::new(&c, &c.registries[0], Mode::Proxy)
    }

    fn container(state: &str, hash: Option<&str>) -> Container {
        let mut labels = HashMap::new();
        if let Some(h) = hash {
            labels.insert(LABEL_HASH.to_string(), h.to_string());
        }
        Container {
            id: "id".into(),
            names: vec![spec().container],
            state: state.into(),
            labels,
            ..Container::default()
        }
    }

    #[test]
    fn plan_covers_every_state() {
        let s = spec();
        let hash = s.config_hash();
        assert_eq!(plan(&s, None), Action::Create);
        assert_eq!(
            plan(&s, Some(&container("running", Some(&hash)))),
            Action::Unchanged
        );
        for state in ["exited", "stopped", "created", "configured"] {
            assert_eq!(
                plan(&s, Some(&container(state, Some(&hash)))),
                Action::Start
            );
        }
        for state in ["paused", "dead", "removing", "weird"] {
            assert_eq!(
                plan(&s, Some(&container(state, Some(&hash)))),
                Action::Recreate
            );
        }
        // drenv's own containers carry no drcache hash: recreated, volume kept.
        assert_eq!(
            plan(&s, Some(&container("running", None))),
            Action::Recreate
        );
        assert_eq!(
            plan(&s, Some(&container("running", Some("0000")))),
            Action::Recreate
        );
    }

    #[test]
    fn upstream_failure_is_found_in_the_registry_log() {
        // Debian's registry 2.8.2, upstream not listening.
        let log = "time=\"2026-11-28T03:27:27Z\" level=info msg=\"redis not configured\"\n\
                   panic: Get \"http://host.containers.internal:1/v2/\": dial tcp 10.88.0.1:1: connect: connection refused\n\
                   \n\
                   goroutine 1 [running]:\n";
        assert_eq!(
            upstream_failure(log, "http://host.containers.internal:1").unwrap(),
            "panic: Get \"http://host.containers.internal:1/v2/\": dial tcp 10.88.0.1:1: connect: connection refused"
        );
        assert_eq!(upstream_failure(log, "https://quay.io"), None);
        assert_eq!(
            upstream_failure("level=info msg=listening", "http://h:1"),
            None
        );
    }

    #[test]
    fn upstream_failure_is_found_in_a_real_registry_3_log() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/registry/registry-3.1.1-log-upstream-unreachable.txt"
        );
        let log = std::fs::read_to_string(path).unwrap();
        assert_eq!(
            upstream_failure(&log, "http://host.containers.internal:16100").unwrap(),
            "panic: Get \"http://host.containers.internal:16100/v2/\": dial tcp 10.88.0.1:16100: connect: connection refused"
        );
        assert_eq!(
            upstream_failure(&log, "http://host.containers.internal:16101"),
            None
        );
    }

    #[test]
    fn a_podman5_cache_that_is_stopping_is_recreated() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/podman5/podman5-ps-a-stopping.json"
        );
        let list =
            crate::podman::parse_containers(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut stopping = list[0].clone();
        assert_eq!(stopping.state, "stopping");
        let s = spec();
        stopping
            .labels
            .insert(LABEL_HASH.to_string(), s.config_hash());
        assert_eq!(plan(&s, Some(&stopping)), Action::Recreate);
    }

    #[test]
    fn port_holder_names_the_container() {
        let mut other = container("running", None);
        other.names = vec!["someone-else".into()];
        other.ports = vec![crate::podman::PortMapping {
            host_ip: String::new(),
            container_port: 80,
            host_port: 5051,
        }];
        let facts = Facts {
            containers: vec![other],
            volumes: vec![],
        };
        let message = describe_failure(&spec(), &facts, "bind: address already in use");
        assert_eq!(
            message,
            "port 5051 for quay.io is already in use by container someone-else; \
             stop it or set another port for quay.io in the config"
        );
    }
}
