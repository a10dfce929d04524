//! Talking to the cache registries over HTTP: readiness probes.

use std::time::{Duration, Instant};

/// Poll interval while a fresh registry normally comes up: it answers about
/// 20 ms after `podman run` returns (measured on loopback), so a coarse
/// interval would be most of the wait. A refused probe costs microseconds.
const FAST_POLL: Duration = Duration::from_millis(10);
/// How long to poll fast before backing off to [`SLOW_POLL`].
const FAST_POLL_FOR: Duration = Duration::from_secs(1);
const SLOW_POLL: Duration = Duration::from_millis(100);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

/// The result of one `GET /v2/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Ready,
    /// Answered, but not with 200.
    Status(u16),
    /// No answer: refused, reset or timed out.
    Unreachable(String),
}

impl Probe {
    pub fn is_ready(&self) -> bool {
        matches!(self, Probe::Ready)
    }
}

/// One readiness probe of the registry at `addr` (`host:port`).
pub fn probe(addr: &str) -> Probe {
    match agent(REQUEST_TIMEOUT).get(format!("http://{addr}/v2/")).call() {
        Ok(resp) if resp.status().as_u16() == 200 => Probe::Ready,
        Ok(resp) => Probe::Status(resp.status().as_u16()),
        Err(e) => Probe::Unreachable(e.to_string()),
    }
}

/// Probe until ready or `timeout` passes; `keep_waiting` may end the wait
/// early (e.g. when the container has exited). Returns the last probe.
pub fn wait_ready(addr: &str, timeout: Duration, keep_waiting: &dyn Fn() -> bool) -> Probe {
    let start = Instant::now();
    let deadline = start + timeout;
    loop {
        let result = probe(addr);
        if result.is_ready() || Instant::now() >= deadline || !keep_waiting() {
            return result;
        }
        std::thread::sleep(
            poll_interval(start.elapsed()).min(deadline.saturating_duration_since(Instant::now())),
        );
    }
}

/// The pause before the next probe, `waited` into the wait.
fn poll_interval(waited: Duration) -> Duration {
    if waited < FAST_POLL_FOR {
        FAST_POLL
    } else {
        SLOW_POLL
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A one-shot HTTP server on loopback answering with `status`.
    fn serve_once(status: &str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let status = status.to_string();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
            );
        });
        addr
    }

    #[test]
    fn probe_reads_the_status() {
        assert_eq!(probe(&serve_once("200 OK")), Probe::Ready);
        assert_eq!(probe(&serve_once("401 Unauthorized")), Probe::Status(401));
    }

    #[test]
    fn probe_of_a_closed_port_is_unreachable() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        assert!(matches!(
            probe(&format!("127.0.0.1:{port}")),
            Probe::Unreachable(_)
        ));
    }

    #[test]
    fn polls_fast_at_first_then_backs_off() {
        assert_eq!(poll_interval(Duration::ZERO), FAST_POLL);
        assert_eq!(poll_interval(Duration::from_millis(999)), FAST_POLL);
        assert_eq!(poll_interval(Duration::from_secs(1)), SLOW_POLL);
        assert_eq!(poll_interval(Duration::from_secs(29)), SLOW_POLL);
    }

    #[test]
    fn wait_stops_early_when_told() {
        let start = Instant::now();
        let result = wait_ready("127.0.0.1:9", Duration::from_secs(20), &|| false);
        assert!(!result.is_ready());
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
