//! containerd's registry host configuration (`certs.d/<registry>/hosts.toml`),
//! rendered from validated values only, so nothing a config holds can inject TOML.

use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};

use indoc::formatdoc;

use crate::config::{self, Registry};

/// The first line of every file drcache writes; `unconfigure` removes only
/// files that carry it.
pub const MARKER: &str = "# Written by drcache";

/// Where minikube's containerd (ISO and kicbase) reads hosts.toml files.
pub const CERTS_D: &str = "/etc/containerd/certs.d";

/// One registry's hosts.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsFile {
    pub registry: String,
    pub mirror: String,
    pub content: String,
}

impl HostsFile {
    /// The path relative to a `certs.d` directory.
    pub fn relative_path(&self) -> String {
        format!("{}/hosts.toml", self.registry)
    }
}

/// `host` as it goes into a URL: a DNS name or an IP address, IPv6 in
/// brackets (given with or without them).
pub fn url_host(host: &str) -> Result<String, String> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    if let Some(inner) = bare {
        return match inner.parse::<Ipv6Addr>() {
            Ok(_) => Ok(host.to_string()),
            Err(_) => Err(format!("{host:?} is not an IPv6 address in brackets")),
        };
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => Ok(crate::netaddr::bracketed(host)),
        Ok(IpAddr::V4(_)) => Ok(host.to_string()),
        Err(_) if config::is_dns_name(host) => Ok(host.to_string()),
        Err(_) => Err(format!(
            "{host:?} is not a host name or an IP address (IPv6 may be given in brackets)"
        )),
    }
}

/// `http://HOST:PORT`, the cache as cluster nodes reach it.
pub fn mirror_url(host: &str, port: u16) -> Result<String, String> {
    Ok(format!("http://{}:{port}", url_host(host)?))
}

/// The hosts.toml that sends pulls of `registry` to its cache at `host`;
/// containerd falls back to `server`, the registry's upstream, when the
/// cache fails.
pub fn hosts_toml(registry: &Registry, host: &str) -> Result<HostsFile, String> {
    // Validated again here: a Registry may be built without the config parser.
    config::check_registry_name(&registry.name)?;
    config::check_upstream(&registry.upstream)?;
    let mirror = mirror_url(host, registry.port)?;
    let content = formatdoc! {r#"
        {MARKER}: pulls try the cache first, then `server`.
        server = "{server}"

        [host."{mirror}"]
          capabilities = ["pull", "resolve"]
        "#,
        server = registry.upstream,
    };
    Ok(HostsFile {
        registry: registry.name.clone(),
        mirror,
        content,
    })
}

/// The hosts.toml files of all `registries`.
pub fn hosts_files(registries: &[&Registry], host: &str) -> Result<Vec<HostsFile>, String> {
    registries.iter().map(|r| hosts_toml(r, host)).collect()
}

/// True when `content` is a file drcache wrote.
pub fn is_ours(content: &str) -> bool {
    content.starts_with(MARKER)
}

// ------------------------------------------------- a certs.d directory on disk

/// Files in `dir` that stand where `files` would go but were not written by
/// drcache: never overwritten.
pub fn foreign_files(dir: &Path, files: &[HostsFile]) -> Vec<PathBuf> {
    files
        .iter()
        .map(|f| dir.join(f.relative_path()))
        .filter(|path| match std::fs::read_to_string(path) {
            Ok(text) => !is_ours(&text),
            Err(e) => e.kind() != io::ErrorKind::NotFound,
        })
        .collect()
}

/// Write `files` under `dir`, each atomically (a reader never sees half a
/// file), following no symbolic link below `top` (`dir` or a parent of it).
pub fn write_files(top: &Path, dir: &Path, files: &[HostsFile]) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for file in files {
        let path = dir.join(file.relative_path());
        crate::fsutil::write_atomic(top, &path, file.content.as_bytes(), 0o644)?;
        written.push(path);
    }
    Ok(written)
}

/// The registries whose `dir/<registry>/hosts.toml` drcache wrote, sorted.
pub fn ours_in(dir: &Path) -> io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let text = std::fs::read_to_string(entry.path().join("hosts.toml")).unwrap_or_default();
        if is_ours(&text) {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found.sort();
    Ok(found)
}

/// Remove `dir/<registry>/hosts.toml`, then the directories left empty
/// between it and `stop` (exclusive).
pub fn remove_file(dir: &Path, registry: &str, stop: &Path) -> io::Result<PathBuf> {
    let path = dir.join(registry).join("hosts.toml");
    crate::fsutil::remove_file(stop, &path)?;
    let mut parent = path.parent();
    while let Some(p) = parent.filter(|p| p.starts_with(stop) && *p != stop) {
        if std::fs::remove_dir(p).is_err() {
            break; // not empty: someone else's files live there
        }
        parent = p.parent();
    }
    Ok(path)
}

