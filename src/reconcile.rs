//! Desired caches vs what podman has -> a plan per cache -> applied in parallel.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use serde_json::json;

use crate::cache::{CacheSpec, Mode, OfflineOrigin, LABEL_HASH, LABEL_MODE, LABEL_OFFLINE};
use crate::clock;
use crate::hostinfo;
use crate::interrupt;
use crate::podman::{Container, Podman, RunError, Volume};
use crate::registry_http::{self, Probe};
use crate::upstream::{self, Silence};

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

    /// What `start` needs, and its plan: the container listing (waiting up
    /// to `wait_for_podman` for podman to answer), drcache's own question to
    /// the upstream of each cache that fell back to offline mode, and the
    /// volume listing only when a cache is not running and current. On
    /// healthy caches that is one podman call and no probe.
    pub fn read_for_start(
        podman: &Podman,
        specs: &[CacheSpec],
        trigger: Trigger,
        wait_for_podman: Duration,
    ) -> anyhow::Result<(Facts, Vec<Plan>)> {
        let containers = containers_waiting(podman, wait_for_podman)?;
        let find = |spec: &CacheSpec| containers.iter().find(|c| c.name() == spec.container);
        let answers = crate::parallel::map(specs, |spec| {
            needs_upstream_answer(spec, find(spec))
                .then(|| upstream::answers(&spec.registry.upstream, UPSTREAM_PROBE_TIMEOUT))
        });
        let plans: Vec<Plan> = specs
            .iter()
            .zip(&answers)
            .map(|(spec, answer)| plan_start(spec, find(spec), trigger, answer.as_ref()))
            .collect();
        let volumes = if plans.iter().all(|p| p.action == Action::Unchanged) {
            Vec::new()
        } else {
            podman.volumes()?
        };
        Ok((
            Facts {
                containers,
                volumes,
            },
            plans,
        ))
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
    // A person's `start --offline` is recorded on the container, so that
    // the autostart timer leaves it offline.
    if spec.mode == Mode::Offline
        && spec.offline_origin == OfflineOrigin::Requested
        && c.label(LABEL_OFFLINE) != Some(OfflineOrigin::Requested.as_str())
    {
        return Action::Recreate;
    }
    match c.state.as_str() {
        "running" => Action::Unchanged,
        "exited" | "stopped" | "created" | "configured" | "initialized" => Action::Start,
        // paused, dead, removing, unknown: start over from a clean container.
        _ => Action::Recreate,
    }
}

/// Who started this run of `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A person (or a script): `start --offline` is undone by the next plain `start`.
    Manual,
    /// The autostart unit, at boot or login and from its timer: a cache a
    /// person put offline stays offline.
    Automatic,
}

/// What `start` does with one cache: the action, and the cache as it will
/// run (`target`, whose mode may differ from the one asked for: a cache
/// whose upstream still does not answer stays offline).
#[derive(Debug, Clone)]
pub struct Plan {
    pub action: Action,
    pub target: CacheSpec,
    /// Why the cache stays offline although proxy mode was asked for.
    pub stays_offline: Option<String>,
}

/// Why the container of `spec` runs offline, when it is an offline cache
/// of this very configuration (else None: any other container is planned
/// by its hash). A container without the label (made before drcache
/// recorded why) counts as a fallback.
fn offline_origin(spec: &CacheSpec, c: &Container) -> Option<OfflineOrigin> {
    let offline_hash = spec.offline(OfflineOrigin::Fallback).config_hash();
    if c.label(LABEL_MODE) != Some(Mode::Offline.as_str())
        || c.label(LABEL_HASH) != Some(offline_hash.as_str())
    {
        return None;
    }
    Some(match c.label(LABEL_OFFLINE) {
        Some("requested") => OfflineOrigin::Requested,
        _ => OfflineOrigin::Fallback,
    })
}

/// Whether `start` must ask the upstream before planning `spec`: proxy
/// mode is asked for and the cache fell back to offline mode. Only then is
/// the upstream probed, so a start on healthy caches costs no probe.
pub fn needs_upstream_answer(spec: &CacheSpec, existing: Option<&Container>) -> bool {
    spec.mode == Mode::Proxy
        && existing.and_then(|c| offline_origin(spec, c)) == Some(OfflineOrigin::Fallback)
}

