use std::io::Read;
use std::time::Instant;

use anyhow::{Context as _, Result};
use serde_json::json;

use crate::cli::WarmArgs;
use crate::context::Context;
use crate::errors::{exit, ExitStatus, Hinted, UsageError};
use crate::imageref;
use crate::oci::Platforms;
use crate::registry_http;
use crate::ui::human_bytes;
use crate::ui::progress::Progress;
use crate::warm::{self, ImageResult, Target};

/// The image references from the arguments and the list file, in order.
fn inputs(args: &WarmArgs) -> Result<(Vec<String>, Vec<String>)> {
    let mut text = args.images.join("\n");
    if let Some(path) = &args.file {
        let content = if path.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read image references from stdin")?;
            s
        } else {
            std::fs::read_to_string(path).map_err(|e| {
                UsageError(format!(
                    "cannot read the image list {}: {e}",
                    path.display()
                ))
            })?
        };
        text.push('\n');
        text.push_str(&content);
    }
    Ok(imageref::parse_list(&text))
}

pub fn run(ctx: &Context, args: &WarmArgs) -> Result<ExitStatus> {
    let platforms = Platforms::parse(&args.platform).map_err(UsageError)?;
    let (refs, skipped) = inputs(args)?;
    for id in &skipped {
        ctx.ui.warn(&format!(
            "skipped {id}: an image ID, not a reference to pull"
        ));
    }
    if refs.is_empty() {
        return Err(UsageError("no image references given".into()).into());
    }

    // Every reference must parse and have a cache before anything is fetched.
    let mut targets = Vec::new();
    let mut problems = Vec::new();
    for input in &refs {
        match imageref::parse(input) {
            Err(e) => problems.push(e),
            Ok(image) => match ctx.config.registry(&image.registry) {
                None => problems.push(format!(
                    "{input}: no cache for registry {}; caches: {}",
                    image.registry,
                    ctx.config.registry_names().join(", ")
                )),
                Some(reg) => {
                    let spec = ctx.specs(std::slice::from_ref(&reg.name))?.remove(0);
                    targets.push(Target {
                        input: input.clone(),
                        cache: reg.name.clone(),
                        addr: spec.probe_addr(),
                        image,
                    });
                }
            },
        }
    }
    if !problems.is_empty() {
        return Err(UsageError(problems.join("\n")).into());
    }

    // The caches must answer; a stopped one would fail every image at once.
    let mut caches: Vec<(&str, &str)> = targets
        .iter()
        .map(|t| (t.cache.as_str(), t.addr.as_str()))
        .collect();
    caches.sort();
    caches.dedup();
    let down: Vec<String> =
        crate::parallel::map(&caches, |(name, addr)| match registry_http::probe(addr) {
            p if p.is_ready() => None,
            _ => Some(format!("{name} ({addr})")),
        })
        .into_iter()
        .flatten()
        .collect();
    if !down.is_empty() {
        return Err(Hinted {
            message: format!("these caches do not answer: {}", down.join(", ")),
            hint: "start them with `drcache start`; `drcache status` shows their state".into(),
            code: exit::NOT_READY,
        }
        .into());
    }

    if ctx.dry_run {
        for t in &targets {
            ctx.ui.dry_run(&format!(
                "warm {} through the {} cache ({})",
                t.image, t.cache, t.addr
            ));
        }
        return Ok(ExitStatus::Success);
    }

    let started = Instant::now();
    let reporter = Progress::new(&ctx.ui, targets.len());
    let results = warm::run(&targets, &platforms, args.jobs.into(), &reporter);
    reporter.done();
    let elapsed = started.elapsed();

    let bytes: u64 = results.iter().map(|r| r.bytes).sum();
    let blobs: usize = results.iter().map(|r| r.blobs).sum();
    let manifests: usize = results.iter().map(|r| r.plan.manifests).sum();
    if ctx.json {
        let images: Vec<_> = results
            .iter()
            .map(|r| {
                json!({
                    "image": r.target.image.to_string(),
                    "input": r.target.input,
                    "cache": r.target.cache,
                    "platforms": r.plan.platforms,
                    "manifests": r.plan.manifests,
                    "blobs": r.blobs,
                    "bytes": r.bytes,
                    "seconds": round_ms(r.elapsed.as_secs_f64()),
                    "error": r.error,
                })
            })
            .collect();
        ctx.ui.data(
            &json!({
                "images": images,
                "platforms": platforms.to_string(),
                "manifests": manifests,
                "blobs": blobs,
                "bytes": bytes,
                "seconds": round_ms(elapsed.as_secs_f64()),
            })
            .to_string(),
        );
    }
    let failed: Vec<&ImageResult> = results.iter().filter(|r| r.error.is_some()).collect();
    let secs = elapsed.as_secs_f64();
    ctx.ui.info(&format!(
        "warmed {} of {} images: {manifests} manifests, {blobs} blobs, {} in {secs:.1}s ({}/s)",
        results.len() - failed.len(),
        results.len(),
        human_bytes(bytes),
        human_bytes((bytes as f64 / secs.max(0.001)) as u64),
    ));
    if failed.is_empty() {
        return Ok(ExitStatus::Success);
    }
    ctx.ui.verdict(&format!(
        "{} of {} images failed:\n{}",
        failed.len(),
        results.len(),
        failed
            .iter()
            .map(|r| format!("  {}: {}", r.target.input, r.error.as_deref().unwrap_or("")))
            .collect::<Vec<_>>()
            .join("\n")
    ));
    Ok(ExitStatus::Failure)
}

fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}
