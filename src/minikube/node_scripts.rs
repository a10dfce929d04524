//! The shell scripts drcache runs on cluster nodes over `minikube ssh`, and
//! the parsers of what they print. `minikube ssh` forwards no stdin, so the
//! files travel base64-encoded inside the one-line script.

use crate::containerd::{HostsFile, CERTS_D, MARKER};
use crate::exec::quote_always;

//
// Each script is one line of POSIX sh for the node's login shell. Values in it
// are validated registry names and base64, quoted anyway. Results come back
// as `drcache-<what> ...` lines on stdout.

/// Refuse a registry whose directory or files on the node are symbolic
/// links (or whose certs.d is one): nothing is written or removed through a
/// link; the link is reported as `drcache-link PATH`.
const SAFE: &str = "safe() { for p in \"$d\" \"$d/$1\" \"$d/$1/hosts.toml\" \"$d/$1/hosts.toml.tmp\" \
    \"$d/$1/hosts.toml.drcache-orig\"; do if [ -L \"$p\" ]; then echo \"drcache-link $p\"; return 1; fi; done; }";

/// Remove a registry's file; put back the file it replaced, if any.
const DROP: &str = "drop() { safe \"$1\" || return 0; sudo rm -f \"$d/$1/hosts.toml\"; \
    if [ -f \"$d/$1/hosts.toml.drcache-orig\" ]; then sudo mv \"$d/$1/hosts.toml.drcache-orig\" \"$d/$1/hosts.toml\"; \
    else sudo rmdir \"$d/$1\" 2>/dev/null || true; fi; echo \"drcache-removed $1\"; }";

/// Write a registry's file atomically; keep a file drcache did not write.
const PUT: &str = "put() { safe \"$1\" || return 0; f=\"$d/$1/hosts.toml\"; sudo mkdir -p \"$d/$1\"; \
    if [ -f \"$f\" ] && ! ours \"$f\"; then sudo mv \"$f\" \"$f.drcache-orig\"; fi; \
    echo \"$2\" | base64 -d | sudo tee \"$f.tmp\" >/dev/null; sudo mv \"$f.tmp\" \"$f\"; echo \"drcache-wrote $1\"; }";

/// Make containerd read certs.d; restart it only when the config changed.
/// A config that still sets `registry.mirrors` (minikube before 1.27) cannot
/// have `config_path` too: containerd would refuse it, so it is reported
/// instead. containerd 2's version 3 config reads certs.d by default.
const CONFIG_PATH: &str = concat!(
    "c=/etc/containerd/config.toml; want='config_path = \"/etc/containerd/certs.d\"'; ",
    "if [ ! -f \"$c\" ]; then echo drcache-config-path missing; ",
    "elif grep -Eq '^ *config_path *= *\"/etc/containerd/certs.d\"' \"$c\"; then echo drcache-config-path ok; ",
    "elif grep -q 'registry\\.mirrors' \"$c\"; then echo drcache-config-path mirrors; ",
    "elif grep -Eq '^version *= *3' \"$c\" && ! grep -Eq '^ *config_path *=' \"$c\"; then echo drcache-config-path ok; ",
    "else if grep -Eq '^ *config_path *=' \"$c\"; then sudo sed -i -r \"s|^( *)config_path *=.*\\$|\\1$want|\" \"$c\"; ",
    "elif grep -Eq '^ *\\[plugins\\.\"io\\.containerd\\.grpc\\.v1\\.cri\"\\.registry\\]' \"$c\"; ",
    "then sudo sed -i -r \"s|^( *)\\[plugins\\.\\\"io\\.containerd\\.grpc\\.v1\\.cri\\\"\\.registry\\]|&\\n\\1  $want|\" \"$c\"; ",
    "else printf '\\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\\n  %s\\n' \"$want\" | sudo tee -a \"$c\" >/dev/null; fi; ",
    "sudo systemctl restart containerd; echo drcache-config-path patched; fi",
);

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The script that makes a node's certs.d hold exactly `files` among the
/// files drcache wrote (stale ones of registries no longer configured go),
/// then makes containerd read certs.d. With no files and `containerd_config`
/// false, it is `unconfigure`: every drcache file goes.
pub fn sync_script(files: &[HostsFile], containerd_config: bool) -> String {
    let keep: Vec<&str> = files.iter().map(|f| f.registry.as_str()).collect();
    let mut parts = vec![
        "set -e".to_string(),
        format!("d={CERTS_D}"),
        // Is this a file drcache wrote? Its first line says so.
        format!(
            "ours() {{ grep -qs {} \"$1\"; }}",
            quote_always(&format!("^{MARKER}"))
        ),
        SAFE.to_string(),
        DROP.to_string(),
    ];
    if !files.is_empty() {
        parts.push(PUT.to_string());
    }
    parts.push(format!(
        "for f in \"$d\"/*/hosts.toml; do r=\"${{f%/hosts.toml}}\"; r=\"${{r##*/}}\"; \
         if ours \"$f\"; then case {} in *\" $r \"*) ;; *) drop \"$r\";; esac; fi; done",
        quote_always(&format!(" {} ", keep.join(" ")))
    ));
    for file in files {
        parts.push(format!(
            "put {} {}",
            quote_always(&file.registry),
            quote_always(&base64(file.content.as_bytes()))
        ));
    }
    if containerd_config {
        parts.push(CONFIG_PATH.to_string());
    }
    parts.join("; ")
}

