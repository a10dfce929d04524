//! Logins on real podman: a login removed from the config takes its podman
//! secret with it at the next `start` (and no other secret); the same login
//! under two installs (two state directories, two keys) gives two labels.

use std::process::Command;

use crate::real::{podman, real_env, write_config, Cleanup, Upstream};
use crate::support::{drcache, run};

const PREFIX: &str = "drtsec-login";

/// Podman secrets named with `PREFIX`, removed when dropped.
struct Secrets;

impl Secrets {
    fn names() -> Vec<String> {
        podman(&["secret", "ls", "--format", "{{.Name}}"])
            .split_whitespace()
            .filter(|n| n.starts_with(PREFIX))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Secrets {
    fn drop(&mut self) {
        for name in Secrets::names() {
            let _ = Command::new("podman")
                .args(["secret", "rm", &name])
                .output();
        }
    }
}

fn hash_label(container: &str) -> String {
    podman(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"drcache.config-hash\"}}",
        container,
    ])
    .trim()
    .to_string()
}

#[test]
fn a_removed_login_takes_its_secret_and_install_keys_make_labels_differ() {
    let Some(env) =
        real_env("a_removed_login_takes_its_secret_and_install_keys_make_labels_differ")
    else {
        return;
    };
    let _cleanup = Cleanup::new(PREFIX);
    let _secrets = Secrets;
    let upstream = Upstream::start(&env, &format!("{PREFIX}-upstream"), 22110);
    let dir = tempfile::tempdir().unwrap();
    let login = "username_env = \"DRTSEC_USER\"\npassword_env = \"DRTSEC_PASSWORD\"";
    let with_login = write_config(
        dir.path(),
        &env,
        PREFIX,
        &upstream.url(),
        &[("docker.io", 22111)],
        "",
        login,
    );
    let with_login_text = std::fs::read_to_string(&with_login).unwrap();
    let cache = format!("{PREFIX}-docker-io");
    let secret = format!("{cache}-config");
    // Someone else's secret under the same prefix: never touched.
    let foreign = format!("{PREFIX}-foreign");
    let data = dir.path().join("foreign-secret");
    std::fs::write(&data, "not drcache's").unwrap();
    let out = Command::new("podman")
        .args(["secret", "create", &foreign])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let start = |state: &std::path::Path| {
        run(drcache(Some(&with_login))
            .env("DRTSEC_USER", "drsec-user")
            .env("DRTSEC_PASSWORD", "drsec-password")
            .env("DRCACHE_STATE_DIR", state)
            .arg("start"))
    };
    start(one.path()).expect(0);
    assert!(Secrets::names().contains(&secret));
    let label_one = hash_label(&cache);
    // The key is made once, 0600.
    use std::os::unix::fs::MetadataExt;
    let key = one.path().join("login-key");
    assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
    let out = start(one.path()).expect(0);
    assert!(out.stderr.contains("unchanged"), "{}", out.stderr);

    // Another install: same login, another key, another label (recreated).
    let out = start(two.path()).expect(0);
    assert!(out.stderr.contains("recreated"), "{}", out.stderr);
    let label_two = hash_label(&cache);
    assert_ne!(label_one, label_two);

    // The login goes from the config: the next start removes its secret.
    let without: String = with_login_text.replace(login, "");
    std::fs::write(&with_login, without).unwrap();
    let out = run(drcache(Some(&with_login))
        .env("DRCACHE_STATE_DIR", two.path())
        .arg("start"))
    .expect(0);
    assert!(
        out.stderr.contains("login secret removed"),
        "{}",
        out.stderr
    );
    let left = Secrets::names();
    assert!(!left.contains(&secret), "{left:?}");
    assert!(left.contains(&foreign), "{left:?}");
}
