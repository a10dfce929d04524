//! Pruning one cache with the registry's own mechanisms: the cache is
//! stopped, the same image runs over the same volume as a plain registry
//! (no upstream) with deletes enabled on a loopback port, manifests are
//! deleted through its HTTP API, then `registry garbage-collect` frees the
//! blobs nothing references, and the cache comes back as `start` makes it,
//! in the mode it was in, also when a step failed.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{manifest_requests, Inventory, Keep, ManifestInfo, Plan, Recent, Repo};
use crate::cache::CacheSpec;
use crate::hostinfo::{self, HostOs};
use crate::interrupt;
use crate::oci::{self, Manifest};
use crate::podman::{Podman, RunError, RunSpec};
use crate::reconcile::{self, Action, Facts, Outcome};
use crate::registry_http::{self, Client};

/// How long the temporary registry and the restored cache get to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The temporary plain registry over a cache's volume, removed when dropped.
pub struct Helper<'p> {
    podman: &'p Podman<'p>,
    name: String,
    pub addr: String,
}

impl Drop for Helper<'_> {
    fn drop(&mut self) {
        let _ = self.podman.remove_now(std::slice::from_ref(&self.name));
    }
}

/// Run `spec`'s image over its volume as a plain registry on a random
/// loopback port: read-only for a dry run (next to the running cache),
/// else with deletes enabled. It has no upstream, so nothing it is asked
/// reaches one.
pub fn start_helper<'p>(
    podman: &'p Podman<'p>,
    spec: &CacheSpec,
    read_only: bool,
) -> Result<Helper<'p>, String> {
    let name = format!("{}-prune", spec.container);
    podman
        .remove_now(std::slice::from_ref(&name))
        .map_err(|e| e.to_string())?;
    let storage = if read_only {
        (
            "REGISTRY_STORAGE_MAINTENANCE_READONLY",
            "{\"enabled\": true}",
        )
    } else {
        ("REGISTRY_STORAGE_DELETE_ENABLED", "true")
    };
    let run = RunSpec {
        name: name.clone(),
        image: spec.image.clone(),
        publish: vec!["127.0.0.1::5000".into()],
        volumes: spec.run_spec().volumes,
        env: [
            storage,
            ("REGISTRY_LOG_LEVEL", "info"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        labels: vec![("drcache.prune-of".into(), spec.container.clone())],
        secrets: Vec::new(),
        command: Vec::new(),
        credential_fingerprint: None,
        restart: "no".into(),
    };
    let mut helper = Helper {
        podman,
        name: name.clone(),
        addr: String::new(),
    };
    match podman.run_container(&run) {
        Ok(_) => {}
        Err(RunError::NameInUse(e)) => return Err(e.to_string()),
        Err(RunError::Failed { error, .. }) => return Err(error.to_string()),
    }
    let port = podman
        .containers()
        .map_err(|e| format!("{e:#}"))?
        .iter()
        .find(|c| c.name() == name)
        .and_then(|c| c.host_port(5000))
        .ok_or_else(|| format!("podman shows no published port of {name}"))?;
    helper.addr = format!("127.0.0.1:{port}");
    // A registry that cannot start exits at once: stop waiting then.
    let last_check = std::cell::Cell::new(Instant::now());
    let exited = std::cell::Cell::new(false);
    let probe = registry_http::wait_ready(&helper.addr, READY_TIMEOUT, &|| {
        if last_check.get().elapsed() < Duration::from_millis(500) {
            return true;
        }
        last_check.set(Instant::now());
        let running = podman
            .containers()
            .map(|list| list.iter().any(|c| c.name() == name && c.is_running()))
            .unwrap_or(true);
        exited.set(!running);
        running
    });
    if !probe.is_ready() {
        let log = podman.logs_tail(&name, 5).unwrap_or_default();
        let state = if exited.get() {
            "exited"
        } else {
            "did not answer"
        };
        return Err(format!(
            "the temporary registry {name} over the cache's volume {state} ({probe:?}); \
             its log ends:\n{}",
            log.trim_end()
        ));
    }
    Ok(helper)
}

/// Every repository, tag and manifest the registry at `addr` holds.
pub fn inventory(addr: &str) -> Result<Inventory, String> {
    #[derive(serde::Deserialize)]
    struct Tags {
        #[serde(default)]
        tags: Option<Vec<String>>,
    }
    let client = Client::new(addr);
    let mut inv = Inventory::default();
    for name in registry_http::catalog(addr)? {
        let tags = match registry_http::get_text(addr, &format!("/v2/{name}/tags/list")) {
            Ok(body) => serde_json::from_str::<Tags>(&body)
                .map_err(|e| format!("tags of {name}: {e}"))?
                .tags
                .unwrap_or_default(),
            // A repository whose images were all deleted before has no tags.
            Err(e) if e.ends_with("HTTP 404") => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut repo = Repo {
            name: name.clone(),
            tags: Vec::new(),
        };
        for tag in tags {
            let top = client.manifest(&name, &tag)?;
            let digest = top.digest.clone();
            let mut pending = vec![top];
            while let Some(m) = pending.pop() {
                if inv.manifests.contains_key(&m.digest) {
                    continue;
                }
                let mut info = ManifestInfo {
                    size: m.bytes.len() as u64,
                    ..ManifestInfo::default()
                };
                match oci::parse(&m.content_type, &m.bytes) {
                    Ok(Manifest::Index(children)) => {
                        for child in children {
                            // A proxy cache holds the platforms that were pulled.
                            if let Ok(fetched) = client.manifest(&name, &child.digest) {
                                info.children.push(child.digest.clone());
                                pending.push(fetched);
                            }
                        }
                    }
                    Ok(Manifest::Image { config, layers }) => {
                        info.blobs = std::iter::once(config)
                            .chain(layers)
                            .map(|d| (d.digest, d.size.unwrap_or(0)))
                            .collect();
                    }
                    Err(e) => return Err(format!("{name}:{tag}: {e}")),
                }
                inv.manifests.insert(m.digest.clone(), info);
            }
            repo.tags.push((tag, digest));
        }
        inv.repos.push(repo);
    }
    Ok(inv)
}

/// `DELETE /v2/<repo>/manifests/<digest>`; one already gone is fine.
pub fn delete_manifest(addr: &str, repo: &str, digest: &str) -> Result<(), String> {
    let url = format!("http://{addr}/v2/{repo}/manifests/{digest}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into();
    let resp = agent
        .delete(&url)
        .call()
        .map_err(|e| format!("DELETE {url}: {e}"))?;
    match resp.status().as_u16() {
        200 | 202 | 404 => Ok(()),
        status => Err(format!("DELETE {url}: HTTP {status}")),
    }
}

/// The config file the image serves by default (its `Cmd`): registry 3's
/// `/etc/distribution/config.yml`, 2.x's `/etc/docker/registry/config.yml`.
fn image_config_path(podman: &Podman, image: &str) -> Result<String, String> {
    let cmd = podman.image_command(image).map_err(|e| format!("{e:#}"))?;
    cmd.into_iter()
        .find(|a| a.ends_with(".yml") || a.ends_with(".yaml"))
        .ok_or_else(|| format!("cannot tell which config file {image} serves (no .yml in its Cmd)"))
}

/// `registry garbage-collect CONFIG` over the cache's volume; returns the
/// registry's summary line. Untagged manifests are not swept
/// (`--delete-untagged` would also take images pulled by digest only, and
/// on 2.x the platform manifests of kept multi-platform images).
pub fn garbage_collect(podman: &Podman, spec: &CacheSpec) -> Result<String, String> {
    let config = image_config_path(podman, &spec.image)?;
    let mount = spec.run_spec().volumes.remove(0);
    let env = [("OTEL_TRACES_EXPORTER".to_string(), "none".to_string())];
    let out = podman
        .run_registry_once(
            &spec.image,
            &mount,
            &env,
            &["garbage-collect".into(), config],
        )
        .map_err(|e| e.to_string())?;
    let text = format!("{}{}", out.stdout, out.stderr);
    Ok(text
        .lines()
        .rev()
        .find(|l| l.contains("eligible for deletion"))
        .map(|l| {
            let l = l.trim();
            l.rsplit_once("msg=")
                .map_or(l, |(_, m)| m)
                .trim_matches('"')
                .to_string()
        })
        .unwrap_or_default())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What the cache's access log (`podman logs`, kept for the life of the
/// container: it survives stops and starts, not a recreation) says about
/// pulls in the last `window` seconds. A container younger than the window
/// cannot say: then every image's last pull is unknown.
pub fn recent(podman: &Podman, container: &str, window: u64) -> Result<Recent, String> {
    let now = unix_now();
    let since = now.saturating_sub(window);
    let created = podman
        .container_created(container)
        .map_err(|e| format!("{e:#}"))?;
    if created < 0 || created as u64 > since {
        return Ok(Recent::Unknown);
    }
    let log = podman
        .logs_since(container, since)
        .map_err(|e| e.to_string())?;
    Ok(Recent::Seen(manifest_requests(&log)))
}

/// Disk used by a volume as `status` measures it; None where the volume
/// lives inside a podman machine (macOS).
pub fn disk_bytes(facts: &Facts, volume: &str) -> Option<u64> {
    if hostinfo::host_os() == HostOs::Macos {
        return None;
    }
    let v = facts.volume(volume).filter(|v| !v.mountpoint.is_empty())?;
    hostinfo::disk_usage(Path::new(&v.mountpoint))
}

/// How one cache's prune went.
#[derive(Debug, Default)]
pub struct Report {
    pub plan: Option<Plan>,
    pub gc_summary: Option<String>,
    pub downtime: Option<Duration>,
    pub restored: Option<Outcome>,
    pub error: Option<String>,
}

/// Brings the cache back when dropped, unless [`Restore::finish`] did.
struct Restore<'p> {
    podman: &'p Podman<'p>,
    spec: &'p CacheSpec,
    stopped_at: Instant,
    done: bool,
}

impl Restore<'_> {
    /// Bring the cache back (once) and say how it ended and how long it was down.
    fn finish(&mut self) -> (Outcome, Duration) {
        self.done = true;
        let facts = Facts::read(self.podman)
            .or_else(|_| Facts::read(self.podman))
            .unwrap_or_default();
        let outcome = if interrupt::requested() {
            restart_anyway(self.podman, self.spec)
        } else {
            // The cache as it was: its own mode, nothing decided anew.
            let planned = reconcile::Plan {
                action: reconcile::plan(self.spec, facts.container(&self.spec.container)),
                target: self.spec.clone(),
                stays_offline: None,
            };
            reconcile::apply(self.podman, &planned, &facts, None, READY_TIMEOUT, false)
        };
        (outcome, self.stopped_at.elapsed())
    }
}

/// After Ctrl-C `reconcile::apply` begins nothing new, but a cache prune
/// stopped must not stay down: start the same container and wait for it.
fn restart_anyway(podman: &Podman, spec: &CacheSpec) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome {
        registry: spec.registry.name.clone(),
        port: spec.registry.port,
        action: Action::Start,
        mode: spec.mode,
        offline_reason: None,
        volume_created: false,
        adopted: false,
        stays_offline: None,
        secret_removed: false,
        probe: None,
        error: None,
        elapsed: Duration::ZERO,
    };
    match podman.start(std::slice::from_ref(&spec.container)) {
        Ok(()) => {
            let addr = spec.probe_addr();
            outcome.probe = Some(registry_http::wait_ready(&addr, READY_TIMEOUT, &|| true));
        }
        Err(e) => outcome.error = Some(e.into()),
    }
    outcome.elapsed = started.elapsed();
    outcome
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.finish();
        }
    }
}

