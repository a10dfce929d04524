//! Doctor's ports group: each cache's port held by its cache, or free, or
//! else by whom.

use crate::doctor::{Check, Inputs};

/// Each cache's port: held by the cache itself or free; otherwise by whom.
pub fn checks(inputs: &Inputs) -> Vec<Check> {
    let Ok(facts) = &inputs.facts else {
        return Vec::new();
    };
    inputs
        .specs
        .iter()
        .map(|spec| {
            let port = spec.registry.port;
            let name = format!("port {port}");
            let ours = facts
                .container(&spec.container)
                .is_some_and(|c| c.is_running() && c.ports.iter().any(|p| p.host_port == port));
            if ours {
                return Check::pass(name, format!("published by {}", spec.container));
            }
            let fix = format!(
                "stop it, or set another `port` for {} in the config",
                spec.registry.name
            );
            if let Some(holder) = facts.port_holder(port, &spec.container) {
                return Check::fail(
                    name,
                    format!(
                        "{} needs it, but container {} holds it",
                        spec.registry.name,
                        holder.name()
                    ),
                    fix,
                );
            }
            let Some((_, owner)) = inputs.ports_taken.iter().find(|(p, _)| *p == port) else {
                return Check::pass(name, format!("free for {}", spec.registry.name));
            };
            let by = match owner {
                Some(owner) => format!("process {owner}"),
                None => "another process".into(),
            };
            Check::fail(
                name,
                format!("{} needs it, but {by} holds it", spec.registry.name),
                fix,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::checks as group;
    use crate::doctor::testing::{container, inputs, specs};

    #[test]
    fn a_port_held_by_another_container_is_named() {
        let s = specs();
        let mut other = container(&s[0], "running", "proxy", "x");
        other.names = vec!["someone-else".into()];
        let i = inputs(vec![other], vec![]);
        let checks = group(&i);
        assert!(!checks[0].ok);
        assert_eq!(
            checks[0].detail,
            "quay.io needs it, but container someone-else holds it"
        );
        assert!(checks[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("another `port` for quay.io"));
    }
}
