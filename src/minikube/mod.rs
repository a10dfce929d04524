//! Typed minikube calls, the serde structs for its JSON, the file-sync
//! directory, and the small shell scripts drcache runs on nodes.
//!
//! Node names, as read in minikube's source (pkg/minikube/node, config):
//! `Config.Nodes[].Name` is `""` for the first node and `m02`, `m03`, ... for
//! the others. The machine name of a node is the profile (cluster) name for the
//! first node or a single-node cluster, else `<profile>-<name>` (`dr2-m02`).
//! `minikube status -o json` names nodes by machine name, and `minikube ssh -n`
//! accepts a node name or a machine name (minikube's own multi-node tests pass
//! the names from `status`). drcache always passes the machine name: an empty
//! `-n` would mean "the primary control plane", not "the first node".

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Deserialize;

use crate::containerd::CERTS_D;
use crate::exec::{Cmd, CommandError, Output, Runner};
use crate::serde_util::null_as_default;

pub mod node_scripts;

/// `minikube profile list -o json`: `{"invalid":[...],"valid":[...]}`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct ProfileList {
    #[serde(deserialize_with = "null_as_default")]
    pub valid: Vec<Profile>,
    #[serde(deserialize_with = "null_as_default")]
    pub invalid: Vec<Profile>,
}

/// One profile. `Status` is `Skipped` with `-l`; `Config` is null for a
/// profile whose config.json cannot be read.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Profile {
    pub name: String,
    pub status: String,
    pub config: Option<ClusterConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ClusterConfig {
    pub name: String,
    pub driver: String,
    pub kubernetes_config: KubernetesConfig,
    #[serde(deserialize_with = "null_as_default")]
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct KubernetesConfig {
    pub container_runtime: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Node {
    pub name: String,
    #[serde(rename = "IP")]
    pub ip: String,
    pub control_plane: bool,
    pub worker: bool,
}

/// One node of `minikube status -o json` (an object for a single node, an
/// array for several).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeStatus {
    /// The machine name.
    pub name: String,
    /// Running, Stopped, Paused, Nonexistent, ...
    pub host: String,
    pub kubelet: String,
    #[serde(rename = "APIServer")]
    pub api_server: String,
    pub kubeconfig: String,
    pub worker: bool,
}

impl Profile {
    pub fn runtime(&self) -> &str {
        self.config
            .as_ref()
            .map_or("", |c| c.kubernetes_config.container_runtime.as_str())
    }

    pub fn driver(&self) -> &str {
        self.config.as_ref().map_or("", |c| c.driver.as_str())
    }

    /// The machine names of the profile's nodes, in minikube's order.
    pub fn machine_names(&self) -> Vec<String> {
        let Some(config) = &self.config else {
            return Vec::new();
        };
        let cluster = if config.name.is_empty() {
            &self.name
        } else {
            &config.name
        };
        let single = config.nodes.len() == 1;
        config
            .nodes
            .iter()
            .map(|n| {
                if single || n.name.is_empty() {
                    cluster.clone()
                } else {
                    format!("{cluster}-{}", n.name)
                }
            })
            .collect()
    }
}

/// Parse `minikube profile list -o json`. Anything printed before the JSON
/// object (some versions print notices on stdout) is skipped.
pub fn parse_profiles(text: &str) -> Result<ProfileList> {
    let start = text.find('{').unwrap_or(text.len());
    let json = text[start..].trim();
    if json.is_empty() {
        return Ok(ProfileList::default());
    }
    serde_json::from_str(json).context("cannot parse the output of `minikube profile list -o json`")
}

/// Parse `minikube status -o json`: one object, or an array for multi-node.
pub fn parse_status(text: &str) -> Result<Vec<NodeStatus>> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<NodeStatus>),
        One(NodeStatus),
    }
    let start = text.find(['{', '[']).unwrap_or(text.len());
    let parsed: OneOrMany = serde_json::from_str(text[start..].trim())
        .context("cannot parse the output of `minikube status -o json`")?;
    Ok(match parsed {
        OneOrMany::Many(list) => list,
        OneOrMany::One(one) => vec![one],
    })
}

/// minikube's home as minikube resolves it: `$MINIKUBE_HOME` (used as is when
/// it ends in `.minikube`, else with `.minikube` appended), or `~/.minikube`.
pub fn minikube_home(env: Option<OsString>, home: Option<PathBuf>) -> Option<PathBuf> {
    match env.filter(|v| !v.is_empty()).map(PathBuf::from) {
        Some(dir) if dir.file_name() == Some(".minikube".as_ref()) => Some(dir),
        Some(dir) => Some(dir.join(".minikube")),
        None => home.map(|h| h.join(".minikube")),
    }
}

