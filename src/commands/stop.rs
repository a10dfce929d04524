use anyhow::Result;

use crate::cli::SelectArgs;
use crate::context::Context;
use crate::lock;

pub fn run(ctx: &Context, args: &SelectArgs) -> Result<()> {
    let specs = ctx.specs(&args.registries)?;
    let podman = ctx.podman()?;
    let _lock = lock::acquire(&ctx.config.prefix, || {
        ctx.ui.info("waiting for another drcache run to finish...")
    })?;
    let containers = podman.containers()?;
    let running: Vec<String> = specs
        .iter()
        .filter(|s| {
            containers
                .iter()
                .any(|c| c.name() == s.container && c.is_running())
        })
        .map(|s| s.container.clone())
        .collect();
    if running.is_empty() {
        ctx.ui.info("no cache is running");
        return Ok(());
    }
    podman.stop(&running)?;
    let verb = if ctx.dry_run { "would stop" } else { "stopped" };
    ctx.ui.info(&format!("{verb}: {}", running.join(", ")));
    Ok(())
}
