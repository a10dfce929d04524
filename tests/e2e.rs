//! The real-component tier: real podman running the registry, a local
//! upstream registry, skopeo, containerd and firewalld (in a private
//! namespace). Prepared by `scripts/test-env.sh`; run under the machine-wide
//! lock, e.g. `flock /tmp/drcache-real-tests.lock cargo test --test e2e`.

mod support;

#[path = "support/real.rs"]
mod real;

#[path = "e2e/autostart.rs"]
mod autostart;
#[path = "e2e/clients_filter.rs"]
mod clients_filter;
#[path = "e2e/containerd_pull.rs"]
mod containerd_pull;
#[path = "e2e/durability.rs"]
mod durability;
#[path = "e2e/lifecycle.rs"]
mod lifecycle;
#[path = "e2e/observe.rs"]
mod observe;
#[path = "e2e/privileged_tools.rs"]
mod privileged_tools;
#[path = "e2e/prune.rs"]
mod prune;
#[path = "e2e/resilience.rs"]
mod resilience;
#[path = "e2e/secrets.rs"]
mod secrets;
#[path = "e2e/setup_host_firewalld.rs"]
mod setup_host_firewalld;
