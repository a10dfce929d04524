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
    let name = "reachable from other networks";
    let exposure = match &inputs.exposure {
        None => Check::pass(name, "no: only the configured clients reach the caches"),
        Some((interfaces, why)) => Check::fail(
            name,
            format!(
                "yes, on {}: {why}",
                if interfaces.is_empty() {
                    "every interface".to_string()
                } else {
                    interfaces.join(", ")
                }
            ),
            "run `drcache setup-host` where nftables is installed, or set `bind` to a \
             loopback address, or `clients = [\"*\"]` to allow every network on purpose",
        ),
    };
    vec![check, exposure]
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

    #[test]
    fn reachable_from_other_networks_names_the_interfaces() {
        let mut i = inputs(vec![], vec![]);
        assert!(checks(&i)[1].ok);
        i.exposure = Some((
            vec!["eth0".into(), "wlan0".into()],
            "nft is not installed".into(),
        ));
        let c = &checks(&i)[1];
        assert_eq!(c.name, "reachable from other networks");
        assert!(!c.ok);
        assert_eq!(c.detail, "yes, on eth0, wlan0: nft is not installed");
    }
}
