use anyhow::Result;

use crate::cache::{LABEL_PREFIX, LABEL_REGISTRY};
use crate::cli::CleanArgs;
use crate::context::Context;
use crate::errors::ExitStatus;
use crate::lock;
use crate::reconcile::Facts;

pub fn run(ctx: &Context, args: &CleanArgs) -> Result<ExitStatus> {
    let specs = ctx.specs(&args.select.registries)?;
    let podman = ctx.podman()?;
    let _lock = lock::acquire(&ctx.config.prefix, || {
        ctx.ui.info("waiting for another drcache run to finish...")
    })?;
    let facts = Facts::read(&podman)?;
    let verb = |done: &str| {
        if ctx.dry_run {
            format!("would remove {done}")
        } else {
            format!("removed {done}")
        }
    };

    let containers: Vec<String> = specs
        .iter()
        .filter(|s| facts.container(&s.container).is_some())
        .map(|s| s.container.clone())
        .collect();
    if !containers.is_empty() {
        podman.remove(&containers)?;
        ctx.ui
            .info(&verb(&format!("containers: {}", containers.join(", "))));
    }

    // Upstream login secrets go with their containers.
    let wanted: Vec<String> = specs.iter().map(|s| s.config_secret_name()).collect();
    let secrets: Vec<String> = podman
        .secret_names()?
        .into_iter()
        .filter(|n| wanted.contains(n))
        .collect();
    if !secrets.is_empty() {
        podman.remove_secrets(&secrets)?;
        ctx.ui
            .info(&verb(&format!("secrets: {}", secrets.join(", "))));
    }

    let mut volumes = Vec::new();
    if args.volumes {
        // Only what is ours: the exact volume name of a selected cache, or
        // drcache's labels for this prefix and a selected registry. Never a
        // volume that merely shares the prefix.
        for volume in &facts.volumes {
            let by_name = specs.iter().any(|s| s.volume == volume.name);
            let by_label = volume.label(LABEL_PREFIX) == Some(&ctx.config.prefix)
                && specs
                    .iter()
                    .any(|s| volume.label(LABEL_REGISTRY) == Some(&s.registry.name));
            if by_name || by_label {
                volumes.push(volume.name.clone());
            }
        }
        if !volumes.is_empty() {
            podman.remove_volumes(&volumes)?;
            ctx.ui
                .info(&verb(&format!("volumes: {}", volumes.join(", "))));
        }
    }
    if ctx.json {
        // Per cache what was (or under --dry-run would be) removed.
        let removed = |list: &[String], name: &str| list.iter().any(|n| n == name);
        let caches: Vec<_> = specs
            .iter()
            .map(|s| {
                serde_json::json!({
                    "registry": s.registry.name,
                    "container": removed(&containers, &s.container).then_some(&s.container),
                    "secret": removed(&secrets, &s.config_secret_name()).then(|| s.config_secret_name()),
                    "volumes": facts
                        .volumes
                        .iter()
                        .filter(|v| removed(&volumes, &v.name))
                        .filter(|v| {
                            v.name == s.volume || v.label(LABEL_REGISTRY) == Some(&s.registry.name)
                        })
                        .map(|v| v.name.as_str())
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        ctx.ui
            .data(&serde_json::json!({ "dry_run": ctx.dry_run, "caches": caches }).to_string());
    }
    if containers.is_empty() && volumes.is_empty() && secrets.is_empty() {
        ctx.ui.info("nothing to clean");
    }
    Ok(ExitStatus::Success)
}
