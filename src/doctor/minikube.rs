//! Doctor's minikube group: the file-sync directory holds the current
//! hosts.toml of every cache (so nodes get them at every start), and each
//! running node of each containerd profile reaches each cache. Without
//! minikube there is nothing to check.

use std::path::PathBuf;

use crate::cluster::reach::{classify, Reach};
use crate::containerd::HostsFile;
use crate::doctor::{Check, Inputs};
use crate::minikube::node_scripts::CheckLine;

/// What was read from minikube.
#[derive(Debug)]
pub struct MinikubeFacts {
    /// The address nodes use for the caches (the config's `host`).
    pub host: String,
    /// The hosts.toml files `configure` writes, or why there are none.
    pub files: Result<Vec<HostsFile>, String>,
    /// The file-sync directory and its registries missing or out of date.
    pub file_sync: Result<(PathBuf, Vec<String>), String>,
    /// Each containerd profile's running nodes, or why they are unknown.
    pub profiles: Result<Vec<ProfileFacts>, String>,
}

#[derive(Debug)]
pub struct ProfileFacts {
    pub name: String,
    pub nodes: Result<Vec<NodeFacts>, String>,
}

/// One running node's check of every cache, or why it could not run.
#[derive(Debug)]
pub struct NodeFacts {
    pub machine: String,
    pub lines: Result<Vec<CheckLine>, String>,
}

pub fn checks(inputs: &Inputs) -> Vec<Check> {
    let Some(mk) = &inputs.minikube else {
        return vec![Check::pass(
            "minikube",
            "not installed: no clusters to check",
        )];
    };
    let files = match &mk.files {
        Ok(files) => files,
        Err(m) => {
            return vec![Check::fail(
                "minikube files",
                format!("host: {m}"),
                "set `host` in the config to a name or address the nodes resolve",
            )]
        }
    };
    let mut checks = vec![file_sync_check(&mk.file_sync, files.len())];
    let profiles = match &mk.profiles {
        Ok(profiles) => profiles,
        Err(e) => {
            checks.push(Check::fail(
                "minikube profiles",
                format!("cannot list them: {e}"),
                "check `minikube profile list`",
            ));
            return checks;
        }
    };
    for profile in profiles {
        checks.extend(node_checks(inputs, profile, files, &mk.host));
    }
    checks
}

/// The file-sync directory has exactly the hosts.toml `configure` writes.
fn file_sync_check(file_sync: &Result<(PathBuf, Vec<String>), String>, files: usize) -> Check {
    let name = "minikube files";
    match file_sync {
        Err(why) => Check::fail(
            name,
            why.clone(),
            "set MINIKUBE_HOME as you do for minikube",
        ),
        Ok((dir, stale)) if stale.is_empty() => Check::pass(
            name,
            format!("{files} current hosts.toml in {}", dir.display()),
        ),
        Ok((dir, stale)) => Check::fail(
            name,
            format!(
                "missing or out of date in {}: {}",
                dir.display(),
                stale.join(", ")
            ),
            "`drcache configure`",
        ),
    }
}

