//! The real components of the end-to-end tests: the podman test environment
//! prepared by `scripts/test-env.sh`, a local upstream registry, containerd.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::time::{Duration, Instant};

/// `DRCACHE_TEST_SKIP_REAL=1` opts a run out of the real-component tests
/// whose components are missing; without it such a test fails.
const SKIP_REAL: &str = "DRCACHE_TEST_SKIP_REAL";
/// When set, each opted-out test appends a line to this file (scripts/test
/// lists them at the end of its run).
const OPTED_OUT_FILE: &str = "DRCACHE_TEST_OPTED_OUT_FILE";

/// `test` cannot run here: `what` is missing. Fails the test, naming what is
/// missing and the command that installs it, unless the run opted out with
/// DRCACHE_TEST_SKIP_REAL=1; then the test is recorded as opted out (said at
/// once on the terminal, and counted and listed when the test binary exits)
/// and the caller returns without running it.
pub fn missing(test: &str, what: &str) {
    if std::env::var(SKIP_REAL).as_deref() != Ok("1") {
        panic!(
            "{test} needs real components: {what}\n\
             install and prepare them with `scripts/test` (as root, on Debian or Ubuntu), \
             or opt out of the real-component tests with {SKIP_REAL}=1"
        );
    }
    opted_out(test, what);
}

/// Set by scripts/tier-rootless.sh: this run is knowingly without root, so
/// the parts of tests that need root are opted out (and listed), not failed.
pub const ROOTLESS_TIER: &str = "DRCACHE_TEST_ROOTLESS_TIER";

/// Record `test` as opted out: said at once on the terminal, appended to
/// DRCACHE_TEST_OPTED_OUT_FILE, and counted and listed when the test binary
/// exits.
fn opted_out(test: &str, what: &str) {
    // libtest names the thread after the test's full path.
    let line = match std::thread::current().name() {
        Some(path) if path.ends_with(test) => format!("{path}: {what}"),
        Some(path) if path != "main" => format!("{path} ({test}): {what}"),
        _ => format!("{test}: {what}"),
    };
    // Straight to the terminal: libtest captures eprintln!, not this.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "OPTED OUT, NOT RUN: {line}");
    if let Some(file) = std::env::var_os(OPTED_OUT_FILE) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .expect("cannot write the opted-out list");
        writeln!(f, "{line}").unwrap();
    }
    let mut list = OPTED_OUT.lock().unwrap();
    if list.is_empty() {
        // SAFETY: registers a plain extern "C" function without arguments.
        unsafe { libc::atexit(print_opted_out) };
    }
    list.push(line);
}

static OPTED_OUT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// At exit: how many tests were opted out and which; libtest counted them
/// as passed, this says they did not run.
extern "C" fn print_opted_out() {
    let list = OPTED_OUT.lock().map(|l| l.clone()).unwrap_or_default();
    use std::io::Write;
    let mut err = std::io::stderr();
    let _ = writeln!(
        err,
        "\n{} real-component test(s) OPTED OUT with {SKIP_REAL}=1, NOT RUN (libtest shows them as ok):",
        list.len()
    );
    for line in list {
        let _ = writeln!(err, "  {line}");
    }
}

/// The real-component environment, or None when it is missing and the run
/// opted out (see [`missing`]).
pub fn real_env(test: &str) -> Option<RealEnv> {
    let mut missing_parts: Vec<String> = ["CONTAINERS_CONF", "DRCACHE_TEST_IMAGE"]
        .into_iter()
        .filter(|v| std::env::var_os(v).is_none())
        .map(|v| format!("{v} is not set (`eval \"$(scripts/test-env.sh)\"` sets it)"))
        .collect();
    for tool in ["podman", "skopeo"] {
        if which(tool).is_none() {
            missing_parts.push(format!("{tool} is not installed"));
        }
    }
    if !missing_parts.is_empty() {
        missing(test, &missing_parts.join("; "));
        return None;
    }
    Some(RealEnv {
        image: std::env::var("DRCACHE_TEST_IMAGE").unwrap(),
    })
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    })
}

