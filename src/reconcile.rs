//! Desired caches vs what podman has -> a plan per cache -> applied in parallel.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use serde_json::json;

use crate::cache::{CacheSpec, Mode, LABEL_HASH};
use crate::clock;
use crate::hostinfo;
use crate::interrupt;
use crate::podman::{Container, Podman, RunError, Volume};
use crate::registry_http::{self, Probe};
use crate::upstream;

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

    /// What `start` needs: the container listing alone when every selected
    /// cache is running and current (one podman call), else the volumes too.
    pub fn read_for_start(podman: &Podman, specs: &[CacheSpec]) -> anyhow::Result<Facts> {
        let containers = podman.containers()?;
        let volumes = if all_unchanged(specs, &containers) {
            Vec::new()
        } else {
            podman.volumes()?
        };
        Ok(Facts {
            containers,
            volumes,
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
#[derive(Debug)]
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
    /// Another drcache run created the same container at the same moment,
    /// and this run took it as it was.
    pub adopted: bool,
    /// The login secret the old container used was removed with it.
    pub secret_removed: bool,
    /// The probe after the action; None under --dry-run.
    pub probe: Option<Probe>,
    /// Why the cache could not be brought up; typed until it is shown.
    pub error: Option<anyhow::Error>,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    pub fn ready(&self) -> bool {
        self.probe.as_ref().is_some_and(Probe::is_ready)
    }

    /// The cache's line of `start --json`.
    pub fn to_json(&self) -> serde_json::Value {
        let o = self;
        json!({
            "registry": o.registry,
            "port": o.port,
            "action": o.action.past_tense(),
            "mode": o.mode.as_str(),
            "offline_reason": o.offline_reason,
            "volume_created": o.volume_created,
            "adopted": o.adopted,
            "secret_removed": o.secret_removed,
            "ready": o.ready(),
            "error": o.error.as_ref().map(|e| format!("{e:#}")),
            "seconds": (o.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        })
    }
}

/// How often the logs of a starting proxy cache are read for an upstream failure.
const LOG_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// A proxy cache not answering after this long while its log shows no
/// failure may be hanging on its upstream: drcache then asks the upstream.
const HANG_CHECK_AFTER: Duration = Duration::from_secs(5);
/// How long the upstream gets to answer drcache's own probe.
pub const UPSTREAM_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

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

/// The images that the planned actions need to create containers from.
pub fn images_needed<'a>(specs: &'a [CacheSpec], facts: &Facts) -> Vec<&'a str> {
    let mut images: Vec<&str> = Vec::new();
    for spec in specs {
        let action = plan(spec, facts.container(&spec.container));
        if matches!(action, Action::Create | Action::Recreate)
            && !images.contains(&spec.image.as_str())
        {
            images.push(&spec.image);
        }
    }
    images
}

/// Make sure every image a container will be created from is here, before
/// any container is touched: one pull per image, not one per cache, so a
/// cache whose image cannot be had keeps running as it is. `on_pull` is
/// told of each pull and says whether to show podman's progress. Returns
/// the images that cannot be had, with why.
pub fn ensure_images(
    podman: &Podman,
    specs: &[CacheSpec],
    facts: &Facts,
    on_pull: &dyn Fn(&str) -> bool,
) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for image in images_needed(specs, facts) {
        if interrupt::requested() {
            problems.push((
                image.to_string(),
                "interrupted before the image was pulled".into(),
            ));
            continue;
        }
        match podman.image_exists(image) {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => {
                problems.push((image.to_string(), format!("{:#}", anyhow::Error::new(e))));
                continue;
            }
        }
        if let Err(e) = podman.pull(image, on_pull(image)) {
            let why = e
                .stderr_tail
                .lines()
                .last()
                .unwrap_or("")
                .trim()
                .to_string();
            let message = format!(
                "image {image} is not on this machine and cannot be pulled{}",
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {why}")
                }
            );
            problems.push((image.to_string(), message));
        }
    }
    problems
}