/// Prune one running or stopped cache. `spec` is the cache as `start`
/// makes it in the mode it was in; a cache that was running is brought
/// back, one that was stopped is left stopped.
pub fn prune_cache(podman: &Podman, spec: &CacheSpec, was_running: bool, keep: &Keep) -> Report {
    // Planned first beside the running cache: with nothing to delete, the
    // cache is not stopped at all. Otherwise the plan is made again once it
    // is stopped, from what the volume holds then.
    let preview = plan_only(podman, spec, keep);
    if preview.plan.as_ref().is_none_or(|p| p.deletes.is_empty()) {
        return preview;
    }
    let mut report = Report::default();
    let mut restore = was_running.then(|| Restore {
        podman,
        spec,
        stopped_at: Instant::now(),
        done: false,
    });
    let steps = (|| -> Result<(), String> {
        if was_running {
            podman
                .stop(std::slice::from_ref(&spec.container))
                .map_err(|e| e.to_string())?;
        }
        if interrupt::requested() {
            return Err("interrupted before anything was deleted".into());
        }
        let helper = start_helper(podman, spec, false)?;
        let plan = super::plan(&inventory(&helper.addr)?, keep);
        let deletes = plan.deletes.clone();
        report.plan = Some(plan);
        let mut deleted = BTreeSet::new();
        for (repo, digest) in &deletes {
            if interrupt::requested() {
                return Err(interrupted(deleted.len(), deletes.len()));
            }
            delete_manifest(&helper.addr, repo, digest)?;
            deleted.insert(digest);
        }
        drop(helper);
        if interrupt::requested() && !deleted.is_empty() {
            return Err(interrupted(deleted.len(), deletes.len()));
        }
        if !deleted.is_empty() {
            report.gc_summary = Some(garbage_collect(podman, spec)?);
        }
        Ok(())
    })();
    report.error = steps.err();
    if let Some(restore) = restore.as_mut() {
        let (outcome, downtime) = restore.finish();
        report.downtime = Some(downtime);
        report.restored = Some(outcome);
    }
    report
}

fn interrupted(done: usize, all: usize) -> String {
    format!(
        "interrupted after {done} of {all} manifest deletions; their blobs are freed \
         by the next prune"
    )
}

/// The plan for one cache without changing it: a read-only registry runs
/// next to the cache over its volume (a proxy cache itself would ask its
/// upstream for tags), and is removed again.
pub fn plan_only(podman: &Podman, spec: &CacheSpec, keep: &Keep) -> Report {
    let planned = start_helper(podman, spec, true)
        .and_then(|helper| inventory(&helper.addr))
        .map(|inv| super::plan(&inv, keep));
    match planned {
        Ok(plan) => Report {
            plan: Some(plan),
            ..Report::default()
        },
        Err(e) => Report {
            error: Some(e),
            ..Report::default()
        },
    }
}
