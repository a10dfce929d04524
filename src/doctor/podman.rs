//! Doctor's podman group: installed, its machine running (macOS), answering.

use crate::doctor::{Check, Inputs};
use crate::hostinfo::HostOs;

/// podman found; on macOS a podman machine running; podman answering.
pub fn checks(inputs: &Inputs) -> Vec<Check> {
    let mut checks = Vec::new();
    let path = match &inputs.podman_path {
        Ok(p) => p,
        Err((message, fix)) => {
            checks.push(Check::fail(
                "podman installed",
                message.clone(),
                fix.clone(),
            ));
            return checks;
        }
    };
    checks.push(Check::pass(
        "podman installed",
        match &inputs.podman_version {
            Some(v) => format!("{} (version {v})", path.display()),
            None => path.display().to_string(),
        },
    ));
    if let Some(machines) = &inputs.machines {
        checks.push(match machines {
            Err(e) => Check::fail(
                "podman machine",
                format!("cannot list podman machines: {e}"),
                "check the podman installation: `podman machine list`",
            ),
            Ok(list) if list.is_empty() => Check::fail(
                "podman machine",
                "no podman machine exists; on macOS, containers run in one",
                "`podman machine init && podman machine start`",
            ),
            Ok(list) => match list.iter().find(|m| m.running) {
                Some(m) => Check::pass("podman machine", format!("{} is running", m.name)),
                None => {
                    let m = list.iter().find(|m| m.default).unwrap_or(&list[0]);
                    let state = if m.starting {
                        "is starting"
                    } else {
                        "is stopped"
                    };
                    Check::fail(
                        "podman machine",
                        format!("{} {state}", m.name),
                        format!("`podman machine start {}`", m.name),
                    )
                }
            },
        });
    }
    checks.push(match &inputs.facts {
        Ok(facts) => Check::pass(
            "podman answers",
            format!(
                "{} containers, {} volumes",
                facts.containers.len(),
                facts.volumes.len()
            ),
        ),
        Err((message, hint)) => Check::fail(
            "podman answers",
            message.clone(),
            hint.clone().unwrap_or_else(|| match inputs.os {
                HostOs::Macos => "start the podman machine: `podman machine start`".into(),
                _ => "run `podman info` to see what is wrong".into(),
            }),
        ),
    });
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::testing::{inputs, local_checks};
    use crate::podman::Machine;

    #[test]
    fn podman_missing_or_not_answering() {
        let mut i = inputs(vec![], vec![]);
        i.podman_path = Err((
            "podman was not found on PATH".into(),
            "install podman".into(),
        ));
        i.facts = Err(("podman was not found".into(), None));
        let checks = local_checks(&i);
        assert_eq!(checks.len(), 1, "nothing else can be checked: {checks:#?}");
        assert_eq!(checks[0].fix.as_deref(), Some("install podman"));

        let mut i = inputs(vec![], vec![]);
        i.os = HostOs::Macos;
        i.facts = Err(("`podman ps` failed".into(), None));
        i.machines = Some(Ok(vec![Machine {
            name: "podman-machine-default".into(),
            default: true,
            running: false,
            starting: false,
        }]));
        let checks = local_checks(&i);
        assert_eq!(checks.len(), 3, "{checks:#?}");
        assert_eq!(checks[1].detail, "podman-machine-default is stopped");
        assert_eq!(
            checks[1].fix.as_deref(),
            Some("`podman machine start podman-machine-default`")
        );
        assert!(checks[2]
            .fix
            .as_deref()
            .unwrap()
            .contains("podman machine start"));
    }
}
