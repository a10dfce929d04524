//! Wiring minikube clusters to the caches, as a plain report.
//!
//! Persistent part: hosts.toml files in minikube's file-sync directory, which
//! minikube copies to every node at every start. Live part: the same files
//! pushed to each node of running clusters over `minikube ssh`, then a check
//! from inside each node that every cache answers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::cache::{CacheSpec, Mode};
use crate::cluster::select::{nodes_of, select_profiles, NodeTarget, Selection};
use crate::config::Config;
use crate::containerd::{self, HostsFile};
use crate::errors::{exit, Hinted, UsageError};
use crate::exec::{CommandError, Runner};
use crate::minikube::node_scripts::{self, CheckLine, SyncReport};
use crate::minikube::{self, Minikube, Profile};
use crate::parallel;
use crate::registry_http;
use crate::tools;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Configure,
    Unconfigure,
}

/// One node's outcome; errors stay typed until they are shown.
#[derive(Debug)]
pub struct NodeReport {
    pub target: NodeTarget,
    /// None for a node that is not running.
    pub sync: Option<Result<SyncReport, CommandError>>,
    /// None when not checked.
    pub checks: Option<Result<Vec<CheckLine>, CommandError>>,
}

#[derive(Debug)]
pub enum ProfileState {
    Running(Vec<NodeReport>),
    Stopped(Vec<NodeTarget>),
    Skipped(String),
    Failed(anyhow::Error),
}

#[derive(Debug)]
pub struct ProfileReport {
    pub name: String,
    pub state: ProfileState,
}

/// What wiring did.
#[derive(Debug)]
pub struct Wiring {
    pub files: Vec<HostsFile>,
    /// minikube's file-sync `certs.d` directory.
    pub certs_d: PathBuf,
    /// Registries whose file was written there, and stale ones removed.
    pub written: Vec<String>,
    pub removed: Vec<String>,
    pub profiles: Vec<ProfileReport>,
    /// For each registry some node could not reach: whether it answers here.
    pub answers_here: BTreeMap<String, bool>,
}

/// What wiring needs: the configuration, the runner, whether to change things.
pub struct WireEnv<'a> {
    pub config: &'a Config,
    pub runner: &'a Runner,
    pub dry_run: bool,
}

/// Configure (or unconfigure) the named minikube profiles, or all.
pub fn wire(env: &WireEnv, profile_names: &[String], op: Op) -> Result<Wiring> {
    let config = env.config;
    let registries: Vec<_> = config.registries.iter().collect();
    let files = match op {
        Op::Configure => containerd::hosts_files(&registries, &config.host)
            .map_err(|m| UsageError(format!("host in {}: {m}", config.source)))?,
        Op::Unconfigure => Vec::new(),
    };
    let home = minikube::minikube_home_from_env().ok_or_else(|| Hinted {
        message: "cannot find minikube's home: neither MINIKUBE_HOME nor HOME is set".into(),
        hint: "set MINIKUBE_HOME as you do for minikube".into(),
        code: exit::USAGE,
    })?;
    let certs_d = minikube::file_sync_certs_d(&home);
    if op == Op::Configure {
        containerd::refuse_foreign(&home.join("files"), &certs_d, &files)?;
    }
    // Everything that can refuse does so before anything changes.
    let mk = Minikube::new(tools::find(&tools::MINIKUBE)?, env.runner);
    let list = mk.profiles()?;
    let selected = select_profiles(&list, profile_names)?;

    let (written, removed) = sync_file_sync_dir(env.dry_run, &home, &certs_d, &files)?;
    let profiles: Vec<ProfileReport> = parallel::map(&selected, |(profile, selection)| {
        let state = match selection {
            Selection::Skip(why) => ProfileState::Skipped(why.clone()),
            Selection::Live => live(&mk, profile, &files, op),
        };
        ProfileReport {
            name: profile.name.clone(),
            state,
        }
    });
    let answers_here = probe_failing_caches(config, &profiles);
    Ok(Wiring {
        files,
        certs_d,
        written,
        removed,
        profiles,
        answers_here,
    })
}

/// Make the file-sync directory hold exactly drcache's `files`. Returns the
/// registries written and removed.
fn sync_file_sync_dir(
    dry_run: bool,
    home: &Path,
    certs_d: &Path,
    files: &[HostsFile],
) -> Result<(Vec<String>, Vec<String>)> {
    let context = || {
        format!(
            "cannot update minikube's file-sync directory {}",
            certs_d.display()
        )
    };
    let stale: Vec<String> = containerd::ours_in(certs_d)
        .with_context(context)?
        .into_iter()
        .filter(|r| !files.iter().any(|f| &f.registry == r))
        .collect();
    if !dry_run {
        for registry in &stale {
            containerd::remove_file(certs_d, registry, &home.join("files"))
                .with_context(context)?;
        }
        containerd::write_files(&home.join("files"), certs_d, files).with_context(context)?;
    }
    Ok((files.iter().map(|f| f.registry.clone()).collect(), stale))
}

/// Status, then each running node: push (or remove) the files, then check.
fn live(mk: &Minikube, profile: &Profile, files: &[HostsFile], op: Op) -> ProfileState {
    let statuses = match mk.status(&profile.name) {
        Ok(s) => s,
        Err(e) => return ProfileState::Failed(e),
    };
    let nodes = nodes_of(profile, &statuses);
    if !nodes.iter().any(NodeTarget::running) {
        return ProfileState::Stopped(nodes);
    }
    let sync = node_scripts::sync_script(files, op == Op::Configure);
    let check = node_scripts::check_script(
        &files
            .iter()
            .map(|f| (f.registry.clone(), f.mirror.clone()))
            .collect::<Vec<_>>(),
    );
    let reports = parallel::map(&nodes, |target| {
        if !target.running() {
            return NodeReport {
                target: target.clone(),
                sync: None,
                checks: None,
            };
        }
        let sync = mk
            .ssh(&profile.name, &target.machine, &sync, true)
            .map(|out| SyncReport {
                skipped: out.skipped,
                ..node_scripts::parse_sync(&out.stdout)
            });
        let checks = (op == Op::Configure).then(|| {
            mk.ssh(&profile.name, &target.machine, &check, false)
                .map(|out| node_scripts::parse_checks(&out.stdout))
        });
        NodeReport {
            target: target.clone(),
            sync: Some(sync),
            checks,
        }
    });
    ProfileState::Running(reports)
}

/// For each registry some node could not reach: does it answer on this host?
fn probe_failing_caches(config: &Config, reports: &[ProfileReport]) -> BTreeMap<String, bool> {
    let mut failing = BTreeSet::new();
    for r in reports {
        if let ProfileState::Running(nodes) = &r.state {
            for n in nodes {
                if let Some(Ok(lines)) = &n.checks {
                    for l in lines
                        .iter()
                        .filter(|l| (l.curl_exit, l.http_status) != (0, 200))
                    {
                        failing.insert(l.registry.clone());
                    }
                }
            }
        }
    }
    let regs: Vec<_> = config
        .registries
        .iter()
        .filter(|r| failing.contains(&r.name))
        .collect();
    let up = parallel::map(&regs, |r| {
        let spec = CacheSpec::new(config, r, Mode::Proxy);
        registry_http::probe(&spec.probe_addr()).is_ready()
    });
    regs.iter().map(|r| r.name.clone()).zip(up).collect()
}
