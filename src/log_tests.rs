//! The upstream-failure detection of `reconcile` against real registry logs:
//! a healthy proxy names its upstream too, only the panic means the upstream
//! could not be reached.

use crate::reconcile::upstream_failure;

fn fixture(rel: &str) -> String {
    let path = format!("{}/tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn a_healthy_proxy_log_naming_its_upstream_is_no_failure() {
    let log = fixture("registry/registry-2.8.2-log-proxy-healthy.txt");
    let upstream = "http://host.containers.internal:27871";
    // The line that names the upstream without any failure.
    assert!(
        log.contains(
            "msg=\"Registry configured as a proxy cache to http://host.containers.internal:27871\""
        ),
        "{log}"
    );
    assert_eq!(upstream_failure(&log, upstream), None);
}

#[test]
fn the_panic_line_of_an_unreachable_upstream_is_the_reason() {
    // registry 3.1.1 after its upstream went away: it panics at every start.
    let log = fixture("registry3/registry-3.1.1-log-upstream-unreachable.txt");
    assert_eq!(
        upstream_failure(&log, "http://host.containers.internal:16100").as_deref(),
        Some(
            "panic: Get \"http://host.containers.internal:16100/v2/\": dial tcp 10.88.0.1:16100: \
             connect: connection refused"
        )
    );
    // The panic of another upstream is not this cache's failure.
    assert_eq!(
        upstream_failure(&log, "http://host.containers.internal:16101"),
        None
    );
    // A non-panic line naming the upstream (as every proxy prints at
    // start), next to a panic about something else, is no failure either.
    let healthy = fixture("registry/registry-2.8.2-log-proxy-healthy.txt");
    let other_panic = format!("{healthy}panic: runtime error: index out of range\n");
    assert_eq!(
        upstream_failure(&other_panic, "http://host.containers.internal:27871"),
        None
    );
}