pub struct RealEnv {
    /// The registry image built from Debian's docker-registry.
    pub image: String,
}

/// Write `dir/config.toml` for a test: the test registry image, `prefix`,
/// `top` (more top-level lines), and one `[[registry]]` per (name, port)
/// proxying `upstream`, each with `per_registry` lines added.
pub fn write_config(
    dir: &Path,
    env: &RealEnv,
    prefix: &str,
    upstream: &str,
    registries: &[(&str, u16)],
    top: &str,
    per_registry: &str,
) -> PathBuf {
    let mut text = format!("image = \"{}\"\nprefix = \"{prefix}\"\n{top}\n", env.image);
    for (name, port) in registries {
        text.push_str(&format!(
            "[[registry]]\nname = \"{name}\"\nupstream = \"{upstream}\"\nport = {port}\n{per_registry}\n"
        ));
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Run podman and return its stdout; panics with its stderr on failure.
/// `podman` for the tests' own calls, without podman 5's cgroups-v1
/// deprecation warning on stderr (drcache silences it the same way), and
/// with a deadline: podman 4.3 can deadlock under parallel removals, and a
/// hung helper call must fail its test, not hang the run.
pub fn podman_cmd() -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["--kill-after=5", "120", "podman"])
        .env("PODMAN_IGNORE_CGROUPSV1_WARNING", "1");
    cmd
}

pub fn podman(args: &[&str]) -> String {
    let out = podman_cmd().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "podman {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The id of a container.
pub fn container_id(name: &str) -> String {
    podman(&["inspect", "--format", "{{.Id}}", name])
        .trim()
        .to_string()
}

/// The state of a container (`running`, `exited`, ...).
pub fn container_state(name: &str) -> String {
    podman(&["inspect", "--format", "{{.State.Status}}", name])
        .trim()
        .to_string()
}

pub fn podman_ok(args: &[&str]) -> bool {
    podman_cmd()
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The test image `localhost/drcache-test-img:1`: FROM scratch with 2 MB of
/// random bytes, built once per machine.
pub const TEST_IMAGE: &str = "localhost/drcache-test-img:1";

pub fn ensure_test_image() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if podman_ok(&["image", "exists", TEST_IMAGE]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut data = vec![0u8; 2 * 1024 * 1024];
        let mut f = std::fs::File::open("/dev/urandom").unwrap();
        std::io::Read::read_exact(&mut f, &mut data).unwrap();
        std::fs::write(dir.path().join("blob.bin"), data).unwrap();
        std::fs::write(
            dir.path().join("Containerfile"),
            "FROM scratch\nCOPY blob.bin /blob.bin\n",
        )
        .unwrap();
        podman(&[
            "build",
            "-q",
            "-t",
            TEST_IMAGE,
            dir.path().to_str().unwrap(),
        ]);
    });
}

/// Containers, volumes and secrets whose names start with `prefix`, removed
/// when dropped.
pub struct Cleanup {
    pub prefix: String,
}

impl Cleanup {
    pub fn new(prefix: &str) -> Cleanup {
        let c = Cleanup {
            prefix: prefix.to_string(),
        };
        c.remove_all();
        c
    }

