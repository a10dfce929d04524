//! `configure` and `unconfigure`: minikube clusters pulling through the caches.
//!
//! Persistent part: hosts.toml files in minikube's file-sync directory, which
//! minikube copies to every node at every start. Live part: the same files
//! pushed to each node of running clusters over `minikube ssh`, then a check
//! from inside each node that every cache answers.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, Result};
use serde_json::json;

use crate::cache::{CacheSpec, Mode};
use crate::cli::ConfigureArgs;
use crate::containerd::{self, HostsFile};
use crate::context::Context;
use crate::errors::{exit, Hinted, Unsatisfied, UsageError};
use crate::exec::CommandError;
use crate::minikube::{self, CheckLine, Minikube, NodeStatus, Profile, ProfileList, SyncReport};
use crate::registry_http;
use crate::tools;
use crate::ui::{table, Tone};

// ------------------------------------------------------------------ planning

/// What happens to a profile besides the file-sync directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// containerd: its running nodes are changed now.
    Live,
    /// Left alone, with the reason.
    Skip(String),
}

/// The profiles to act on (all, or the named ones) and why others are skipped.
/// A name minikube does not know is a usage error naming the ones it knows.
pub fn select_profiles<'a>(
    list: &'a ProfileList,
    names: &[String],
) -> Result<Vec<(&'a Profile, Selection)>, UsageError> {
    let decide = |p: &Profile| {
        let runtime = if p.runtime().is_empty() {
            "docker"
        } else {
            p.runtime()
        };
        if runtime != "containerd" {
            Selection::Skip(format!("container runtime is {runtime}, not containerd"))
        } else if p.driver() == "none" {
            Selection::Skip("the none driver has no nodes to ssh into".into())
        } else {
            Selection::Live
        }
    };
    let invalid = |p| {
        (
            p,
            Selection::Skip("invalid profile: minikube cannot load it".into()),
        )
    };
    if names.is_empty() {
        let valid = list.valid.iter().map(|p| (p, decide(p)));
        return Ok(valid.chain(list.invalid.iter().map(invalid)).collect());
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for name in names.iter().filter(|n| seen.insert(n.as_str())) {
        if let Some(p) = list.valid.iter().find(|p| &p.name == name) {
            out.push((p, decide(p)));
        } else if list.invalid.iter().any(|p| &p.name == name) {
            return Err(UsageError(format!(
                "minikube profile {name:?} is invalid (minikube cannot load it); \
                 fix or delete it: `minikube delete -p {name}`"
            )));
        } else {
            let known: Vec<&str> = list.valid.iter().map(|p| p.name.as_str()).collect();
            let known = if known.is_empty() {
                "there are none".to_string()
            } else {
                format!("profiles: {}", known.join(", "))
            };
            return Err(UsageError(format!(
                "no minikube profile named {name:?}; {known}"
            )));
        }
    }
    Ok(out)
}

/// A node and the state of its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTarget {
    /// The machine name, as `minikube ssh -n` takes it.
    pub machine: String,
    pub host_state: String,
}

impl NodeTarget {
    pub fn running(&self) -> bool {
        self.host_state == "Running"
    }
}

/// The profile's nodes in minikube's order with their host state from
/// `minikube status` (a node status does not list is "Unknown").
pub fn nodes_of(profile: &Profile, statuses: &[NodeStatus]) -> Vec<NodeTarget> {
    let mut machines = profile.machine_names();
    for s in statuses {
        if !machines.contains(&s.name) {
            machines.push(s.name.clone());
        }
    }
    machines
        .into_iter()
        .map(|machine| NodeTarget {
            host_state: statuses
                .iter()
                .find(|s| s.name == machine)
                .map_or_else(|| "Unknown".to_string(), |s| s.host.clone()),
            machine,
        })
        .collect()
}

/// A cache as a node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    Ok,
    Unreachable { cause: String, fix: String },
}