/// One check per running node of a profile: does it reach every cache?
fn node_checks(
    inputs: &Inputs,
    profile: &ProfileFacts,
    files: &[HostsFile],
    host: &str,
) -> Vec<Check> {
    let nodes = match &profile.nodes {
        Ok(nodes) => nodes,
        Err(e) => {
            return vec![Check::fail(
                format!("minikube {}", profile.name),
                format!("cannot read its status: {e}"),
                format!(
                    "check `minikube status -p {}`",
                    crate::ui::quoted_name(&profile.name)
                ),
            )]
        }
    };
    let answers_here = |registry: &str| {
        inputs
            .probes
            .iter()
            .any(|(r, p)| r == registry && p.is_ready())
    };
    nodes
        .iter()
        .map(|node| {
            let name = format!("minikube {} {}", profile.name, node.machine);
            let lines = match &node.lines {
                Ok(lines) => lines,
                Err(failure) => {
                    return Check::fail(
                        name,
                        failure.clone(),
                        format!(
                            "check `minikube ssh -p {} -n {}`",
                            crate::ui::quoted_name(&profile.name),
                            crate::ui::quoted_name(&node.machine)
                        ),
                    )
                }
            };
            let mut problems = Vec::new();
            let mut fixes = Vec::new();
            for f in files {
                let line = lines.iter().find(|l| l.registry == f.registry);
                if let Reach::Unreachable { cause, fix } =
                    classify(line, host, answers_here(&f.registry))
                {
                    problems.push(format!("{}: {cause}", f.registry));
                    if !fixes.contains(&fix) {
                        fixes.push(fix);
                    }
                }
            }
            if problems.is_empty() {
                Check::pass(name, format!("reaches all {} caches", files.len()))
            } else {
                Check::fail(name, problems.join("; "), fixes.join("; "))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::testing::inputs;
    use crate::registry_http::Probe;

    fn facts(nodes: Vec<NodeFacts>) -> MinikubeFacts {
        let registries = crate::config::load(None).unwrap().registries;
        let files =
            crate::containerd::hosts_files(&[&registries[0], &registries[1]], "h.example").unwrap();
        MinikubeFacts {
            host: "h.example".into(),
            files: Ok(files),
            file_sync: Ok((
                PathBuf::from("/mk/files/etc/containerd/certs.d"),
                vec!["docker.io".into()],
            )),
            profiles: Ok(vec![ProfileFacts {
                name: "dr1".into(),
                nodes: Ok(nodes),
            }]),
        }
    }

    fn line(registry: &str, curl_exit: i32, http_status: u16) -> CheckLine {
        CheckLine {
            registry: registry.into(),
            curl_exit,
            http_status,
        }
    }

    #[test]
    fn not_installed_is_nothing_to_check() {
        let c = checks(&inputs(vec![], vec![]));
        assert_eq!(c.len(), 1);
        assert!(c[0].ok);
        assert_eq!(c[0].detail, "not installed: no clusters to check");
    }

    #[test]
    fn stale_files_and_each_node_get_a_verdict_with_the_fix() {
        // quay.io answers here, docker.io does not: "refused" means different things.
        let mut i = inputs(vec![], vec![("quay.io".into(), Probe::Ready)]);
        i.minikube = Some(facts(vec![
            NodeFacts {
                machine: "dr1".into(),
                lines: Ok(vec![line("quay.io", 0, 200), line("docker.io", 0, 200)]),
            },
            NodeFacts {
                machine: "dr1-m02".into(),
                lines: Ok(vec![line("quay.io", 7, 0), line("docker.io", 7, 0)]),
            },
            NodeFacts {
                machine: "dr1-m03".into(),
                lines: Err(
                    "`minikube ssh -p dr1 -n dr1-m03` failed (timed out after 2 s and was killed)"
                        .into(),
                ),
            },
        ]));
        let c = checks(&i);
        let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "minikube files",
                "minikube dr1 dr1",
                "minikube dr1 dr1-m02",
                "minikube dr1 dr1-m03"
            ]
        );
        assert_eq!(
            c[0].detail,
            "missing or out of date in /mk/files/etc/containerd/certs.d: docker.io"
        );
        assert!(c[1].ok && c[1].detail == "reaches all 2 caches");
        assert!(!c[2].ok);
        assert_eq!(
            c[2].fix.as_deref(),
            Some("run `drcache setup-host`; run `drcache start`"),
            "{:#?}",
            c[2]
        );
        assert!(c[3].detail.contains("timed out after 2 s"));
        assert_eq!(
            c[3].fix.as_deref(),
            Some("check `minikube ssh -p dr1 -n dr1-m03`")
        );
    }

    #[test]
    fn unreadable_profiles_and_statuses_fail_with_what_to_run() {
        let mut i = inputs(vec![], vec![]);
        let mut f = facts(vec![]);
        f.profiles = Err("`minikube profile list` failed".into());
        i.minikube = Some(f);
        let c = checks(&i);
        assert_eq!(c[1].name, "minikube profiles");
        assert_eq!(c[1].fix.as_deref(), Some("check `minikube profile list`"));
        let mut f = facts(vec![]);
        f.profiles = Ok(vec![ProfileFacts {
            name: "hub".into(),
            nodes: Err("exit status 85".into()),
        }]);
        i.minikube = Some(f);
        let c = checks(&i);
        assert_eq!(c[1].detail, "cannot read its status: exit status 85");
        assert_eq!(c[1].fix.as_deref(), Some("check `minikube status -p hub`"));
    }
}
