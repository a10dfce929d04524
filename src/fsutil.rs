//! Writing and removing files without following symbolic links.
//!
//! Every directory drcache creates or walks below a top directory (the
//! `--out` directory of `hosts-toml`, minikube's file-sync directory) is
//! checked with `symlink_metadata`; a file is written as a new temporary
//! file in its own directory (`O_CREAT|O_EXCL|O_NOFOLLOW`, a fresh name) and
//! renamed over the target, so a planted link is neither written through
//! nor replaced silently: drcache refuses, naming the link.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The error for a symbolic link where drcache expects a file or directory.
pub fn link_error(path: &Path) -> io::Error {
    let target = std::fs::read_link(path)
        .map(|t| format!(" (to {})", t.display()))
        .unwrap_or_default();
    io::Error::other(format!(
        "refusing to follow the symbolic link {}{target}: drcache writes and removes \
         only real files and directories",
        path.display()
    ))
}

fn is_link(path: &Path) -> io::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => Ok(meta.file_type().is_symlink()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The paths from below `top` down to `path` (inclusive); `path` must lie
/// under `top`.
fn below(top: &Path, path: &Path) -> io::Result<Vec<PathBuf>> {
    let rest = path.strip_prefix(top).map_err(|_| {
        io::Error::other(format!("{} is not under {}", path.display(), top.display()))
    })?;
    let mut out = Vec::new();
    let mut current = top.to_path_buf();
    for component in rest.components() {
        match component {
            std::path::Component::Normal(name) => {
                current.push(name);
                out.push(current.clone());
            }
            _ => {
                return Err(io::Error::other(format!(
                    "{} is not a plain path",
                    path.display()
                )))
            }
        }
    }
    Ok(out)
}

/// Refuse when anything between `top` (exclusive) and `path` (inclusive)
/// is a symbolic link.
pub fn refuse_links(top: &Path, path: &Path) -> io::Result<()> {
    for p in below(top, path)? {
        if is_link(&p)? {
            return Err(link_error(&p));
        }
    }
    Ok(())
}

/// Create `dir` and its missing parents below `top`, refusing links.
pub fn create_dirs(top: &Path, dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(top)?;
    for p in below(top, dir)? {
        match std::fs::symlink_metadata(&p) {
            Ok(meta) if meta.file_type().is_symlink() => return Err(link_error(&p)),
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{} is in the way: it is not a directory",
                    p.display()
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match std::fs::create_dir(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if is_link(&p)? {
                        return Err(link_error(&p));
                    }
                }
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A name no other writer uses: the process id, the time and a counter.
fn temp_name(base: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        ".{base}.drcache-tmp-{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Open `path` for writing without following a link there: created when
/// missing (`mode`), never truncated.
pub fn open_no_follow(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                link_error(path)
            } else {
                e
            }
        })
}

/// Write `content` to `path` (under `top`) atomically: parents created,
/// nothing on the way followed, the file replaced only when it is not a link.
pub fn write_atomic(top: &Path, path: &Path, content: &[u8], mode: u32) -> io::Result<()> {
    let parent = path.parent().expect("a file in a directory");
    create_dirs(top, parent)?;
    if is_link(path)? {
        return Err(link_error(path));
    }
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(temp_name(&base));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    let written = file.write_all(content).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// Remove the file `path` (under `top`), refusing links on the way and at it.
pub fn remove_file(top: &Path, path: &Path) -> io::Result<()> {
    refuse_links(top, path)?;
    std::fs::remove_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn writes_a_new_file_and_replaces_an_old_one() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path();
        let file = top.join("a/b/hosts.toml");
        write_atomic(top, &file, b"one", 0o644).unwrap();
        write_atomic(top, &file, b"two", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "two");
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(top.join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["hosts.toml"]);
    }

    #[test]
    fn a_symlinked_directory_or_file_is_refused_and_not_written_through() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("top");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&top).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        symlink(&outside, top.join("quay.io")).unwrap();
        let err = write_atomic(&top, &top.join("quay.io/hosts.toml"), b"x", 0o644).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "refusing to follow the symbolic link {} (to {}): drcache writes and removes \
                 only real files and directories",
                top.join("quay.io").display(),
                outside.display()
            )
        );
        assert!(!outside.join("hosts.toml").exists());

        std::fs::create_dir(top.join("ghcr.io")).unwrap();
        let victim = outside.join("victim");
        std::fs::write(&victim, "keep").unwrap();
        symlink(&victim, top.join("ghcr.io/hosts.toml")).unwrap();
        let err = write_atomic(&top, &top.join("ghcr.io/hosts.toml"), b"x", 0o644).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let err = remove_file(&top, &top.join("ghcr.io/hosts.toml")).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(std::fs::symlink_metadata(top.join("ghcr.io/hosts.toml")).is_ok());
    }

    #[test]
    fn open_no_follow_refuses_a_link() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        let link = tmp.path().join("x.lock");
        symlink(&target, &link).unwrap();
        let err = open_no_follow(&link, 0o600).unwrap_err();
        assert!(err
            .to_string()
            .contains("refusing to follow the symbolic link"));
        open_no_follow(&tmp.path().join("y.lock"), 0o600).unwrap();
    }
}
