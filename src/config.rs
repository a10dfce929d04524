//! Configuration: the embedded default, an optional TOML file over it, and
//! validation whose errors name the file and line.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

pub const DEFAULT_CONFIG: &str = include_str!("default-config.toml");

/// First port handed to a registry that a file names without a port.
const FIRST_EXTRA_PORT: u16 = 5056;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub image: String,
    pub prefix: String,
    /// Host address the cache ports are published on; empty = all interfaces.
    pub bind: String,
    /// Address cluster nodes use to reach the caches.
    pub host: String,
    /// Who may reach the caches (interfaces and networks); enforced by
    /// `setup-host` where the host can filter.
    pub clients: Vec<crate::clients::Client>,
    /// A cache with a login may run where the `clients` filter is not in place.
    pub allow_unfiltered_login: bool,
    pub registries: Vec<Registry>,
    /// Where the configuration came from, for messages.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// The registry host name as images name it, e.g. `quay.io`.
    pub name: String,
    pub upstream: String,
    pub port: u16,
    /// The proxy's cache TTL (a Go duration such as `168h`); None = the registry's default.
    pub ttl: Option<String>,
    /// Where the upstream credentials come from, if the cache logs in upstream.
    pub credentials: Option<CredentialSource>,
}

/// Where a cache's upstream username and password are read from at `start`.
/// The config names a source, never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// Two environment variables.
    Env { username: String, password: String },
    /// A file holding `username:password` on its first line.
    File(PathBuf),
    /// The podman / Docker auth file entry for this registry.
    AuthFile,
}

impl Config {
    pub fn registry(&self, name: &str) -> Option<&Registry> {
        self.registries.iter().find(|r| r.name == name)
    }

    pub fn registry_names(&self) -> Vec<&str> {
        self.registries.iter().map(|r| r.name.as_str()).collect()
    }
}

/// An invalid configuration: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub source: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.source, self.message),
            None => write!(f, "{}: {}", self.source, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    image: Option<Spanned<String>>,
    prefix: Option<Spanned<String>>,
    bind: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    ttl: Option<Spanned<String>>,
    clients: Option<Spanned<Vec<Spanned<String>>>>,
    allow_unfiltered_login: Option<bool>,
    registry: Option<Spanned<Vec<RawRegistry>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    name: Spanned<String>,
    upstream: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    ttl: Option<Spanned<String>>,
    username_env: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    credentials_file: Option<Spanned<String>>,
    auth_file: Option<Spanned<bool>>,
}

/// Where to read the configuration from, in order of precedence.
pub fn locate(
    flag: Option<&Path>,
    env_config: Option<PathBuf>,
    xdg_config_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Option<PathBuf> {
    if let Some(path) = flag {
        return Some(path.to_path_buf());
    }
    if let Some(path) = env_config.filter(|p| !p.as_os_str().is_empty()) {
        return Some(path);
    }
    let base = xdg_config_home
        .filter(|p| p.is_absolute())
        .or_else(|| home.map(|h| h.join(".config")))?;
    let path = base.join("drcache").join("config.toml");
    path.is_file().then_some(path)
}

/// Load the file (or the embedded default when `path` is None).
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let Some(path) = path else {
        return parse(DEFAULT_CONFIG, "embedded default configuration");
    };
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        source: source.clone(),
        line: None,
        message: format!("cannot read the config file: {e}"),
    })?;
    parse(&text, &source)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parse and validate a config text over the embedded defaults.
