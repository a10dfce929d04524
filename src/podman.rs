//! Typed podman calls and the parts of its JSON output that drcache reads.
//! Only flags that podman 4.3 and 5.x both know are used.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::serde_util::null_as_default;

use crate::exec::{Cmd, CommandError, Output, Runner};

/// One entry of `podman ps -a --format json`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Container {
    pub id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub names: Vec<String>,
    pub state: String,
    pub exit_code: i32,
    #[serde(deserialize_with = "null_as_default")]
    pub labels: HashMap<String, String>,
    pub image: String,
    #[serde(deserialize_with = "null_as_default")]
    pub ports: Vec<PortMapping>,
    /// Unix seconds; 0 or negative when never started.
    pub started_at: i64,
    /// The arguments after the image (a login cache's is its config secret).
    #[serde(deserialize_with = "null_as_default")]
    pub command: Vec<String>,
}

impl Container {
    pub fn name(&self) -> &str {
        self.names.first().map(String::as_str).unwrap_or("")
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    pub fn is_running(&self) -> bool {
        self.state == "running"
    }

    /// Seconds since a running container started, at `now` (Unix seconds).
    pub fn uptime(&self, now: i64) -> Option<u64> {
        (self.is_running() && self.started_at > 0)
            .then(|| now.saturating_sub(self.started_at).max(0) as u64)
    }

    /// The host port published for `container_port`, if any.
    pub fn host_port(&self, container_port: u16) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.container_port == container_port)
            .map(|p| p.host_port)
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct PortMapping {
    #[serde(alias = "hostIP")]
    pub host_ip: String,
    #[serde(alias = "containerPort")]
    pub container_port: u16,
    #[serde(alias = "hostPort")]
    pub host_port: u16,
}

/// One entry of `podman volume ls --format json`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Volume {
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub labels: HashMap<String, String>,
    pub mountpoint: String,
}

impl Volume {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// One entry of `podman machine list --format json`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Machine {
    pub name: String,
    pub default: bool,
    pub running: bool,
    pub starting: bool,
}

pub fn parse_containers(json: &str) -> Result<Vec<Container>> {
    parse_list(json).context("cannot parse the output of `podman ps -a --format json`")
}

pub fn parse_volumes(json: &str) -> Result<Vec<Volume>> {
    parse_list(json).context("cannot parse the output of `podman volume ls --format json`")
}

fn parse_list<T: for<'de> Deserialize<'de>>(json: &str) -> Result<Vec<T>> {
    // Some podman versions print nothing at all instead of `[]`.
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    Ok(serde_json::from_str::<Option<Vec<T>>>(json)?.unwrap_or_default())
}

/// Everything `podman run` needs to create a cache container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    pub name: String,
    pub image: String,
    pub publish: Vec<String>,
    pub volumes: Vec<String>,
    pub env: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    /// (podman secret name, file it is mounted as under /run/secrets).
    pub secrets: Vec<(String, String)>,
    /// Arguments after the image; empty = the image's default command.
    pub command: Vec<String>,
    /// Changes with the credentials; part of the config hash, not of argv.
    pub credential_fingerprint: Option<String>,
    pub restart: String,
}

impl RunSpec {
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec![
            "run".to_string(),
            "--detach".into(),
            "--name".into(),
            self.name.clone(),
            format!("--restart={}", self.restart),
        ];
        for p in &self.publish {
            argv.extend(["--publish".into(), p.clone()]);
        }
        for v in &self.volumes {
            argv.extend(["--volume".into(), v.clone()]);
        }
        for (k, v) in &self.labels {
            argv.extend(["--label".into(), format!("{k}={v}")]);
        }
        for (k, v) in &self.env {
            argv.extend(["--env".into(), format!("{k}={v}")]);
        }
        for (secret, target) in &self.secrets {
            argv.extend([
                "--secret".into(),
                format!("{secret},type=mount,target={target}"),
            ]);
        }
        argv.push(self.image.clone());
        argv.extend(self.command.iter().cloned());
        argv
    }
}

/// What a podman failure most likely means, judged from its stderr.
pub fn hint_for(stderr: &str) -> Option<String> {
    let s = stderr.to_ascii_lowercase();
    if s.contains("cannot connect to podman") || s.contains("podman machine") {
        Some("start the podman machine: `podman machine start`".into())
    } else if s.contains("address already in use") {
        Some("another process holds the port: stop it, or give the cache another `port` in the config".into())
    } else if s.contains("image not known") || s.contains("manifest unknown") {
        Some(
            "check the `image` setting in the config, or pull the image first with `podman pull`"
                .into(),
        )
    } else if s.contains("permission denied") {
        Some("check that you may run podman, e.g. `podman info`".into())
    } else {
        None
    }
}

