//! `hosts-toml --out` writes no file through a symbolic link: not through a
//! planted temporary file, not into a symlinked registry directory.

use std::os::unix::fs::symlink;

use crate::support::{drcache, run};

#[test]
fn hosts_toml_out_refuses_a_symlinked_registry_directory_and_ignores_planted_temp_links() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("certs.d");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(out.join("quay.io")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    // A planted link at the name the old code used for its temporary file.
    let victim = outside.join("victim");
    std::fs::write(&victim, "keep\n").unwrap();
    symlink(&victim, out.join("quay.io/.hosts.toml.drcache-tmp")).unwrap();

    let r = run(drcache(None)
        .args(["hosts-toml", "quay.io", "--out"])
        .arg(&out))
    .expect(0);
    assert!(r.stderr.contains("wrote"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");
    let written = std::fs::read_to_string(out.join("quay.io/hosts.toml")).unwrap();
    assert!(written.starts_with("# Written by drcache"), "{written}");
    assert!(!std::fs::symlink_metadata(out.join("quay.io/hosts.toml"))
        .unwrap()
        .file_type()
        .is_symlink());

    // A registry directory that is a link: refused, named, nothing written.
    symlink(&outside, out.join("ghcr.io")).unwrap();
    let r = run(drcache(None)
        .args(["hosts-toml", "ghcr.io", "--out"])
        .arg(&out))
    .expect(1);
    assert!(
        r.stderr.contains(&format!(
            "refusing to follow the symbolic link {} (to {})",
            out.join("ghcr.io").display(),
            outside.display()
        )),
        "{}",
        r.stderr
    );
    assert!(!outside.join("hosts.toml").exists());

    // A hosts.toml that is a link: refused too, its target untouched.
    std::fs::create_dir_all(out.join("gcr.io")).unwrap();
    symlink(&victim, out.join("gcr.io/hosts.toml")).unwrap();
    let r = run(drcache(None)
        .args(["hosts-toml", "gcr.io", "--out"])
        .arg(&out))
    .expect(1);
    assert!(
        r.stderr.contains("refusing to follow the symbolic link"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");
}

#[test]
fn a_state_directory_that_is_a_link_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = tmp.path().join("state");
    symlink(&real, &link).unwrap();
    let r = run(drcache(None)
        .args(["start", "--dry-run"])
        .env("DRCACHE_STATE_DIR", &link)
        .env("DRCACHE_PODMAN", "/bin/false"));
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains(&format!(
            "drcache's state directory {} is a symbolic link; refusing to use it",
            link.display()
        )),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_dir(&real).unwrap().count(), 0);
}
