use anyhow::Result;

use crate::cli::SelectArgs;
use crate::context::Context;
use crate::errors::ExitStatus;
use crate::lock;

pub fn run(ctx: &Context, args: &SelectArgs) -> Result<ExitStatus> {
    let specs = ctx.specs(&args.registries)?;
    let podman = ctx.podman()?;
    let _lock = lock::acquire(&ctx.config.prefix, || {
        ctx.ui.info("waiting for another drcache run to finish...")
    })?;
    let containers = podman.containers()?;
    let state_of = |name: &str| {
        containers
            .iter()
            .find(|c| c.name() == name)
            .map_or("missing", |c| c.state.as_str())
    };
    let running: Vec<String> = specs
        .iter()
        .filter(|s| {
            containers
                .iter()
                .any(|c| c.name() == s.container && c.is_running())
        })
        .map(|s| s.container.clone())
        .collect();
    if !running.is_empty() {
        podman.stop(&running)?;
    }
    if ctx.json {
        // Per cache what was done: `stopped` (or `would stop` under
        // --dry-run), else nothing, with the state it was found in.
        let caches: Vec<_> = specs
            .iter()
            .map(|s| {
                let stopped = running.contains(&s.container);
                serde_json::json!({
                    "registry": s.registry.name,
                    "container": s.container,
                    "action": match (stopped, ctx.dry_run) {
                        (true, false) => "stopped",
                        (true, true) => "would stop",
                        (false, _) => "none",
                    },
                    "state_before": state_of(&s.container),
                })
            })
            .collect();
        ctx.ui
            .data(&serde_json::json!({ "caches": caches }).to_string());
    }
    if running.is_empty() {
        ctx.ui.info("no cache is running");
        return Ok(ExitStatus::Success);
    }
    let verb = if ctx.dry_run { "would stop" } else { "stopped" };
    ctx.ui.info(&format!("{verb}: {}", running.join(", ")));
    Ok(ExitStatus::Success)
}
