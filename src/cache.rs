//! One cache's desired state: its names, labels and the container it runs.

use crate::config::{Config, Registry};
use crate::credentials::Credentials;
use crate::digest::short_sha256;
use crate::netaddr::bracketed;
use crate::podman::RunSpec;

/// Labels drcache puts on what it owns.
pub const LABEL_REGISTRY: &str = "drcache.registry";
pub const LABEL_PREFIX: &str = "drcache.prefix";
pub const LABEL_HASH: &str = "drcache.config-hash";
pub const LABEL_MODE: &str = "drcache.mode";
/// Why an offline cache is offline: `requested` (`start --offline`) or
/// `fallback` (its upstream could not be reached). Not part of the hash.
pub const LABEL_OFFLINE: &str = "drcache.offline";

/// Ports inside the registry container.
pub const REGISTRY_PORT: u16 = 5000;
pub const DEBUG_PORT: u16 = 5001;
const STORAGE_PATH: &str = "/var/lib/registry";
/// File name of the registry config secret under /run/secrets.
const CONFIG_SECRET_TARGET: &str = "drcache-registry.yml";

/// A complete registry config with the upstream login. It replaces the
/// image's own config file, so it carries what the official image's default
/// config (`registry:3`'s `/etc/distribution/config.yml`) sets: deletes
/// enabled (which proxy expiry needs), the in-memory blob descriptor cache,
/// the storage health check and the debug server; the environment drcache
/// passes (log level, debug address, proxy TTL) applies on top, as it does
/// to the image's file. The image's `storage.tag.concurrencylimit` is left
/// out: registry 2.x reads `tag` as a second storage driver and refuses the
/// whole file. Strings are written as JSON strings, which YAML
/// reads as double-quoted scalars, so no value can break out of its field.
pub fn registry_config_yaml(upstream: &str, credentials: &Credentials) -> String {
    let quote = |v: &str| serde_json::to_string(v).expect("a string serializes");
    format!(
        indoc::indoc! {"
            version: 0.1
            log:
              fields:
                service: registry
            storage:
              delete:
                enabled: true
              cache:
                blobdescriptor: inmemory
              filesystem:
                rootdirectory: {storage}
            http:
              addr: :{port}
              headers:
                X-Content-Type-Options: [nosniff]
              debug:
                addr: :{debug}
                prometheus:
                  enabled: true
                  path: /metrics
            health:
              storagedriver:
                enabled: true
                interval: 10s
                threshold: 3
            proxy:
              remoteurl: {upstream}
              username: {username}
              password: {password}
        "},
        storage = STORAGE_PATH,
        port = REGISTRY_PORT,
        debug = DEBUG_PORT,
        upstream = quote(upstream),
        username = quote(&credentials.username),
        password = quote(&credentials.password),
    )
}

/// The proxy TTL when the config sets none: `0s` turns registry 3's expiry
/// scheduler off, so a cache keeps what it fetched until it is pruned
/// (registry 3 defaults to 168h and deletes the blobs then, which breaks
/// offline pulls). Registry 2.x ignores the variable (with a warning line)
/// and keeps its built-in 7 days; `doctor` says so.
pub const DURABLE_TTL: &str = "0s";

/// A cache that dies (crash, OOM kill) is restarted by podman itself. The
/// retry limit stops an endless loop when the registry cannot start at all,
/// e.g. proxy mode with the upstream unreachable; `drcache start` deals with that.
/// `podman stop` marks a container as stopped by the user, so `drcache stop` sticks.
pub const RESTART_POLICY: &str = "on-failure:5";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Pull-through cache of the upstream.
    Proxy,
    /// Serve what is cached, read-only, without contacting the upstream.
    Offline,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Proxy => "proxy",
            Mode::Offline => "offline",
        }
    }
}

/// Why a cache runs offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineOrigin {
    /// A person asked for it (`start --offline`).
    Requested,
    /// `start` fell back to it because the upstream could not be reached.
    Fallback,
}

impl OfflineOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            OfflineOrigin::Requested => "requested",
            OfflineOrigin::Fallback => "fallback",
        }
    }
}

