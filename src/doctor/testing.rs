//! Inputs for the groups' unit tests.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::cache::{CacheSpec, Mode, LABEL_HASH, LABEL_MODE};
use crate::config;
use crate::doctor::{Check, Inputs, GROUPS};
use crate::hostinfo::HostOs;
use crate::podman::{Container, PortMapping};
use crate::reconcile::Facts;
use crate::registry_http::Probe;

/// Every group but the firewall's, autostart's and minikube's (tested on their own).
pub fn local_checks(inputs: &Inputs) -> Vec<Check> {
    GROUPS
        .iter()
        .filter(|(name, _)| !["firewall", "autostart", "minikube"].contains(name))
        .flat_map(|(_, group)| group(inputs))
        .collect()
}

/// The first two caches of the built-in configuration.
pub fn specs() -> Vec<CacheSpec> {
    let config = config::load(None).unwrap();
    config
        .registries
        .iter()
        .take(2)
        .map(|r| CacheSpec::new(&config, r, Mode::Proxy))
        .collect()
}

pub fn container(spec: &CacheSpec, state: &str, mode: &str, hash: &str) -> Container {
    let labels: HashMap<String, String> = [
        (LABEL_MODE.to_string(), mode.to_string()),
        (LABEL_HASH.to_string(), hash.to_string()),
    ]
    .into();
    Container {
        id: "id".into(),
        names: vec![spec.container.clone()],
        state: state.into(),
        labels,
        ports: vec![PortMapping {
            host_ip: String::new(),
            container_port: 5000,
            host_port: spec.registry.port,
        }],
        ..Container::default()
    }
}

pub fn inputs(containers: Vec<Container>, probes: Vec<(String, Probe)>) -> Inputs {
    Inputs {
        os: HostOs::Linux,
        specs: specs(),
        podman_path: Ok(PathBuf::from("/usr/bin/podman")),
        podman_version: Some("4.3.1".into()),
        machines: None,
        facts: Ok(Facts {
            containers,
            volumes: vec![],
        }),
        probes,
        last_logs: vec![],
        credentials_unknown: vec![],
        formats: vec![],
        upstreams: vec![],
        ports_taken: vec![],
        firewall: None,
        exposure: None,
        minikube: None,
        autostart: None,
    }
}