/// Why `podman run` did not give a running cache.
#[derive(Debug)]
pub enum RunError {
    /// A container of that name exists already: another run created it.
    /// Nothing was created by this call.
    NameInUse(Box<CommandError>),
    /// Any other failure; `created` is the id of the container this call
    /// created before failing (e.g. a port that could not be bound), if any.
    Failed {
        error: Box<CommandError>,
        created: Option<String>,
    },
}

/// How long an image pull may take at least, whatever `--command-timeout` says.
pub const PULL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Typed access to one podman executable.
#[derive(Debug, Clone)]
pub struct Podman<'r> {
    program: PathBuf,
    runner: &'r Runner,
}

impl<'r> Podman<'r> {
    pub fn new(program: PathBuf, runner: &'r Runner) -> Self {
        Podman { program, runner }
    }

    // Podman 5 on a cgroup v1 host warns on stderr of every command; that
    // line is podman's, not the cache's, and would end up in `logs`.
    fn query(&self) -> Cmd {
        Cmd::query(&self.program, "podman").env("PODMAN_IGNORE_CGROUPSV1_WARNING", "1")
    }

    fn mutation(&self) -> Cmd {
        Cmd::mutation(&self.program, "podman").env("PODMAN_IGNORE_CGROUPSV1_WARNING", "1")
    }

    fn run(&self, cmd: Cmd) -> Result<Output, CommandError> {
        self.runner.run(&cmd).map_err(|mut e| {
            e.hint = hint_for(&e.stderr_tail).or(e.hint);
            e
        })
    }

    /// A listing. podman lists, then reads each item; an item removed in
    /// between by another process fails the whole call with "no such ...",
    /// so such a failure is retried a few times.
    fn list(&self, args: &[&str]) -> Result<Output, CommandError> {
        let mut attempts = 0;
        loop {
            match self.run(self.query().args(args.iter().copied())) {
                Err(e) if attempts < 3 && e.stderr_tail.contains("no such") => attempts += 1,
                other => return other,
            }
        }
    }

    /// All containers in any state, in one call.
    pub fn containers(&self) -> Result<Vec<Container>> {
        let out = self.list(&["ps", "--all", "--format", "json"])?;
        parse_containers(&out.stdout)
    }

    /// All volumes, in one call.
    pub fn volumes(&self) -> Result<Vec<Volume>> {
        let out = self.list(&["volume", "ls", "--format", "json"])?;
        parse_volumes(&out.stdout)
    }