pub fn parse(text: &str, source: &str) -> Result<Config, ConfigError> {
    let error_at = |offset: Option<usize>, message: String| ConfigError {
        source: source.to_string(),
        line: offset.map(|o| line_of(text, o)),
        message,
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        error_at(
            e.span().map(|s| s.start),
            e.message().trim_end().replace('\n', "; "),
        )
    })?;
    let defaults = if source == "embedded default configuration" {
        None
    } else {
        Some(parse(DEFAULT_CONFIG, "embedded default configuration").expect("valid default"))
    };
    let string_or = |value: Option<Spanned<String>>, fallback: fn(&Config) -> &String| {
        value.map(|v| (v.span().start, v.into_inner())).map_or_else(
            || {
                (
                    None,
                    defaults
                        .as_ref()
                        .map(|d| fallback(d).clone())
                        .unwrap_or_default(),
                )
            },
            |(at, v)| (Some(at), v),
        )
    };

    let (at, image) = string_or(raw.image, |d| &d.image);
    check_image(&image).map_err(|m| error_at(at, m))?;
    let (at, prefix) = string_or(raw.prefix, |d| &d.prefix);
    check_prefix(&prefix).map_err(|m| error_at(at, m))?;
    let (at, bind) = string_or(raw.bind, |d| &d.bind);
    if !bind.is_empty() && bind.parse::<IpAddr>().is_err() {
        return Err(error_at(
            at,
            format!("bind = {bind:?} is not an IP address (use \"\" for all interfaces)"),
        ));
    }
    let (at, host) = string_or(raw.host, |d| &d.host);
    check_host(&host).map_err(|m| error_at(at, format!("host: {m}")))?;
    let clients = match raw.clients {
        None => crate::clients::DEFAULT
            .iter()
            .map(|c| crate::clients::parse(c).expect("valid default"))
            .collect(),
        Some(list) => {
            let at = list.span().start;
            let list = list.into_inner();
            if list.is_empty() {
                return Err(error_at(
                    Some(at),
                    "clients is empty: no cluster could reach the caches (the default is \
                     loopback and local cluster networks; \"*\" is every network)"
                        .into(),
                ));
            }
            list.into_iter()
                .map(|c| {
                    crate::clients::parse(c.get_ref())
                        .map_err(|m| error_at(Some(c.span().start), m))
                })
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    let allow_unfiltered_login = raw.allow_unfiltered_login.unwrap_or(false);
    let global_ttl = match raw.ttl {
        Some(t) => {
            check_ttl(t.get_ref()).map_err(|m| error_at(Some(t.span().start), m))?;
            Some(t.into_inner())
        }
        None => None,
    };

    let list_at = raw.registry.as_ref().map(|l| l.span().start);
    let registries = match raw.registry {
        None => defaults
            .map(|d| d.registries)
            .unwrap_or_default()
            .into_iter()
            .map(|r| Registry {
                ttl: global_ttl.clone(),
                ..r
            })
            .collect(),
        Some(list) => {
            registries_from(list.into_inner(), defaults.as_ref(), &global_ttl, &error_at)?
        }
    };
    if registries.is_empty() {
        return Err(error_at(list_at, "no registries are configured".into()));
    }
    Ok(Config {
        image,
        prefix,
        bind,
        host,
        clients,
        allow_unfiltered_login,
        registries,
        source: source.to_string(),
    })
}

fn registries_from(
    list: Vec<RawRegistry>,
    defaults: Option<&Config>,
    global_ttl: &Option<String>,
    error_at: &dyn Fn(Option<usize>, String) -> ConfigError,
) -> Result<Vec<Registry>, ConfigError> {
    let mut seen_names: HashMap<String, usize> = HashMap::new();
    let mut seen_ports: HashMap<u16, String> = HashMap::new();
    let mut out = Vec::new();
    let mut pending_port = Vec::new();
    // Where each registry's name stands, for errors found after the loop.
    let mut names_at = Vec::new();
    for raw in list {
        let name_at = Some(raw.name.span().start);
        names_at.push(name_at);
        let name = raw.name.into_inner();
        check_registry_name(&name).map_err(|m| error_at(name_at, m))?;
        if seen_names.insert(name.clone(), out.len()).is_some() {
            return Err(error_at(
                name_at,
                format!("registry {name:?} is listed twice"),
            ));
        }
        let known = defaults.and_then(|d| d.registry(&name));
        let upstream = match raw.upstream {
            Some(u) => {
                check_upstream(u.get_ref()).map_err(|m| error_at(Some(u.span().start), m))?;
                u.into_inner()
            }
            None => known.map_or_else(|| format!("https://{name}"), |k| k.upstream.clone()),
        };
        let port = match raw.port {
            Some(p) => {
                let at = Some(p.span().start);
                let value = *p.get_ref();
                let port = u16::try_from(value)
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| error_at(at, format!("port {value} is outside 1..65535")))?;
                if let Some(other) = seen_ports.insert(port, name.clone()) {
                    return Err(error_at(
                        at,
                        format!("port {port} is used by both {other:?} and {name:?}"),
                    ));
                }
                Some(port)
            }
            None => known.map(|k| k.port),
        };
        let ttl = match raw.ttl {
            Some(t) => {
                check_ttl(t.get_ref()).map_err(|m| error_at(Some(t.span().start), m))?;
                Some(t.into_inner())
            }
            None => global_ttl.clone(),
        };
        let credentials = credential_source(
            raw.username_env,
            raw.password_env,
            raw.credentials_file,
            raw.auth_file,
        )
        .map_err(|(at, m)| error_at(at.or(name_at), format!("registry {name:?}: {m}")))?;
        if port.is_none() {
            pending_port.push(out.len());
        }
        out.push(Registry {
            name,
            upstream,
            port: port.unwrap_or(0),
            ttl,
            credentials,
        });
    }
    // Default ports of known registries, then free ports for the rest, so an
    // explicit port elsewhere in the file always wins.
    for (r, name_at) in out.iter().zip(names_at) {
        if r.port != 0 && !seen_ports.values().any(|n| n == &r.name) {
            if let Some(other) = seen_ports.insert(r.port, r.name.clone()) {
                return Err(error_at(
                    name_at,
                    format!(
                        "port {} is used by both {other:?} and {:?} (its default); give one of them another port",
                        r.port, r.name
                    ),
                ));
            }
        }
    }
    let mut next = FIRST_EXTRA_PORT;
    for index in pending_port {
        while seen_ports.contains_key(&next) {
            next += 1;
        }
        seen_ports.insert(next, out[index].name.clone());
        out[index].port = next;
    }
    Ok(out)
}

