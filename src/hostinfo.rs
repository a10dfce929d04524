//! What drcache learns about this host without running any program: the OS,
//! the disk use of a directory, whether a port is free and who holds it.

use std::collections::HashSet;
use std::net::TcpListener;

use crate::netaddr::bracketed;
use std::path::Path;

/// The environment variables that only tests set, all in one place: they let
/// tests on a Linux machine, as root, drive the macOS and non-root paths
/// against fake tools. Users never need them.
pub mod test_hooks {
    use std::path::PathBuf;

    /// `linux` or `macos`: act as on that OS.
    const OS: &str = "DRCACHE_HOST_OS";
    /// The effective user id to act as (`0`: root, privileged calls run
    /// directly; anything else: through sudo), so tests of both run as any user.
    const EUID: &str = "DRCACHE_TEST_EUID";
    /// A directory standing for `/` where macOS tools and the system
    /// directories of privileged tools are looked for.
    const ROOT: &str = "DRCACHE_TEST_ROOT";
    /// `systemd`, `launchd` or `none`: the service manager autostart finds
    /// (else systemd when `/run/systemd/system` exists, launchd on macOS).
    const INIT: &str = "DRCACHE_TEST_INIT";
    /// A uid whose files count as trusted like root's (fake privileged tools
    /// in a test's temporary directory). Honoured by debug builds only.
    const TRUSTED_UID: &str = "DRCACHE_TEST_TRUSTED_UID";