/// Stop before writing anything when a file drcache did not write, or a
/// symbolic link below `top`, is in the way.
pub fn refuse_foreign(top: &Path, dir: &Path, files: &[HostsFile]) -> anyhow::Result<()> {
    for file in files {
        let path = dir.join(file.relative_path());
        if path.starts_with(top) {
            crate::fsutil::refuse_links(top, &path)?;
        }
    }
    let foreign = foreign_files(dir, files);
    if foreign.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = foreign.iter().map(|p| p.display().to_string()).collect();
    Err(crate::errors::Hinted {
        message: format!(
            "not overwriting a hosts.toml that drcache did not write: {}",
            list.join(", ")
        ),
        hint: "move the file away (or delete it) and run again; drcache marks its files with \
               a first line `# Written by drcache`"
            .into(),
        code: crate::errors::exit::FAILURE,
    }
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(name: &str, upstream: &str, port: u16) -> Registry {
        Registry {
            name: name.into(),
            upstream: upstream.into(),
            port,
            ttl: None,
            credentials: None,
        }
    }

    #[test]
    fn matches_the_shape_containerd_accepted() {
        let fixture = include_str!("../tests/fixtures/containerd-hosts.toml");
        let file = hosts_toml(&registry("quay.io", "https://quay.io", 15051), "127.0.0.1").unwrap();
        let (marker, rest) = file.content.split_once('\n').unwrap();
        assert!(marker.starts_with(MARKER));
        assert!(is_ours(&file.content));
        assert_eq!(rest, fixture);
        assert_eq!(file.relative_path(), "quay.io/hosts.toml");
        assert_eq!(file.mirror, "http://127.0.0.1:15051");
    }

    #[test]
    fn docker_io_uses_its_real_registry_host() {
        let config = config::load(None).unwrap();
        let docker = config.registry("docker.io").unwrap();
        let file = hosts_toml(docker, &config.host).unwrap();
        assert!(file
            .content
            .contains("server = \"https://registry-1.docker.io\"\n"));
        assert!(file
            .content
            .contains("[host.\"http://host.minikube.internal:5052\"]\n"));
    }

    #[test]
    fn ipv6_hosts_get_brackets() {
        assert_eq!(mirror_url("::1", 5051).unwrap(), "http://[::1]:5051");
        assert_eq!(mirror_url("[fd00::2]", 1).unwrap(), "http://[fd00::2]:1");
        assert_eq!(
            mirror_url("10.0.2.2", 5051).unwrap(),
            "http://10.0.2.2:5051"
        );
        assert_eq!(
            mirror_url("host.minikube.internal", 5051).unwrap(),
            "http://host.minikube.internal:5051"
        );
    }

    #[test]
    fn hosts_that_could_inject_toml_are_refused() {
        for bad in [
            "",
            "a b",
            "x\"]\n[evil]",
            "[not-ip]",
            "[::1",
            "h:80",
            "http://h",
            "-h",
            "h/x",
        ] {
            assert!(url_host(bad).is_err(), "{bad:?}");
        }
        let evil = registry("quay.io", "https://quay.io\"\n[x]", 1);
        assert!(hosts_toml(&evil, "h").is_err());
        let evil = registry("quay.io\"", "https://quay.io", 1);
        assert!(hosts_toml(&evil, "h").is_err());
    }

    #[test]
    fn directory_helpers_touch_only_drcache_files() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("files");
        let dir = top.join("etc/containerd/certs.d");
        let files = hosts_files(
            &[
                &registry("quay.io", "https://quay.io", 1),
                &registry("ghcr.io", "https://ghcr.io", 2),
            ],
            "h",
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("ghcr.io")).unwrap();
        std::fs::write(dir.join("ghcr.io/hosts.toml"), "server = \"mine\"\n").unwrap();
        assert_eq!(
            foreign_files(&dir, &files),
            [dir.join("ghcr.io/hosts.toml")]
        );
        assert!(foreign_files(&dir, &files[..1]).is_empty());

        write_files(&top, &dir, &files[..1]).unwrap();
        assert_eq!(ours_in(&dir).unwrap(), ["quay.io"]);
        assert!(
            foreign_files(&dir, &files[..1]).is_empty(),
            "ours may be rewritten"
        );
        remove_file(&dir, "quay.io", &top).unwrap();
        assert!(!dir.join("quay.io").exists());
        assert!(
            dir.join("ghcr.io/hosts.toml").exists(),
            "the user's file stays"
        );

        std::fs::remove_dir_all(dir.join("ghcr.io")).unwrap();
        write_files(&top, &dir, &files[..1]).unwrap();
        remove_file(&dir, "quay.io", &top).unwrap();
        assert!(
            top.exists() && !top.join("etc").exists(),
            "empty dirs go up to the stop"
        );
        assert_eq!(ours_in(&dir).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn ours_in_a_missing_dir_is_none_and_an_unreadable_one_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(
            ours_in(&tmp.path().join("missing")).unwrap(),
            Vec::<String>::new()
        );
        // Not a directory: an error to report, not "nothing of ours".
        let file = tmp.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(ours_in(&file).is_err());
    }

    #[test]
    fn rendered_file_is_valid_toml() {
        let file = hosts_toml(
            &registry("localhost:5000", "http://[::1]:5000", 5056),
            "::1",
        )
        .unwrap();
        let value: toml::Value = toml::from_str(&file.content).unwrap();
        assert_eq!(value["server"].as_str(), Some("http://[::1]:5000"));
        let caps = &value["host"]["http://[::1]:5056"]["capabilities"];
        assert_eq!(caps.as_array().unwrap().len(), 2);
    }
}
