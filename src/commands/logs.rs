use anyhow::Result;

use crate::cli::LogsArgs;
use crate::context::Context;
use crate::errors::ExitStatus;

/// `podman logs` of the cache's container, straight to the terminal.
pub fn run(ctx: &Context, args: &LogsArgs) -> Result<ExitStatus> {
    let spec = ctx.specs(std::slice::from_ref(&args.registry))?.remove(0);
    let podman = ctx.podman()?;
    podman.logs(&spec.container, args.follow, args.tail)?;
    Ok(ExitStatus::Success)
}