    fn non_empty(name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    pub fn forced_os() -> Option<String> {
        non_empty(OS)
    }

    pub fn euid() -> Option<u32> {
        non_empty(EUID)?.parse().ok()
    }

    pub fn root() -> Option<PathBuf> {
        non_empty(ROOT).map(PathBuf::from)
    }

    pub fn init() -> Option<String> {
        non_empty(INIT)
    }

    pub fn trusted_uid() -> Option<u32> {
        non_empty(TRUSTED_UID)?.parse().ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostOs {
    Linux,
    Macos,
    Other,
}

pub fn host_os() -> HostOs {
    let forced = test_hooks::forced_os();
    match forced.as_deref().unwrap_or(std::env::consts::OS) {
        "linux" => HostOs::Linux,
        "macos" => HostOs::Macos,
        _ => HostOs::Other,
    }
}

/// Bytes a directory tree takes on disk (allocated blocks, like `du`),
/// without following symlinks. None when `root` cannot be read; entries
/// that cannot be read below it are left out.
pub fn disk_usage(root: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(root).ok()?;
    if !meta.is_dir() {
        return Some(meta.blocks() * 512);
    }
    std::fs::read_dir(root).ok()?;
    let mut total = 0u64;
    let mut seen_inodes = HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        if let Ok(m) = std::fs::symlink_metadata(&dir) {
            total += m.blocks() * 512;
        }
        for entry in entries.flatten() {
            let Ok(m) = entry.metadata() else { continue };
            if m.is_dir() {
                stack.push(entry.path());
            } else if m.nlink() < 2 || seen_inodes.insert((m.dev(), m.ino())) {
                total += m.blocks() * 512;
            }
        }
    }
    Some(total)
}

/// Whether `port` can be bound on `bind` the way podman publishes it. An
/// empty `bind` is every interface, and podman (rootlessport in particular)
/// then binds IPv4 and IPv6 both: a port held on `[::1]` alone is taken.
pub fn port_free(bind: &str, port: u16) -> bool {
    match bind {
        "" => can_bind(&format!("0.0.0.0:{port}")) && can_bind_v6(&format!("[::]:{port}")),
        ip if ip.contains(':') => can_bind_v6(&format!("{}:{port}", bracketed(ip))),
        ip => can_bind(&format!("{ip}:{port}")),
    }
}

/// Whether `port` is free on `bind` within `grace`: a container just removed
/// keeps its port a moment longer (podman's conmon holds it until it has
/// cleaned up), so a `start` right after `clean` or a recreate would
/// otherwise see a port "in use". A port that stays taken costs `grace`.
pub fn port_free_within(bind: &str, port: u16, grace: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + grace;
    loop {
        if port_free(bind, port) {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn can_bind(addr: &str) -> bool {
    TcpListener::bind(addr).is_ok()
}

/// A host without IPv6 has no IPv6 port to clash with.
fn can_bind_v6(addr: &str) -> bool {
    match TcpListener::bind(addr) {
        Ok(_) => true,
        Err(e) => matches!(
            e.raw_os_error(),
            Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
        ),
    }
}

/// A process listening on a TCP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortOwner {
    pub pid: u32,
    pub command: String,
}

impl std::fmt::Display for PortOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (pid {})", self.command, self.pid)
    }
}

/// The process listening on TCP `port`, from /proc (Linux only; others'
/// processes are visible to root only). None when it cannot be found.
pub fn port_owner(port: u16) -> Option<PortOwner> {
    port_owner_in(Path::new("/proc"), port)
}

fn port_owner_in(proc: &Path, port: u16) -> Option<PortOwner> {
    let mut inodes = HashSet::new();
    for table in ["net/tcp", "net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(proc.join(table)) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let mut pids: Vec<u32> = std::fs::read_dir(proc)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(proc.join(pid.to_string()).join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            let inode = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok());
            if inode.is_some_and(|i| inodes.contains(&i)) {
                let command = std::fs::read_to_string(proc.join(pid.to_string()).join("comm"))
                    .map(|c| c.trim().to_string())
                    .unwrap_or_else(|_| "?".into());
                return Some(PortOwner { pid, command });
            }
        }
    }
    None
}

/// Socket inodes listening on `port` in a /proc/net/tcp{,6} table.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            let state = fields.get(3)?;
            let inode = fields.get(9)?.parse::<u64>().ok()?;
            let local_port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            (local_port == port && *state == LISTEN && inode != 0).then_some(inode)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:6978 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 100 0 0 10 0
   1: 0100007F:6978 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn a_port_released_within_the_grace_is_free() {
        let held = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(held);
        });
        assert!(port_free_within(
            "",
            port,
            std::time::Duration::from_secs(3)
        ));
        release.join().unwrap();
        let held = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let started = std::time::Instant::now();
        assert!(!port_free_within(
            "",
            port,
            std::time::Duration::from_millis(200)
        ));
        assert!(started.elapsed() >= std::time::Duration::from_millis(200));
    }

    #[test]
    fn a_port_held_on_ipv6_loopback_alone_is_not_free() {
        // What rootlessport does for half of a publish: only [::1].
        let held = TcpListener::bind("[::1]:0").expect("this host has IPv6 loopback");
        let port = held.local_addr().unwrap().port();
        assert!(!port_free("", port));
        assert!(!port_free("::1", port));
        // Only IPv4 was asked for: that family is free.
        assert!(port_free("127.0.0.1", port));
        drop(held);
        assert!(port_free("", port));
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(!port_free("", v4.local_addr().unwrap().port()));
    }

    #[test]
    fn reads_listening_sockets_of_a_port() {
        assert_eq!(listening_inodes(TCP, 0x6978), [123456]);
        assert_eq!(listening_inodes(TCP, 8080), [777]);
        assert!(listening_inodes(TCP, 5051).is_empty());
    }

    #[test]
    fn finds_this_process_as_the_owner_of_its_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        if !Path::new("/proc/net/tcp").exists() {
            return; // not Linux
        }
        let owner = port_owner(port).expect("our own socket is visible");
        assert_eq!(owner.pid, std::process::id());
        assert!(!port_free("127.0.0.1", port));
        drop(listener);
        assert_eq!(port_owner(port), None);
    }

    #[test]
    fn disk_usage_counts_blocks_of_files_below() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/blob"), vec![1u8; 100_000]).unwrap();
        std::fs::write(dir.path().join("small"), b"x").unwrap();
        let used = disk_usage(dir.path()).unwrap();
        assert!(used >= 100_000, "{used}");
        assert!(used < 1_000_000, "{used}");
        assert_eq!(disk_usage(Path::new("/nonexistent/drcache")), None);
    }
}
