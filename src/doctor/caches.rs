//! Doctor's caches group: each cache running, answering, in proxy mode and
//! current, with the fix that fits; notes where the image expires its data.

use crate::cache::{CacheSpec, Mode, LABEL_HASH, LABEL_MODE};
use crate::doctor::{Check, Inputs};
use crate::metrics::Format;
use crate::reconcile::Facts;
use crate::registry_http::Probe;
use crate::upstream::Silence;

/// The mode a container's label names.
fn mode_of(label: Option<&str>) -> Option<Mode> {
    match label? {
        "proxy" => Some(Mode::Proxy),
        "offline" => Some(Mode::Offline),
        _ => None,
    }
}

/// Each cache running, answering, in proxy mode and current; plus a note
/// where the registry image expires what was cached.
pub fn checks(inputs: &Inputs) -> Vec<Check> {
    let Ok(facts) = &inputs.facts else {
        return Vec::new();
    };
    inputs
        .specs
        .iter()
        .flat_map(|spec| {
            let mut checks = vec![cache_check(inputs, facts, spec)];
            checks.extend(expiry_note(inputs, spec));
            checks
        })
        .collect()
}

/// What drcache's own probe of the upstream said, when it asked.
fn upstream_answer<'i>(inputs: &'i Inputs, registry: &str) -> Option<&'i Result<(), Silence>> {
    inputs
        .upstreams
        .iter()
        .find(|(r, _)| r == registry)
        .map(|(_, answer)| answer)
}

fn cache_check(inputs: &Inputs, facts: &Facts, spec: &CacheSpec) -> Check {
    let name = format!("cache {}", spec.registry.name);
    let reg = &spec.registry.name;
    let upstream = &spec.registry.upstream;
    let start = format!("`drcache start {reg}`");
    let silent = match upstream_answer(inputs, reg) {
        Some(Err(silence)) => Some(silence),
        _ => None,
    };
    let Some(c) = facts.container(&spec.container) else {
        return Check::fail(name, format!("{} does not exist", spec.container), start);
    };
    if !c.is_running() {
        let why = if c.state == "exited" && c.exit_code != 0 {
            let reason = inputs
                .last_logs
                .iter()
                .find(|(r, _)| r == reg)
                .map(|(_, line)| line.as_str());
            let upstream_failed = reason.is_some_and(|r| r.contains("/v2/"));
            let detail = format!(
                "{} exited with status {}{}",
                spec.container,
                c.exit_code,
                reason.map(|r| format!(": {r}")).unwrap_or_default()
            );
            if upstream_failed {
                // distribution issue 4038: proxy mode does not start
                // while its upstream is unreachable.
                let fix = match silent {
                    Some(silence) => format!(
                        "its upstream {upstream} still does not answer this host ({silence}): \
                         `drcache start --offline {reg}` serves what is cached until it does"
                    ),
                    None => format!(
                        "the registry could not reach its upstream {upstream} when it started; \
                         check the network, then {start}"
                    ),
                };
                return Check::fail(name, detail, fix);
            }
            detail
        } else {
            format!("{} is {}", spec.container, c.state)
        };
        return Check::fail(
            name,
            why,
            format!("{start}; `drcache logs {reg}` shows why it stopped"),
        );
    }
    let probe = inputs
        .probes
        .iter()
        .find(|(r, _)| r == reg)
        .map(|(_, p)| p.clone())
        .unwrap_or(Probe::Unreachable("not probed".into()));
    let addr = spec.probe_addr();
    match probe {
        Probe::Ready => {}
        Probe::Status(code) => {
            return Check::fail(
                name,
                format!("running, but http://{addr}/v2/ answers {code}"),
                format!("`drcache logs {reg}`; {start} recreates it if its configuration changed"),
            )
        }
        Probe::Unreachable(why) => {
            let fix = match silent {
                Some(silence) => format!(
                    "the registry may hang on its upstream {upstream}, which does not answer \
                     this host either ({silence}): {start} falls back to offline mode \
                     (or `drcache start --offline {reg}`)"
                ),
                None => format!("`drcache logs {reg}`, then `drcache stop {reg}` and {start}"),
            };
            return Check::fail(
                name,
                format!("running, but http://{addr}/v2/ does not answer: {why}"),
                fix,
            );
        }
    }
    match mode_of(c.label(LABEL_MODE)) {
        Some(Mode::Proxy) => {}
        Some(Mode::Offline) => {
            let fix = match silent {
                Some(silence) => format!(
                    "its upstream {upstream} does not answer this host ({silence}): offline \
                     mode is what serves now; {start} returns it to proxy mode once it answers"
                ),
                None => format!("{start} returns it to proxy mode"),
            };
            return Check::fail(
                name,
                "answers, but runs in offline mode: it serves what it has and fetches nothing new",
                fix,
            );
        }
        None => {
            return Check::fail(
                name,
                "answers, but was not created by drcache (no mode label)",
                format!("{start} recreates it and keeps its cached data"),
            )
        }
    }
    let serving = format!("running, ready on {addr}, proxy of {upstream}");
    if let Some((_, why)) = inputs.credentials_unknown.iter().find(|(r, _)| r == reg) {
        // Its login is part of its definition: without it, no verdict.
        return Check::note(
            name,
            format!("{serving}; whether its upstream login is current cannot be told here: {why}"),
            "run `drcache doctor` where `drcache start` finds the credentials",
        );
    }
    if c.label(LABEL_HASH) != Some(spec.config_hash().as_str()) {
        return Check::fail(
            name,
            "answers, but was created with another configuration (or by another tool)",
            format!("{start} recreates it and keeps its cached data"),
        );
    }
    Check::pass(name, serving)
}