    pub fn remove_all(&self) {
        let names = podman(&[
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            &format!("name=^{}", self.prefix),
        ]);
        let names: Vec<&str> = names.split_whitespace().collect();
        if !names.is_empty() {
            let mut args = vec!["rm", "-f", "-v", "--ignore"];
            args.extend(&names);
            let _ = podman_cmd().args(&args).output();
        }
        let volumes = podman(&["volume", "ls", "--format", "{{.Name}}"]);
        let ours: Vec<&str> = volumes
            .split_whitespace()
            .filter(|v| v.starts_with(&self.prefix))
            .collect();
        if !ours.is_empty() {
            // Not `-f`: that removes the containers using a volume too, and
            // podman 4.3 can deadlock it against a container's own cleanup.
            let mut args = vec!["volume", "rm"];
            args.extend(&ours);
            let _ = podman_cmd().args(&args).output();
        }
        let secrets = podman(&["secret", "ls", "--format", "{{.Name}}"]);
        let ours: Vec<&str> = secrets
            .split_whitespace()
            .filter(|s| s.starts_with(&self.prefix))
            .collect();
        if !ours.is_empty() {
            let mut args = vec!["secret", "rm"];
            args.extend(&ours);
            let _ = podman_cmd().args(&args).output();
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.remove_all();
    }
}

/// A plain registry on all interfaces (so caches reach it through
/// host.containers.internal) holding `test/img:1`.
pub struct Upstream {
    pub name: String,
    pub port: u16,
}

impl Upstream {
    pub fn start(env: &RealEnv, name: &str, port: u16) -> Upstream {
        ensure_test_image();
        podman(&[
            "run",
            "-d",
            "--name",
            name,
            "-p",
            &format!("{port}:5000"),
            &env.image,
        ]);
        let up = Upstream {
            name: name.to_string(),
            port,
        };
        wait_http_200(&format!("http://127.0.0.1:{port}/v2/"));
        podman(&[
            "push",
            "-q",
            "--tls-verify=false",
            TEST_IMAGE,
            &format!("docker://127.0.0.1:{port}/test/img:1"),
        ]);
        up
    }

    /// The URL a cache container uses to reach this upstream.
    pub fn url(&self) -> String {
        format!("http://host.containers.internal:{}", self.port)
    }

    /// How many blob downloads the upstream has served, once the count has
    /// settled: registry 2.8 fetches a missed blob a second time to store
    /// it, in the background, after the client got its copy.
    pub fn blob_gets(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = self.blob_gets_now();
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = self.blob_gets_now();
            if now == last || Instant::now() > deadline {
                return now;
            }
            last = now;
        }
    }

    fn blob_gets_now(&self) -> usize {
        let logs = podman_cmd().args(["logs", &self.name]).output().unwrap();
        let text = String::from_utf8_lossy(&logs.stdout).into_owned()
            + &String::from_utf8_lossy(&logs.stderr);
        // The access log line, one per request.
        text.lines()
            .filter(|l| l.contains("\"GET /v2/test/img/blobs/"))
            .count()
    }
}

/// Poll `url` until it answers 200 (curl-free: a raw HTTP/1.0 request).
pub fn wait_http_200(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if http_status(url) == Some(200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} did not answer 200 in time");
}

pub fn http_status(url: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (addr, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).ok()?;
    String::from_utf8_lossy(&buf[..n])
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Copy `image` out of the registry at `addr` with skopeo, into a temp dir.
pub fn skopeo_pull(addr: &str, image: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{addr}/{image}"),
            &format!("dir:{}", dir.path().display()),
        ])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A private containerd from scripts/start-containerd.sh, stopped on drop.
pub struct Containerd {
    dir: PathBuf,
    pub socket: String,
}

impl Containerd {
    pub fn start(dir: &Path) -> Containerd {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/start-containerd.sh");
        let out = Command::new(script).arg(dir).output().unwrap();
        assert!(
            out.status.success(),
            "start-containerd.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Containerd {
            dir: dir.to_path_buf(),
            socket: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        }
    }

    pub fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }
}

impl Containerd {
    /// `ctr images pull --hosts-dir CERTS IMAGE` in a private mount namespace
    /// whose /etc/hosts sends every upstream name where nothing listens:
    /// containerd falls back to `server` when the mirror fails, so a pull can
    /// only succeed through the cache. (Test upstreams are
    /// http://host.containers.internal:PORT, published on every IPv4 address,
    /// hence ::1 for that name.)
    pub fn pull_isolated(&self, certs: &Path, image: &str) -> std::process::Output {
        self.pull_isolated_with(certs, &[], image)
    }

