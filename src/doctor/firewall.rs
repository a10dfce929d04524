//! Doctor's firewall group: the host firewall lets cluster VMs reach the
//! caches, as `setup-host --check` with its default zone says.

use crate::doctor::{Check, Inputs};

pub fn checks(inputs: &Inputs) -> Vec<Check> {
    let name = "host firewall";
    let check = match &inputs.firewall {
        None => Check::pass(name, format!("not checked on {}", std::env::consts::OS)),
        Some(Ok(facts)) if !facts.missing.is_empty() => Check::fail(
            name,
            format!("not set up: {}", facts.missing.join("; ")),
            "`drcache setup-host`",
        ),
        Some(Ok(facts)) => Check::pass(name, facts.summary.clone()),
        Some(Err((message, fix))) => {
            Check::fail(name, format!("cannot check: {message}"), fix.clone())
        }
    };
    vec![check]
}

#[cfg(test)]
mod tests {
    use super::checks;
    use crate::doctor::testing::inputs;
    use crate::doctor::FirewallFacts;

    #[test]
    fn set_up_missing_unknown_and_not_checked() {
        let mut i = inputs(vec![], vec![]);
        assert_eq!(
            checks(&i)[0].detail,
            format!("not checked on {}", std::env::consts::OS)
        );
        i.firewall = Some(Ok(FirewallFacts {
            missing: vec![],
            summary: "registry-cache is in zone libvirt".into(),
        }));
        let c = &checks(&i)[0];
        assert!(c.ok && c.detail == "registry-cache is in zone libvirt");
        i.firewall = Some(Ok(FirewallFacts {
            missing: vec!["service registry-cache".into(), "zone libvirt".into()],
            summary: String::new(),
        }));
        let c = &checks(&i)[0];
        assert!(!c.ok);
        assert_eq!(c.detail, "not set up: service registry-cache; zone libvirt");
        assert_eq!(c.fix.as_deref(), Some("`drcache setup-host`"));
        i.firewall = Some(Err(("sudo refused".into(), "run as root".into())));
        let c = &checks(&i)[0];
        assert_eq!(
            (c.detail.as_str(), c.fix.as_deref()),
            ("cannot check: sudo refused", Some("run as root"))
        );
    }
}
