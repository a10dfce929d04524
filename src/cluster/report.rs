//! The report of a wiring: one row per profile, node and cache check, as
//! the table and `--json` show it, and the verdict.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::cluster::reach::{classify, ssh_failure, Reach};
use crate::cluster::wire::{NodeReport, Op, ProfileReport, ProfileState};
use crate::containerd::HostsFile;
use crate::errors::ExitStatus;
use crate::minikube::node_scripts::SyncReport;

/// An error on one line, causes included.
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', "; ")
}

/// How a report line counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Info,
    Ok,
    /// A cache a node cannot reach: exit 3.
    Unreachable,
    /// A node or profile that could not be changed or checked: exit 1.
    Failed,
}

/// One line of the report: a check of one cache, or a node or profile state.
#[derive(Debug, Clone)]
pub struct Row {
    pub profile: String,
    pub node: Option<String>,
    pub registry: Option<String>,
    /// The URL a node checked.
    pub url: Option<String>,
    pub kind: Kind,
    pub text: String,
    pub fix: Option<String>,
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

    pub fn name(&self) -> String {
        match (&self.node, &self.registry) {
            (Some(n), Some(reg)) => format!("{}/{n} {reg}", self.profile),
            (Some(n), None) => format!("{}/{n}", self.profile),
            _ => self.profile.clone(),
        }
    }
}

pub fn rows(
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
                format!("failed: {}", one_line(e)),
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
                format!("failed: {}", ssh_failure(e, profile, &n.target.machine)),
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
    if !sync.links.is_empty() {
        rows.push(Row {
            fix: Some(
                "look at these links on the node (`minikube ssh`): drcache does not write or \
                 remove through symbolic links; replace them with real directories or files"
                    .into(),
            ),
            ..Row::new(
                profile,
                node,
                Kind::Failed,
                format!(
                    "refused to follow the symbolic link {}",
                    sync.links.join(", ")
                ),
            )
        });
    }
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
            format!(
                "check failed: {}",
                ssh_failure(e, profile, &n.target.machine)
            ),
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

pub fn profiles_json(reports: &[ProfileReport], rows: &[Row]) -> Vec<serde_json::Value> {
    reports
        .iter()
        .map(|r| {
            let (state, reason, nodes) = match &r.state {
                ProfileState::Skipped(why) => ("skipped", Some(why.clone()), Vec::new()),
                ProfileState::Failed(e) => ("failed", Some(one_line(e)), Vec::new()),
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

/// Exit 1 when a node could not be changed, else 3 when a cache is
/// unreachable from a node; with the line that says why.
pub fn verdict(rows: &[Row]) -> (ExitStatus, Option<String>) {
    let named = |kind| rows.iter().filter(move |r| r.kind == kind).map(Row::name);
    let failed: Vec<String> = named(Kind::Failed).collect();
    if !failed.is_empty() {
        let line = format!("could not configure: {}", failed.join(", "));
        return (ExitStatus::Failure, Some(line));
    }
    let unreachable: Vec<String> = named(Kind::Unreachable).collect();
    if !unreachable.is_empty() {
        let fixes: BTreeSet<&str> = rows.iter().filter_map(|r| r.fix.as_deref()).collect();
        let line = format!(
            "caches unreachable from nodes: {}; {}",
            unreachable.join(", "),
            fixes.into_iter().collect::<Vec<_>>().join("; ")
        );
        return (ExitStatus::NotReady, Some(line));
    }
    (ExitStatus::Success, None)
}