/// Decide what `start` does with one cache, given who started it and, for
/// a cache that fell back to offline mode, whether its upstream answers
/// now (`upstream`, from [`needs_upstream_answer`]'s probe). Pure.
///
/// - A fallback offline cache returns to proxy mode only when its upstream
///   answers; else it stays offline as it is (running: unchanged).
/// - A cache a person put offline (`start --offline`) returns to proxy
///   mode at the next plain `start` by a person, as before; an automatic
///   run leaves it offline.
/// - Everything else is [`plan`] of the spec as asked.
pub fn plan_start(
    spec: &CacheSpec,
    existing: Option<&Container>,
    trigger: Trigger,
    upstream: Option<&Result<(), Silence>>,
) -> Plan {
    let as_asked = || Plan {
        action: plan(spec, existing),
        target: spec.clone(),
        stays_offline: None,
    };
    let (Mode::Proxy, Some(c)) = (spec.mode, existing) else {
        return as_asked();
    };
    let keep = |origin: OfflineOrigin, why: Option<String>| {
        let target = spec.offline(origin);
        Plan {
            action: plan(&target, Some(c)),
            target,
            stays_offline: why,
        }
    };
    match (offline_origin(spec, c), trigger, upstream) {
        (Some(OfflineOrigin::Requested), Trigger::Automatic, _) => keep(
            OfflineOrigin::Requested,
            Some("put offline by `drcache start --offline`; a plain `drcache start` returns it to proxy mode".into()),
        ),
        (Some(OfflineOrigin::Fallback), _, Some(Err(silence))) => keep(
            OfflineOrigin::Fallback,
            Some(format!(
                "its upstream {} still does not answer ({silence}); it returns to proxy mode once it does",
                spec.registry.upstream
            )),
        ),
        _ => as_asked(),
    }
}