type Located = (Option<usize>, String);

fn credential_source(
    username_env: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    file: Option<Spanned<String>>,
    auth_file: Option<Spanned<bool>>,
) -> Result<Option<CredentialSource>, Located> {
    let auth_file = auth_file.filter(|a| *a.get_ref());
    let mut sources = Vec::new();
    let env_at = username_env
        .as_ref()
        .or(password_env.as_ref())
        .map(|s| s.span().start);
    match (username_env, password_env) {
        (Some(u), Some(p)) => {
            for var in [&u, &p] {
                let ok = !var.get_ref().is_empty()
                    && var
                        .get_ref()
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !ok {
                    return Err((
                        Some(var.span().start),
                        format!("{:?} is not an environment variable name", var.get_ref()),
                    ));
                }
            }
            sources.push(CredentialSource::Env {
                username: u.into_inner(),
                password: p.into_inner(),
            });
        }
        (None, None) => {}
        _ => {
            return Err((
                env_at,
                "username_env and password_env go together".to_string(),
            ))
        }
    }
    if let Some(f) = &file {
        if f.get_ref().is_empty() {
            return Err((Some(f.span().start), "credentials_file is empty".into()));
        }
        sources.push(CredentialSource::File(PathBuf::from(f.get_ref())));
    }
    if auth_file.is_some() {
        sources.push(CredentialSource::AuthFile);
    }
    match sources.len() {
        0 | 1 => Ok(sources.pop()),
        _ => Err((
            env_at.or(file.map(|f| f.span().start)),
            "choose one credential source: username_env/password_env, credentials_file or auth_file"
                .into(),
        )),
    }
}

/// A registry host name as it appears in image references: `quay.io`,
/// `localhost:5000`. Lowercase, so it is also a valid part of podman names.
pub fn check_registry_name(name: &str) -> Result<(), String> {
    let (host, port) = match name.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (name, None),
    };
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("registry name {name:?} has an invalid port"));
        }
    }
    if !is_dns_name(host) || host.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "registry name {name:?} is not a registry host name (like \"quay.io\"; lowercase letters, digits, '-' and '.')"
        ));
    }
    Ok(())
}

pub fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn check_host(host: &str) -> Result<(), String> {
    if host.parse::<IpAddr>().is_ok() || is_dns_name(host) {
        Ok(())
    } else {
        Err(format!("{host:?} is not a host name or IP address"))
    }
}

/// Podman container and volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    let mut chars = prefix.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
        Ok(())
    } else {
        Err(format!(
            "prefix {prefix:?} is not a valid podman name start (a letter or digit, then letters, digits, '_', '.' or '-')"
        ))
    }
}

fn check_image(image: &str) -> Result<(), String> {
    let ok = !image.is_empty()
        && !image.starts_with('-')
        && image
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("image {image:?} is not an image reference"))
    }
}