/// Registry 2.x keeps proxied content 7 days after it was fetched (a pull
/// does not renew it), whatever drcache asks: a note, since the image is
/// the user's choice.
fn expiry_note(inputs: &Inputs, spec: &CacheSpec) -> Option<Check> {
    let reg = &spec.registry.name;
    let format = inputs.formats.iter().find(|(r, _)| r == reg)?.1;
    (format == Format::Registry28).then(|| {
        Check::note(
            format!("expiry {reg}"),
            format!(
                "{} is registry 2.x, which deletes cached images 7 days after they were \
                 fetched: offline pulls of older images fail",
                spec.image
            ),
            "use registry 3 (`image = \"docker.io/library/registry:3\"`, the default): \
             drcache turns its expiry off, so it keeps what it fetched",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::checks as group;
    use super::*;
    use crate::doctor::testing::{container, inputs, local_checks, specs};
    use crate::podman::Container;
    use crate::reconcile::UPSTREAM_PROBE_TIMEOUT;

    #[test]
    fn healthy_caches_pass() {
        let s = specs();
        let containers = s
            .iter()
            .map(|spec| container(spec, "running", "proxy", &spec.config_hash()))
            .collect();
        let probes = s
            .iter()
            .map(|spec| (spec.registry.name.clone(), Probe::Ready))
            .collect();
        let checks = local_checks(&inputs(containers, probes));
        assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "podman installed",
                "podman answers",
                "cache quay.io",
                "cache docker.io",
                "port 5051",
                "port 5052"
            ]
        );
        assert_eq!(checks[0].detail, "/usr/bin/podman (version 4.3.1)");
        assert!(checks[4]
            .detail
            .contains("published by drenv-cache-quay-io"));
    }

    #[test]
    fn each_cache_problem_has_its_fix() {
        let s = specs();
        let mut exited = container(&s[0], "exited", "proxy", &s[0].config_hash());
        exited.exit_code = 2;
        let offline = container(&s[1], "running", "offline", &s[1].config_hash());
        let mut i = inputs(
            vec![exited, offline],
            vec![("docker.io".into(), Probe::Ready)],
        );
        let panic = r#"panic: Get "https://quay.io/v2/": dial tcp: connection refused"#;
        i.last_logs = vec![("quay.io".into(), panic.into())];
        let checks = group(&i);
        assert!(!checks[0].ok);
        assert_eq!(
            checks[0].detail,
            format!("drenv-cache-quay-io exited with status 2: {panic}")
        );
        let fix = checks[0].fix.as_deref().unwrap();
        assert!(
            fix.contains("could not reach its upstream https://quay.io"),
            "{fix}"
        );
        assert!(fix.contains("drcache start quay.io"), "{fix}");
        assert!(
            checks[1].detail.contains("offline mode"),
            "{}",
            checks[1].detail
        );

        let stale = container(&s[0], "running", "proxy", "0000");
        let unready = container(&s[1], "running", "proxy", &s[1].config_hash());
        let i = inputs(
            vec![stale, unready],
            vec![
                ("quay.io".into(), Probe::Ready),
                (
                    "docker.io".into(),
                    Probe::Unreachable("connection refused".into()),
                ),
            ],
        );
        let checks = group(&i);
        assert!(
            checks[0].detail.contains("another configuration"),
            "{checks:#?}"
        );
        assert!(checks[1]
            .detail
            .contains("does not answer: connection refused"));
        assert!(checks[1]
            .fix
            .as_deref()
            .unwrap()
            .contains("drcache logs docker.io"));

        let i = inputs(vec![], vec![]);
        let checks = group(&i);
        assert_eq!(checks[0].detail, "drenv-cache-quay-io does not exist");
    }

    #[test]
    fn a_silent_upstream_turns_the_fix_to_offline_mode() {
        let s = specs();
        let mut exited = container(&s[0], "exited", "proxy", &s[0].config_hash());
        exited.exit_code = 2;
        let hung = container(&s[1], "running", "proxy", &s[1].config_hash());
        let mut i = inputs(
            vec![exited, hung],
            vec![("docker.io".into(), Probe::Unreachable("timed out".into()))],
        );
        i.last_logs = vec![(
            "quay.io".into(),
            r#"panic: Get "https://quay.io/v2/": dial tcp: lookup quay.io: no such host"#.into(),
        )];
        i.upstreams = vec![
            ("quay.io".into(), Err(Silence::Dns("quay.io".into()))),
            (
                "docker.io".into(),
                Err(Silence::Timeout(UPSTREAM_PROBE_TIMEOUT)),
            ),
        ];
        let checks = group(&i);
        assert_eq!(
            checks[0].fix.as_deref(),
            Some(
                "its upstream https://quay.io still does not answer this host (DNS: quay.io does \
                 not resolve): `drcache start --offline quay.io` serves what is cached until it does"
            )
        );
        assert_eq!(
            checks[1].fix.as_deref(),
            Some(
                "the registry may hang on its upstream https://registry-1.docker.io, which does \
                 not answer this host either (timeout: no answer within 3 s): `drcache start \
                 docker.io` falls back to offline mode (or `drcache start --offline docker.io`)"
            )
        );
        // An offline cache whose upstream answers again: back to proxy mode.
        let offline = container(&s[0], "running", "offline", &s[0].config_hash());
        let mut i = inputs(vec![offline], vec![("quay.io".into(), Probe::Ready)]);
        i.upstreams = vec![("quay.io".into(), Ok(()))];
        assert_eq!(
            group(&i)[0].fix.as_deref(),
            Some("`drcache start quay.io` returns it to proxy mode")
        );
    }

    #[test]
    fn doctor_hashes_like_start_and_says_when_it_cannot() {
        let mut s = specs();
        s[0].credentials = Some(crate::credentials::Credentials {
            username: "u".into(),
            password: "p".into(),
        });
        // The container start made: its label includes the login.
        let with_login = container(&s[0], "running", "proxy", &s[0].config_hash());
        let ready = vec![("quay.io".into(), Probe::Ready)];
        let mut i = inputs(vec![with_login.clone()], ready.clone());
        i.specs = s.clone();
        let checks = group(&i);
        assert!(checks[0].ok && !checks[0].is_note(), "{checks:#?}");
        // Without the credentials (env var not set here): a note, not a failure.
        let mut i = inputs(vec![with_login], ready);
        i.credentials_unknown = vec![(
            "quay.io".into(),
            "quay.io: environment variable Q_USER is not set".into(),
        )];
        let checks = group(&i);
        assert!(checks[0].ok && checks[0].is_note(), "{checks:#?}");
        assert!(checks[0]
            .detail
            .ends_with("whether its upstream login is current cannot be told here: quay.io: environment variable Q_USER is not set"));
    }

    #[test]
    fn registry_2_gets_an_expiry_note_and_registry_3_none() {
        let s = specs();
        let containers: Vec<Container> = s
            .iter()
            .map(|spec| container(spec, "running", "proxy", &spec.config_hash()))
            .collect();
        let probes: Vec<(String, Probe)> = s
            .iter()
            .map(|spec| (spec.registry.name.clone(), Probe::Ready))
            .collect();
        let mut i = inputs(containers, probes);
        i.formats = vec![
            ("quay.io".into(), Format::Registry28),
            ("docker.io".into(), Format::Registry3),
        ];
        let checks = group(&i);
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["cache quay.io", "expiry quay.io", "cache docker.io"]
        );
        assert!(checks[1].ok && checks[1].is_note());
        assert!(checks[1]
            .detail
            .contains("deletes cached images 7 days after they were fetched"));
    }
}