/// The `certs.d` directory inside minikube's file-sync tree: minikube copies
/// `<home>/files/<path>` to `/<path>` on every node at every start.
/// [`minikube_home`] from this process's environment.
pub fn minikube_home_from_env() -> Option<PathBuf> {
    minikube_home(
        std::env::var_os("MINIKUBE_HOME"),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

pub fn file_sync_certs_d(minikube_home: &Path) -> PathBuf {
    minikube_home
        .join("files")
        .join(CERTS_D.trim_start_matches('/'))
}

/// Typed access to one minikube executable.
pub struct Minikube<'r> {
    program: PathBuf,
    runner: &'r Runner,
}

impl<'r> Minikube<'r> {
    pub fn new(program: PathBuf, runner: &'r Runner) -> Self {
        Minikube { program, runner }
    }

    fn query(&self) -> Cmd {
        Cmd::query(&self.program, "minikube")
    }

    /// All profiles, without minikube's slow per-cluster status check (`-l`),
    /// so every `Status` is "Skipped": ask [`Minikube::status`] for that.
    pub fn profiles(&self) -> Result<ProfileList> {
        let out = self
            .runner
            .run(&self.query().args(["profile", "list", "-o", "json", "-l"]))?;
        parse_profiles(&out.stdout)
    }

    /// Each node's state. The exit code is a bit mask of what is not running
    /// (1 host, 2 cluster, 4 kubernetes): an answer, not a failure.
    pub fn status(&self, profile: &str) -> Result<Vec<NodeStatus>> {
        let cmd = self
            .query()
            .args(["status", "-p", profile, "-o", "json"])
            .accept(&[1, 2, 3, 4, 5, 6, 7]);
        let out = self.runner.run(&cmd)?;
        parse_status(&out.stdout).with_context(|| {
            format!(
                "`minikube status -p {}` exited with {}",
                crate::ui::quoted_name(profile),
                out.code
            )
        })
    }

    /// Run `script` on a node. `minikube ssh` does not forward stdin, so the
    /// whole script, data included, travels as one argument.
    pub fn ssh(
        &self,
        profile: &str,
        machine: &str,
        script: &str,
        mutating: bool,
    ) -> Result<Output, CommandError> {
        let cmd = if mutating {
            Cmd::mutation(&self.program, "minikube")
        } else {
            self.query()
        };
        self.runner
            .run(&cmd.args(["ssh", "-p", profile, "-n", machine, "--", script]))
    }

    /// The images in a node's containerd: `sudo crictl images -o json`
    /// over `minikube ssh` (a query: it runs under --dry-run too).
    pub fn crictl_images(&self, profile: &str, machine: &str) -> Result<Output, CommandError> {
        self.ssh(profile, machine, "sudo crictl images -o json", false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/minikube/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn parses_profile_list_light() {
        let list = parse_profiles(&fixture("profile-list-light.json")).unwrap();
        let names: Vec<&str> = list.valid.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["dr1", "dr2", "hub", "legacy"]);
        assert!(list.invalid.is_empty());
        let dr2 = &list.valid[1];
        assert_eq!(dr2.status, "Skipped");
        assert_eq!(dr2.runtime(), "containerd");
        assert_eq!(dr2.driver(), "docker");
        assert_eq!(dr2.machine_names(), ["dr2", "dr2-m02", "dr2-m03"]);
        assert_eq!(list.valid[0].machine_names(), ["dr1"]);
        assert_eq!(list.valid[3].runtime(), "docker");
        let node = &dr2.config.as_ref().unwrap().nodes[1];
        assert_eq!(
            (node.ip.as_str(), node.control_plane, node.worker),
            ("192.168.58.3", false, true)
        );
    }

    #[test]
    fn parses_invalid_profiles_with_null_config() {
        let list = parse_profiles(&fixture("profile-list-invalid.json")).unwrap();
        assert_eq!(list.invalid.len(), 2);
        assert_eq!(list.invalid[0].name, "broken");
        assert!(list.invalid[0].config.is_none());
        assert!(list.invalid[0].machine_names().is_empty());
        assert_eq!(list.valid[2].status, "Stopped");
    }

    #[test]
    fn profile_list_tolerates_notices_and_empty_output() {
        let list = parse_profiles("! a newer minikube is available\n{\"valid\":null}").unwrap();
        assert!(list.valid.is_empty());
        assert_eq!(parse_profiles("").unwrap(), ProfileList::default());
        assert!(parse_profiles("{").is_err());
    }

    #[test]
    fn single_node_cluster_keeps_the_old_machine_name() {
        // minikube names the only node after the cluster, whatever its Name.
        let p = Profile {
            name: "p".into(),
            config: Some(ClusterConfig {
                nodes: vec![Node {
                    name: "m01".into(),
                    ..Node::default()
                }],
                ..ClusterConfig::default()
            }),
            ..Profile::default()
        };
        assert_eq!(p.machine_names(), ["p"]);
    }

    #[test]
    fn parses_status_of_one_and_many_nodes() {
        let one = parse_status(&fixture("status-dr1.json")).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(
            (one[0].name.as_str(), one[0].host.as_str()),
            ("dr1", "Running")
        );
        let many = parse_status(&fixture("status-dr2-worker-stopped.json")).unwrap();
        let hosts: Vec<(&str, &str)> = many
            .iter()
            .map(|s| (s.name.as_str(), s.host.as_str()))
            .collect();
        assert_eq!(
            hosts,
            [
                ("dr2", "Running"),
                ("dr2-m02", "Running"),
                ("dr2-m03", "Stopped")
            ]
        );
        assert!(many[2].worker);
        assert!(parse_status("oops").is_err());
    }

    #[test]
    fn minikube_home_is_resolved_like_minikube() {
        let home = Some(PathBuf::from("/home/u"));
        assert_eq!(
            minikube_home(None, home.clone()),
            Some(PathBuf::from("/home/u/.minikube"))
        );
        assert_eq!(
            minikube_home(Some("".into()), home.clone()),
            Some(PathBuf::from("/home/u/.minikube"))
        );
        assert_eq!(
            minikube_home(Some("/data/mk".into()), home.clone()),
            Some(PathBuf::from("/data/mk/.minikube"))
        );
        assert_eq!(
            minikube_home(Some("/data/mk/.minikube".into()), home),
            Some(PathBuf::from("/data/mk/.minikube"))
        );
        assert_eq!(minikube_home(None, None), None);
        assert_eq!(
            file_sync_certs_d(Path::new("/m/.minikube")),
            PathBuf::from("/m/.minikube/files/etc/containerd/certs.d")
        );
    }
}