/// Whether every selected cache is running and current: then nothing needs
/// a volume listing (a running container with its volume mounted proves
/// the volume is there).
fn all_unchanged(specs: &[CacheSpec], containers: &[Container]) -> bool {
    specs.iter().all(|spec| {
        let existing = containers.iter().find(|c| c.name() == spec.container);
        plan(spec, existing) == Action::Unchanged
    })
}

/// Bring one cache to its desired state and wait until it answers. A proxy
/// cache whose upstream cannot be reached falls back to offline mode.
/// `image_problem` says why the image cannot be had: then no container is
/// touched, so a working cache keeps running.
pub fn apply(
    podman: &Podman,
    spec: &CacheSpec,
    facts: &Facts,
    image_problem: Option<&str>,
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
        adopted: false,
        secret_removed: false,
        probe: None,
        error: None,
        elapsed: Duration::ZERO,
    };
    if interrupt::requested() {
        outcome.error = Some(anyhow!("interrupted before it began; nothing was changed"));
        return outcome;
    }
    if let (Some(problem), Action::Create | Action::Recreate) = (image_problem, action) {
        outcome.error = Some(match existing {
            Some(c) if c.is_running() => anyhow!("{problem}; the running cache was left as it is"),
            _ => anyhow!("{problem}"),
        });
        return outcome;
    }
    // Logs of this run of the container: since our action, or for one left
    // running (perhaps in podman's restart loop) since its last start. A
    // second of slack: podman's clock and ours are read apart.
    let since = match existing {
        Some(c) if action == Action::Unchanged && c.started_at > 0 => c.started_at as u64,
        _ => clock::unix_now().max(0) as u64,
    }
    .saturating_sub(1);
    if let Err(e) = converge(podman, spec, facts, action, &mut outcome) {
        outcome.error = Some(e);
    } else if !dry_run {
        let (probe, failure) = wait_or_find_failure(podman, spec, since, timeout);
        match failure {
            Some(reason) => fall_back_offline(podman, spec, timeout, reason, &mut outcome),
            None => outcome.probe = Some(probe),
        }
    }
    outcome.elapsed = started.elapsed();
    outcome
}

/// Wait until the cache answers. For a proxy cache, also watch for the
/// reasons to give up on its upstream: the registry's own panic line, or
/// (when it hangs without one) the upstream not answering drcache either.
fn wait_or_find_failure(
    podman: &Podman,
    spec: &CacheSpec,
    since: u64,
    timeout: Duration,
) -> (Probe, Option<String>) {
    let watch = spec.mode == Mode::Proxy;
    let started = Instant::now();
    let failure = RefCell::new(None);
    let last_check = Cell::new(Instant::now());
    let upstream_asked = Cell::new(false);
    let probe = registry_http::wait_ready(&spec.probe_addr(), timeout, &|| {
        if interrupt::requested() {
            return false;
        }
        if !watch || last_check.get().elapsed() < LOG_CHECK_INTERVAL {
            return true;
        }
        last_check.set(Instant::now());
        let log = podman
            .logs_since(&spec.container, since)
            .unwrap_or_default();
        let mut found = upstream_failure(&log, &spec.registry.upstream);
        if found.is_none() && !upstream_asked.get() && started.elapsed() >= HANG_CHECK_AFTER {
            upstream_asked.set(true);
            found = upstream::answers(&spec.registry.upstream, UPSTREAM_PROBE_TIMEOUT)
                .err()
                .map(|silence| {
                    format!(
                        "the registry hangs on its upstream {}, which does not answer this host either ({silence})",
                        spec.registry.upstream
                    )
                });
        }
        *failure.borrow_mut() = found;
        failure.borrow().is_none()
    });
    (probe, failure.into_inner())
}

/// Serve the cached images read-only from the same volume, without upstream.
pub fn fall_back_offline(
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
    // A registry hanging on its upstream may ignore SIGTERM: no grace period.
    let result = podman
        .remove_now(std::slice::from_ref(&offline.container))
        .map_err(anyhow::Error::from)
        .and_then(|_| create(podman, &offline, outcome));
    match result {
        Ok(()) => {
            outcome.probe = Some(registry_http::wait_ready(
                &offline.probe_addr(),
                timeout,
                &|| !interrupt::requested(),
            ))
        }
        Err(e) => outcome.error = Some(e),
    }
}

