//! Filling caches ahead of need: for each image, its manifest (and for an
//! index, the manifests of the wanted platforms), then its config and layer
//! blobs, all fetched through the cache with their digests checked and the
//! bytes thrown away. A bounded number of connections work from one queue.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::imageref::ImageRef;
use crate::oci::{self, Manifest, Platforms};
use crate::registry_http::Client;

/// How deep indexes may nest (an index of indexes is legal but rare).
const MAX_INDEX_DEPTH: usize = 2;

/// One image to warm through one cache.
#[derive(Debug, Clone)]
pub struct Target {
    /// As given by the user.
    pub input: String,
    pub image: ImageRef,
    /// The cache's registry name.
    pub cache: String,
    /// `host:port` of the cache.
    pub addr: String,
}

/// What warming one image found and fetched.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Manifests fetched: the top one and the chosen platform manifests.
    pub manifests: usize,
    /// The platforms chosen from an index; empty for a single-platform image.
    pub platforms: Vec<String>,
    /// (digest, size) of the config and layer blobs, without duplicates.
    pub blobs: Vec<(String, Option<u64>)>,
}

/// The outcome for one image.
#[derive(Debug, Clone)]
pub struct ImageResult {
    pub target: Target,
    pub plan: Plan,
    /// Blobs fetched for this image (shared blobs count for the first image).
    pub blobs: usize,
    pub bytes: u64,
    pub elapsed: Duration,
    pub error: Option<String>,
}

/// Progress callbacks; implementations draw bars or print lines.
pub trait Reporter: Sync {
    /// The manifests are resolved: `total` bytes of blobs are to come.
    fn planned(&self, index: usize, target: &Target, plan: &Plan, total: u64);
    fn advance(&self, index: usize, bytes: u64);
    fn finished(&self, index: usize, result: &ImageResult);
}

/// Run `work` over `items` on at most `jobs` threads; results keep input order.
pub fn bounded<T: Sync, R: Send>(
    jobs: usize,
    items: &[T],
    work: impl Fn(usize, &T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = work(i, item);
                *results[i].lock().unwrap() = Some(r);
            });
        }
    });
    results
        .into_iter()
        .map(|m| m.into_inner().unwrap().expect("every item was processed"))
        .collect()
}

/// Resolve the manifests of one image down to its blobs.
pub fn resolve(client: &Client, image: &ImageRef, platforms: &Platforms) -> Result<Plan, String> {
    let mut plan = Plan::default();
    let mut seen = HashSet::new();
    walk(
        client,
        image,
        image.reference(),
        platforms,
        0,
        &mut plan,
        &mut seen,
    )?;
    Ok(plan)
}

fn walk(
    client: &Client,
    image: &ImageRef,
    reference: &str,
    platforms: &Platforms,
    depth: usize,
    plan: &mut Plan,
    seen: &mut HashSet<String>,
) -> Result<(), String> {
    let fetched = client.manifest(&image.repository, reference)?;
    plan.manifests += 1;
    let manifest = oci::parse(&fetched.content_type, &fetched.bytes)
        .map_err(|e| format!("manifest {}: {e}", fetched.digest))?;
    match manifest {
        Manifest::Image { config, layers } => {
            for blob in std::iter::once(&config).chain(&layers) {
                // Foreign layers are not in the registry; nodes fetch them elsewhere.
                if blob.urls.is_empty() && seen.insert(blob.digest.clone()) {
                    plan.blobs.push((blob.digest.clone(), blob.size));
                }
            }
            Ok(())
        }
        Manifest::Index(entries) => {
            if depth >= MAX_INDEX_DEPTH {
                return Err(format!(
                    "manifest {}: indexes nest too deep",
                    fetched.digest
                ));
            }
            let chosen = platforms.select(&entries);
            if chosen.is_empty() {
                let available: Vec<String> = entries
                    .iter()
                    .filter_map(|e| e.platform.as_ref())
                    .filter(|p| p.os != "unknown")
                    .map(ToString::to_string)
                    .collect();
                return Err(format!(
                    "no manifest for {platforms}; the image has: {}",
                    if available.is_empty() {
                        "no platforms".to_string()
                    } else {
                        available.join(", ")
                    }
                ));
            }
            for entry in chosen {
                if let Some(p) = &entry.platform {
                    plan.platforms.push(p.to_string());
                }
                walk(
                    client,
                    image,
                    &entry.digest,
                    platforms,
                    depth + 1,
                    plan,
                    seen,
                )?;
            }
            Ok(())
        }
    }
}

