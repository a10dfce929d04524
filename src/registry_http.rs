//! Talking to the cache registries over HTTP: readiness probes, the debug
//! port's counters, the catalog, and manifest and blob downloads for `warm`.

use std::io::Read;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::digest::sha256_digest;
use crate::metrics::{self, DebugVars, Format, Metrics, ProxyStats};

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
    match agent(REQUEST_TIMEOUT)
        .get(format!("http://{addr}/v2/"))
        .call()
    {
        Ok(resp) if resp.status().as_u16() == 200 => Probe::Ready,
        Ok(resp) => Probe::Status(resp.status().as_u16()),
        Err(e) => Probe::Unreachable(short_reason(&e.to_string())),
    }
}

/// "io: Connection refused (os error 111)" -> "connection refused".
fn short_reason(error: &str) -> String {
    let lower = error.to_ascii_lowercase();
    for known in [
        "connection refused",
        "connection reset",
        "timed out",
        "timeout",
    ] {
        if lower.contains(known) {
            return known.replace("timeout", "timed out");
        }
    }
    error.to_string()
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

/// A cache's proxy counters: both pages of its debug port, read side by
/// side and combined.
pub fn proxy_stats(debug_addr: &str) -> Result<ProxyStats, String> {
    let (metrics, vars) = std::thread::scope(|s| {
        let vars = s.spawn(|| get_text(debug_addr, "/debug/vars"));
        let metrics = get_text(debug_addr, "/metrics");
        (metrics, vars.join().expect("debug/vars reader panicked"))
    });
    let metrics = Metrics::parse(&metrics?).map_err(|e| format!("/metrics: {e}"))?;
    // 2.8 needs /debug/vars; registry 3 only falls back to it.
    let vars = match vars.and_then(|v| DebugVars::parse(&v)) {
        Ok(v) => Some(v),
        Err(e) if Format::detect(&metrics) == Some(Format::Registry28) => {
            return Err(format!("/debug/vars: {e}"))
        }
        Err(_) => None,
    };
    metrics::proxy_stats(&metrics, vars.as_ref())
}

/// The body of `GET http://{addr}{path}` when it answers 200.
pub fn get_text(addr: &str, path: &str) -> Result<String, String> {
    get_200(&agent(REQUEST_TIMEOUT), &format!("http://{addr}{path}")).map(|(body, _)| body)
}

/// `GET url` that must answer 200: its body (up to [`METRICS_LIMIT`]) and
/// its `Link` header. Errors name the URL.
fn get_200(agent: &ureq::Agent, url: &str) -> Result<(String, Option<String>), String> {
    let mut resp = agent
        .get(url)
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(format!("GET {url}: HTTP {status}"));
    }
    let link = resp
        .headers()
        .get("link")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp
        .body_mut()
        .with_config()
        .limit(METRICS_LIMIT)
        .read_to_string()
        .map_err(|e| format!("GET {url}: {e}"))?;
    Ok((body, link))
}

/// Enough for any `/metrics` or `/debug/vars` page (they are tens of KB).
const METRICS_LIMIT: u64 = 16 * 1024 * 1024;
/// Repositories asked for per catalog page.
const CATALOG_PAGE: usize = 1000;
/// A bound on catalog pages, against a registry whose `Link` never ends.
const CATALOG_MAX_PAGES: usize = 1000;

/// The target of a `Link: <...>; rel="next"` header, if any.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let rel_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        rel_next.then(|| target.to_string())
    })
}

/// Every repository the registry at `addr` holds, following `Link` pages.
pub fn catalog(addr: &str) -> Result<Vec<String>, String> {
    #[derive(serde::Deserialize)]
    struct Page {
        #[serde(default)]
        repositories: Option<Vec<String>>,
    }
    let agent = agent(REQUEST_TIMEOUT);
    let mut path = format!("/v2/_catalog?n={CATALOG_PAGE}");
    let mut repositories = Vec::new();
    for _ in 0..CATALOG_MAX_PAGES {
        let url = if path.starts_with("http://") {
            path.clone()
        } else {
            format!("http://{addr}{path}")
        };
        let (body, link) = get_200(&agent, &url)?;
        let next = link.as_deref().and_then(next_link);
        let page: Page =
            serde_json::from_str(&body).map_err(|e| format!("GET {url}: not a catalog: {e}"))?;
        let names = page.repositories.unwrap_or_default();
        let empty = names.is_empty();
        repositories.extend(names);
        match next {
            Some(next) if !empty => path = next,
            _ => return Ok(repositories),
        }
    }
    Err(format!(
        "the catalog of {addr} has more than {CATALOG_MAX_PAGES} pages"
    ))
}