/// Judge a node's `GET /v2/` of a cache. `answers_here`: whether the cache
/// answers on this host, which tells "not running" from "blocked".
pub fn classify(line: Option<&CheckLine>, host: &str, answers_here: bool) -> Reach {
    let unreachable = |cause: String, fix: &str| Reach::Unreachable {
        cause,
        fix: fix.to_string(),
    };
    let Some(line) = line else {
        return unreachable(
            "the node printed no result".into(),
            "run again with -v to see the node's output",
        );
    };
    match (line.curl_exit, line.http_status) {
        (0, 200) => Reach::Ok,
        (0, code) => unreachable(
            format!("answered HTTP {code}, not like a registry cache"),
            "check what listens on that port on this host: `drcache status`",
        ),
        (6, _) => unreachable(
            format!("the node cannot resolve {host}"),
            "set `host` in the config to a name or address the nodes resolve",
        ),
        (127, _) => unreachable(
            "curl is missing on the node".into(),
            "check by hand: `minikube ssh`",
        ),
        _ if !answers_here => unreachable(
            "the cache does not answer on this host either (not running?)".into(),
            "run `drcache start`",
        ),
        (7, _) => unreachable(
            "connection refused or no route, while the cache answers on this host (firewall?)"
                .into(),
            "run `drcache setup-host`",
        ),
        (28, _) => unreachable(
            "timed out, while the cache answers on this host (firewall dropping packets?)".into(),
            "run `drcache setup-host`",
        ),
        (code, _) => unreachable(
            format!("curl failed with exit code {code}, while the cache answers on this host"),
            "run `drcache setup-host`",
        ),
    }
}

// ----------------------------------------------------------------- execution

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Configure,
    Unconfigure,
}

/// One node's outcome.
#[derive(Debug)]
struct NodeReport {
    target: NodeTarget,
    /// None for a node that is not running.
    sync: Option<Result<SyncReport, String>>,
    /// None when not checked.
    checks: Option<Result<Vec<CheckLine>, String>>,
}

#[derive(Debug)]
enum ProfileState {
    Running(Vec<NodeReport>),
    Stopped(Vec<NodeTarget>),
    Skipped(String),
    Failed(String),
}

#[derive(Debug)]
struct ProfileReport {
    name: String,
    state: ProfileState,
}

pub fn configure(ctx: &Context, args: &ConfigureArgs) -> Result<()> {
    wire(ctx, args, Op::Configure)
}

pub fn unconfigure(ctx: &Context, args: &ConfigureArgs) -> Result<()> {
    wire(ctx, args, Op::Unconfigure)
}

fn wire(ctx: &Context, args: &ConfigureArgs, op: Op) -> Result<()> {
    let registries: Vec<_> = ctx.config.registries.iter().collect();
    let files = match op {
        Op::Configure => containerd::hosts_files(&registries, &ctx.config.host)
            .map_err(|m| UsageError(format!("host in {}: {m}", ctx.config.source)))?,
        Op::Unconfigure => Vec::new(),
    };
    let home = minikube::minikube_home_from_env().ok_or_else(|| Hinted {
        message: "cannot find minikube's home: neither MINIKUBE_HOME nor HOME is set".into(),
        hint: "set MINIKUBE_HOME as you do for minikube".into(),
        code: exit::USAGE,
    })?;
    let certs_d = minikube::file_sync_certs_d(&home);
    if op == Op::Configure {
        super::hosts_toml::refuse_foreign(&certs_d, &files)?;
    }
    // Everything that can refuse does so before anything changes.
    let mk = Minikube::new(tools::find(&tools::MINIKUBE)?, &ctx.runner);
    let list = mk.profiles()?;
    let selected = select_profiles(&list, &args.profiles)?;

    let (written, removed) = sync_file_sync_dir(ctx, &home, &certs_d, &files)?;
    let reports: Vec<ProfileReport> = super::parallel(&selected, |(profile, selection)| {
        let state = match selection {
            Selection::Skip(why) => ProfileState::Skipped(why.clone()),
            Selection::Live => live(&mk, profile, &files, op),
        };
        ProfileReport {
            name: profile.name.clone(),
            state,
        }
    });
    let answers_here = probe_failing_caches(ctx, &reports);
    let rows = rows(&reports, &files, &ctx.config.host, &answers_here, op);

    if ctx.json {
        let dir = certs_d.display().to_string();
        println!(
            "{}",
            json!({
                "file_sync": { "dir": dir, "written": written, "removed": removed },
                "profiles": profiles_json(&reports, &rows),
                "dry_run": ctx.dry_run,
            })
        );
    }
    let (write, remove) = if ctx.dry_run {
        ("would write", "would remove")
    } else {
        ("wrote", "removed")
    };
    match op {
        Op::Configure => ctx.ui.info(&format!(
            "{write} {} hosts.toml files in {} (minikube copies them to every node at every start)",
            written.len(),
            certs_d.display()
        )),
        Op::Unconfigure => ctx.ui.info(&format!(
            "{remove} {} hosts.toml files from {}",
            removed.len(),
            certs_d.display()
        )),
    }
    if op == Op::Configure && !removed.is_empty() {
        ctx.ui
            .info(&format!("{remove} stale files of: {}", removed.join(", ")));
    }
    print_rows(ctx, &rows, op);
    verdict(&rows)
}