fn converge(
    podman: &Podman,
    spec: &CacheSpec,
    facts: &Facts,
    action: Action,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    match action {
        Action::Unchanged => Ok(()),
        // The container's volume is mounted in it: it exists. A failed
        // start leaves the container as it was (it is not this run's).
        Action::Start => podman
            .start(std::slice::from_ref(&spec.container))
            .map_err(|e| describe_failure(spec, facts, e.into())),
        Action::Create | Action::Recreate => {
            // An existing volume of exactly this name is adopted as it is:
            // that is how users of the older helper keep their cached images.
            if facts.volume(&spec.volume).is_none() {
                podman
                    .create_volume(&spec.volume, &spec.volume_labels())
                    .context("cannot create the cache's volume")?;
                outcome.volume_created = true;
            }
            if action == Action::Recreate {
                podman.remove(std::slice::from_ref(&spec.container))?;
                // The login was removed from the config (or the cache goes
                // offline): its secret, the login in plain text in podman's
                // store, goes with the container that used it.
                let used_login = facts
                    .container(&spec.container)
                    .is_some_and(CacheSpec::container_used_login);
                if used_login && spec.secrets().is_empty() {
                    podman
                        .remove_secret_if_present(&spec.config_secret_name())
                        .context("cannot remove the login secret the cache no longer uses")?;
                    outcome.secret_removed = true;
                }
            }
            if !hostinfo::port_free(&spec.bind, spec.registry.port) {
                return Err(describe_failure(
                    spec,
                    facts,
                    anyhow!("address already in use"),
                ));
            }
            create(podman, spec, outcome).map_err(|e| describe_failure(spec, facts, e))
        }
    }
}

/// `podman run` the cache. "Name already in use" means another run won the
/// race: its container is read back and taken when it is the same
/// definition, and never removed. A container this run created but could
/// not start is removed by its id, so nothing half-made is left.
fn create(podman: &Podman, spec: &CacheSpec, outcome: &mut Outcome) -> anyhow::Result<()> {
    for (name, value) in spec.secret_values() {
        podman.replace_secret(&name, &value)?;
    }
    match podman.run_container(&spec.run_spec()) {
        Ok(_) => Ok(()),
        Err(RunError::NameInUse(e)) => {
            let containers = podman.containers()?;
            let theirs = containers.iter().find(|c| c.name() == spec.container);
            match theirs {
                Some(c) if c.label(LABEL_HASH) == Some(spec.config_hash().as_str()) => {
                    outcome.adopted = true;
                    Ok(())
                }
                _ => Err(anyhow::Error::from(*e).context(format!(
                    "{} was created by someone else at the same moment, with another \
                     definition; it was left alone: run `drcache start` again",
                    spec.container
                ))),
            }
        }
        Err(RunError::Failed { error, created }) => {
            if let Some(id) = created {
                let _ = podman.remove(&[id]);
            }
            Err((*error).into())
        }
    }
}
/// A port clash told with who holds the port; any other error as it is.
fn describe_failure(spec: &CacheSpec, facts: &Facts, error: anyhow::Error) -> anyhow::Error {
    if format!("{error:#}").contains("address already in use") {
        let by = facts
            .port_holder(spec.registry.port, &spec.container)
            .map(|c| format!("container {}", c.name()))
            .unwrap_or_else(|| "another process".into());
        anyhow!(
            "port {} for {} is already in use by {by}; stop it or set another port for {} in the config",
            spec.registry.port, spec.registry.name, spec.registry.name
        )
    } else {
        error
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
        let message = describe_failure(&spec(), &facts, anyhow!("bind: address already in use"));
        assert_eq!(
            message.to_string(),
            "port 5051 for quay.io is already in use by container someone-else; \
             stop it or set another port for quay.io in the config"
        );
    }
}
