//! One drcache run at a time changes a given set of caches: parallel cluster
//! set-ups would otherwise race on `podman run` ("name already in use").
//!
//! The lock must protect what podman shares, and podman's store belongs to
//! the user, whatever the environment says: a `start` from a desktop
//! terminal (with `XDG_RUNTIME_DIR`) and one from `su`, cron or CI (without
//! it, or with another `HOME`) use the same containers. So the lock lives in
//! a directory derived from the user id alone: the home directory of the
//! password database, `~/.local/state/drcache`.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

/// Overrides the state directory (tests, or a home on a read-only disk).
pub const STATE_DIR_ENV: &str = "DRCACHE_STATE_DIR";

/// Held until dropped; the OS releases it when the process dies.
pub struct RunLock {
    _file: File,
}

/// The home directory of the user running drcache, from the password
/// database (not `$HOME`, which `su` and sudo may keep from another user).
fn passwd_home() -> Option<PathBuf> {
    // SAFETY: getpwuid_r with buffers we own; the result points into `buf`.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            libc::geteuid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() || pwd.pw_dir.is_null() {
            return None;
        }
        let dir = std::ffi::CStr::from_ptr(pwd.pw_dir).to_string_lossy();
        Some(PathBuf::from(dir.into_owned())).filter(|p| p.is_absolute())
    }
}

/// drcache's per-user directory for locks and small markers.
pub fn state_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(STATE_DIR_ENV).map(PathBuf::from) {
        if dir.is_absolute() {
            return Ok(dir);
        }
        bail!(
            "{STATE_DIR_ENV} must be an absolute path, not {}",
            dir.display()
        );
    }
    let home = passwd_home()
        .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
        .filter(|p| p.is_absolute());
    match home {
        Some(home) => Ok(home.join(".local/state/drcache")),
        None => bail!(
            "cannot find the home directory of this user for drcache's lock; \
             set {STATE_DIR_ENV} to a directory of your own"
        ),
    }
}

/// Create the state directory, private to the user: made 0700 when
/// missing, and refused when it is a symbolic link, belongs to another user
/// or may be written by others (a shared directory is never used).
pub fn ensure_state_dir() -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = state_dir()?;
    let cannot = || format!("cannot create drcache's state directory {}", dir.display());
    if let Some(parent) = dir.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .with_context(cannot)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(cannot),
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    check_own_dir(&dir, unsafe { libc::geteuid() })?;
    Ok(dir)
}

/// `dir` must be a real directory of `uid` that nobody else may write.
fn check_own_dir(dir: &Path, uid: u32) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir)
        .with_context(|| format!("cannot read drcache's state directory {}", dir.display()))?;
    let fix = format!("remove it, or set {STATE_DIR_ENV} to a directory of your own (mode 0700)");
    if meta.file_type().is_symlink() {
        bail!(
            "drcache's state directory {} is a symbolic link; refusing to use it: {fix}",
            dir.display()
        );
    }
    if !meta.is_dir() {
        bail!(
            "drcache's state directory {} is not a directory: {fix}",
            dir.display()
        );
    }
    if meta.uid() != uid {
        bail!(
            "drcache's state directory {} belongs to uid {}, not to you (uid {uid}); \
             refusing to use it: {fix}",
            dir.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o022 != 0 {
        bail!(
            "drcache's state directory {} may be written by others (mode {:04o}); \
             refusing to use it: `chmod 700 {}`",
            dir.display(),
            meta.mode() & 0o7777,
            dir.display()
        );
    }
    Ok(())
}

/// Take the lock for caches named with `prefix`, waiting for another run.
pub fn acquire(prefix: &str, on_wait: impl FnOnce()) -> Result<RunLock> {
    let dir = ensure_state_dir()?;
    let path = dir.join(format!("{prefix}.lock"));
    let file = crate::fsutil::open_no_follow(&path, 0o600)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    if file.try_lock().is_err() {
        on_wait();
        file.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
    }
    Ok(RunLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_dir_that_is_a_link_or_anothers_or_open_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let me = unsafe { libc::geteuid() };
        let dir = tmp.path().join("state");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        check_own_dir(&dir, me).unwrap();
        let err = check_own_dir(&dir, me + 1).unwrap_err().to_string();
        assert!(
            err.contains(&format!("belongs to uid {me}, not to you (uid {})", me + 1)),
            "{err}"
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_own_dir(&dir, me).unwrap_err().to_string();
        assert!(
            err.contains("may be written by others (mode 0777)"),
            "{err}"
        );
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let err = check_own_dir(&link, me).unwrap_err().to_string();
        assert!(
            err.contains("is a symbolic link; refusing to use it"),
            "{err}"
        );
    }

    #[test]
    fn the_state_dir_ignores_the_session_environment() {
        // Whatever XDG_RUNTIME_DIR or XDG_STATE_HOME say, the same user gets
        // the same directory (the password database's home).
        let home = passwd_home().expect("this user has a passwd entry");
        assert_eq!(state_dir().unwrap(), home.join(".local/state/drcache"));
    }
}