/// Make the file-sync directory hold exactly drcache's `files`. Returns the
/// registries written and removed.
fn sync_file_sync_dir(
    ctx: &Context,
    home: &std::path::Path,
    certs_d: &std::path::Path,
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
    if !ctx.dry_run {
        for registry in &stale {
            containerd::remove_file(certs_d, registry, &home.join("files"))
                .with_context(context)?;
        }
        containerd::write_files(certs_d, files).with_context(context)?;
    }
    Ok((files.iter().map(|f| f.registry.clone()).collect(), stale))
}

/// Status, then each running node: push (or remove) the files, then check.
fn live(mk: &Minikube, profile: &Profile, files: &[HostsFile], op: Op) -> ProfileState {
    let statuses = match mk.status(&profile.name) {
        Ok(s) => s,
        Err(e) => return ProfileState::Failed(format!("{e:#}").replace('\n', "; ")),
    };
    let nodes = nodes_of(profile, &statuses);
    if !nodes.iter().any(NodeTarget::running) {
        return ProfileState::Stopped(nodes);
    }
    let sync = minikube::sync_script(files, op == Op::Configure);
    let check = minikube::check_script(
        &files
            .iter()
            .map(|f| (f.registry.clone(), f.mirror.clone()))
            .collect::<Vec<_>>(),
    );
    let reports = super::parallel(&nodes, |target| {
        if !target.running() {
            return NodeReport {
                target: target.clone(),
                sync: None,
                checks: None,
            };
        }
        let failed = |e: CommandError| ssh_failure(&e, &profile.name, &target.machine);
        let sync = mk
            .ssh(&profile.name, &target.machine, &sync, true)
            .map(|out| SyncReport {
                skipped: out.skipped,
                ..minikube::parse_sync(&out.stdout)
            })
            .map_err(failed);
        let checks = (op == Op::Configure).then(|| {
            mk.ssh(&profile.name, &target.machine, &check, false)
                .map(|out| minikube::parse_checks(&out.stdout))
                .map_err(failed)
        });
        NodeReport {
            target: target.clone(),
            sync: Some(sync),
            checks,
        }
    });
    ProfileState::Running(reports)
}

/// A failed `minikube ssh` in one line, without the (long) script.
pub fn ssh_failure(e: &CommandError, profile: &str, machine: &str) -> String {
    let how = match (&e.spawn_error, e.code) {
        _ if e.timed_out.is_some() => format!(
            "timed out after {} s and was killed",
            e.timed_out.unwrap_or_default().as_secs_f64()
        ),
        (Some(spawn), _) => spawn.clone(),
        (None, Some(code)) => format!("exit status {code}"),
        (None, None) => "killed by a signal".into(),
    };
    let lines: Vec<&str> = e
        .stderr_tail
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let stderr = lines[lines.len().saturating_sub(3)..].join("; ");
    let mut text = format!("`minikube ssh -p {profile} -n {machine}` failed ({how})");
    if !stderr.is_empty() {
        text += &format!(": {stderr}");
    }
    text
}

/// For each registry some node could not reach: does it answer on this host?
fn probe_failing_caches(ctx: &Context, reports: &[ProfileReport]) -> BTreeMap<String, bool> {
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
    let regs: Vec<_> = ctx
        .config
        .registries
        .iter()
        .filter(|r| failing.contains(&r.name))
        .collect();
    let up = super::parallel(&regs, |r| {
        let spec = CacheSpec::new(&ctx.config, r, Mode::Proxy);
        registry_http::probe(&spec.probe_addr()).is_ready()
    });
    regs.iter().map(|r| r.name.clone()).zip(up).collect()
}

/// How a report line counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Info,
    Ok,
    /// A cache a node cannot reach: exit 3.
    Unreachable,
    /// A node or profile that could not be changed or checked: exit 1.
    Failed,
}

/// One line of the report: a check of one cache, or a node or profile state.
#[derive(Debug, Clone)]
struct Row {
    profile: String,
    node: Option<String>,
    registry: Option<String>,
    /// The URL a node checked.
    url: Option<String>,
    kind: Kind,
    text: String,
    fix: Option<String>,
}