    /// Create a labelled volume. Another run creating it first is fine:
    /// podman 4.3 has no `--ignore` for this.
    pub fn create_volume(&self, name: &str, labels: &[(String, String)]) -> Result<()> {
        let mut cmd = self.mutation().args(["volume", "create"]);
        for (k, v) in labels {
            cmd = cmd.args(["--label".to_string(), format!("{k}={v}")]);
        }
        match self.run(cmd.arg(name)) {
            Ok(_) => Ok(()),
            Err(e) if e.stderr_tail.contains("already exists") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// `podman run --detach`; returns the new container's id. podman writes
    /// the id into `--cidfile` as soon as it has created the container, so a
    /// failure tells whether this call left a container behind.
    pub fn run_container(&self, spec: &RunSpec) -> Result<String, RunError> {
        let mut argv = spec.argv();
        let cid_dir = tempfile::tempdir().ok();
        let cid_file = cid_dir.as_ref().map(|d| d.path().join("cid"));
        if let (Some(path), false) = (&cid_file, self.runner.dry_run) {
            argv.splice(2..2, ["--cidfile".to_string(), path.display().to_string()]);
        }
        match self.run(self.mutation().args(argv)) {
            Ok(out) => Ok(out.stdout.trim().to_string()),
            Err(e) if e.stderr_tail.contains("already in use") => {
                Err(RunError::NameInUse(Box::new(e)))
            }
            Err(error) => Err(RunError::Failed {
                error: Box::new(error),
                created: cid_file
                    .and_then(|p| std::fs::read_to_string(p).ok())
                    .map(|id| id.trim().to_string())
                    .filter(|id| !id.is_empty()),
            }),
        }
    }

    /// Whether an image is in local storage.
    pub fn image_exists(&self, image: &str) -> Result<bool, CommandError> {
        let out = self.run(self.query().args(["image", "exists", image]).accept(&[1]))?;
        Ok(out.code == 0)
    }

    /// `podman pull`, showing podman's progress on stderr when `progress`.
    pub fn pull(&self, image: &str, progress: bool) -> Result<(), CommandError> {
        let mut cmd = self
            .mutation()
            .args(["pull", image])
            .deadline_at_least(PULL_TIMEOUT);
        if progress {
            cmd = cmd.stderr_to_terminal();
        } else {
            cmd = cmd.arg("--quiet");
        }
        self.run(cmd).map(drop)
    }

    pub fn start(&self, names: &[String]) -> Result<(), CommandError> {
        self.run(self.mutation().arg("start").args(names.iter().cloned()))
            .map(drop)
    }

    pub fn stop(&self, names: &[String]) -> Result<(), CommandError> {
        self.run(
            self.mutation()
                .args(["stop", "--ignore"])
                .args(names.iter().cloned()),
        )
        .map(drop)
    }

    /// Remove containers in any state; missing ones are not an error.
    pub fn remove(&self, names: &[String]) -> Result<(), CommandError> {
        self.run(
            self.mutation()
                .args(["rm", "--force", "--ignore"])
                .args(names.iter().cloned()),
        )
        .map(drop)
    }

    /// Remove containers at once, without the grace period: for a registry
    /// that hangs and may never act on SIGTERM.
    pub fn remove_now(&self, names: &[String]) -> Result<(), CommandError> {
        self.run(
            self.mutation()
                .args(["rm", "--force", "--ignore", "--time", "0"])
                .args(names.iter().cloned()),
        )
        .map(drop)
    }

    pub fn remove_volumes(&self, names: &[String]) -> Result<(), CommandError> {
        self.run(
            self.mutation()
                .args(["volume", "rm"])
                .args(names.iter().cloned()),
        )
        .map(drop)
    }

    /// `podman logs` of a container, printed straight to our stdout/stderr.
    pub fn logs(&self, name: &str, follow: bool, tail: Option<u32>) -> Result<(), CommandError> {
        let mut cmd = self.query().arg("logs");
        if follow {
            cmd = cmd.arg("--follow").no_deadline();
        }
        if let Some(n) = tail {
            cmd = cmd.args(["--tail".to_string(), n.to_string()]);
        }
        self.run(cmd.arg(name).interactive())
            .map(drop)
            .map_err(|mut e| {
                e.hint.get_or_insert_with(|| {
                    format!(
                        "podman's message is above; `drcache status` shows whether {name} exists"
                    )
                });
                e
            })
    }

    /// `podman version`: whether podman answers (the client alone works
    /// without a podman machine; the server part does not).
    pub fn version(&self) -> Result<Output, CommandError> {
        self.run(self.query().args(["version", "--format", "json"]))
    }

    /// `podman machine list` (macOS, Windows): the VMs podman runs in.
    pub fn machines(&self) -> Result<Vec<Machine>> {
        let out = self.run(self.query().args(["machine", "list", "--format", "json"]))?;
        parse_list(&out.stdout)
            .context("cannot parse the output of `podman machine list --format json`")
    }

    /// Replace a secret with `value`, passed on stdin so it is never in argv.
    pub fn replace_secret(&self, name: &str, value: &str) -> Result<(), CommandError> {
        match self.run(self.mutation().args(["secret", "rm", name])) {
            Ok(_) => {}
            Err(e) if e.stderr_tail.contains("no such secret") => {}
            Err(e) => return Err(e),
        }
        self.run(
            self.mutation()
                .args(["secret", "create", name, "-"])
                .stdin_bytes(value.as_bytes().to_vec()),
        )
        .map(drop)
    }

    /// Remove a secret; one that is not there is no error.
    pub fn remove_secret_if_present(&self, name: &str) -> Result<(), CommandError> {
        match self.run(self.mutation().args(["secret", "rm", name])) {
            Ok(_) => Ok(()),
            Err(e) if e.stderr_tail.contains("no such secret") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Names of all podman secrets. 4.3 has no JSON format for this list.
    pub fn secret_names(&self) -> Result<Vec<String>> {
        let out = self.run(self.query().args(["secret", "ls", "--format", "{{.Name}}"]))?;
        Ok(out.stdout.split_whitespace().map(str::to_string).collect())
    }

    pub fn remove_secrets(&self, names: &[String]) -> Result<(), CommandError> {
        self.run(
            self.mutation()
                .args(["secret", "rm"])
                .args(names.iter().cloned()),
        )
        .map(drop)
    }

    /// Logs of one container since a Unix time (both streams together).
    pub fn logs_since(&self, name: &str, unix_seconds: u64) -> Result<String, CommandError> {
        let out = self.run(self.query().args([
            "logs".to_string(),
            "--since".into(),
            unix_seconds.to_string(),
            name.into(),
        ]))?;
        Ok(format!("{}{}", out.stdout, out.stderr))
    }

    /// The last lines a container logged (stdout and stderr together).
    pub fn logs_tail(&self, name: &str, lines: usize) -> Result<String, CommandError> {
        let out = self.run(self.query().args([
            "logs".to_string(),
            "--tail".into(),
            lines.to_string(),
            name.into(),
        ]))?;
        Ok(format!("{}{}", out.stdout, out.stderr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_of_running_containers_only() {
        let mut c = Container {
            state: "running".into(),
            started_at: 1000,
            ..Container::default()
        };
        assert_eq!(c.uptime(1060), Some(60));
        assert_eq!(c.uptime(900), Some(0), "clock skew is not negative");
        c.state = "exited".into();
        assert_eq!(c.uptime(1060), None);
        c.state = "running".into();
        c.started_at = 0;
        assert_eq!(c.uptime(1060), None);
    }

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/podman/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn parses_ps_of_a_running_cache() {
        let list = parse_containers(&fixture("podman-ps-a-cache.json")).unwrap();
        assert_eq!(list.len(), 1);
        let c = &list[0];
        assert_eq!(c.name(), "drenv-cache-quay-io");
        assert!(c.is_running());
        assert_eq!(c.label("drenv.cache"), Some("quay.io"));
        assert_eq!(c.host_port(5000), Some(15051));
        assert_eq!(c.host_port(5001), None);
        assert!(c.started_at > 0);
    }

    #[test]
    fn parses_ps_of_exited_containers() {
        let list = parse_containers(&fixture("podman-ps-a-exited.json")).unwrap();
        let cache = list
            .iter()
            .find(|c| c.name() == "drenv-cache-quay-io")
            .unwrap();
        assert_eq!(cache.state, "exited");
        assert_eq!(cache.exit_code, 2);
    }

    #[test]
    fn parses_every_ps_fixture() {
        for name in [
            "podman-ps-a.json",
            "podman-ps-filter-label.json",
            "podman-ps-cache-from-e2e.json",
        ] {
            let list = parse_containers(&fixture(name)).unwrap();
            assert!(list.iter().all(|c| !c.id.is_empty()), "{name}");
        }
    }

    #[test]
    fn parses_volumes() {
        let list = parse_volumes(&fixture("podman-volume-ls-cache.json")).unwrap();
        assert_eq!(list[0].name, "drenv-cache-quay-io");
        assert!(list[0].labels.is_empty());
        assert!(list[0].mountpoint.ends_with("/_data"));
        assert!(parse_volumes(&fixture("podman-volume-ls.json")).is_ok());
    }

    #[test]
    fn tolerates_nulls_unknown_keys_and_empty_output() {
        let json = r#"[{"Id":"x","Names":null,"Labels":null,"Ports":null,"Mounts":[{"Type":"volume"}],"NewField":1}]"#;
        let list = parse_containers(json).unwrap();
        assert_eq!(list[0].name(), "");
        assert!(parse_containers("").unwrap().is_empty());
        assert!(parse_containers("null").unwrap().is_empty());
        assert!(parse_volumes("[]").unwrap().is_empty());
    }

    #[test]
    fn garbage_is_an_error_naming_the_command() {
        let err = parse_containers("{not json").unwrap_err();
        assert!(format!("{err:#}").contains("podman ps -a --format json"));
    }

    #[test]
    fn run_argv() {
        let spec = RunSpec {
            name: "c".into(),
            image: "img:1".into(),
            publish: vec!["5051:5000".into()],
            volumes: vec!["c:/var/lib/registry".into()],
            env: vec![("A".into(), "b".into())],
            labels: vec![("l".into(), "v".into())],
            secrets: vec![("s".into(), "t.yml".into())],
            command: vec!["/run/secrets/t.yml".into()],
            credential_fingerprint: Some("f".into()),
            restart: "on-failure:5".into(),
        };
        assert_eq!(
            spec.argv().join(" "),
            "run --detach --name c --restart=on-failure:5 --publish 5051:5000 \
             --volume c:/var/lib/registry --label l=v --env A=b --secret s,type=mount,target=t.yml img:1 /run/secrets/t.yml"
        );
    }

    #[test]
    fn hints_for_known_failures() {
        assert!(
            hint_for("Error: Cannot connect to Podman. Please verify...")
                .unwrap()
                .contains("podman machine start")
        );
        assert!(
            hint_for("rootlessport listen tcp 0.0.0.0:5051: bind: address already in use")
                .unwrap()
                .contains("port")
        );
        assert_eq!(hint_for("something else"), None);
    }
}
