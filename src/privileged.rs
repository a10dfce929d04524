//! Executables that run as root (through sudo, or directly as root) and the
//! gvproxy that the macOS firewall lets in come from places only root (or
//! the Homebrew owner, for gvproxy) can change.
//!
//! PATH is not such a place: a relative or empty entry makes the current
//! directory one, and sudo given an absolute path runs it whatever its
//! `secure_path` says. So a tool run through sudo is looked up in the system
//! directories only, or taken from an explicit absolute override, and in
//! both cases refused unless the file and every directory above it are
//! owned by root and writable by nobody else.

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use crate::errors::{exit, Hinted};
use crate::hostinfo::test_hooks;
use crate::tools::Tool;

/// Where tools that run as root are looked for, in this order.
pub const SYSTEM_DIRS: &[&str] = &[
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
    "/usr/libexec/ApplicationFirewall",
];

const ROOT_UID: u32 = 0;

/// Who may own what drcache trusts: root, and in test builds the uid named
/// by the test hook (fake tools in a test's temporary directory).
fn trusted_owners(extra: &[u32]) -> Vec<u32> {
    let mut owners = vec![ROOT_UID];
    owners.extend_from_slice(extra);
    if cfg!(debug_assertions) {
        owners.extend(test_hooks::trusted_uid());
    }
    owners
}

/// How strict the mode check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writable {
    /// Refuse write access for group (other than root's group) and others.
    NoGroupNoOthers,
    /// Refuse write access for others only.
    NoOthers,
}

/// Why `path` cannot be trusted, or None when it can: it is absolute, and
/// it, every directory above it and, when it is a symbolic link, every
/// directory above its target, is owned by one of `owners` and writable by
/// nobody else. A sticky directory writable by all (`/tmp`) is accepted as
/// a parent: nobody but its owner may replace an entry there.
pub fn untrusted_reason(path: &Path, owners: &[u32], writable: Writable) -> Option<String> {
    if !path.is_absolute() {
        return Some(format!("{} is not an absolute path", path.display()));
    }
    let real = match std::fs::canonicalize(path) {
        Ok(real) => real,
        Err(e) => return Some(format!("{}: {e}", path.display())),
    };
    for p in [path, real.as_path()] {
        let mut prefix = PathBuf::new();
        for component in p.components() {
            match component {
                Component::RootDir => prefix.push("/"),
                Component::Normal(name) => prefix.push(name),
                _ => return Some(format!("{} is not a plain path", p.display())),
            }
            if let Some(why) = check_one(&prefix, prefix == p, owners, writable) {
                return Some(why);
            }
        }
    }
    None
}

fn check_one(path: &Path, last: bool, owners: &[u32], writable: Writable) -> Option<String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) => return Some(format!("{}: {e}", path.display())),
    };
    if !owners.contains(&meta.uid()) {
        let who: Vec<String> = owners.iter().map(|u| format!("uid {u}")).collect();
        return Some(format!(
            "{} is owned by uid {}, not by {}",
            path.display(),
            meta.uid(),
            who.join(" or ")
        ));
    }
    if meta.file_type().is_symlink() {
        // A link's own mode means nothing; its target is checked as well.
        return None;
    }
    let mode = meta.mode() & 0o7777;
    let sticky_dir = meta.is_dir() && mode & 0o1000 != 0 && !last;
    let others = mode & 0o002 != 0 && !sticky_dir;
    let group = writable == Writable::NoGroupNoOthers
        && mode & 0o020 != 0
        && meta.gid() != 0
        && !sticky_dir;
    if others || group {
        return Some(format!(
            "{} is writable by {} (mode {:04o})",
            path.display(),
            if others { "others" } else { "its group" },
            mode
        ));
    }
    None
}

