use anyhow::{Context as _, Result};
use serde_json::json;

use crate::cli::HostsTomlArgs;
use crate::containerd::{self, HostsFile};
use crate::context::Context;
use crate::errors::{ExitStatus, UsageError};

pub fn run(ctx: &Context, args: &HostsTomlArgs) -> Result<ExitStatus> {
    let registries = ctx.select(&args.select.registries)?;
    let host = args.host.as_deref().unwrap_or(&ctx.config.host);
    let files = containerd::hosts_files(&registries, host)
        .map_err(|m| UsageError(format!("--host: {m}")))?;

    let Some(dir) = &args.out else {
        if ctx.json {
            ctx.ui.data(&report(&files, None).to_string());
        } else {
            ctx.ui.data_raw(&listing(&files));
        }
        return Ok(ExitStatus::Success);
    };
    containerd::refuse_foreign(dir, dir, &files)?;
    if ctx.dry_run {
        for f in &files {
            ctx.ui.info(&format!(
                "would write {}",
                dir.join(f.relative_path()).display()
            ));
        }
    } else {
        let written = containerd::write_files(dir, dir, &files)
            .with_context(|| format!("cannot write hosts.toml files under {}", dir.display()))?;
        for path in written {
            ctx.ui.info(&format!("wrote {}", path.display()));
        }
    }
    if ctx.json {
        ctx.ui.data(&report(&files, Some(dir)).to_string());
    }
    Ok(ExitStatus::Success)
}

/// Every file, each after a `==> <registry>/hosts.toml <==` line.
fn listing(files: &[HostsFile]) -> String {
    files
        .iter()
        .map(|f| format!("==> {} <==\n{}", f.relative_path(), f.content))
        .collect::<Vec<_>>()
        .join("\n")
}

fn report(files: &[HostsFile], dir: Option<&std::path::Path>) -> serde_json::Value {
    let files: Vec<_> = files
        .iter()
        .map(|f| {
            json!({
                "registry": f.registry,
                "mirror": f.mirror,
                "path": dir.map_or_else(|| f.relative_path(), |d| d.join(f.relative_path()).display().to_string()),
                "content": f.content,
            })
        })
        .collect();
    json!({ "files": files })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Registry;

    #[test]
    fn listing_has_a_header_per_registry() {
        let regs = [
            Registry {
                name: "quay.io".into(),
                upstream: "https://quay.io".into(),
                port: 5051,
                ttl: None,
                credentials: None,
            },
            Registry {
                name: "docker.io".into(),
                upstream: "https://registry-1.docker.io".into(),
                port: 5052,
                ttl: None,
                credentials: None,
            },
        ];
        let files = containerd::hosts_files(&[&regs[0], &regs[1]], "10.0.2.2").unwrap();
        let text = listing(&files);
        let headers: Vec<&str> = text.lines().filter(|l| l.starts_with("==>")).collect();
        assert_eq!(
            headers,
            ["==> quay.io/hosts.toml <==", "==> docker.io/hosts.toml <=="]
        );
        assert!(text.contains("\n\n==> docker.io/hosts.toml <==\n# Written by drcache"));
        assert!(text.ends_with("  capabilities = [\"pull\", \"resolve\"]\n"));
    }
}