impl Row {
    fn new(profile: &str, node: Option<&str>, kind: Kind, text: impl Into<String>) -> Row {
        Row {
            profile: profile.to_string(),
            node: node.map(str::to_string),
            registry: None,
            url: None,
            kind,
            text: text.into().replace('\n', "; "),
            fix: None,
        }
    }

    fn name(&self) -> String {
        match (&self.node, &self.registry) {
            (Some(n), Some(reg)) => format!("{}/{n} {reg}", self.profile),
            (Some(n), None) => format!("{}/{n}", self.profile),
            _ => self.profile.clone(),
        }
    }
}

fn rows(
    reports: &[ProfileReport],
    files: &[HostsFile],
    host: &str,
    answers_here: &BTreeMap<String, bool>,
    op: Op,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for r in reports {
        let profile = r.name.as_str();
        match &r.state {
            ProfileState::Skipped(why) => rows.push(Row::new(
                profile,
                None,
                Kind::Info,
                format!("skipped: {why}"),
            )),
            ProfileState::Failed(e) => rows.push(Row::new(
                profile,
                None,
                Kind::Failed,
                format!("failed: {e}"),
            )),
            ProfileState::Stopped(_) => rows.push(Row::new(
                profile,
                None,
                Kind::Info,
                match op {
                    Op::Configure => "stopped: gets the files at its next start",
                    Op::Unconfigure => "stopped: no longer gets the files at its next start",
                },
            )),
            ProfileState::Running(nodes) => {
                for n in nodes {
                    rows.extend(node_rows(profile, n, files, host, answers_here, op));
                }
            }
        }
    }
    rows
}

fn node_rows(
    profile: &str,
    n: &NodeReport,
    files: &[HostsFile],
    host: &str,
    answers_here: &BTreeMap<String, bool>,
    op: Op,
) -> Vec<Row> {
    let node = Some(n.target.machine.as_str());
    let sync = match &n.sync {
        None => {
            let state = n.target.host_state.to_lowercase();
            return vec![Row::new(
                profile,
                node,
                Kind::Info,
                format!("{state}: not reached"),
            )];
        }
        Some(Err(e)) => {
            return vec![Row::new(
                profile,
                node,
                Kind::Failed,
                format!("failed: {e}"),
            )]
        }
        Some(Ok(sync)) => sync,
    };
    let mut rows = vec![Row::new(
        profile,
        node,
        Kind::Info,
        sync_summary(sync, files.len(), op),
    )];
    match sync.config_path.as_deref() {
        Some("mirrors") => rows.push(Row {
            fix: Some("recreate the cluster with minikube 1.27 or newer".into()),
            ..Row::new(
                profile,
                node,
                Kind::Failed,
                "containerd's config sets registry.mirrors, which rules out hosts.toml",
            )
        }),
        Some("missing") => rows.push(Row::new(
            profile,
            node,
            Kind::Failed,
            "the node has no /etc/containerd/config.toml",
        )),
        _ => {}
    }
    match &n.checks {
        None => {}
        Some(Err(e)) => rows.push(Row::new(
            profile,
            node,
            Kind::Failed,
            format!("check failed: {e}"),
        )),
        Some(Ok(lines)) => {
            for f in files {
                let line = lines.iter().find(|l| l.registry == f.registry);
                let here = answers_here.get(&f.registry).copied().unwrap_or(true);
                let (kind, text, fix) = match classify(line, host, here) {
                    Reach::Ok => (Kind::Ok, "ok".to_string(), None),
                    Reach::Unreachable { cause, fix } => (
                        Kind::Unreachable,
                        format!("unreachable at {}: {cause}", f.mirror),
                        Some(fix),
                    ),
                };
                rows.push(Row {
                    registry: Some(f.registry.clone()),
                    url: Some(format!("{}/v2/", f.mirror)),
                    fix,
                    ..Row::new(profile, node, kind, text)
                });
            }
        }
    }
    rows
}

/// What the sync script did on a node, in a few words.
fn sync_summary(sync: &SyncReport, files: usize, op: Op) -> String {
    match (op, sync.skipped) {
        (Op::Configure, true) => format!("would write {files} files"),
        (Op::Unconfigure, true) => "would remove drcache's files".into(),
        (Op::Unconfigure, false) if sync.removed.is_empty() => "nothing to remove".into(),
        (Op::Unconfigure, false) => format!("removed: {}", sync.removed.join(", ")),
        (Op::Configure, false) => {
            let mut text = format!("wrote {} files", sync.wrote.len());
            if !sync.removed.is_empty() {
                text += &format!("; removed stale: {}", sync.removed.join(", "));
            }
            if sync.config_path.as_deref() == Some("patched") {
                text += "; containerd restarted to read certs.d";
            }
            text
        }
    }
}