/// One `GET /v2/` per cache from inside the node, all at once, each printing
/// `drcache-check <registry> <curl exit code> <HTTP status>`.
pub fn check_script(targets: &[(String, String)]) -> String {
    let words: Vec<String> = targets
        .iter()
        .map(|(registry, mirror)| quote_always(&format!("{registry}={mirror}/v2/")))
        .collect();
    format!(
        "for u in {}; do ( r=$(curl -gs -o /dev/null -w '%{{http_code}}' --max-time 3 \"${{u#*=}}\"); \
         echo \"drcache-check ${{u%%=*}} $? $r\" ) & done; wait",
        words.join(" ")
    )
}

/// What a sync script reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub wrote: Vec<String>,
    pub removed: Vec<String>,
    /// ok, patched, mirrors or missing; None when not checked.
    pub config_path: Option<String>,
    /// The script did not run (`--dry-run`).
    pub skipped: bool,
    /// Symbolic links the script refused to write or remove through.
    pub links: Vec<String>,
}

pub fn parse_sync(stdout: &str) -> SyncReport {
    let mut report = SyncReport::default();
    for line in stdout.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("drcache-wrote"), Some(r)) => report.wrote.push(r.to_string()),
            (Some("drcache-removed"), Some(r)) => report.removed.push(r.to_string()),
            (Some("drcache-config-path"), Some(s)) => report.config_path = Some(s.to_string()),
            (Some("drcache-link"), Some(_)) => {
                let path = line["drcache-link ".len()..].to_string();
                report.links.push(path);
            }
            _ => {}
        }
    }
    report
}

/// One cache as seen from a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    pub registry: String,
    pub curl_exit: i32,
    /// 0 when no HTTP answer came.
    pub http_status: u16,
}

