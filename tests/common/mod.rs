//! Shared test helpers: running drcache, fake executables, and the real
//! podman test environment prepared by `scripts/test-env.sh`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Once;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_drcache");

/// drcache with a clean environment: no user config, no color, and no real
/// minikube (a developer's clusters are never touched; tests that need
/// minikube point DRCACHE_MINIKUBE at a fake).
pub fn drcache(config: Option<&Path>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("DRCACHE_CONFIG")
        .env("XDG_CONFIG_HOME", "/nonexistent-drcache-test")
        .env("DRCACHE_MINIKUBE", "/nonexistent-drcache-test/minikube")
        .env("NO_COLOR", "1");
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd
}

/// drcache driving the fake `podman`; locks and markers go to the fake's
/// private dir, like a user's runtime dir; the host OS is this machine's.
pub fn with_fake(fake: &FakeBin, podman: &Path) -> Command {
    let mut cmd = drcache(None);
    cmd.env("DRCACHE_PODMAN", podman)
        .env("XDG_RUNTIME_DIR", fake.path())
        .env_remove("DRCACHE_HOST_OS");
    cmd
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Assert the exit status, showing the output when it differs.
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "unexpected exit status\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

pub fn run(cmd: &mut Command) -> Run {
    Run::from(cmd.output().expect("cannot run command"))
}

/// Write an executable file. A child process writes it, not this one: a
/// file open for writing here would be inherited by a child that another
/// test thread forks at that moment, and running the file would then fail
/// with "Text file busy" (ETXTBSY).
pub fn write_executable(path: &Path, text: &str) {
    use std::io::Write;
    let mut child = Command::new("sh")
        .args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"])
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "cannot write {}",
        path.display()
    );
}

/// An executable script in a temp dir that logs its argv, one call a line.
pub struct FakeBin {
    pub dir: tempfile::TempDir,
}

impl FakeBin {
    pub fn new() -> FakeBin {
        FakeBin {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("calls.log")
    }

    /// Write `name` with `body` (sh); every call first appends
    /// `name arg1 arg2...` to the shared log (with printf: sh's echo would
    /// turn backslashes in arguments into escapes).
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        self.script_at(&self.dir.path().join(name), body)
    }

    /// Like [`FakeBin::script`], at any path (parents are created), logging
    /// under the file name: for tools that are found by where they live.
    pub fn script_at(&self, path: &Path, body: &str) -> PathBuf {
        let path = path.to_path_buf();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let text = format!(
            "#!/bin/sh\nprintf '%s\\n' \"{name} $*\" >> '{}'\n{body}\n",
            self.log_path().display()
        );
        write_executable(&path, &text);
        path
    }

    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn clear_calls(&self) {
        let _ = std::fs::remove_file(self.log_path());
    }
}

/// Skip a test whose prerequisites are missing, with the reason on the
/// stderr handle (libtest captures `eprintln!`, not this), or fail under
/// CI=true, where every prerequisite must be there.
pub fn skip_or_fail(test: &str, reason: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: CI=true and a prerequisite is missing: {reason}");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// The real-component environment, or None (with a printed reason) when it
/// is not prepared. Under CI=true a missing environment fails the test.
pub fn real_env(test: &str) -> Option<RealEnv> {
    let missing: Vec<&str> = ["CONTAINERS_CONF", "DRCACHE_TEST_IMAGE"]
        .into_iter()
        .filter(|v| std::env::var_os(v).is_none())
        .collect();
    let podman = which("podman");
    let skopeo = which("skopeo");
    let reason = if !missing.is_empty() {
        Some(format!(
            "{} not set (run `eval \"$(scripts/test-env.sh)\"` or `scripts/test`)",
            missing.join(", ")
        ))
    } else if podman.is_none() || skopeo.is_none() {
        Some("podman or skopeo is not installed".to_string())
    } else {
        None
    };
    if let Some(reason) = reason {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{test}: real components required in CI: {reason}");
        }
        eprintln!("SKIPPED {test}: {reason}");
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

/// `podman` for the tests' own calls, without podman 5's cgroups-v1
/// deprecation warning on stderr (drcache silences it the same way).
pub fn podman_cmd() -> Command {
    let mut cmd = Command::new("podman");
    cmd.env("PODMAN_IGNORE_CGROUPSV1_WARNING", "1");
    cmd
}

/// Run podman and return its stdout; panics with its stderr on failure.
pub fn podman(args: &[&str]) -> String {
    let out = podman_cmd().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "podman {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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
            let mut args = vec!["volume", "rm", "-f"];
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

/// Set by scripts/tier-rootless.sh: this run is knowingly without root, so
/// the parts of tests that need root skip (with a `SKIPPED` line the tier
/// lists) instead of failing under CI=true.
pub const ROOTLESS_TIER: &str = "DRCACHE_TEST_ROOTLESS_TIER";

/// Whether containerd tests can run; prints why not, and fails under CI=true.
pub fn containerd_available(test: &str) -> bool {
    match containerd_missing() {
        None => true,
        Some(reason) if !is_root() && std::env::var_os(ROOTLESS_TIER).is_some() => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
            false
        }
        Some(reason) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{test}: real components required in CI: {reason}")
        }
        Some(reason) => {
            eprintln!("SKIPPED {test}: {reason}");
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
