//! One drcache run at a time changes a given set of caches: parallel cluster
//! set-ups would otherwise race on `podman run` ("name already in use").

use std::fs::{File, OpenOptions};
use std::path::PathBuf;

use anyhow::{Context as _, Result};

/// Held until dropped; the OS releases it when the process dies.
pub struct RunLock {
    _file: File,
}

/// drcache's per-user directory for locks and small markers.
pub fn state_dir() -> PathBuf {
    let from_env = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    from_env("XDG_RUNTIME_DIR")
        .or_else(|| from_env("XDG_STATE_HOME"))
        .or_else(|| from_env("HOME").map(|h| h.join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("drcache")
}

/// Take the lock for caches named with `prefix`, waiting for another run.
pub fn acquire(prefix: &str, on_wait: impl FnOnce()) -> Result<RunLock> {
    let dir = state_dir();
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the lock directory {}", dir.display()))?;
    let path = dir.join(format!("{prefix}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    if file.try_lock().is_err() {
        on_wait();
        file.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
    }
    Ok(RunLock { _file: file })
}