/// `podman ps`, retried every 2 s for up to `wait` while podman does not
/// answer (a podman machine still booting after login).
fn containers_waiting(podman: &Podman, wait: Duration) -> anyhow::Result<Vec<Container>> {
    let deadline = Instant::now() + wait;
    loop {
        match podman.containers() {
            Ok(containers) => return Ok(containers),
            Err(_) if Instant::now() < deadline && !interrupt::requested() => {
                std::thread::sleep(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
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
    /// Why a cache asked for in proxy mode was left offline, when it was.
    pub stays_offline: Option<String>,
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
            "stays_offline": o.stays_offline,
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
/// How long a port may take to be released by a container just removed.
const PORT_RELEASE_GRACE: Duration = Duration::from_secs(3);
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
pub fn images_needed(plans: &[Plan]) -> Vec<&str> {
    let mut images: Vec<&str> = Vec::new();
    for p in plans {
        if matches!(p.action, Action::Create | Action::Recreate)
            && !images.contains(&p.target.image.as_str())
        {
            images.push(&p.target.image);
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
    plans: &[Plan],
    on_pull: &dyn Fn(&str) -> bool,
) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for image in images_needed(plans) {
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

/// Bring one cache to its desired state and wait until it answers. A proxy
/// cache whose upstream cannot be reached falls back to offline mode.
/// `image_problem` says why the image cannot be had: then no container is
/// touched, so a working cache keeps running.
pub fn apply(
    podman: &Podman,
    planned: &Plan,
    facts: &Facts,
    image_problem: Option<&str>,
    timeout: Duration,
    dry_run: bool,
) -> Outcome {
    let started = Instant::now();
    let spec = &planned.target;
    let existing = facts.container(&spec.container);
    let action = planned.action;
    let mut outcome = Outcome {
        registry: spec.registry.name.clone(),
        port: spec.registry.port,
        action,
        mode: spec.mode,
        offline_reason: None,
        stays_offline: planned.stays_offline.clone(),
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
    let offline = spec.offline(OfflineOrigin::Fallback);
    outcome.mode = Mode::Offline;
    outcome.offline_reason = Some(reason);
    // A registry hanging on its upstream may ignore SIGTERM: no grace period.
    // podman 4.3 refuses `rm --time 0` of a container that exits at that
    // very moment ("could not be stopped ... state improper: stopped"): the
    // panicking registry often does. A plain removal then works.
    let names = std::slice::from_ref(&offline.container);
    let result = podman
        .remove_now(names)
        .or_else(|_| podman.remove(names))
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
            create(podman, spec, outcome).map_err(|e| describe_failure(spec, facts, e))
        }
    }
}

/// `podman run` the cache. "Name already in use" means another run won the
/// race: its container is read back and taken when it is the same
/// definition, and never removed. A container this run created but could
/// not start is removed by its id, so nothing half-made is left.
fn create(podman: &Podman, spec: &CacheSpec, outcome: &mut Outcome) -> anyhow::Result<()> {
    // A container removed a moment ago (a recreate, the offline fallback)
    // may still hold the port through its conmon.
    if !hostinfo::port_free_within(&spec.bind, spec.registry.port, PORT_RELEASE_GRACE) {
        bail!(
            "port {} for {} is still in use: address already in use",
            spec.registry.port,
            spec.registry.name
        );
    }
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

    fn offline_container(state: &str, origin: Option<&str>) -> Container {
        let offline = spec().offline(OfflineOrigin::Fallback);
        let mut c = container(state, Some(&offline.config_hash()));
        c.labels.insert(LABEL_MODE.into(), "offline".into());
        if let Some(origin) = origin {
            c.labels.insert(LABEL_OFFLINE.into(), origin.into());
        }
        c
    }

    #[test]
    fn a_fallback_offline_cache_returns_to_proxy_only_when_its_upstream_answers() {
        let s = spec();
        for origin in [Some("fallback"), None] {
            let running = offline_container("running", origin);
            assert!(needs_upstream_answer(&s, Some(&running)));
            for trigger in [Trigger::Manual, Trigger::Automatic] {
                let back = plan_start(&s, Some(&running), trigger, Some(&Ok(())));
                assert_eq!(back.action, Action::Recreate);
                assert_eq!(back.target.mode, Mode::Proxy);
                assert_eq!(back.stays_offline, None);

                let silent = Err(Silence::Refused);
                let kept = plan_start(&s, Some(&running), trigger, Some(&silent));
                assert_eq!(kept.action, Action::Unchanged);
                assert_eq!(kept.target.mode, Mode::Offline);
                assert_eq!(kept.target.offline_origin, OfflineOrigin::Fallback);
                assert_eq!(
                    kept.stays_offline.as_deref(),
                    Some("its upstream https://quay.io still does not answer (connection refused); it returns to proxy mode once it does")
                );
            }
            // After a reboot with the upstream still down: started as it is.
            let exited = offline_container("exited", origin);
            let kept = plan_start(
                &s,
                Some(&exited),
                Trigger::Automatic,
                Some(&Err(Silence::Refused)),
            );
            assert_eq!(kept.action, Action::Start);
            assert_eq!(kept.target.mode, Mode::Offline);
        }
    }

    #[test]
    fn a_requested_offline_cache_stays_offline_for_the_timer_not_for_a_person() {
        let s = spec();
        let running = offline_container("running", Some("requested"));
        // No probe: the choice is the person's, not the network's.
        assert!(!needs_upstream_answer(&s, Some(&running)));
        let kept = plan_start(&s, Some(&running), Trigger::Automatic, None);
        assert_eq!(kept.action, Action::Unchanged);
        assert_eq!(kept.target.offline_origin, OfflineOrigin::Requested);
        assert!(kept.stays_offline.unwrap().contains("start --offline"));
        let back = plan_start(&s, Some(&running), Trigger::Manual, None);
        assert_eq!(
            (back.action, back.target.mode),
            (Action::Recreate, Mode::Proxy)
        );
        // `start --offline` again: nothing to do; on a fallback cache, the
        // choice is recorded by recreating it (offline, fast).
        let asked = s.offline(OfflineOrigin::Requested);
        assert_eq!(plan(&asked, Some(&running)), Action::Unchanged);
        let fallback = offline_container("running", Some("fallback"));
        assert_eq!(plan(&asked, Some(&fallback)), Action::Recreate);
        assert_eq!(
            plan(&s.offline(OfflineOrigin::Fallback), Some(&fallback)),
            Action::Unchanged
        );
    }

    #[test]
    fn healthy_and_stale_caches_need_no_probe() {
        let s = spec();
        let healthy = container("running", Some(&s.config_hash()));
        assert!(!needs_upstream_answer(&s, Some(&healthy)));
        assert!(!needs_upstream_answer(&s, None));
        let p = plan_start(&s, Some(&healthy), Trigger::Automatic, None);
        assert_eq!((p.action, p.target.mode), (Action::Unchanged, Mode::Proxy));
        // An offline cache of another configuration (an older image): planned
        // by its hash, recreated in proxy mode, no probe first.
        let mut stale = offline_container("running", Some("fallback"));
        stale.labels.insert(LABEL_HASH.into(), "0000".into());
        assert!(!needs_upstream_answer(&s, Some(&stale)));
        assert_eq!(
            plan_start(&s, Some(&stale), Trigger::Automatic, None).action,
            Action::Recreate
        );
        // Asked for offline, no probe either.
        let asked = s.offline(OfflineOrigin::Requested);
        assert!(!needs_upstream_answer(
            &asked,
            Some(&offline_container("running", None))
        ));
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
        let message = describe_failure(&spec(), &facts, anyhow!("bind: address already in use"));
        assert_eq!(
            message.to_string(),
            "port 5051 for quay.io is already in use by container someone-else; \
             stop it or set another port for quay.io in the config"
        );
    }
}
