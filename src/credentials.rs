//! Upstream credentials: read at `start` from the source the config names,
//! handed to podman as secrets on stdin, never put in argv, labels or logs.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::CredentialSource;
use crate::errors::{exit, Hinted};

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// Never print the password, even in debug output.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// A short digest that changes when the credentials change, so the
    /// container is recreated with new secrets. Keyed with this install's
    /// secret key (an HMAC), so a label shows nothing a guess can be checked
    /// against; with the registry in it, the same password gives different
    /// values on different caches.
    pub fn fingerprint(&self, registry: &str, key: &[u8]) -> String {
        let parts = [
            "drcache-credentials",
            registry,
            &self.username,
            &self.password,
        ];
        crate::digest::hmac_sha256(key, parts.join("\0").as_bytes())[..16].to_string()
    }
}

fn bad(message: String, hint: &str) -> Hinted {
    Hinted {
        message,
        hint: hint.to_string(),
        code: exit::USAGE,
    }
}

/// Read the credentials of `registry` from `source`.
pub fn resolve(source: &CredentialSource, registry: &str) -> Result<Credentials, Hinted> {
    resolve_from(source, registry).map(|(c, _)| c)
}

/// A warning when `path`, which holds a login, may be read by its group or
/// by others.
pub fn loose_mode(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mode = std::fs::metadata(path).ok()?.mode() & 0o7777;
    (mode & 0o044 != 0).then(|| {
        format!(
            "{} holds a registry login and may be read by {} (mode {mode:04o}): \
             `chmod 600 {}`",
            path.display(),
            if mode & 0o004 != 0 {
                "every user"
            } else {
                "its group"
            },
            path.display()
        )
    })
}

/// Like [`resolve`], with the file the login was read from, if any.
pub fn resolve_from(
    source: &CredentialSource,
    registry: &str,
) -> Result<(Credentials, Option<PathBuf>), Hinted> {
    match source {
        CredentialSource::Env { username, password } => {
            let read = |var: &str| {
                std::env::var(var).ok().filter(|v| !v.is_empty()).ok_or_else(|| {
                    bad(
                        format!("{registry}: environment variable {var} is not set"),
                        "export it before `drcache start`, or remove the credentials from the config",
                    )
                })
            };
            Ok((
                Credentials {
                    username: read(username)?,
                    password: read(password)?,
                },
                None,
            ))
        }
        CredentialSource::File(path) => {
            let file = expand_home(path);
            let text = std::fs::read_to_string(&file).map_err(|e| {
                bad(
                    format!(
                        "{registry}: cannot read credentials_file {}: {e}",
                        path.display()
                    ),
                    "create it with one line `username:password` (mode 600)",
                )
            })?;
            let login = parse_credentials_line(&text).ok_or_else(|| {
                bad(
                    format!(
                        "{registry}: credentials_file {} does not start with a `username:password` line",
                        path.display()
                    ),
                    "write one line `username:password`",
                )
            })?;
            Ok((login, Some(file)))
        }
        CredentialSource::AuthFile => {
            let candidates = auth_file_candidates();
            for path in &candidates {
                let Ok(text) = std::fs::read_to_string(path) else {
                    continue;
                };
                if let Some(creds) = find_in_auth_json(&text, registry) {
                    return Ok((creds, Some(path.clone())));
                }
            }
            let searched: Vec<String> =
                candidates.iter().map(|p| p.display().to_string()).collect();
            Err(bad(
                format!(
                    "{registry}: no login for it in the auth files ({})",
                    searched.join(", ")
                ),
                &format!("run `podman login {registry}` first"),
            ))
        }
    }
}

fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

/// `username:password` on the first line; the password may contain ':'.
pub fn parse_credentials_line(text: &str) -> Option<Credentials> {
    let line = text.lines().next()?.trim_end_matches('\r');
    let (user, pass) = line.split_once(':')?;
    (!user.is_empty() && !pass.is_empty()).then(|| Credentials {
        username: user.to_string(),
        password: pass.to_string(),
    })
}

/// podman's and Docker's auth files, in the order podman reads them.
fn auth_file_candidates() -> Vec<PathBuf> {
    let env = |name: &str| std::env::var_os(name).map(PathBuf::from);
    let mut paths = Vec::new();
    if let Some(p) = env("REGISTRY_AUTH_FILE") {
        paths.push(p);
    }
    if let Some(dir) = env("XDG_RUNTIME_DIR") {
        paths.push(dir.join("containers/auth.json"));
    }
    if let Some(home) = env("HOME") {
        paths.push(home.join(".config/containers/auth.json"));
        paths.push(home.join(".docker/config.json"));
    }
    paths
}

#[derive(Deserialize)]
struct AuthJson {
    #[serde(default)]
    auths: std::collections::HashMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: String,
}

