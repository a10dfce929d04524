//! What runs as root comes from root's directories: drcache run as a real
//! user who is not root (`drsecuser`, created and removed here), with a
//! `firewall-cmd` planted in the current directory and `.` on PATH, a fake
//! sudo that records what it was asked to run, and the system directories
//! under DRCACHE_TEST_ROOT holding a root-owned fake firewall-cmd.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::support::{run, write_executable, BIN};

const USER: &str = "drsecuser";

/// The test user, removed on drop (also when the test fails).
struct TestUser;

impl TestUser {
    fn create() -> TestUser {
        let _ = Command::new("userdel").arg(USER).status();
        let ok = Command::new("useradd")
            .args(["--no-create-home", "--shell", "/bin/sh", USER])
            .status()
            .expect("cannot run useradd")
            .success();
        assert!(ok, "useradd {USER} failed");
        TestUser
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(USER).status();
    }
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_planted_path_executable_never_runs_as_root() {
    if !crate::real::root_available(
        "a_planted_path_executable_never_runs_as_root",
        "creating the test user drsecuser",
    ) {
        return;
    }
    if Command::new("useradd").arg("--help").output().is_err() {
        crate::real::missing(
            "a_planted_path_executable_never_runs_as_root",
            "root and useradd (to create the test user drsecuser)",
        );
        return;
    }
    let _user = TestUser::create();
    let tmp = tempfile::tempdir().unwrap();
    let top = tmp.path();
    chmod(top, 0o755);
    let log = top.join("log");
    std::fs::write(&log, "").unwrap();
    chmod(&log, 0o666);
    // Root's own tools: system directories under the test root.
    let root = top.join("root");
    let system_fw = root.join("usr/sbin/firewall-cmd");
    write_executable(
        &system_fw,
        &format!(
            "#!/bin/sh\necho \"system $*\" >> '{log}'\n\
             case \"$1\" in --state) echo running;; --get-zones) echo libvirt;; \
             --info-service=*) [ -f '{done}' ] || exit 101; \
             printf 'registry-cache\\n  ports: 5051-5055/tcp\\n';; \
             --zone=libvirt) [ -f '{done}' ];; --reload) : > '{done}'; echo success;; \
             *) echo success;; esac\n",
            log = log.display(),
            done = top.join("work/reloaded").display()
        ),
    );
    let sudo = root.join("usr/bin/sudo");
    write_executable(
        &sudo,
        &format!(
            "#!/bin/sh\necho \"sudo $*\" >> '{log}'\nexec \"$@\"\n",
            log = log.display()
        ),
    );
    for dir in [
        &root,
        &root.join("usr"),
        &root.join("usr/sbin"),
        &root.join("usr/bin"),
    ] {
        chmod(dir, 0o755);
    }
    // The user's current directory, with the planted tool.
    let cwd = top.join("work");
    let planted = cwd.join("firewall-cmd");
    write_executable(
        &planted,
        &format!("#!/bin/sh\necho \"PLANTED $*\" >> '{}'\n", log.display()),
    );
    std::os::unix::fs::chown(&cwd, Some(uid_of(USER)), None).unwrap();
    std::os::unix::fs::chown(&planted, Some(uid_of(USER)), None).unwrap();
    // drcache itself, where the user can run it.
    let bin = top.join("drcache");
    std::fs::copy(BIN, &bin).unwrap();
    chmod(&bin, 0o755);

    let as_user = |extra: &[(&str, &Path)]| {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid", USER, "--regid", USER, "--clear-groups", "--"])
            .arg(&bin)
            .args(["setup-host", "-v"])
            .current_dir(&cwd)
            .env_clear()
            .env("PATH", ".:/usr/bin:/bin")
            .env("HOME", &cwd)
            .env("DRCACHE_STATE_DIR", cwd.join("state"))
            .env("DRCACHE_HOST_OS", "linux")
            .env("DRCACHE_TEST_ROOT", &root)
            .env("DRCACHE_SUDO", &sudo)
            .env("NO_COLOR", "1");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        run(&mut cmd)
    };

    let out = as_user(&[]).expect(0);
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(!log_text.contains("PLANTED"), "{log_text}\n{}", out.stderr);
    let fw = system_fw.display().to_string();
    assert!(
        out.stderr.contains(&format!("firewall-cmd: {fw}")),
        "-v shows the full path: {}",
        out.stderr
    );
    assert!(
        log_text.contains(&format!(
            "sudo {fw} --permanent --zone=libvirt --add-service=registry-cache"
        )),
        "{log_text}"
    );
    assert!(log_text.contains("system --reload"), "{log_text}");

    // An override the user owns (in a directory the user owns) is refused
    // before anything runs.
    std::fs::write(&log, "").unwrap();
    let out = as_user(&[("DRCACHE_FIREWALL_CMD", &planted)]).expect(1);
    assert!(
        out.stderr.contains(&format!(
            "refusing to run {} as root: {} is owned by uid {}, not by uid 0 (set by DRCACHE_FIREWALL_CMD)",
            planted.display(),
            cwd.display(),
            uid_of(USER)
        )),
        "{}",
        out.stderr
    );
    // A relative one too.
    let out = as_user(&[("DRCACHE_FIREWALL_CMD", Path::new("firewall-cmd"))]).expect(1);
    assert!(
        out.stderr
            .contains("refusing to run firewall-cmd as root: it is not an absolute path"),
        "{}",
        out.stderr
    );
    // A system tool that others may write is refused as well.
    chmod(&system_fw, 0o777);
    let out = as_user(&[]).expect(1);
    assert!(
        out.stderr.contains(&format!(
            "{fw} is writable by others (mode 0777) (found in a system directory)"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "");
}

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}