pub fn parse_checks(stdout: &str) -> Vec<CheckLine> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next() != Some("drcache-check") {
                return None;
            }
            Some(CheckLine {
                registry: words.next()?.to_string(),
                curl_exit: words.next()?.parse().ok()?,
                http_status: words.next().and_then(|s| s.parse().ok()).unwrap_or(0),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::containerd;
    use crate::exec::{Cmd, Runner};
    use crate::ui::Ui;
    use std::path::Path;

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"server = \"x\"\n"), "c2VydmVyID0gIngiCg==");
    }

    fn files() -> Vec<HostsFile> {
        let config = config::load(None).unwrap();
        let regs: Vec<_> = config.registries.iter().take(2).collect();
        containerd::hosts_files(&regs, "host.minikube.internal").unwrap()
    }

    #[test]
    fn scripts_are_one_line_and_carry_the_files_as_base64() {
        let script = sync_script(&files(), true);
        assert!(!script.contains('\n'));
        assert!(script.starts_with("set -e; d=/etc/containerd/certs.d; "));
        assert!(script.contains(&format!(
            "put 'quay.io' '{}'",
            base64(files()[0].content.as_bytes())
        )));
        assert!(script.contains("case ' quay.io docker.io ' in"));
        assert!(script.contains("sudo systemctl restart containerd"));
        let remove = sync_script(&[], false);
        assert!(!remove.contains("put()"));
        assert!(!remove.contains("systemctl"));
        assert!(remove.contains("case '  ' in"));
        let check = check_script(&[("quay.io".into(), "http://[::1]:5051".into())]);
        assert_eq!(
            check,
            "for u in 'quay.io=http://[::1]:5051/v2/'; do ( r=$(curl -gs -o /dev/null -w '%{http_code}' \
             --max-time 3 \"${u#*=}\"); echo \"drcache-check ${u%%=*} $? $r\" ) & done; wait"
        );
    }

    /// Run a node script on this machine with /etc/containerd moved under
    /// `root` and fake `sudo`/`systemctl`/`curl` first on PATH.
    fn run_on_fake_node(root: &Path, script: &str) -> String {
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let fakes = [
            ("sudo", "exec \"$@\"".to_string()),
            (
                "systemctl",
                format!("echo \"$*\" >> {}/systemctl.log", root.display()),
            ),
            (
                "curl",
                "case \"$*\" in *:5051*) printf 200;; *) exit 7;; esac".to_string(),
            ),
        ];
        for (name, body) in fakes {
            let path = bin.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        // Only the two paths the script works on move; the value of config_path stays.
        let script = script
            .replace(
                "d=/etc/containerd",
                &format!("d={}/etc/containerd", root.display()),
            )
            .replace(
                "c=/etc/containerd",
                &format!("c={}/etc/containerd", root.display()),
            );
        let runner = Runner::new(Ui::plain_for_tests(), false);
        let cmd = Cmd::query("/bin/sh", "sh").args([
            "-c".to_string(),
            format!("PATH={}:$PATH; {script}", bin.display()),
        ]);
        runner.run(&cmd).unwrap().stdout
    }

    #[test]
    fn sync_script_writes_backs_up_restores_and_patches_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let etc = root.join("etc/containerd");
        std::fs::create_dir_all(etc.join("certs.d/docker.io")).unwrap();
        std::fs::create_dir_all(etc.join("certs.d/other.example")).unwrap();
        let shipped = "server = \"https://registry-1.docker.io\"\n";
        std::fs::write(etc.join("certs.d/docker.io/hosts.toml"), shipped).unwrap();
        std::fs::write(
            etc.join("certs.d/other.example/hosts.toml"),
            "server = \"x\"\n",
        )
        .unwrap();
        std::fs::write(
            etc.join("config.toml"),
            "version = 2\n[plugins]\n  [plugins.\"io.containerd.grpc.v1.cri\".registry]\n    config_path = \"\"\n",
        )
        .unwrap();

        let files = files();
        let out = parse_sync(&run_on_fake_node(root, &sync_script(&files, true)));
        assert_eq!(out.wrote, ["quay.io", "docker.io"]);
        assert_eq!(out.config_path.as_deref(), Some("patched"));
        for f in &files {
            let got = std::fs::read_to_string(etc.join("certs.d").join(f.relative_path())).unwrap();
            assert_eq!(got, f.content);
        }
        let backup = etc.join("certs.d/docker.io/hosts.toml.drcache-orig");
        assert_eq!(std::fs::read_to_string(&backup).unwrap(), shipped);
        let config = std::fs::read_to_string(etc.join("config.toml")).unwrap();
        assert!(
            config.contains("    config_path = \"/etc/containerd/certs.d\"\n"),
            "{config}"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("systemctl.log")).unwrap(),
            "restart containerd\n"
        );

        // Again, with one registry fewer: its file goes, nothing restarts.
        let out = parse_sync(&run_on_fake_node(root, &sync_script(&files[..1], true)));
        assert_eq!(out.removed, ["docker.io"]);
        assert_eq!(out.config_path.as_deref(), Some("ok"));
        assert_eq!(
            std::fs::read_to_string(etc.join("certs.d/docker.io/hosts.toml")).unwrap(),
            shipped
        );
        assert!(!backup.exists());
        assert_eq!(
            std::fs::read_to_string(root.join("systemctl.log")).unwrap(),
            "restart containerd\n"
        );

        // Unconfigure: only drcache's files go; the directory it made too.
        let out = parse_sync(&run_on_fake_node(root, &sync_script(&[], false)));
        assert_eq!(out.removed, ["quay.io"]);
        assert!(!etc.join("certs.d/quay.io").exists());
        assert!(etc.join("certs.d/other.example/hosts.toml").exists());
        assert_eq!(
            std::fs::read_to_string(etc.join("certs.d/docker.io/hosts.toml")).unwrap(),
            shipped
        );
    }

    #[test]
    fn config_path_is_added_to_a_registry_section_or_appended() {
        let cases = [
            (
                "version = 2\n  [plugins.\"io.containerd.grpc.v1.cri\".registry]\n  [x]\n",
                "  [plugins.\"io.containerd.grpc.v1.cri\".registry]\n    config_path = \"/etc/containerd/certs.d\"\n  [x]\n",
                "patched",
            ),
            (
                "version = 2\n",
                "\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n",
                "patched",
            ),
            ("version = 3\n", "version = 3\n", "ok"),
            (
                "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors]\n",
                "registry.mirrors",
                "mirrors",
            ),
        ];
        for (before, expect, state) in cases {
            let dir = tempfile::tempdir().unwrap();
            let etc = dir.path().join("etc/containerd");
            std::fs::create_dir_all(&etc).unwrap();
            std::fs::write(etc.join("config.toml"), before).unwrap();
            let out = parse_sync(&run_on_fake_node(dir.path(), &sync_script(&[], true)));
            assert_eq!(out.config_path.as_deref(), Some(state), "{before}");
            let after = std::fs::read_to_string(etc.join("config.toml")).unwrap();
            assert!(after.contains(expect), "{before:?} became {after:?}");
            if state == "patched" {
                toml::from_str::<toml::Value>(&after).expect("still valid TOML");
            }
        }
    }

    #[test]
    fn check_script_reports_every_cache() {
        let dir = tempfile::tempdir().unwrap();
        let targets = vec![
            ("quay.io".to_string(), "http://h:5051".to_string()),
            ("docker.io".to_string(), "http://h:5052".to_string()),
        ];
        let mut lines = parse_checks(&run_on_fake_node(dir.path(), &check_script(&targets)));
        lines.sort_by(|a, b| a.registry.cmp(&b.registry));
        assert_eq!(
            lines,
            [
                CheckLine {
                    registry: "docker.io".into(),
                    curl_exit: 7,
                    http_status: 0
                },
                CheckLine {
                    registry: "quay.io".into(),
                    curl_exit: 0,
                    http_status: 200
                },
            ]
        );
    }

    #[test]
    fn parses_script_output_ignoring_noise() {
        let sync = parse_sync(
            "noise\ndrcache-wrote quay.io\r\ndrcache-removed ghcr.io\ndrcache-config-path ok\n",
        );
        assert_eq!(sync.wrote, ["quay.io"]);
        assert_eq!(sync.removed, ["ghcr.io"]);
        assert_eq!(sync.config_path.as_deref(), Some("ok"));
        let checks = parse_checks("drcache-check quay.io 127 \ndrcache-check x\nbad");
        assert_eq!(
            checks,
            [CheckLine {
                registry: "quay.io".into(),
                curl_exit: 127,
                http_status: 0
            }]
        );
    }
}