/// `tool`, when it is to run as root: its override (an absolute path that
/// passes the checks) or the first one in the system directories. None
/// when it is in none of them (not installed).
pub fn find_installed(tool: &Tool) -> Result<Option<PathBuf>, Hinted> {
    let root = test_hooks::root();
    let dirs: Vec<PathBuf> = SYSTEM_DIRS
        .iter()
        .map(|d| match &root {
            Some(r) => r.join(d.trim_start_matches('/')),
            None => PathBuf::from(d),
        })
        .collect();
    find_in(
        tool,
        std::env::var_os(tool.env_var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
        &dirs,
    )
}

/// Like [`find_installed`], but a tool that is not installed is an error.
pub fn find(tool: &Tool) -> Result<PathBuf, Hinted> {
    find_installed(tool)?.ok_or_else(|| Hinted {
        message: format!(
            "{} was not found in the system directories ({})",
            tool.name,
            SYSTEM_DIRS.join(", ")
        ),
        hint: format!(
            "{}, or set {} to the absolute path of a {} owned by root",
            tool.install_hint, tool.env_var, tool.name
        ),
        code: exit::TOOL_MISSING,
    })
}

/// [`find_installed`] with the override and directories given (tests).
pub fn find_in(
    tool: &Tool,
    override_path: Option<PathBuf>,
    dirs: &[PathBuf],
) -> Result<Option<PathBuf>, Hinted> {
    let owners = trusted_owners(&[]);
    let refuse = |path: &Path, why: String, from: String| Hinted {
        message: format!("refusing to run {} as root: {why} ({from})", path.display()),
        hint: format!(
            "a program that runs as root must be owned by root and writable by nobody else, \
             in directories like that; use the system's {} (unset {}) or fix its owner and mode",
            tool.name, tool.env_var
        ),
        code: exit::FAILURE,
    };
    if let Some(path) = override_path {
        let from = format!("set by {}", tool.env_var);
        if !path.is_absolute() {
            return Err(refuse(
                &path,
                "it is not an absolute path".into(),
                format!("{from}; sudo would run whatever PATH finds"),
            ));
        }
        if !path.is_file() {
            return Err(Hinted {
                message: format!(
                    "{} is set to {}, which is not an executable",
                    tool.env_var,
                    path.display()
                ),
                hint: format!("unset {} to use the system's {}", tool.env_var, tool.name),
                code: exit::TOOL_MISSING,
            });
        }
        if let Some(why) = untrusted_reason(&path, &owners, Writable::NoGroupNoOthers) {
            return Err(refuse(&path, why, from));
        }
        return Ok(Some(path));
    }
    for dir in dirs {
        let path = dir.join(tool.name);
        if !path.is_file() {
            continue;
        }
        if let Some(why) = untrusted_reason(&path, &owners, Writable::NoGroupNoOthers) {
            return Err(refuse(&path, why, "found in a system directory".into()));
        }
        return Ok(Some(path));
    }
    Ok(None)
}

/// The owner of the Homebrew installation `path` is part of, if any: the
/// owner of `/opt/homebrew` or `/usr/local/Homebrew` (under `root`).
pub fn homebrew_owner(root: &Path, path: &Path) -> Option<u32> {
    for (prefix, marker) in [
        ("opt/homebrew", "opt/homebrew"),
        ("usr/local", "usr/local/Homebrew"),
    ] {
        if path.starts_with(root.join(prefix)) {
            if let Ok(meta) = std::fs::symlink_metadata(root.join(marker)) {
                return Some(meta.uid());
            }
        }
    }
    None
}

/// Why the gvproxy at `path` (its real path) could have been swapped by
/// another process of the user, or None: it must be owned by root or by
/// the Homebrew owner, as must the directories above it, none writable by
/// others.
pub fn gvproxy_untrusted(root: &Path, path: &Path) -> Option<String> {
    let extra: Vec<u32> = homebrew_owner(root, path).into_iter().collect();
    let owners = trusted_owners(&extra);
    untrusted_reason(path, &owners, Writable::NoOthers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const TOOL: Tool = Tool {
        name: "drcache-test-tool",
        env_var: "DRCACHE_TEST_TOOL_UNSET",
        fallback: None,
        install_hint: "install it",
    };

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn system_tools_owned_by_root_are_trusted() {
        // /usr/bin/env is root's, 0755, in root's directories.
        assert_eq!(
            untrusted_reason(Path::new("/usr/bin/env"), &[0], Writable::NoGroupNoOthers),
            None
        );
    }

    #[test]
    fn relative_paths_are_refused() {
        let why =
            untrusted_reason(Path::new("./firewall-cmd"), &[0], Writable::NoGroupNoOthers).unwrap();
        assert_eq!(why, "./firewall-cmd is not an absolute path");
        let err = find_in(&TOOL, Some(PathBuf::from("firewall-cmd")), &[]).unwrap_err();
        assert!(
            err.message
                .starts_with("refusing to run firewall-cmd as root: it is not an absolute path"),
            "{}",
            err.message
        );
        assert_eq!(err.code, exit::FAILURE);
    }

    #[test]
    fn a_file_writable_by_others_or_its_group_is_refused_and_so_is_its_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let me = std::fs::metadata(tmp.path()).unwrap().uid();
        let dir = tmp.path().join("bin");
        std::fs::create_dir(&dir).unwrap();
        let tool = dir.join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        chmod(&tool, 0o755);
        chmod(&dir, 0o755);
        chmod(tmp.path(), 0o755);
        // /tmp is sticky and writable by all: accepted as a parent.
        assert_eq!(
            untrusted_reason(&tool, &[me], Writable::NoGroupNoOthers),
            None
        );

        chmod(&tool, 0o757);
        let why = untrusted_reason(&tool, &[me], Writable::NoGroupNoOthers).unwrap();
        assert_eq!(
            why,
            format!("{} is writable by others (mode 0757)", tool.display())
        );
        chmod(&tool, 0o775);
        if std::fs::metadata(&tool).unwrap().gid() != 0 {
            let why = untrusted_reason(&tool, &[me], Writable::NoGroupNoOthers).unwrap();
            assert!(
                why.ends_with("is writable by its group (mode 0775)"),
                "{why}"
            );
        }
        // Group write is fine for gvproxy (Homebrew's admin group).
        assert_eq!(untrusted_reason(&tool, &[me], Writable::NoOthers), None);
        chmod(&tool, 0o755);

        // A directory on the way that others may write: they could swap the file.
        chmod(&dir, 0o777);
        let why = untrusted_reason(&tool, &[me], Writable::NoOthers).unwrap();
        assert_eq!(
            why,
            format!("{} is writable by others (mode 0777)", dir.display())
        );
        chmod(&dir, 0o755);
    }

    #[test]
    fn a_file_owned_by_another_user_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let tool = tmp.path().join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        chmod(&tool, 0o755);
        let me = std::fs::metadata(&tool).unwrap().uid();
        if is_root() {
            // As root: give the file to nobody.
            std::os::unix::fs::chown(&tool, Some(65534), None).unwrap();
            let why = untrusted_reason(&tool, &[0], Writable::NoGroupNoOthers).unwrap();
            assert_eq!(
                why,
                format!("{} is owned by uid 65534, not by uid 0", tool.display())
            );
        } else {
            // As a user: the file is the user's, not root's.
            let why = untrusted_reason(&tool, &[0], Writable::NoGroupNoOthers).unwrap();
            assert!(
                why.contains(&format!("owned by uid {me}, not by uid 0")),
                "{why}"
            );
        }
    }

    #[test]
    fn a_symlink_is_checked_along_its_target_too() {
        let tmp = tempfile::tempdir().unwrap();
        let me = std::fs::metadata(tmp.path()).unwrap().uid();
        chmod(tmp.path(), 0o755);
        let open = tmp.path().join("open");
        std::fs::create_dir(&open).unwrap();
        chmod(&open, 0o777);
        let target = open.join("tool");
        std::fs::write(&target, "#!/bin/sh\n").unwrap();
        chmod(&target, 0o755);
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let why = untrusted_reason(&link, &[me], Writable::NoOthers).unwrap();
        assert!(why.contains("writable by others"), "{why}");
    }

    #[test]
    fn the_first_system_directory_holding_the_tool_wins_and_path_is_not_used() {
        let tmp = tempfile::tempdir().unwrap();
        let me = std::fs::metadata(tmp.path()).unwrap().uid();
        let owners = trusted_owners(&[]);
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        for d in [&a, &b] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(b.join(TOOL.name), "#!/bin/sh\n").unwrap();
        chmod(&b.join(TOOL.name), 0o755);
        let found = find_in(&TOOL, None, &[a.clone(), b.clone()]);
        if owners.contains(&me) {
            assert_eq!(found.unwrap(), Some(b.join(TOOL.name)));
        } else {
            let err = found.unwrap_err();
            assert!(
                err.message.contains("found in a system directory"),
                "{}",
                err.message
            );
        }
        assert_eq!(find_in(&TOOL, None, &[a]).unwrap(), None);
    }

    #[test]
    fn homebrew_owner_is_the_prefix_owner() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let me = std::fs::metadata(root).unwrap().uid();
        std::fs::create_dir_all(root.join("opt/homebrew/Cellar")).unwrap();
        let gv = root.join("opt/homebrew/Cellar/gvproxy");
        assert_eq!(homebrew_owner(root, &gv), Some(me));
        assert_eq!(
            homebrew_owner(root, &root.join("opt/podman/bin/gvproxy")),
            None
        );
        assert_eq!(
            homebrew_owner(root, &root.join("usr/local/bin/gvproxy")),
            None
        );
    }
}