/// `http://` or `https://`, a host, an optional port and path. Nothing that
/// could break out of a quoted TOML string or an env value.
pub fn check_upstream(url: &str) -> Result<(), String> {
    let bad = || format!("upstream {url:?} is not an http:// or https:// URL of a registry");
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = crate::netaddr::split_authority(authority).ok_or_else(bad)?;
    // A bracketed host is an IPv6 address; an unbracketed one cannot be.
    let host_ok = if authority.starts_with('[') {
        host.parse::<Ipv6Addr>().is_ok()
    } else {
        is_dns_name(host) || host.parse::<Ipv4Addr>().is_ok()
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    let path_ok = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._~/".contains(c));
    if host_ok && port_ok && path_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// A Go duration the registry accepts for its proxy TTL, like `168h` or `90m`.
pub fn check_ttl(ttl: &str) -> Result<(), String> {
    let bad = || format!("ttl {ttl:?} is not a duration like \"168h\", \"90m\" or \"3600s\"");
    if ttl == "0" {
        return Ok(());
    }
    let mut rest = ttl;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        rest = &rest[digits..];
        let unit = ["ms", "h", "m", "s"]
            .into_iter()
            .find(|u| rest.starts_with(u))
            .ok_or_else(bad)?;
        rest = &rest[unit.len()..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use indoc::indoc;

    fn parse_ok(text: &str) -> Config {
        parse(text, "test.toml").unwrap()
    }

    fn parse_err(text: &str) -> ConfigError {
        parse(text, "test.toml").unwrap_err()
    }

    #[test]
    fn default_is_compatible_with_drenv() {
        let c = load(None).unwrap();
        assert_eq!(c.prefix, "drenv-cache");
        assert_eq!(c.image, "docker.io/library/registry:3");
        assert_eq!(c.host, "host.minikube.internal");
        assert_eq!(c.bind, "");
        let got: Vec<(&str, &str, u16)> = c
            .registries
            .iter()
            .map(|r| (r.name.as_str(), r.upstream.as_str(), r.port))
            .collect();
        assert_eq!(
            got,
            [
                ("quay.io", "https://quay.io", 5051),
                ("docker.io", "https://registry-1.docker.io", 5052),
                ("registry.k8s.io", "https://registry.k8s.io", 5053),
                ("ghcr.io", "https://ghcr.io", 5054),
                ("gcr.io", "https://gcr.io", 5055),
            ]
        );
    }

    #[test]
    fn empty_file_means_all_defaults() {
        let c = parse_ok("");
        assert_eq!(c.registries, load(None).unwrap().registries);
        assert_eq!(c.source, "test.toml");
    }

    #[test]
    fn top_level_keys_override_and_keep_default_registries() {
        let c = parse_ok(indoc! {r#"
            image = "localhost/registry:test"
            prefix = "t1"
            bind = "127.0.0.1"
            host = "10.0.2.2"
            ttl = "24h"
        "#});
        assert_eq!(c.image, "localhost/registry:test");
        assert_eq!(c.prefix, "t1");
        assert_eq!(c.bind, "127.0.0.1");
        assert_eq!(c.host, "10.0.2.2");
        assert_eq!(c.registries.len(), 5);
        assert!(c.registries.iter().all(|r| r.ttl.as_deref() == Some("24h")));
    }

    #[test]
    fn listed_registries_replace_defaults_and_fill_missing_keys() {
        let c = parse_ok(indoc! {r#"
            [[registry]]
            name = "docker.io"

            [[registry]]
            name = "quay.io"
            upstream = "http://127.0.0.1:15100"
            port = 25051
            ttl = "1h30m"

            [[registry]]
            name = "registry.example.com"
        "#});
        assert_eq!(c.registries.len(), 3);
        assert_eq!(c.registries[0].upstream, "https://registry-1.docker.io");
        assert_eq!(c.registries[0].port, 5052);
        assert_eq!(c.registries[1].port, 25051);
        assert_eq!(c.registries[1].ttl.as_deref(), Some("1h30m"));
        assert_eq!(c.registries[2].upstream, "https://registry.example.com");
        assert_eq!(c.registries[2].port, 5056);
    }

    #[test]
    fn extra_registries_skip_taken_ports() {
        let c = parse_ok(indoc! {r#"
            [[registry]]
            name = "a.example"
            [[registry]]
            name = "b.example"
            port = 5056
        "#});
        assert_eq!(c.registries[0].port, 5057);
    }

    #[test]
    fn unknown_key_names_the_line() {
        let e = parse_err("image = \"x\"\n\n[[registry]]\nname = \"quay.io\"\nprot = 1\n");
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("unknown field `prot`"), "{e}");
        assert!(e.to_string().starts_with("test.toml:5: "));
    }

    #[test]
    fn syntax_error_names_the_line() {
        let e = parse_err("prefix = \"a\"\nbind = \n");
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn duplicate_names_and_ports_are_errors() {
        let e = parse_err("[[registry]]\nname = \"quay.io\"\n[[registry]]\nname = \"quay.io\"\n");
        assert_eq!(e.line, Some(4));
        assert!(e.message.contains("listed twice"));
        let e = parse_err(
            "[[registry]]\nname = \"quay.io\"\nport = 6000\n[[registry]]\nname = \"ghcr.io\"\nport = 6000\n",
        );
        assert_eq!(e.line, Some(6));
        assert!(e
            .message
            .contains("port 6000 is used by both \"quay.io\" and \"ghcr.io\""));
        let e = parse_err(
            "[[registry]]\nname = \"quay.io\"\n[[registry]]\nname = \"ghcr.io\"\nport = 5051\n",
        );
        assert!(e.message.contains("port 5051"), "{e}");
    }

    /// Every kind of config error, as printed: `FILE:LINE: message`.
    #[test]
    fn every_config_error_is_one_exact_line_naming_file_and_line() {
        let cases: &[(&str, &str)] = &[
            ("prefix = \"a\"\nbind = \n", "dup.toml:2: string values must be quoted, expected literal string"),
            ("image = \"x\"\n\n[[registry]]\nname = \"quay.io\"\nprot = 1\n", "dup.toml:5: unknown field `prot`, expected one of `name`, `upstream`, `port`, `ttl`, `username_env`, `password_env`, `credentials_file`, `auth_file`"),
            ("prefix = 5\n", "dup.toml:1: invalid type: integer `5`, expected a string"),
            ("prefix = \"-x\"\n", "dup.toml:1: prefix \"-x\" is not a valid podman name start (a letter or digit, then letters, digits, '_', '.' or '-')"),
            ("prefix = \"a b\"\n", "dup.toml:1: prefix \"a b\" is not a valid podman name start (a letter or digit, then letters, digits, '_', '.' or '-')"),
            ("\nbind = \"localhost\"\n", "dup.toml:2: bind = \"localhost\" is not an IP address (use \"\" for all interfaces)"),
            ("host = \"a b\"\n", "dup.toml:1: host: \"a b\" is not a host name or IP address"),
            ("ttl = \"7d\"\n", "dup.toml:1: ttl \"7d\" is not a duration like \"168h\", \"90m\" or \"3600s\""),
            ("image = \"--privileged\"\n", "dup.toml:1: image \"--privileged\" is not an image reference"),
            ("[[registry]]\nname = \"Quay.io\"\n", "dup.toml:2: registry name \"Quay.io\" is not a registry host name (like \"quay.io\"; lowercase letters, digits, '-' and '.')"),
            ("[[registry]]\nname = \"quay.io:99999\"\n", "dup.toml:2: registry name \"quay.io:99999\" has an invalid port"),
            ("[[registry]]\nname = \"quay.io\"\nupstream = \"ftp://x\"\n", "dup.toml:3: upstream \"ftp://x\" is not an http:// or https:// URL of a registry"),
            ("[[registry]]\nname = \"quay.io\"\nupstream = \"http://h:0\"\n", "dup.toml:3: upstream \"http://h:0\" is not an http:// or https:// URL of a registry"),
            ("[[registry]]\nname = \"quay.io\"\n[[registry]]\nname = \"quay.io\"\n", "dup.toml:4: registry \"quay.io\" is listed twice"),
            ("[[registry]]\nname = \"quay.io\"\nport = 0\n", "dup.toml:3: port 0 is outside 1..65535"),
            ("[[registry]]\nname = \"quay.io\"\nport = 6000\n[[registry]]\nname = \"ghcr.io\"\nport = 6000\n", "dup.toml:6: port 6000 is used by both \"quay.io\" and \"ghcr.io\""),
            // A registry's default port taken by an explicit one elsewhere:
            // the line of the registry that would use its default.
            ("prefix = \"p\"\n\n[[registry]]\nname = \"ghcr.io\"\nport = 5051\n\n[[registry]]\nname = \"quay.io\"\n", "dup.toml:8: port 5051 is used by both \"ghcr.io\" and \"quay.io\" (its default); give one of them another port"),
            ("[[registry]]\nname = \"quay.io\"\nttl = \"1x\"\n", "dup.toml:3: ttl \"1x\" is not a duration like \"168h\", \"90m\" or \"3600s\""),
            ("[[registry]]\nname = \"docker.io\"\nusername_env = \"U\"\n", "dup.toml:3: registry \"docker.io\": username_env and password_env go together"),
            ("[[registry]]\nname = \"docker.io\"\nusername_env = \"U-1\"\npassword_env = \"P\"\n", "dup.toml:3: registry \"docker.io\": \"U-1\" is not an environment variable name"),
            ("[[registry]]\nname = \"docker.io\"\ncredentials_file = \"\"\n", "dup.toml:3: registry \"docker.io\": credentials_file is empty"),
            ("[[registry]]\nname = \"docker.io\"\ncredentials_file = \"f\"\nauth_file = true\n", "dup.toml:3: registry \"docker.io\": choose one credential source: username_env/password_env, credentials_file or auth_file"),
            ("registry = []\n", "dup.toml:1: no registries are configured"),
        ];
        let mut wrong = Vec::new();
        for (text, expect) in cases {
            let got = parse(text, "dup.toml").map_or_else(|e| e.to_string(), |_| "no error".into());
            if got != *expect {
                wrong.push(format!("{text:?}\n  got:  {got}\n  want: {expect}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn clients_default_to_local_cluster_networks_and_bad_ones_name_their_line() {
        let c = parse_ok("");
        assert_eq!(
            c.clients.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            ["lo", "virbr*", "podman*", "docker*", "br-*", "bridge1*"]
        );
        assert!(!c.allow_unfiltered_login);
        let c = parse_ok("clients = [\"lo\", \"192.0.2.0/24\"]\nallow_unfiltered_login = true\n");
        assert_eq!(c.clients.len(), 2);
        assert!(c.allow_unfiltered_login);
        let e = parse_err("prefix = \"a\"\nclients = [\n  \"lo\",\n  \"not valid\",\n]\n");
        assert_eq!(e.line, Some(4), "{e}");
        assert!(
            e.message.starts_with("clients: \"not valid\" is neither"),
            "{e}"
        );
        let e = parse_err("\nclients = []\n");
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn ports_outside_range_are_errors() {
        for port in ["0", "65536", "-1"] {
            let e = parse_err(&format!(
                "[[registry]]\nname = \"quay.io\"\nport = {port}\n"
            ));
            assert_eq!(e.line, Some(3));
            assert!(e.message.contains("outside 1..65535"), "{e}");
        }
    }

    #[test]
    fn bad_values_are_errors_with_lines() {
        let cases = [
            ("prefix = \"-x\"", "prefix"),
            ("prefix = \"a b\"", "prefix"),
            ("bind = \"localhost\"", "not an IP address"),
            ("host = \"a b\"", "host"),
            ("ttl = \"7d\"", "duration"),
            ("image = \"--privileged\"", "image"),
            ("[[registry]]\nname = \"Quay.io\"", "registry host name"),
            ("[[registry]]\nname = \"quay_io\"", "registry host name"),
            ("[[registry]]\nname = \"q\\\"\"", "registry host name"),
            (
                "[[registry]]\nname = \"quay.io\"\nupstream = \"ftp://x\"",
                "http:// or https://",
            ),
            (
                "[[registry]]\nname = \"quay.io\"\nupstream = \"https://x\\\"\\n[evil]\"",
                "http:// or https://",
            ),
        ];
        for (text, expect) in cases {
            let e = parse_err(text);
            assert!(e.message.contains(expect), "{text}: {e}");
            assert!(e.line.is_some(), "{text}: {e}");
        }
    }

    #[test]
    fn credential_sources() {
        let c = parse_ok(indoc! {r#"
            [[registry]]
            name = "docker.io"
            username_env = "HUB_USER"
            password_env = "HUB_TOKEN"
            [[registry]]
            name = "quay.io"
            credentials_file = "~/.config/drcache/quay.cred"
            [[registry]]
            name = "ghcr.io"
            auth_file = true
            [[registry]]
            name = "gcr.io"
            auth_file = false
        "#});
        assert_eq!(
            c.registries[0].credentials,
            Some(CredentialSource::Env {
                username: "HUB_USER".into(),
                password: "HUB_TOKEN".into()
            })
        );
        assert_eq!(
            c.registries[1].credentials,
            Some(CredentialSource::File("~/.config/drcache/quay.cred".into()))
        );
        assert_eq!(
            c.registries[2].credentials,
            Some(CredentialSource::AuthFile)
        );
        assert_eq!(c.registries[3].credentials, None);
    }

    #[test]
    fn bad_credential_sources() {
        let e = parse_err("[[registry]]\nname = \"docker.io\"\nusername_env = \"U\"\n");
        assert_eq!(e.line, Some(3));
        assert!(
            e.message
                .contains("username_env and password_env go together"),
            "{e}"
        );
        let e = parse_err(
            "[[registry]]\nname = \"docker.io\"\nusername_env = \"U\"\npassword_env = \"P\"\nauth_file = true\n",
        );
        assert!(e.message.contains("choose one credential source"), "{e}");
        let e = parse_err(
            "[[registry]]\nname = \"docker.io\"\nusername_env = \"U-1\"\npassword_env = \"P\"\n",
        );
        assert!(
            e.message.contains("not an environment variable name"),
            "{e}"
        );
        // The config names a source, never holds the secret itself.
        let e = parse_err("[[registry]]\nname = \"docker.io\"\npassword = \"x\"\n");
        assert!(e.message.contains("unknown field `password`"), "{e}");
    }

    #[test]
    fn empty_registry_list_is_an_error() {
        let e = parse_err("registry = []");
        assert!(e.message.contains("no registries"));
    }

    #[test]
    fn registry_names_with_ports_are_allowed() {
        assert!(check_registry_name("localhost:5000").is_ok());
        assert!(check_registry_name("localhost:0").is_err());
        assert!(check_registry_name("").is_err());
    }

    #[test]
    fn upstream_urls() {
        for ok in [
            "https://quay.io",
            "http://host.containers.internal:15100",
            "http://127.0.0.1:1/v2",
            "http://[::1]:5000",
            "http://[::1]",
            "http://[fd00::1]/v2",
        ] {
            assert!(check_upstream(ok).is_ok(), "{ok}");
        }
        for bad in [
            "quay.io",
            "https://",
            "https://a b",
            "https://x:99999",
            "https://x?y",
            "http://::1",
            "http://[::1",
            "http://[::1]5000",
            "http://[quay.io]",
            "http://[::1]:0",
        ] {
            assert!(check_upstream(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ttl_durations() {
        for ok in ["0", "168h", "1h30m", "500ms", "3600s"] {
            assert!(check_ttl(ok).is_ok(), "{ok}");
        }
        for bad in ["", "h", "7d", "1.5h", "-1h", "1 h"] {
            assert!(check_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn locate_prefers_flag_then_env_then_xdg() {
        let dir = tempfile::tempdir().unwrap();
        let xdg = dir.path().join("xdg");
        std::fs::create_dir_all(xdg.join("drcache")).unwrap();
        let flag = Path::new("/flag.toml");
        let env = PathBuf::from("/env.toml");
        assert_eq!(
            locate(Some(flag), Some(env.clone()), Some(xdg.clone()), None),
            Some(flag.to_path_buf())
        );
        assert_eq!(
            locate(None, Some(env.clone()), Some(xdg.clone()), None),
            Some(env)
        );
        // No file in the XDG dir: the embedded default.
        assert_eq!(locate(None, None, Some(xdg.clone()), None), None);
        std::fs::write(xdg.join("drcache/config.toml"), "").unwrap();
        assert_eq!(
            locate(None, Some(PathBuf::new()), Some(xdg.clone()), None),
            Some(xdg.join("drcache/config.toml"))
        );
        // Relative XDG_CONFIG_HOME is ignored, as the spec says; HOME/.config is used.
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".config/drcache")).unwrap();
        std::fs::write(home.join(".config/drcache/config.toml"), "").unwrap();
        assert_eq!(
            locate(None, None, Some(PathBuf::from("rel")), Some(home.clone())),
            Some(home.join(".config/drcache/config.toml"))
        );
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let e = load(Some(Path::new("/nonexistent/drcache.toml"))).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("/nonexistent/drcache.toml: cannot read"));
    }
}
