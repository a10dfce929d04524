//! Typed minikube calls, the serde structs for its JSON, the file-sync
//! directory, and the small shell scripts drcache runs on nodes.
//!
//! Node names, as read in minikube's source (pkg/minikube/node, config):
//! `Config.Nodes[].Name` is `""` for the first node and `m02`, `m03`, ... for
//! the others. The machine name of a node is the profile (cluster) name for the
//! first node or a single-node cluster, else `<profile>-<name>` (`dr2-m02`).
//! `minikube status -o json` names nodes by machine name, and `minikube ssh -n`
//! accepts a node name or a machine name (minikube's own multi-node tests pass
//! the names from `status`). drcache always passes the machine name: an empty
//! `-n` would mean "the primary control plane", not "the first node".

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Deserialize;

use crate::containerd::{HostsFile, CERTS_D, MARKER};
use crate::exec::{Cmd, CommandError, Output, Runner};
use crate::podman::null_as_default;

/// `minikube profile list -o json`: `{"invalid":[...],"valid":[...]}`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct ProfileList {
    #[serde(deserialize_with = "null_as_default")]
    pub valid: Vec<Profile>,
    #[serde(deserialize_with = "null_as_default")]
    pub invalid: Vec<Profile>,
}

/// One profile. `Status` is `Skipped` with `-l`; `Config` is null for a
/// profile whose config.json cannot be read.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Profile {
    pub name: String,
    pub status: String,
    pub config: Option<ClusterConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ClusterConfig {
    pub name: String,
    pub driver: String,
    pub kubernetes_config: KubernetesConfig,
    #[serde(deserialize_with = "null_as_default")]
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct KubernetesConfig {
    pub container_runtime: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Node {
    pub name: String,
    #[serde(rename = "IP")]
    pub ip: String,
    pub control_plane: bool,
    pub worker: bool,
}

/// One node of `minikube status -o json` (an object for a single node, an
/// array for several).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeStatus {
    /// The machine name.
    pub name: String,
    /// Running, Stopped, Paused, Nonexistent, ...
    pub host: String,
    pub kubelet: String,
    #[serde(rename = "APIServer")]
    pub api_server: String,
    pub kubeconfig: String,
    pub worker: bool,
}

impl Profile {
    pub fn runtime(&self) -> &str {
        self.config
            .as_ref()
            .map_or("", |c| c.kubernetes_config.container_runtime.as_str())
    }

    pub fn driver(&self) -> &str {
        self.config.as_ref().map_or("", |c| c.driver.as_str())
    }

    /// The machine names of the profile's nodes, in minikube's order.
    pub fn machine_names(&self) -> Vec<String> {
        let Some(config) = &self.config else {
            return Vec::new();
        };
        let cluster = if config.name.is_empty() {
            &self.name
        } else {
            &config.name
        };
        let single = config.nodes.len() == 1;
        config
            .nodes
            .iter()
            .map(|n| {
                if single || n.name.is_empty() {
                    cluster.clone()
                } else {
                    format!("{cluster}-{}", n.name)
                }
            })
            .collect()
    }
}

/// Parse `minikube profile list -o json`. Anything printed before the JSON
/// object (some versions print notices on stdout) is skipped.
pub fn parse_profiles(text: &str) -> Result<ProfileList> {
    let start = text.find('{').unwrap_or(text.len());
    let json = text[start..].trim();
    if json.is_empty() {
        return Ok(ProfileList::default());
    }
    serde_json::from_str(json).context("cannot parse the output of `minikube profile list -o json`")
}

/// Parse `minikube status -o json`: one object, or an array for multi-node.
pub fn parse_status(text: &str) -> Result<Vec<NodeStatus>> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<NodeStatus>),
        One(NodeStatus),
    }
    let start = text.find(['{', '[']).unwrap_or(text.len());
    let parsed: OneOrMany = serde_json::from_str(text[start..].trim())
        .context("cannot parse the output of `minikube status -o json`")?;
    Ok(match parsed {
        OneOrMany::Many(list) => list,
        OneOrMany::One(one) => vec![one],
    })
}

/// minikube's home as minikube resolves it: `$MINIKUBE_HOME` (used as is when
/// it ends in `.minikube`, else with `.minikube` appended), or `~/.minikube`.
pub fn minikube_home(env: Option<OsString>, home: Option<PathBuf>) -> Option<PathBuf> {
    match env.filter(|v| !v.is_empty()).map(PathBuf::from) {
        Some(dir) if dir.file_name() == Some(".minikube".as_ref()) => Some(dir),
        Some(dir) => Some(dir.join(".minikube")),
        None => home.map(|h| h.join(".minikube")),
    }
}