fn profiles_json(reports: &[ProfileReport], rows: &[Row]) -> Vec<serde_json::Value> {
    reports
        .iter()
        .map(|r| {
            let (state, reason, nodes) = match &r.state {
                ProfileState::Skipped(why) => ("skipped", Some(why.clone()), Vec::new()),
                ProfileState::Failed(e) => ("failed", Some(e.clone()), Vec::new()),
                ProfileState::Stopped(nodes) => {
                    let nodes = nodes
                        .iter()
                        .map(|t| json!({ "name": t.machine, "host": t.host_state }))
                        .collect();
                    ("stopped", None, nodes)
                }
                ProfileState::Running(nodes) => {
                    let nodes = nodes.iter().map(|n| node_json(&r.name, n, rows)).collect();
                    ("running", None, nodes)
                }
            };
            json!({ "name": r.name, "state": state, "reason": reason, "nodes": nodes })
        })
        .collect()
}

fn node_json(profile: &str, n: &NodeReport, rows: &[Row]) -> serde_json::Value {
    let ours = |r: &&Row| r.profile == profile && r.node.as_deref() == Some(&n.target.machine);
    let checks: Vec<_> = rows
        .iter()
        .filter(ours)
        .filter(|r| r.registry.is_some())
        .map(|r| {
            let ok = r.kind == Kind::Ok;
            json!({
                "registry": r.registry,
                "url": r.url,
                "ok": ok,
                "cause": (!ok).then(|| r.text.clone()),
                "fix": r.fix,
            })
        })
        .collect();
    let errors: Vec<&str> = rows
        .iter()
        .filter(ours)
        .filter(|r| r.kind == Kind::Failed)
        .map(|r| r.text.as_str())
        .collect();
    let sync = n.sync.as_ref().and_then(|s| s.as_ref().ok());
    json!({
        "name": n.target.machine,
        "host": n.target.host_state,
        "wrote": sync.map(|s| s.wrote.clone()).unwrap_or_default(),
        "removed": sync.map(|s| s.removed.clone()).unwrap_or_default(),
        "config_path": sync.and_then(|s| s.config_path.clone()),
        "error": (!errors.is_empty()).then(|| errors.join("; ")),
        "checks": checks,
    })
}

fn print_rows(ctx: &Context, rows: &[Row], op: Op) {
    if rows.is_empty() {
        ctx.ui
            .info("no minikube profiles: the files apply to clusters started from now on");
    }
    if ctx.ui.quiet || rows.is_empty() {
        return;
    }
    let ui = &ctx.ui;
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let tone = match r.kind {
                Kind::Info => Tone::Dim,
                Kind::Ok => Tone::Good,
                Kind::Unreachable | Kind::Failed => Tone::Bad,
            };
            let text = match &r.fix {
                Some(fix) => format!("{} -> {fix}", r.text),
                None => r.text.clone(),
            };
            let dash = || "-".to_string();
            let mut cells = vec![r.profile.clone(), r.node.clone().unwrap_or_else(dash)];
            if op == Op::Configure {
                cells.push(r.registry.clone().unwrap_or_else(dash));
            }
            cells.push(ui.paint(tone, &text));
            cells
        })
        .collect();
    let header: &[&str] = match op {
        Op::Configure => &["PROFILE", "NODE", "REGISTRY", "RESULT"],
        Op::Unconfigure => &["PROFILE", "NODE", "RESULT"],
    };
    eprintln!("{}", table(header, &cells));
}

