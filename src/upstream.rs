//! Asking an upstream registry, from this host, whether it answers at all.
//!
//! A proxy registry checks its upstream once at start with no timeout: when
//! the upstream refuses or cannot be resolved it panics (that is in its log),
//! but when the upstream accepts and never answers, or drops packets (a
//! captive portal, a half-up VPN), it hangs before it listens. drcache then
//! asks the upstream itself with a short deadline, to tell "the cache is
//! slow" from "the upstream is gone".
//!
//! The question is "does anything answer", not "is it a registry": the
//! probe connects, sends a plain `GET /v2/` and waits for the first byte or
//! for the peer to close. A TLS port answers that too (Go's TLS server sends
//! an HTTP 400, others an alert or a close), so no TLS stack is needed.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Why an upstream did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Silence {
    /// The name does not resolve (no network, no DNS).
    Dns(String),
    /// Nothing listens there (or a firewall rejects).
    Refused,
    /// No answer within the deadline (dropped packets, a peer that hangs).
    Timeout(Duration),
    /// Any other network error.
    Other(String),
}

impl std::fmt::Display for Silence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Silence::Dns(host) => write!(f, "DNS: {host} does not resolve"),
            Silence::Refused => f.write_str("connection refused"),
            Silence::Timeout(limit) => {
                write!(f, "timeout: no answer within {} s", limit.as_secs_f64())
            }
            Silence::Other(e) => f.write_str(e),
        }
    }
}

/// Host and port of an upstream URL (`https://quay.io` -> `quay.io:443`).
/// The names containers use for their host mean this host here.
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let (host, port) = crate::netaddr::split_authority(authority)?;
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    let host = match host {
        "host.containers.internal" | "host.docker.internal" => "127.0.0.1",
        other => other,
    };
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// Resolve with a deadline: the system resolver has none of its own.
fn resolve(host: &str, port: u16, limit: Duration) -> Result<Vec<SocketAddr>, Silence> {
    let (tx, rx) = mpsc::channel();
    let target = format!("{host}:{port}");
    std::thread::spawn(move || {
        let _ = tx.send(target.to_socket_addrs().map(Iterator::collect::<Vec<_>>));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(_) => Err(Silence::Dns(host.to_string())),
        Err(_) => Err(Silence::Timeout(limit)),
    }
}

/// Whether the upstream at `url` answers within `limit`.
pub fn answers(url: &str, limit: Duration) -> Result<(), Silence> {
    let started = Instant::now();
    let (host, port) =
        host_port(url).ok_or_else(|| Silence::Other(format!("cannot read the URL {url:?}")))?;
    let addrs = resolve(&host, port, limit)?;
    let remaining = || {
        limit
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1))
    };
    let mut last = Silence::Timeout(limit);
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, remaining()) {
            Ok(stream) => return first_byte(stream, &host, remaining(), limit),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => last = Silence::Refused,
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
                last = Silence::Timeout(limit)
            }
            Err(e) => last = Silence::Other(e.to_string()),
        }
        if started.elapsed() >= limit {
            break;
        }
    }
    Err(last)
}

fn first_byte(
    mut stream: TcpStream,
    host: &str,
    remaining: Duration,
    limit: Duration,
) -> Result<(), Silence> {
    let request = format!("GET /v2/ HTTP/1.0\r\nHost: {host}\r\n\r\n");
    let _ = stream.set_write_timeout(Some(remaining));
    let _ = stream.write_all(request.as_bytes());
    let _ = stream.set_read_timeout(Some(remaining));
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        // A byte, or the peer closing: something is there and decided.
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(()),
        Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
            Err(Silence::Timeout(limit))
        }
        Err(e) => Err(Silence::Other(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn reads_host_and_port_of_upstream_urls() {
        let hp = |u: &str| host_port(u).map(|(h, p)| format!("{h} {p}"));
        assert_eq!(hp("https://quay.io").as_deref(), Some("quay.io 443"));
        assert_eq!(
            hp("https://registry-1.docker.io/").as_deref(),
            Some("registry-1.docker.io 443")
        );
        assert_eq!(hp("http://10.0.0.1:5000").as_deref(), Some("10.0.0.1 5000"));
        assert_eq!(hp("http://[::1]:5000").as_deref(), Some("::1 5000"));
        assert_eq!(hp("http://[::1]").as_deref(), Some("::1 80"));
        assert_eq!(
            hp("http://host.containers.internal:15100").as_deref(),
            Some("127.0.0.1 15100")
        );
        assert_eq!(hp("ftp://x"), None);
        assert_eq!(hp("quay.io"), None);
    }

    /// A peer on a loopback port that accepts one connection, reads the
    /// request and then does `then` with the connection.
    fn serve_once(
        then: impl FnOnce(TcpStream) + Send + 'static,
    ) -> (u16, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf);
            then(s);
        });
        (port, server)
    }

    #[test]
    fn a_listener_that_answers_answers() {
        let (port, server) = serve_once(|mut s| {
            s.write_all(b"HTTP/1.0 401 Unauthorized\r\n\r\n").unwrap();
        });
        answers(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2)).unwrap();
        server.join().unwrap();
    }

    #[test]
    fn a_peer_that_accepts_and_never_answers_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // The kernel accepts into the backlog; nobody ever reads or writes.
        let started = Instant::now();
        let result = answers(
            &format!("http://127.0.0.1:{port}"),
            Duration::from_millis(300),
        );
        assert_eq!(result, Err(Silence::Timeout(Duration::from_millis(300))));
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(
            result.unwrap_err().to_string(),
            "timeout: no answer within 0.3 s"
        );
        drop(listener);
    }

    #[test]
    fn a_closed_port_is_refused_and_a_bad_name_is_dns() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert_eq!(
            answers(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2)),
            Err(Silence::Refused)
        );
        assert_eq!(
            answers("https://nothing.invalid", Duration::from_secs(5)),
            Err(Silence::Dns("nothing.invalid".into()))
        );
    }

    #[test]
    fn a_full_accept_queue_times_out_and_an_unroutable_address_is_told_apart() {
        use std::os::fd::AsRawFd;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // Linux lets listen() shrink the backlog: one connection fills the
        // queue, and the kernel drops every later SYN (a silent upstream).
        // SAFETY: a valid listening socket's descriptor.
        assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
        let _queued = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let limit = Duration::from_millis(300);
        assert_eq!(
            answers(&format!("http://127.0.0.1:{port}"), limit),
            Err(Silence::Timeout(limit))
        );
        // The kernel refuses a TCP connect to the broadcast address at once
        // (no packet leaves): neither refused nor a timeout.
        match answers("http://255.255.255.255:5000", Duration::from_secs(2)) {
            Err(Silence::Other(message)) => {
                assert!(message.contains("unreachable"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_peer_that_resets_the_connection_answers() {
        use std::os::fd::AsRawFd;
        let (port, server) = serve_once(|s| {
            // A zero linger time makes close() send a reset.
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: a valid socket and a linger struct of the given size.
            let rc = unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0);
        });
        let result = answers(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2));
        server.join().unwrap();
        assert_eq!(result, Ok(()));
    }
}