/// The `certs.d` directory inside minikube's file-sync tree: minikube copies
/// `<home>/files/<path>` to `/<path>` on every node at every start.
/// [`minikube_home`] from this process's environment.
pub fn minikube_home_from_env() -> Option<PathBuf> {
    minikube_home(
        std::env::var_os("MINIKUBE_HOME"),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

pub fn file_sync_certs_d(minikube_home: &Path) -> PathBuf {
    minikube_home
        .join("files")
        .join(CERTS_D.trim_start_matches('/'))
}

/// Typed access to one minikube executable.
pub struct Minikube<'r> {
    program: PathBuf,
    runner: &'r Runner,
}

impl<'r> Minikube<'r> {
    pub fn new(program: PathBuf, runner: &'r Runner) -> Self {
        Minikube { program, runner }
    }

    fn query(&self) -> Cmd {
        Cmd::query(&self.program, "minikube")
    }

    /// All profiles, without minikube's slow per-cluster status check (`-l`),
    /// so every `Status` is "Skipped": ask [`Minikube::status`] for that.
    pub fn profiles(&self) -> Result<ProfileList> {
        let out = self
            .runner
            .run(&self.query().args(["profile", "list", "-o", "json", "-l"]))?;
        parse_profiles(&out.stdout)
    }

    /// Each node's state. The exit code is a bit mask of what is not running
    /// (1 host, 2 cluster, 4 kubernetes): an answer, not a failure.
    pub fn status(&self, profile: &str) -> Result<Vec<NodeStatus>> {
        let cmd = self
            .query()
            .args(["status", "-p", profile, "-o", "json"])
            .accept(&[1, 2, 3, 4, 5, 6, 7]);
        let out = self.runner.run(&cmd)?;
        parse_status(&out.stdout)
            .with_context(|| format!("`minikube status -p {profile}` exited with {}", out.code))
    }

    /// Run `script` on a node. `minikube ssh` does not forward stdin, so the
    /// whole script, data included, travels as one argument.
    pub fn ssh(
        &self,
        profile: &str,
        machine: &str,
        script: &str,
        mutating: bool,
    ) -> Result<Output, CommandError> {
        let cmd = if mutating {
            Cmd::mutation(&self.program, "minikube")
        } else {
            self.query()
        };
        self.runner
            .run(&cmd.args(["ssh", "-p", profile, "-n", machine, "--", script]))
    }

    /// The images in a node's containerd: `sudo crictl images -o json`
    /// over `minikube ssh` (a query: it runs under --dry-run too).
    pub fn crictl_images(&self, profile: &str, machine: &str) -> Result<Output, CommandError> {
        self.ssh(profile, machine, "sudo crictl images -o json", false)
    }
}

// ---------------------------------------------------------------- node scripts
//
// Each script is one line of POSIX sh for the node's login shell. Values in it
// are validated registry names and base64, quoted anyway. Results come back
// as `drcache-<what> ...` lines on stdout.

/// Remove a registry's file; put back the file it replaced, if any.
const DROP: &str = "drop() { sudo rm -f \"$d/$1/hosts.toml\"; \
    if [ -f \"$d/$1/hosts.toml.drcache-orig\" ]; then sudo mv \"$d/$1/hosts.toml.drcache-orig\" \"$d/$1/hosts.toml\"; \
    else sudo rmdir \"$d/$1\" 2>/dev/null || true; fi; echo \"drcache-removed $1\"; }";

/// Write a registry's file atomically; keep a file drcache did not write.
const PUT: &str = "put() { f=\"$d/$1/hosts.toml\"; sudo mkdir -p \"$d/$1\"; \
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

fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

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
            sq(&format!("^{MARKER}"))
        ),
        DROP.to_string(),
    ];
    if !files.is_empty() {
        parts.push(PUT.to_string());
    }
    parts.push(format!(
        "for f in \"$d\"/*/hosts.toml; do r=\"${{f%/hosts.toml}}\"; r=\"${{r##*/}}\"; \
         if ours \"$f\"; then case {} in *\" $r \"*) ;; *) drop \"$r\";; esac; fi; done",
        sq(&format!(" {} ", keep.join(" ")))
    ));
    for file in files {
        parts.push(format!(
            "put {} {}",
            sq(&file.registry),
            sq(&base64(file.content.as_bytes()))
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
        .map(|(registry, mirror)| sq(&format!("{registry}={mirror}/v2/")))
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
}

pub fn parse_sync(stdout: &str) -> SyncReport {
    let mut report = SyncReport::default();
    for line in stdout.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("drcache-wrote"), Some(r)) => report.wrote.push(r.to_string()),
            (Some("drcache-removed"), Some(r)) => report.removed.push(r.to_string()),
            (Some("drcache-config-path"), Some(s)) => report.config_path = Some(s.to_string()),
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
    use crate::ui::Ui;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/minikube/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn parses_profile_list_light() {
        let list = parse_profiles(&fixture("profile-list-light.json")).unwrap();
        let names: Vec<&str> = list.valid.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["dr1", "dr2", "hub", "legacy"]);
        assert!(list.invalid.is_empty());
        let dr2 = &list.valid[1];
        assert_eq!(dr2.status, "Skipped");
        assert_eq!(dr2.runtime(), "containerd");
        assert_eq!(dr2.driver(), "docker");
        assert_eq!(dr2.machine_names(), ["dr2", "dr2-m02", "dr2-m03"]);
        assert_eq!(list.valid[0].machine_names(), ["dr1"]);
        assert_eq!(list.valid[3].runtime(), "docker");
        let node = &dr2.config.as_ref().unwrap().nodes[1];
        assert_eq!(
            (node.ip.as_str(), node.control_plane, node.worker),
            ("192.168.58.3", false, true)
        );
    }

    #[test]
    fn parses_invalid_profiles_with_null_config() {
        let list = parse_profiles(&fixture("profile-list-invalid.json")).unwrap();
        assert_eq!(list.invalid.len(), 2);
        assert_eq!(list.invalid[0].name, "broken");
        assert!(list.invalid[0].config.is_none());
        assert!(list.invalid[0].machine_names().is_empty());
        assert_eq!(list.valid[2].status, "Stopped");
    }

    #[test]
    fn profile_list_tolerates_notices_and_empty_output() {
        let list = parse_profiles("! a newer minikube is available\n{\"valid\":null}").unwrap();
        assert!(list.valid.is_empty());
        assert_eq!(parse_profiles("").unwrap(), ProfileList::default());
        assert!(parse_profiles("{").is_err());
    }

    #[test]
    fn single_node_cluster_keeps_the_old_machine_name() {
        // minikube names the only node after the cluster, whatever its Name.
        let p = Profile {
            name: "p".into(),
            config: Some(ClusterConfig {
                nodes: vec![Node {
                    name: "m01".into(),
                    ..Node::default()
                }],
                ..ClusterConfig::default()
            }),
            ..Profile::default()
        };
        assert_eq!(p.machine_names(), ["p"]);
    }

    #[test]
    fn parses_status_of_one_and_many_nodes() {
        let one = parse_status(&fixture("status-dr1.json")).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(
            (one[0].name.as_str(), one[0].host.as_str()),
            ("dr1", "Running")
        );
        let many = parse_status(&fixture("status-dr2-worker-stopped.json")).unwrap();
        let hosts: Vec<(&str, &str)> = many
            .iter()
            .map(|s| (s.name.as_str(), s.host.as_str()))
            .collect();
        assert_eq!(
            hosts,
            [
                ("dr2", "Running"),
                ("dr2-m02", "Running"),
                ("dr2-m03", "Stopped")
            ]
        );
        assert!(many[2].worker);
        assert!(parse_status("oops").is_err());
    }

    #[test]
    fn minikube_home_is_resolved_like_minikube() {
        let home = Some(PathBuf::from("/home/u"));
        assert_eq!(
            minikube_home(None, home.clone()),
            Some(PathBuf::from("/home/u/.minikube"))
        );
        assert_eq!(
            minikube_home(Some("".into()), home.clone()),
            Some(PathBuf::from("/home/u/.minikube"))
        );
        assert_eq!(
            minikube_home(Some("/data/mk".into()), home.clone()),
            Some(PathBuf::from("/data/mk/.minikube"))
        );
        assert_eq!(
            minikube_home(Some("/data/mk/.minikube".into()), home),
            Some(PathBuf::from("/data/mk/.minikube"))
        );
        assert_eq!(minikube_home(None, None), None);
        assert_eq!(
            file_sync_certs_d(Path::new("/m/.minikube")),
            PathBuf::from("/m/.minikube/files/etc/containerd/certs.d")
        );
    }

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
