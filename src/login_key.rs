//! The per-install key of the login fingerprints in container labels.
//!
//! A cache with a login carries, in its config-hash label, a fingerprint
//! of that login so that a changed password recreates it. Unkeyed, anyone
//! who can read the label (every user of podman's store) could test
//! password guesses offline. Keyed with 32 random bytes that only this user
//! can read (`login-key`, mode 0600, in the state directory, made once), the
//! label reveals nothing that can be checked.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{bail, Context as _, Result};

pub const FILE: &str = "login-key";

/// The key; never shown, even in debug output.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct LoginKey(pub Vec<u8>);

impl std::fmt::Debug for LoginKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginKey(<redacted>)")
    }
}

/// The key of this install: in the state directory, made on first use.
pub fn this_install() -> Result<LoginKey> {
    let dir = crate::lock::ensure_state_dir()?;
    Ok(LoginKey(load_or_create(&dir)?))
}
const LEN: usize = 32;

/// The key in `dir`, made now when there is none.
pub fn load_or_create(dir: &Path) -> Result<Vec<u8>> {
    let path = dir.join(FILE);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
    {
        Ok(mut file) => {
            let key = random_bytes()?;
            file.write_all(hex(&key).as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            return Ok(key);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
    read(&path)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => anyhow::Error::new(crate::fsutil::link_error(path)),
            _ => anyhow::Error::new(e),
        })
        .with_context(|| format!("cannot read drcache's login key {}", path.display()))?;
    let meta = file.metadata()?;
    if meta.mode() & 0o077 != 0 {
        bail!(
            "drcache's login key {} may be read by others (mode {:04o}): remove it \
             (caches with a login are then recreated once) or `chmod 600` it",
            path.display(),
            meta.mode() & 0o7777
        );
    }
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let key = unhex(text.trim());
    match key {
        Some(key) if key.len() == LEN => Ok(key),
        _ => bail!(
            "drcache's login key {} is not {LEN} bytes in hex: remove it (caches with a \
             login are then recreated once)",
            path.display()
        ),
    }
}

fn random_bytes() -> Result<Vec<u8>> {
    let mut key = vec![0u8; LEN];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .context("cannot read /dev/urandom for drcache's login key")?;
    Ok(key)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let key = load_or_create(dir.path()).unwrap();
        assert_eq!(key.len(), LEN);
        let meta = std::fs::metadata(dir.path().join(FILE)).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(load_or_create(dir.path()).unwrap(), key);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(
            load_or_create(other.path()).unwrap(),
            key,
            "random per install"
        );
    }

    #[test]
    fn a_readable_linked_or_bad_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path()).unwrap();
        let path = dir.path().join(FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("may be read by others (mode 0644)"), "{err}");

        let other = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&path, other.path().join(FILE)).unwrap();
        let err = format!("{:#}", load_or_create(other.path()).unwrap_err());
        assert!(
            err.contains("refusing to follow the symbolic link"),
            "{err}"
        );

        let bad = tempfile::tempdir().unwrap();
        std::fs::write(bad.path().join(FILE), "zz").unwrap();
        std::fs::set_permissions(
            bad.path().join(FILE),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let err = load_or_create(bad.path()).unwrap_err().to_string();
        assert!(err.contains("is not 32 bytes in hex"), "{err}");
    }
}