/// Exit 1 when a node could not be changed, else 3 when a cache is
/// unreachable from a node.
fn verdict(rows: &[Row]) -> Result<()> {
    let named = |kind| rows.iter().filter(move |r| r.kind == kind).map(Row::name);
    let failed: Vec<String> = named(Kind::Failed).collect();
    if !failed.is_empty() {
        return Err(Unsatisfied {
            message: format!("could not configure: {}", failed.join(", ")),
            code: exit::FAILURE,
        }
        .into());
    }
    let unreachable: Vec<String> = named(Kind::Unreachable).collect();
    if !unreachable.is_empty() {
        let fixes: BTreeSet<&str> = rows.iter().filter_map(|r| r.fix.as_deref()).collect();
        return Err(Unsatisfied {
            message: format!(
                "caches unreachable from nodes: {}; {}",
                unreachable.join(", "),
                fixes.into_iter().collect::<Vec<_>>().join("; ")
            ),
            code: exit::NOT_READY,
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(name: &str) -> ProfileList {
        let path = format!(
            "{}/tests/fixtures/minikube/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        minikube::parse_profiles(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn names(selected: &[(&Profile, Selection)]) -> Vec<(String, Selection)> {
        selected
            .iter()
            .map(|(p, s)| (p.name.clone(), s.clone()))
            .collect()
    }

    #[test]
    fn all_profiles_containerd_live_others_skipped() {
        let list = list("profile-list-invalid.json");
        let got = names(&select_profiles(&list, &[]).unwrap());
        let skip = |s: &str| Selection::Skip(s.into());
        assert_eq!(
            got,
            [
                ("dr1".into(), Selection::Live),
                ("dr2".into(), Selection::Live),
                ("hub".into(), Selection::Live),
                (
                    "legacy".into(),
                    skip("container runtime is docker, not containerd")
                ),
                (
                    "broken".into(),
                    skip("invalid profile: minikube cannot load it")
                ),
                (
                    "half".into(),
                    skip("invalid profile: minikube cannot load it")
                ),
            ]
        );
    }

    #[test]
    fn named_profiles_only_once_and_unknown_ones_are_usage_errors() {
        let list = list("profile-list-light.json");
        let named = vec!["dr2".to_string(), "legacy".into(), "dr2".into()];
        let got = names(&select_profiles(&list, &named).unwrap());
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], ("dr2".into(), Selection::Live));
        let err = select_profiles(&list, &["nope".into()]).unwrap_err();
        assert_eq!(
            err.0,
            "no minikube profile named \"nope\"; profiles: dr1, dr2, hub, legacy"
        );
        let err = select_profiles(&ProfileList::default(), &["x".into()]).unwrap_err();
        assert!(err.0.ends_with("there are none"), "{err}");
        let err = select_profiles(&self::list("profile-list-invalid.json"), &["broken".into()])
            .unwrap_err();
        assert!(err.0.contains("\"broken\" is invalid"), "{err}");
    }

    #[test]
    fn nodes_take_their_state_from_status() {
        let list = list("profile-list-light.json");
        let path = format!(
            "{}/tests/fixtures/minikube/status-dr2-worker-stopped.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let statuses = minikube::parse_status(&std::fs::read_to_string(path).unwrap()).unwrap();
        let nodes = nodes_of(&list.valid[1], &statuses);
        let got: Vec<(&str, bool)> = nodes
            .iter()
            .map(|n| (n.machine.as_str(), n.running()))
            .collect();
        assert_eq!(got, [("dr2", true), ("dr2-m02", true), ("dr2-m03", false)]);
        // A node status does not know about is not reached.
        let nodes = nodes_of(&list.valid[1], &statuses[..1]);
        assert_eq!(nodes[2].host_state, "Unknown");
    }

    #[test]
    fn classification_names_the_cause_and_the_fix() {
        let line = |exit, http| CheckLine {
            registry: "quay.io".into(),
            curl_exit: exit,
            http_status: http,
        };
        assert_eq!(classify(Some(&line(0, 200)), "h", false), Reach::Ok);
        let fix = |r: Reach| match r {
            Reach::Unreachable { cause, fix } => (cause, fix),
            Reach::Ok => panic!("ok"),
        };
        assert_eq!(
            fix(classify(Some(&line(7, 0)), "h", false)).1,
            "run `drcache start`"
        );
        assert_eq!(
            fix(classify(Some(&line(28, 0)), "h", false)).1,
            "run `drcache start`"
        );
        let (cause, f) = fix(classify(Some(&line(7, 0)), "h", true));
        assert!(cause.starts_with("connection refused"));
        assert_eq!(f, "run `drcache setup-host`");
        let (cause, f) = fix(classify(Some(&line(28, 0)), "h", true));
        assert!(cause.starts_with("timed out"));
        assert_eq!(f, "run `drcache setup-host`");
        assert!(fix(classify(Some(&line(6, 0)), "h.example", true))
            .0
            .contains("resolve h.example"));
        assert!(fix(classify(Some(&line(0, 404)), "h", true))
            .0
            .contains("HTTP 404"));
        assert!(fix(classify(None, "h", true)).0.contains("no result"));
    }
}
