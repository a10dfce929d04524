//! What every command needs: output, the runner, the configuration, tools.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::cache::{CacheSpec, Mode};
use crate::cli::GlobalArgs;
use crate::config::{self, Config, Registry};
use crate::credentials;
use crate::errors::UsageError;
use crate::exec::Runner;
use crate::host::HostEnv;
use crate::podman::Podman;
use crate::tools;
use crate::ui::Ui;

/// A registry whose credentials cannot be read here, and why.
pub type UnreadCredentials = (String, String);

pub struct Context {
    pub ui: Ui,
    pub runner: Runner,
    pub config: Config,
    /// The config file in use, absolute; None for the embedded default.
    pub config_path: Option<PathBuf>,
    pub json: bool,
    pub dry_run: bool,
}

impl Context {
    pub fn new(global: &GlobalArgs) -> Result<Self> {
        let ui = Ui::new(global.verbose, global.quiet, global.color);
        let env_path = |name: &str| std::env::var_os(name).map(PathBuf::from);
        let path = config::locate(
            global.config.as_deref(),
            env_path("DRCACHE_CONFIG"),
            env_path("XDG_CONFIG_HOME"),
            env_path("HOME"),
        );
        let config = config::load(path.as_deref())?;
        let config_path = path.map(|p| std::fs::canonicalize(&p).unwrap_or(p));
        Ok(Context {
            config_path,
            runner: Runner::new(ui.clone(), global.dry_run)
                .with_timeout(Duration::from_secs(global.command_timeout)),
            ui,
            config,
            json: global.json,
            dry_run: global.dry_run,
        })
    }

    /// What setup-host needs of the context.
    pub fn host_env(&self) -> HostEnv<'_> {
        HostEnv {
            runner: &self.runner,
            ui: &self.ui,
            ports: self.config.registries.iter().map(|r| r.port).collect(),
            dry_run: self.dry_run,
            clients: self.config.clients.clone(),
        }
    }

    pub fn podman(&self) -> Result<Podman<'_>> {
        Ok(Podman::new(tools::find(&tools::PODMAN)?, &self.runner))
    }

    /// The registries named on the command line, or all of them.
    pub fn select(&self, names: &[String]) -> Result<Vec<&Registry>> {
        if names.is_empty() {
            return Ok(self.config.registries.iter().collect());
        }
        names
            .iter()
            .map(|name| {
                self.config.registry(name).ok_or_else(|| {
                    UsageError(format!(
                        "unknown registry {name:?}; configured: {}",
                        self.config.registry_names().join(", ")
                    ))
                    .into()
                })
            })
            .collect()
    }

    /// Specs for `start`: in the requested mode, with upstream credentials read.
    pub fn start_specs(&self, names: &[String], mode: Mode) -> Result<Vec<CacheSpec>> {
        self.select(names)?
            .into_iter()
            .map(|r| {
                let mut spec = CacheSpec::new(&self.config, r, mode);
                if let Some(source) = &r.credentials {
                    let (login, file) = credentials::resolve_from(source, &r.name)?;
                    if let Some(warning) = file.as_deref().and_then(credentials::loose_mode) {
                        self.ui.warn(&warning);
                    }
                    spec.credentials = Some(login);
                    spec.login_key = crate::login_key::this_install()?;
                }
                Ok(spec)
            })
            .collect()
    }

    /// Specs as `start` builds them, for checks that compare with what runs
    /// (`doctor`): credentials are read where they can be, and the registries
    /// whose credentials cannot be read here are returned with why.
    pub fn specs_as_started(
        &self,
        names: &[String],
    ) -> Result<(Vec<CacheSpec>, Vec<UnreadCredentials>)> {
        let mut unknown = Vec::new();
        let specs = self
            .select(names)?
            .into_iter()
            .map(|r| {
                let mut spec = CacheSpec::new(&self.config, r, Mode::Proxy);
                if let Some(source) = &r.credentials {
                    match credentials::resolve(source, &r.name) {
                        Ok(c) => {
                            spec.credentials = Some(c);
                            match crate::login_key::this_install() {
                                Ok(key) => spec.login_key = key,
                                Err(e) => unknown.push((r.name.clone(), format!("{e:#}"))),
                            }
                        }
                        Err(e) => unknown.push((r.name.clone(), e.message)),
                    }
                }
                spec
            })
            .collect();
        Ok((specs, unknown))
    }

    /// Desired proxy-mode specs of the selected registries, without credentials
    /// (enough for every command but `start`).
    pub fn specs(&self, names: &[String]) -> Result<Vec<CacheSpec>> {
        Ok(self
            .select(names)?
            .into_iter()
            .map(|r| CacheSpec::new(&self.config, r, Mode::Proxy))
            .collect())
    }
}
