//! Which minikube profiles and nodes drcache acts on.

use std::collections::BTreeSet;

use crate::errors::UsageError;
use crate::minikube::{NodeStatus, Profile, ProfileList};

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
                "minikube profile {} is invalid (minikube cannot load it); \
                 fix or delete it: `minikube delete -p {}`",
                crate::ui::escape_control(&format!("{name:?}")),
                crate::ui::quoted_name(name)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::minikube;

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
}
