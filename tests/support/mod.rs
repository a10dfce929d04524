//! Helpers both test crates share: running drcache and fake executables.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_drcache");

/// drcache with a clean environment: no user config, no color, no real
/// minikube (a developer's clusters are never touched; tests that need
/// minikube point DRCACHE_MINIKUBE at a fake), and no service manager (a
/// machine's own systemd never gets test units; the autostart tests set
/// DRCACHE_TEST_INIT and point DRCACHE_SYSTEMCTL/DRCACHE_LAUNCHCTL at fakes).
pub fn drcache(config: Option<&Path>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("DRCACHE_CONFIG")
        .env("XDG_CONFIG_HOME", "/nonexistent-drcache-test")
        .env("DRCACHE_MINIKUBE", "/nonexistent-drcache-test/minikube")
        .env("DRCACHE_TEST_INIT", "none")
        .env("NO_COLOR", "1")
        // Fake privileged tools live in the test user's temporary directories.
        .env("DRCACHE_TEST_TRUSTED_UID", own_uid().to_string());
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd
}

/// The effective uid of the tests (the owner of `/proc/self`).
pub fn own_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
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
        let path = self.dir.path().join(name);
        write_executable(
            &path,
            &format!(
                "#!/bin/sh\nprintf '%s\\n' \"{name} $*\" >> '{}'\n{body}\n",
                self.log_path().display()
            ),
        );
        path
    }

    /// The calls that no fake tool was written for (see `FakeTool`).
    pub fn unexpected_calls(&self) -> Vec<String> {
        read_lines(&self.dir.path().join("unexpected.log"))
    }

    pub fn calls(&self) -> Vec<String> {
        read_lines(&self.log_path())
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A test fails when drcache made a call that no fake tool was written for,
/// even where drcache went on after the fake's exit 99.
impl Drop for FakeBin {
    fn drop(&mut self) {
        let unexpected = self.unexpected_calls();
        if !unexpected.is_empty() && !std::thread::panicking() {
            panic!("calls no fake was written for: {unexpected:#?}");
        }
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Write `text` to `path` (parents created) as an executable file. A child
/// process writes it, not this one: a file open for writing here would be
/// inherited by a child that another test thread forks at that moment, and
/// running the file would then fail with "Text file busy" (ETXTBSY).
pub fn write_executable(path: &Path, text: &str) {
    use std::io::Write;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
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