/// Media types `warm` accepts for manifests, best first.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Manifests are small; anything bigger than this is not one.
const MANIFEST_LIMIT: u64 = 8 * 1024 * 1024;

/// A manifest as served, with the digest of its bytes.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// From `Content-Type`, without parameters.
    pub content_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

/// A client of one registry for downloads that may be large and slow (a
/// cache miss streams from the upstream): no overall deadline, but a bound
/// on each wait for data.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    pub fn new(addr: &str) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            // The proxy fetches a missed manifest from the upstream first.
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .timeout_per_read(Some(Duration::from_secs(120)))
            .max_idle_connections_per_host(16)
            .build()
            .into();
        Client {
            agent,
            base: format!("http://{addr}"),
        }
    }

    fn error_body(resp: &mut ureq::http::Response<ureq::Body>) -> String {
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .unwrap_or_default();
        // The registry's error JSON: {"errors":[{"code","message",...}]}
        serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                let e = v.pointer("/errors/0")?;
                Some(format!(
                    "{}: {}",
                    e.get("code")?.as_str()?,
                    e.get("message")?.as_str()?
                ))
            })
            .unwrap_or_else(|| text.trim().chars().take(200).collect())
    }

    /// `GET /v2/<repo>/manifests/<reference>`; the digest is checked against
    /// `Docker-Content-Digest`, and against `reference` when that is a digest.
    pub fn manifest(&self, repo: &str, reference: &str) -> Result<FetchedManifest, String> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let mut resp = self
            .agent
            .get(&url)
            .header("Accept", MANIFEST_ACCEPT)
            .call()
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let why = Self::error_body(&mut resp);
            return Err(format!("manifest {repo}:{reference}: HTTP {status} {why}"));
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header("content-type")
            .map(|t| t.split(';').next().unwrap_or("").trim().to_string())
            .unwrap_or_default();
        let served_digest = header("docker-content-digest");
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MANIFEST_LIMIT)
            .read_to_vec()
            .map_err(|e| format!("GET {url}: {e}"))?;
        let digest = sha256_digest(&bytes);
        for expected in [
            served_digest.as_deref(),
            reference.contains(':').then_some(reference),
        ]
        .into_iter()
        .flatten()
        {
            if expected.starts_with("sha256:") && expected != digest {
                return Err(format!(
                    "manifest {repo}@{expected}: digest mismatch, the bytes hash to {digest}"
                ));
            }
        }
        Ok(FetchedManifest {
            content_type,
            digest,
            bytes,
        })
    }

    /// `GET /v2/<repo>/blobs/<digest>`, hashing and discarding the bytes;
    /// `progress` gets each chunk's length. Returns the bytes read.
    pub fn blob(
        &self,
        repo: &str,
        digest: &str,
        size: Option<u64>,
        progress: &dyn Fn(u64),
    ) -> Result<u64, String> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let mut resp = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let why = Self::error_body(&mut resp);
            return Err(format!("blob {repo}@{digest}: HTTP {status} {why}"));
        }
        let mut reader = resp.body_mut().as_reader();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = reader.read(&mut buf).map_err(|e| {
                format!("blob {repo}@{digest}: read failed after {total} bytes: {e}")
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            total += n as u64;
            progress(n as u64);
        }
        let actual = format!("sha256:{:x}", hasher.finalize());
        if digest.starts_with("sha256:") && actual != digest {
            return Err(format!(
                "blob {repo}@{digest}: digest mismatch, the bytes hash to {actual}"
            ));
        }
        if let Some(size) = size.filter(|s| *s != total) {
            return Err(format!(
                "blob {repo}@{digest}: {total} bytes, the manifest says {size}"
            ));
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
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
        assert_eq!(
            probe(&format!("127.0.0.1:{port}")),
            Probe::Unreachable("connection refused".into())
        );
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

    /// A loopback HTTP server answering every request with `respond(request
    /// line, request headers)` -> (status line, extra headers, body).
    fn serve(respond: impl Fn(&str, &str) -> (String, String, Vec<u8>) + Send + 'static) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&request).into_owned();
                let (line, headers) = request.split_once("\r\n").unwrap_or((&request, ""));
                let (status, extra, body) = respond(line, headers);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            }
        });
        addr
    }

    #[test]
    fn next_link_reads_rel_next_only() {
        assert_eq!(
            next_link(r#"</v2/_catalog?last=test%2Fimg&n=1>; rel="next""#).as_deref(),
            Some("/v2/_catalog?last=test%2Fimg&n=1")
        );
        assert_eq!(next_link(r#"</a>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn catalog_follows_pages() {
        let addr = serve(|line, _| {
            let (body, link) = if line.contains("last=b") {
                (r#"{"repositories":["c"]}"#, String::new())
            } else {
                (
                    r#"{"repositories":["a","b"]}"#,
                    "Link: </v2/_catalog?last=b&n=2>; rel=\"next\"\r\n".to_string(),
                )
            };
            ("200 OK".into(), link, body.as_bytes().to_vec())
        });
        assert_eq!(catalog(&addr).unwrap(), ["a", "b", "c"]);
    }

    #[test]
    fn catalog_error_names_the_url_and_status() {
        let addr = serve(|_, _| ("401 Unauthorized".into(), String::new(), b"{}".to_vec()));
        let err = catalog(&addr).unwrap_err();
        assert!(err.contains("/v2/_catalog?n=1000: HTTP 401"), "{err}");
    }

    #[test]
    fn manifest_sends_accept_and_checks_the_digest() {
        let body = br#"{"schemaVersion":2}"#.to_vec();
        let digest = sha256_digest(&body);
        let served = body.clone();
        let served_digest = digest.clone();
        let addr = serve(move |_, headers| {
            assert!(
                headers.contains("application/vnd.oci.image.index.v1+json")
                    && headers.contains("application/vnd.docker.distribution.manifest.v2+json"),
                "{headers}"
            );
            (
                "200 OK".into(),
                format!(
                    "Content-Type: application/vnd.oci.image.manifest.v1+json\r\nDocker-Content-Digest: {served_digest}\r\n"
                ),
                served.clone(),
            )
        });
        let client = Client::new(&addr);
        let m = client.manifest("test/img", "1").unwrap();
        assert_eq!(m.digest, digest);
        assert_eq!(m.content_type, "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(m.bytes, body);
        assert!(client.manifest("test/img", &digest).is_ok());
        let wrong = format!("sha256:{}", "0".repeat(64));
        let err = client.manifest("test/img", &wrong).unwrap_err();
        assert!(err.contains("digest mismatch"), "{err}");
    }

    #[test]
    fn manifest_error_shows_the_registry_error() {
        let addr = serve(|_, _| {
            (
                "404 Not Found".into(),
                String::new(),
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":"x"}]}"#.to_vec(),
            )
        });
        let err = Client::new(&addr).manifest("test/img", "9").unwrap_err();
        assert_eq!(
            err,
            "manifest test/img:9: HTTP 404 MANIFEST_UNKNOWN: manifest unknown"
        );
    }

    #[test]
    fn blob_is_hashed_counted_and_checked() {
        let data = vec![7u8; 300_000];
        let digest = sha256_digest(&data);
        let served = data.clone();
        let addr = serve(move |_, _| ("200 OK".into(), String::new(), served.clone()));
        let client = Client::new(&addr);
        let seen = std::sync::atomic::AtomicU64::new(0);
        let progress = |n: u64| {
            seen.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        };
        assert_eq!(
            client.blob("r", &digest, Some(300_000), &progress).unwrap(),
            300_000
        );
        assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 300_000);
        let err = client.blob("r", &digest, Some(5), &|_| {}).unwrap_err();
        assert!(err.contains("300000 bytes, the manifest says 5"), "{err}");
        let other = sha256_digest(b"other");
        let err = client.blob("r", &other, None, &|_| {}).unwrap_err();
        assert!(err.contains("digest mismatch"), "{err}");
    }
}