/// The login for `registry` in an auth.json / Docker config.json text.
pub fn find_in_auth_json(text: &str, registry: &str) -> Option<Credentials> {
    let parsed: AuthJson = serde_json::from_str(text).ok()?;
    // Docker Hub is stored under several names.
    let keys: Vec<String> = if registry == "docker.io" {
        vec![
            "docker.io".into(),
            "registry-1.docker.io".into(),
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
        ]
    } else {
        vec![registry.to_string(), format!("https://{registry}")]
    };
    keys.iter().find_map(|k| {
        let decoded = decode_base64(&parsed.auths.get(k)?.auth)?;
        parse_credentials_line(&String::from_utf8(decoded).ok()?)
    })
}

/// Standard base64, padded as auth files write it, or not.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    use base64::Engine;
    let text = text.trim();
    STANDARD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_password() {
        let c = Credentials {
            username: "me".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn fingerprint_changes_with_credentials_and_registry() {
        let a = Credentials {
            username: "me".into(),
            password: "one".into(),
        };
        let b = Credentials {
            password: "two".into(),
            ..a.clone()
        };
        let k = b"key-one";
        assert_ne!(a.fingerprint("docker.io", k), b.fingerprint("docker.io", k));
        assert_ne!(a.fingerprint("docker.io", k), a.fingerprint("quay.io", k));
        assert_eq!(
            a.fingerprint("docker.io", k),
            a.clone().fingerprint("docker.io", k)
        );
        // Another install's key: the same login gives another value.
        assert_ne!(
            a.fingerprint("docker.io", k),
            a.fingerprint("docker.io", b"key-two")
        );
    }

    #[test]
    fn a_login_file_readable_by_others_is_named_with_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("login");
        std::fs::write(&file, "me:pw\n").unwrap();
        let set =
            |mode| std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        set(0o600);
        assert_eq!(loose_mode(&file), None);
        set(0o644);
        assert_eq!(
            loose_mode(&file).unwrap(),
            format!(
                "{} holds a registry login and may be read by every user (mode 0644): `chmod 600 {}`",
                file.display(),
                file.display()
            )
        );
        set(0o640);
        assert!(loose_mode(&file)
            .unwrap()
            .contains("by its group (mode 0640)"));
        let (login, from) = resolve_from(&CredentialSource::File(file.clone()), "quay.io").unwrap();
        assert_eq!(login.username, "me");
        assert_eq!(from, Some(file));
    }

    #[test]
    fn credentials_line() {
        let c = parse_credentials_line("me:pa:ss\nignored").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("me", "pa:ss"));
        assert!(parse_credentials_line("nocolon").is_none());
        assert!(parse_credentials_line(":x").is_none());
        assert!(parse_credentials_line("").is_none());
    }

    #[test]
    fn base64() {
        assert_eq!(decode_base64("bWU6c2VjcmV0").unwrap(), b"me:secret");
        assert_eq!(decode_base64("YQ==").unwrap(), b"a");
        assert_eq!(decode_base64("YWI").unwrap(), b"ab");
        assert!(decode_base64("a").is_none());
        assert!(decode_base64("!!!!").is_none());
    }

    #[test]
    fn auth_json_lookup() {
        let text = r#"{"auths":{"https://index.docker.io/v1/":{"auth":"bWU6c2VjcmV0"},"quay.io":{"auth":"cTpx"}}}"#;
        let hub = find_in_auth_json(text, "docker.io").unwrap();
        assert_eq!(hub.username, "me");
        assert_eq!(hub.password, "secret");
        assert_eq!(find_in_auth_json(text, "quay.io").unwrap().username, "q");
        assert!(find_in_auth_json(text, "ghcr.io").is_none());
        assert!(find_in_auth_json("not json", "quay.io").is_none());
    }

    #[test]
    fn env_source_names_the_missing_variable() {
        let source = CredentialSource::Env {
            username: "DRCACHE_TEST_NO_SUCH_USER".into(),
            password: "DRCACHE_TEST_NO_SUCH_PASS".into(),
        };
        let err = resolve(&source, "docker.io").unwrap_err();
        assert_eq!(
            err.message,
            "docker.io: environment variable DRCACHE_TEST_NO_SUCH_USER is not set"
        );
        assert_eq!(err.code, exit::USAGE);
    }

    #[test]
    fn file_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cred");
        std::fs::write(&path, "me:secret\n").unwrap();
        let c = resolve(&CredentialSource::File(path.clone()), "docker.io").unwrap();
        assert_eq!(c.password, "secret");
        std::fs::write(&path, "garbage\n").unwrap();
        let err = resolve(&CredentialSource::File(path), "docker.io").unwrap_err();
        assert!(err
            .message
            .contains("does not start with a `username:password` line"));
    }
}