/// `<prefix>-<registry with '.' and ':' as '-'>`, the container and volume name.
pub fn resource_name(prefix: &str, registry: &str) -> String {
    format!("{prefix}-{}", registry.replace(['.', ':'], "-"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSpec {
    pub registry: Registry,
    pub prefix: String,
    pub container: String,
    pub volume: String,
    pub image: String,
    pub bind: String,
    pub mode: Mode,
    /// Why it is offline, when `mode` is offline (a label, not in the hash:
    /// the same registry runs either way).
    pub offline_origin: OfflineOrigin,
    /// Upstream login, resolved only by `start` (the one command that needs it).
    pub credentials: Option<Credentials>,
    /// This install's key for the login's fingerprint in the hash label.
    pub login_key: crate::login_key::LoginKey,
}

impl CacheSpec {
    pub fn new(config: &Config, registry: &Registry, mode: Mode) -> Self {
        let name = resource_name(&config.prefix, &registry.name);
        CacheSpec {
            registry: registry.clone(),
            prefix: config.prefix.clone(),
            container: name.clone(),
            volume: name,
            image: config.image.clone(),
            bind: config.bind.clone(),
            mode,
            offline_origin: OfflineOrigin::Requested,
            credentials: None,
            login_key: Default::default(),
        }
    }

    /// The same cache in offline mode, offline for `origin`.
    pub fn offline(&self, origin: OfflineOrigin) -> CacheSpec {
        CacheSpec {
            mode: Mode::Offline,
            offline_origin: origin,
            ..self.clone()
        }
    }

    /// The address to probe the cache on from this host.
    pub fn probe_addr(&self) -> String {
        let host = match self.bind.as_str() {
            "" | "0.0.0.0" => "127.0.0.1".to_string(),
            "::" => "[::1]".to_string(),
            ip => bracketed(ip),
        };
        format!("{host}:{}", self.registry.port)
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            // registry:3 logs at debug level and exports traces unless told not to.
            ("REGISTRY_LOG_LEVEL".into(), "info".into()),
            ("OTEL_TRACES_EXPORTER".into(), "none".into()),
            // Counters for `drcache stats`, on a port published on loopback only.
            ("REGISTRY_HTTP_DEBUG_ADDR".into(), format!(":{DEBUG_PORT}")),
            (
                "REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED".into(),
                "true".into(),
            ),
        ];
        match self.mode {
            Mode::Proxy => {
                env.push((
                    "REGISTRY_PROXY_REMOTEURL".into(),
                    self.registry.upstream.clone(),
                ));
                let ttl = self.registry.ttl.as_deref().unwrap_or(DURABLE_TTL);
                env.push(("REGISTRY_PROXY_TTL".into(), ttl.into()));
            }
            Mode::Offline => {
                env.push((
                    "REGISTRY_STORAGE_MAINTENANCE_READONLY".into(),
                    "{\"enabled\": true}".into(),
                ));
            }
        }
        env
    }

    /// Everything that defines the container except the hash label itself.
    fn run_spec_without_hash(&self) -> RunSpec {
        let publish_host = if self.bind.is_empty() {
            String::new()
        } else {
            format!("{}:", bracketed(&self.bind))
        };
        RunSpec {
            name: self.container.clone(),
            image: self.image.clone(),
            publish: vec![
                format!("{publish_host}{}:{REGISTRY_PORT}", self.registry.port),
                // Any free loopback port: only drcache on this host reads it.
                format!("127.0.0.1::{DEBUG_PORT}"),
            ],
            volumes: vec![format!("{}:{STORAGE_PATH}", self.volume)],
            env: self.env(),
            secrets: self.secrets(),
            command: self.command(),
            credential_fingerprint: self
                .proxy_credentials()
                .map(|c| c.fingerprint(&self.registry.name, &self.login_key.0)),
            labels: vec![
                (LABEL_REGISTRY.into(), self.registry.name.clone()),
                (LABEL_PREFIX.into(), self.prefix.clone()),
                (LABEL_MODE.into(), self.mode.as_str().into()),
            ],
            restart: RESTART_POLICY.into(),
        }
    }

    /// A short digest of the container definition, stored as a label so that
    /// a changed configuration (image included) is seen without inspecting.
    /// It is computed from the `podman run` arguments themselves (plus the
    /// login's fingerprint, which is not an argument): what podman is told
    /// is what the label stands for, and no formatting detail of ours can
    /// change it by accident.
    pub fn config_hash(&self) -> String {
        let spec = self.run_spec_without_hash();
        let mut input = spec.argv().join("\0");
        if let Some(fingerprint) = &spec.credential_fingerprint {
            input.push_str("\0credentials=");
            input.push_str(fingerprint);
        }
        short_sha256(input.as_bytes())
    }

    pub fn run_spec(&self) -> RunSpec {
        let mut spec = self.run_spec_without_hash();
        spec.labels.push((LABEL_HASH.into(), self.config_hash()));
        if self.mode == Mode::Offline {
            spec.labels
                .push((LABEL_OFFLINE.into(), self.offline_origin.as_str().into()));
        }
        spec
    }

    /// Credentials are used only in proxy mode: offline, nothing logs in.
    fn proxy_credentials(&self) -> Option<&Credentials> {
        self.credentials
            .as_ref()
            .filter(|_| self.mode == Mode::Proxy)
    }

    /// The podman secret holding this cache's registry config file.
    pub fn config_secret_name(&self) -> String {
        format!("{}-config", self.container)
    }

    /// (secret name, mount target) pairs. A login goes into the registry's
    /// config file, mounted as a secret: podman 4.3 shows `type=env` secrets'
    /// values in `podman inspect`, and the registry reads no password file.
    pub fn secrets(&self) -> Vec<(String, String)> {
        match self.proxy_credentials() {
            Some(_) => vec![(self.config_secret_name(), CONFIG_SECRET_TARGET.into())],
            None => Vec::new(),
        }
    }

    /// Whether `container` (this cache's, as podman lists it) runs with the
    /// login config secret drcache mounts.
    pub fn container_used_login(container: &crate::podman::Container) -> bool {
        let mounted = format!("/run/secrets/{CONFIG_SECRET_TARGET}");
        container.command.contains(&mounted)
    }

    /// Secret name and value pairs to create before the container runs.
    pub fn secret_values(&self) -> Vec<(String, String)> {
        match self.proxy_credentials() {
            Some(c) => vec![(
                self.config_secret_name(),
                registry_config_yaml(&self.registry.upstream, c),
            )],
            None => Vec::new(),
        }
    }

    /// Arguments after the image: the official images' entrypoint serves a
    /// `.yml` path given as the only argument.
    fn command(&self) -> Vec<String> {
        match self.proxy_credentials() {
            Some(_) => vec![format!("/run/secrets/{CONFIG_SECRET_TARGET}")],
            None => Vec::new(),
        }
    }

    pub fn volume_labels(&self) -> Vec<(String, String)> {
        vec![
            (LABEL_REGISTRY.into(), self.registry.name.clone()),
            (LABEL_PREFIX.into(), self.prefix.clone()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn default_specs() -> Vec<CacheSpec> {
        let c = config::load(None).unwrap();
        c.registries
            .iter()
            .map(|r| CacheSpec::new(&c, r, Mode::Proxy))
            .collect()
    }

    #[test]
    fn names_match_drenv() {
        let names: Vec<String> = default_specs().into_iter().map(|s| s.container).collect();
        assert_eq!(
            names,
            [
                "drenv-cache-quay-io",
                "drenv-cache-docker-io",
                "drenv-cache-registry-k8s-io",
                "drenv-cache-ghcr-io",
                "drenv-cache-gcr-io"
            ]
        );
        assert_eq!(resource_name("p", "localhost:5000"), "p-localhost-5000");
    }

    #[test]
    fn run_spec_of_docker_io() {
        let spec = default_specs().remove(1);
        let run = spec.run_spec();
        assert_eq!(run.name, "drenv-cache-docker-io");
        assert_eq!(run.image, "docker.io/library/registry:3");
        assert_eq!(run.publish, ["5052:5000", "127.0.0.1::5001"]);
        assert_eq!(run.volumes, ["drenv-cache-docker-io:/var/lib/registry"]);
        assert!(run.env.contains(&(
            "REGISTRY_PROXY_REMOTEURL".into(),
            "https://registry-1.docker.io".into()
        )));
        assert!(run
            .env
            .contains(&("OTEL_TRACES_EXPORTER".into(), "none".into())));
        assert!(run
            .env
            .contains(&("REGISTRY_LOG_LEVEL".into(), "info".into())));
        // Durable by default: registry 3 expires nothing.
        assert!(run
            .env
            .contains(&("REGISTRY_PROXY_TTL".into(), "0s".into())));
        assert!(run
            .labels
            .contains(&(LABEL_HASH.into(), spec.config_hash())));
        assert_eq!(spec.config_hash().len(), 16);
    }

    #[test]
    fn hash_values_are_pinned() {
        // Recorded labels: a change here recreates every user's caches once,
        // so it must be on purpose (and said in the CHANGELOG).
        let specs = default_specs();
        assert_eq!(specs[0].config_hash(), "dd2ed26b12a491e4");
        assert_eq!(specs[1].config_hash(), "0afa253cfd780859");
        let mut offline = specs[0].clone();
        offline.mode = Mode::Offline;
        assert_eq!(offline.config_hash(), "d3537fef4e8431bb");
    }

    #[test]
    fn hash_changes_with_everything_that_defines_the_container() {
        let base = default_specs().remove(0);
        let mut variants = vec![base.clone(); 5];
        variants[0].image = "localhost/other:1".into();
        variants[1].registry.port = 6000;
        variants[2].registry.upstream = "http://127.0.0.1:1".into();
        variants[3].bind = "127.0.0.1".into();
        variants[4].mode = Mode::Offline;
        for v in &variants {
            assert_ne!(v.config_hash(), base.config_hash(), "{v:?}");
        }
        let mut with_login = base.clone();
        with_login.credentials = Some(Credentials {
            username: "me".into(),
            password: "one".into(),
        });
        assert_ne!(with_login.config_hash(), base.config_hash());
        let mut other_password = with_login.clone();
        other_password.credentials.as_mut().unwrap().password = "two".into();
        assert_ne!(other_password.config_hash(), with_login.config_hash());
        let mut ttl = base.clone();
        ttl.registry.ttl = Some("1h".into());
        assert_ne!(ttl.config_hash(), base.config_hash());
        assert_eq!(base.clone().config_hash(), base.config_hash());
    }

    #[test]
    fn bind_address_is_used_for_publishing_and_probing() {
        let mut spec = default_specs().remove(0);
        assert_eq!(spec.probe_addr(), "127.0.0.1:5051");
        spec.bind = "192.168.122.1".into();
        assert_eq!(spec.run_spec().publish[0], "192.168.122.1:5051:5000");
        assert_eq!(spec.probe_addr(), "192.168.122.1:5051");
        spec.bind = "::1".into();
        assert_eq!(spec.run_spec().publish[0], "[::1]:5051:5000");
        assert_eq!(spec.probe_addr(), "[::1]:5051");
    }

    #[test]
    fn credentials_become_a_mounted_config_secret_never_argv() {
        let mut spec = default_specs().remove(1);
        spec.credentials = Some(Credentials {
            username: "hubuser".into(),
            password: "s3cret\"token".into(),
        });
        let run = spec.run_spec();
        let argv = run.argv().join(" ");
        assert!(argv.contains(
            "--secret drenv-cache-docker-io-config,type=mount,target=drcache-registry.yml"
        ));
        assert!(
            argv.ends_with("registry:3 /run/secrets/drcache-registry.yml"),
            "{argv}"
        );
        assert!(!argv.contains("s3cret") && !argv.contains("hubuser"));
        assert!(!format!("{run:?}").contains("s3cret"));
        assert!(!format!("{spec:?}").contains("s3cret"));
        let values = spec.secret_values();
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].0, "drenv-cache-docker-io-config");
        assert!(values[0]
            .1
            .ends_with("username: \"hubuser\"\n  password: \"s3cret\\\"token\"\n"));
        assert!(values[0]
            .1
            .contains("remoteurl: \"https://registry-1.docker.io\""));
        spec.mode = Mode::Offline;
        assert!(spec.secrets().is_empty());
        assert!(!spec.run_spec().argv().join(" ").contains("--secret"));
    }

    #[test]
    fn the_same_login_under_two_install_keys_gives_two_labels() {
        let mut one = default_specs().remove(1);
        one.credentials = Some(Credentials {
            username: "hubuser".into(),
            password: "guessable".into(),
        });
        one.login_key = crate::login_key::LoginKey(vec![1; 32]);
        let mut two = one.clone();
        two.login_key = crate::login_key::LoginKey(vec![2; 32]);
        assert_ne!(one.config_hash(), two.config_hash());
        assert_eq!(one.config_hash(), one.clone().config_hash());
        // The label is not the unkeyed digest a guess could be checked with.
        let mut unkeyed = one.clone();
        unkeyed.login_key = crate::login_key::LoginKey(Vec::new());
        assert_ne!(one.config_hash(), unkeyed.config_hash());
        assert!(
            !format!("{one:?}").contains("[1, 1"),
            "the key is not shown"
        );
    }

    #[test]
    fn offline_mode_has_no_upstream_and_is_read_only() {
        let mut spec = default_specs().remove(0);
        spec.mode = Mode::Offline;
        let run = spec.run_spec();
        assert!(!run.env.iter().any(|(k, _)| k == "REGISTRY_PROXY_REMOTEURL"));
        assert!(run
            .env
            .iter()
            .any(|(k, _)| k == "REGISTRY_STORAGE_MAINTENANCE_READONLY"));
        assert!(run.labels.contains(&(LABEL_MODE.into(), "offline".into())));
        assert!(run
            .labels
            .contains(&(LABEL_OFFLINE.into(), "requested".into())));
        // Why it is offline is a label outside the hash: the same registry runs.
        let fallback = spec.offline(OfflineOrigin::Fallback);
        assert_eq!(fallback.config_hash(), spec.config_hash());
        assert!(fallback
            .run_spec()
            .labels
            .contains(&(LABEL_OFFLINE.into(), "fallback".into())));
        let proxy = default_specs().remove(0);
        assert!(!proxy
            .run_spec()
            .labels
            .iter()
            .any(|(k, _)| k == LABEL_OFFLINE));
    }
}
