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

/// The client version from `podman version --format json`.
pub fn parse_version(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v.pointer("/Client/Version")?.as_str().map(str::to_string)
}

/// Secret names from `podman secret ls --format {{.Name}}`, one a line.
/// (`--format json` prints the literal word `json` per secret on 4.3 and 5.4.)
pub fn parse_secret_names(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

fn parse_list<T: for<'de> Deserialize<'de>>(json: &str) -> Result<Vec<T>> {
    // Some podman versions print nothing at all instead of `[]`.
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    Ok(serde_json::from_str::<Option<Vec<T>>>(json)?.unwrap_or_default())
}

/// `Config.Cmd` of the first image in `podman image inspect --format json`.
pub fn parse_image_command(json: &str) -> Result<Vec<String>> {
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "PascalCase", default)]
    struct ImageConfig {
        #[serde(deserialize_with = "null_as_default")]
        cmd: Vec<String>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Inspected {
        #[serde(default, deserialize_with = "null_as_default")]
        config: ImageConfig,
    }
    let list: Vec<Inspected> = parse_list(json)
        .context("cannot parse the output of `podman image inspect --format json`")?;
    Ok(list
        .into_iter()
        .next()
        .map(|i| i.config.cmd)
        .unwrap_or_default())
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

/// Podman 5 on a cgroup v1 host prints a deprecation warning on stderr of
/// every command; it would end up in `drcache logs` and in error messages.
const IGNORE_CGROUPS_V1_WARNING: &str = "PODMAN_IGNORE_CGROUPSV1_WARNING";

fn quiet(cmd: Cmd) -> Cmd {
    cmd.env(IGNORE_CGROUPS_V1_WARNING, "1")
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

    fn query(&self) -> Cmd {
        quiet(Cmd::query(&self.program, "podman"))
    }

    fn mutation(&self) -> Cmd {
        quiet(Cmd::mutation(&self.program, "podman"))
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
        Ok(parse_secret_names(&out.stdout))
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

    /// When a container was created, in Unix seconds.
    pub fn container_created(&self, name: &str) -> Result<i64> {
        let out = self.run(self.query().args([
            "container",
            "inspect",
            "--format",
            "{{.Created.Unix}}",
            name,
        ]))?;
        out.stdout.trim().parse().with_context(|| {
            format!("`podman container inspect` printed no creation time for {name}")
        })
    }

    /// The image's default command (`Config.Cmd`), e.g. the registry
    /// config file the official registry images serve.
    pub fn image_command(&self, image: &str) -> Result<Vec<String>> {
        let out = self.run(
            self.query()
                .args(["image", "inspect", "--format", "json", image]),
        )?;
        parse_image_command(&out.stdout)
    }

    /// `podman run --rm` of a registry image's binary over a volume, e.g.
    /// `registry garbage-collect CONFIG`; returns what it printed. It may
    /// take long on a big volume, like a pull.
    pub fn run_registry_once(
        &self,
        image: &str,
        volume_mount: &str,
        env: &[(String, String)],
        args: &[String],
    ) -> Result<Output, CommandError> {
        let mut cmd = self.mutation().args([
            "run",
            "--rm",
            "--entrypoint",
            "/bin/registry",
            "--volume",
            volume_mount,
        ]);
        for (k, v) in env {
            cmd = cmd.args(["--env".to_string(), format!("{k}={v}")]);
        }
        self.run(
            cmd.arg(image)
                .args(args.iter().cloned())
                .deadline_at_least(PULL_TIMEOUT),
        )
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

    /// A podman whose every call appends its argv to `calls` and then runs
    /// `body` (sh) — for the answers that are decided on podman's stderr.
    fn scripted(dir: &std::path::Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("podman");
        let log = dir.join("calls");
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho \"$*\" >> '{}'\n{body}\n", log.display()),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn calls(dir: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn answers_podman_gives_on_stderr_are_told_from_failures() {
        use crate::ui::Ui;
        let runner = Runner::new(Ui::plain_for_tests(), false);
        let dir = tempfile::tempdir().unwrap();
        // "already exists": another run created the volume first; fine.
        let p = scripted(
            dir.path(),
            "echo 'Error: volume with name v already exists' >&2; exit 125",
        );
        Podman::new(p, &runner).create_volume("v", &[]).unwrap();
        let p = scripted(
            dir.path(),
            "echo 'Error: no space left on device' >&2; exit 125",
        );
        assert!(Podman::new(p.clone(), &runner)
            .create_volume("v", &[])
            .is_err());
        // A secret that is not there yet is fine to replace; another error of
        // `secret rm` stops the replacement, though `secret create` would work.
        let secrets = |rm: &str| {
            scripted(
                dir.path(),
                &format!("case \"$1 $2\" in \"secret rm\") echo '{rm}' >&2; exit 125 ;; *) cat >/dev/null ;; esac"),
            )
        };
        let p_missing = secrets("Error: no secret with name or id \"s\": no such secret");
        Podman::new(p_missing, &runner)
            .replace_secret("s", "value")
            .unwrap();
        let p_denied = secrets("Error: permission denied");
        assert!(Podman::new(p_denied, &runner)
            .replace_secret("s", "value")
            .is_err());
        let p = scripted(
            dir.path(),
            "echo 'Error: no space left on device' >&2; exit 125",
        );
        assert!(Podman::new(p, &runner).start(&["c".into()]).is_err());
        // A listing racing a removal is retried three times, then the error stands.
        std::fs::remove_file(dir.path().join("calls")).unwrap();
        let p = scripted(dir.path(), "echo 'Error: no such volume x' >&2; exit 125");
        assert!(Podman::new(p, &runner).volumes().is_err());
        assert_eq!(calls(dir.path()).len(), 4, "{:?}", calls(dir.path()));
    }

    #[test]
    fn each_sign_of_a_stopped_machine_alone_gets_the_machine_hint() {
        let machine = Some("start the podman machine: `podman machine start`".to_string());
        assert_eq!(hint_for("Cannot connect to Podman. Please verify"), machine);
        assert_eq!(hint_for("Error: podman machine is not running"), machine);
        assert_eq!(hint_for("Error: something else"), None);
    }

    /// A fixture under tests/fixtures: `podman/...` (podman 4.3.1) or
    /// `podman5/...` (podman 5.4.2).
    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn containers(name: &str) -> Vec<Container> {
        parse_containers(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e:#}"))
    }

    fn named<'a>(list: &'a [Container], name: &str) -> &'a Container {
        list.iter()
            .find(|c| c.name() == name)
            .unwrap_or_else(|| panic!("no {name} in {list:?}"))
    }

    #[test]
    fn parses_ps_of_a_running_cache() {
        // (fixture, container, label key, registry, registry port, debug port)
        for (file, name, label, registry, port, debug) in [
            (
                "podman/podman-ps-a-cache.json",
                "drenv-cache-quay-io",
                "drenv.cache",
                "quay.io",
                15051,
                None,
            ),
            (
                "podman5/podman5-ps-a-cache.json",
                "p5t-quay-io",
                "drcache.registry",
                "quay.io",
                16211,
                Some(33663),
            ),
        ] {
            let list = containers(file);
            assert_eq!(list.len(), 1, "{file}");
            let c = &list[0];
            assert_eq!(c.name(), name);
            assert!(c.is_running(), "{file}");
            assert_eq!(c.exit_code, 0);
            assert_eq!(c.label(label), Some(registry), "{file}");
            assert_eq!(c.host_port(5000), Some(port), "{file}");
            assert_eq!(c.host_port(5001), debug, "{file}");
            assert!(c.image.starts_with("localhost/drcache-"), "{file}");
            assert!(c.started_at > 0, "{file}");
        }
    }

    #[test]
    fn parses_ps_of_exited_containers() {
        let cache = named(
            &containers("podman/podman-ps-a-exited.json"),
            "drenv-cache-quay-io",
        )
        .clone();
        assert_eq!((cache.state.as_str(), cache.exit_code), ("exited", 2));
        for file in [
            "podman5/podman5-ps-a-exited.json",
            "podman5/podman5-ps-a-stopped.json",
        ] {
            let c = named(&containers(file), "p5t-docker-io").clone();
            assert_eq!((c.state.as_str(), c.exit_code), ("exited", 2), "{file}");
            assert!(!c.is_running());
            // Ports keep their mapping whatever order podman 5 lists them in.
            assert_eq!(c.host_port(5000), Some(16212), "{file}");
        }
        // on-failure:5 used up: exited for good.
        let looped = &containers("podman5/podman5-ps-a-restart-loop.json")[0];
        assert_eq!((looped.state.as_str(), looped.exit_code), ("exited", 2));
        assert_eq!(looped.label("drcache.mode"), Some("proxy"));
    }

    #[test]
    fn parses_podman5_created_stopping_and_bare_containers() {
        let created = &containers("podman5/podman5-ps-a-created.json")[0];
        assert_eq!(created.state, "created");
        // Never started: podman 5 says year 1 (negative Unix seconds).
        assert!(created.started_at < 0, "{}", created.started_at);
        assert_eq!(created.host_port(5000), Some(16213));

        let stopping = &containers("podman5/podman5-ps-a-stopping.json")[0];
        assert_eq!(stopping.state, "stopping");
        assert!(!stopping.is_running());

        let bare = &containers("podman5/podman5-ps-a-no-labels-no-ports.json")[0];
        assert_eq!(bare.name(), "p5t-nolabel");
        // Only the image's own label: no drcache labels, `Ports: null`.
        assert_eq!(bare.label("drcache.registry"), None);
        assert_eq!(bare.labels.len(), 1);
        assert!(bare.ports.is_empty());
        assert_eq!(bare.host_port(5000), None);

        let offline = &containers("podman5/podman5-ps-a-cache-offline.json")[0];
        assert_eq!(offline.label("drcache.mode"), Some("offline"));
        let mixed = containers("podman5/podman5-ps-a-running-exited-created.json");
        let states: Vec<(&str, &str)> =
            mixed.iter().map(|c| (c.name(), c.state.as_str())).collect();
        assert_eq!(
            states,
            [
                ("p5t-upstream", "running"),
                ("p5t-docker-io", "exited"),
                ("p5t-quay-io", "running"),
                ("p5t-ghcr-io", "created"),
            ]
        );
    }

    #[test]
    fn parses_every_ps_fixture_of_both_versions() {
        let mut seen = 0;
        for (dir, stem) in [("podman", "podman-ps-"), ("podman5", "podman5-ps-")] {
            let path = format!("{}/tests/fixtures/{dir}", env!("CARGO_MANIFEST_DIR"));
            for entry in std::fs::read_dir(&path).unwrap() {
                let file = entry.unwrap().file_name().into_string().unwrap();
                if !file.starts_with(stem) {
                    continue;
                }
                let list = containers(&format!("{dir}/{file}"));
                assert!(!list.is_empty(), "{file}");
                for c in &list {
                    assert!(!c.id.is_empty() && !c.name().is_empty(), "{file}");
                    assert!(!c.state.is_empty() && !c.image.is_empty(), "{file}");
                }
                seen += 1;
            }
        }
        assert!(seen >= 16, "only {seen} ps fixtures");
        let all = containers("podman5/podman5-ps-a-all-running.json");
        assert_eq!(all.len(), 4);
        assert!(all.iter().all(Container::is_running));
        assert_eq!(named(&all, "p5t-docker-io").host_port(5000), Some(16212));
    }

    #[test]
    fn parses_volumes() {
        let list = parse_volumes(&fixture("podman/podman-volume-ls-cache.json")).unwrap();
        assert_eq!(list[0].name, "drenv-cache-quay-io");
        assert!(list[0].labels.is_empty());
        assert!(list[0].mountpoint.ends_with("/_data"));
        assert_eq!(
            parse_volumes(&fixture("podman/podman-volume-ls.json"))
                .unwrap()
                .len(),
            4
        );

        let cache = parse_volumes(&fixture("podman5/podman5-volume-ls-cache.json")).unwrap();
        assert_eq!(cache.len(), 1);
        assert_eq!(cache[0].name, "p5t-quay-io");
        assert_eq!(cache[0].label("drcache.registry"), Some("quay.io"));
        assert_eq!(cache[0].label("drcache.prefix"), Some("p5t"));
        assert_eq!(
            cache[0].mountpoint,
            "/var/lib/containers/storage/volumes/p5t-quay-io/_data"
        );
        let all = parse_volumes(&fixture("podman5/podman5-volume-ls-with-foreign.json")).unwrap();
        assert_eq!(all.len(), 11);
        let ours: Vec<&str> = all
            .iter()
            .filter(|v| v.label("drcache.registry").is_some())
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(
            ours,
            ["p5t-docker-io", "p5t-quay-io", "p5t-ghcr-io", "p5t-gcr-io"]
        );
        let mine = all.iter().find(|v| v.name == "p5t-mine").unwrap();
        assert!(mine.labels.is_empty());
        assert_eq!(
            parse_volumes(&fixture("podman5/podman5-volume-ls.json"))
                .unwrap()
                .len(),
            4
        );
    }

    #[test]
    fn parses_the_version_of_both_podmans() {
        assert_eq!(
            parse_version(&fixture("podman/podman-version.json")).as_deref(),
            Some("4.3.1")
        );
        assert_eq!(
            parse_version(&fixture("podman5/podman5-version.json")).as_deref(),
            Some("5.4.2")
        );
        assert_eq!(parse_version("{\"Server\":{}}"), None);
        assert_eq!(parse_version("Version: 5.4.2"), None);
    }

    #[test]
    fn parses_secret_names_of_both_podmans() {
        assert_eq!(
            parse_secret_names(&fixture("podman/podman-secret-ls-format-name.txt")),
            ["drtier-fixture-b", "drtier-fixture-a"]
        );
        assert_eq!(
            parse_secret_names(&fixture("podman5/podman5-secret-ls-format-name.txt")),
            ["p5t-fixture-a", "p5t-fixture-b"]
        );
        assert!(parse_secret_names("").is_empty());
        // Why drcache never asks for `--format json`: no names in it.
        assert_eq!(
            fixture("podman5/podman5-secret-ls-format-json-two-secrets.txt"),
            "json\njson\n"
        );
    }

    #[test]
    fn every_podman_call_silences_the_cgroups_v1_warning() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("podman");
        std::fs::write(
            &fake,
            "#!/bin/sh\nprintf '{\"Client\":{\"Version\":\"%s\"}}' \"$PODMAN_IGNORE_CGROUPSV1_WARNING\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let runner = Runner::new(crate::ui::Ui::plain_for_tests(), false);
        let out = Podman::new(fake, &runner).version().unwrap();
        assert_eq!(parse_version(&out.stdout).as_deref(), Some("1"));
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
    fn parses_the_command_of_an_image() {
        let cmd =
            parse_image_command(&fixture("podman/podman-image-inspect-registry.json")).unwrap();
        assert_eq!(cmd, ["/etc/docker/registry/config.yml"]);
        assert!(parse_image_command(r#"[{"Config":null}]"#)
            .unwrap()
            .is_empty());
        assert!(parse_image_command("[]").unwrap().is_empty());
        assert!(parse_image_command("{").is_err());
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