    /// [`Containerd::pull_isolated`] with more `ctr images pull` flags
    /// (e.g. `--platform linux/arm64`).
    pub fn pull_isolated_with(
        &self,
        certs: &Path,
        flags: &[&str],
        image: &str,
    ) -> std::process::Output {
        let hosts = self.dir.join("hosts");
        std::fs::write(
            &hosts,
            "127.0.0.1 localhost\n\
             127.0.0.1 quay.io registry-1.docker.io registry.k8s.io ghcr.io gcr.io\n\
             ::1 host.containers.internal\n",
        )
        .unwrap();
        Command::new("unshare")
            .args([
                "-m",
                "sh",
                "-c",
                "mount --bind \"$1\" /etc/hosts && shift && exec ctr \"$@\"",
                "sh",
            ])
            .arg(&hosts)
            .arg("--address")
            .arg(&self.socket)
            .args(["images", "pull"])
            .args(flags)
            .arg("--hosts-dir")
            .arg(certs)
            .arg(image)
            .output()
            .unwrap()
    }
}

/// What the podman under test can do, where podman versions differ: one
/// named capability per difference instead of version checks in tests.
#[derive(Debug, Clone, Copy)]
pub struct PodmanCaps {
    /// `podman cp` sees files mounted with `--secret type=mount` (4.x); 5.x
    /// copies from the container's root file system without them.
    pub cp_sees_secret_mounts: bool,
}

impl PodmanCaps {
    pub fn detect() -> PodmanCaps {
        let version = podman(&["version", "--format", "{{.Client.Version}}"]);
        let major: u32 = version
            .trim()
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("cannot read the podman version from {version:?}"));
        PodmanCaps {
            cp_sees_secret_mounts: major < 5,
        }
    }
}

/// A file as a running container sees it, secret mounts included.
pub fn read_container_file(container: &str, path: &str) -> String {
    if PodmanCaps::detect().cp_sees_secret_mounts {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("copy");
        podman(&["cp", &format!("{container}:{path}"), copy.to_str().unwrap()]);
        return std::fs::read_to_string(copy).unwrap();
    }
    // Through the container's root as its init process sees it: directly as
    // root, in podman's user namespace when rootless.
    let pid = podman(&["inspect", "--format", "{{.State.Pid}}", container]);
    let file = format!("/proc/{}/root{path}", pid.trim());
    if is_root() {
        std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"))
    } else {
        podman(&["unshare", "cat", &file])
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether this test runs as root, which `what` needs; in the rootless tier
/// that part is opted out (listed, not counted), elsewhere it fails.
pub fn root_available(test: &str, what: &str) -> bool {
    if is_root() {
        return true;
    }
    let reason = format!("needs root ({what})");
    if std::env::var_os(ROOTLESS_TIER).is_some() {
        opted_out(test, &reason);
    } else {
        missing(test, &reason);
    }
    false
}

/// Whether containerd can run here; when it cannot, the test fails, or under
/// DRCACHE_TEST_SKIP_REAL=1 this part of it is recorded as opted out.
pub fn containerd_available(test: &str) -> bool {
    match containerd_missing() {
        None => true,
        Some(reason) if !is_root() && std::env::var_os(ROOTLESS_TIER).is_some() => {
            opted_out(test, &reason);
            false
        }
        Some(reason) => {
            missing(test, &reason);
            false
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("containerd.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

/// The components containerd tests need besides podman, or why they are missing.
fn containerd_missing() -> Option<String> {
    let missing: Vec<&str> = ["containerd", "ctr", "unshare", "mount"]
        .into_iter()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if !missing.is_empty() {
        return Some(format!("not installed: {}", missing.join(", ")));
    }
    let uid = Command::new("id").arg("-u").output().unwrap();
    (String::from_utf8_lossy(&uid.stdout).trim() != "0")
        .then(|| "needs root (a private containerd, a mount namespace)".to_string())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