/// Warm every target with at most `jobs` connections per phase.
pub fn run(
    targets: &[Target],
    platforms: &Platforms,
    jobs: usize,
    reporter: &dyn Reporter,
) -> Vec<ImageResult> {
    let clients: HashMap<&str, Client> = targets
        .iter()
        .map(|t| (t.addr.as_str(), Client::new(&t.addr)))
        .collect();

    // Phase 1: manifests.
    let plans: Vec<Result<Plan, String>> = bounded(jobs, targets, |_, t| {
        resolve(&clients[t.addr.as_str()], &t.image, platforms)
    });

    // Phase 2: one queue of blobs; a blob shared by images of the same
    // repository in the same cache is fetched once.
    struct Job {
        image: usize,
        digest: String,
        size: Option<u64>,
    }
    let mut queued = HashSet::new();
    let mut queue = Vec::new();
    let mut totals = vec![0u64; targets.len()];
    let mut pending = Vec::with_capacity(targets.len());
    for (i, (t, plan)) in targets.iter().zip(&plans).enumerate() {
        let mut count = 0;
        if let Ok(plan) = plan {
            for (digest, size) in &plan.blobs {
                if queued.insert((t.addr.clone(), t.image.repository.clone(), digest.clone())) {
                    queue.push(Job {
                        image: i,
                        digest: digest.clone(),
                        size: *size,
                    });
                    totals[i] += size.unwrap_or(0);
                    count += 1;
                }
            }
        }
        pending.push(AtomicUsize::new(count));
    }

    let bytes: Vec<AtomicU64> = targets.iter().map(|_| AtomicU64::new(0)).collect();
    let fetched: Vec<AtomicUsize> = targets.iter().map(|_| AtomicUsize::new(0)).collect();
    let failed: Vec<AtomicBool> = targets.iter().map(|_| AtomicBool::new(false)).collect();
    let errors: Vec<Mutex<Option<String>>> = plans
        .iter()
        .map(|p| Mutex::new(p.as_ref().err().cloned()))
        .collect();
    let image_started: Vec<Mutex<Option<Instant>>> =
        targets.iter().map(|_| Mutex::new(None)).collect();
    let elapsed: Vec<Mutex<Duration>> =
        targets.iter().map(|_| Mutex::new(Duration::ZERO)).collect();

    let result_of = |i: usize| ImageResult {
        target: targets[i].clone(),
        plan: plans[i].clone().unwrap_or_default(),
        blobs: fetched[i].load(Ordering::Relaxed),
        bytes: bytes[i].load(Ordering::Relaxed),
        elapsed: *elapsed[i].lock().unwrap(),
        error: errors[i].lock().unwrap().clone(),
    };
    let finish = |i: usize| {
        *elapsed[i].lock().unwrap() = image_started[i]
            .lock()
            .unwrap()
            .map_or(Duration::ZERO, |s| s.elapsed());
        reporter.finished(i, &result_of(i));
    };

    for (i, plan) in plans.iter().enumerate() {
        match plan {
            Ok(plan) => {
                reporter.planned(i, &targets[i], plan, totals[i]);
                if pending[i].load(Ordering::Relaxed) == 0 {
                    finish(i);
                }
            }
            Err(_) => finish(i),
        }
    }

    bounded(jobs, &queue, |_, job| {
        let i = job.image;
        let t = &targets[i];
        image_started[i]
            .lock()
            .unwrap()
            .get_or_insert_with(Instant::now);
        if !failed[i].load(Ordering::Relaxed) {
            let outcome =
                clients[t.addr.as_str()].blob(&t.image.repository, &job.digest, job.size, &|n| {
                    bytes[i].fetch_add(n, Ordering::Relaxed);
                    reporter.advance(i, n);
                });
            match outcome {
                Ok(_) => {
                    fetched[i].fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    failed[i].store(true, Ordering::Relaxed);
                    errors[i].lock().unwrap().get_or_insert(e);
                }
            }
        }
        if pending[i].fetch_sub(1, Ordering::AcqRel) == 1 {
            finish(i);
        }
    });

    (0..targets.len()).map(result_of).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_keeps_order_and_limits_threads() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let items: Vec<u32> = (0..20).collect();
        let out = bounded(3, &items, |i, x| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            running.fetch_sub(1, Ordering::SeqCst);
            (i, x * 2)
        });
        assert_eq!(
            out,
            (0..20).map(|i| (i as usize, i * 2)).collect::<Vec<_>>()
        );
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert!(bounded(4, &Vec::<u32>::new(), |_, x| *x).is_empty());
    }
}
