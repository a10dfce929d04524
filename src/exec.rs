//! The one place that spawns processes. Every external tool call goes through
//! [`Runner::run`], which logs it at `-v`, skips mutations under `--dry-run`,
//! and turns a failure into a [`CommandError`] carrying the command line, the
//! exit status and the tail of stderr. Every command has a deadline: a hung
//! tool (a stuck podman machine, an unreachable node behind `minikube ssh`)
//! is killed with its whole process group, and the error says so.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::interrupt;
use crate::ui::Ui;

/// The deadline of every command unless `--command-timeout` or
/// `DRCACHE_COMMAND_TIMEOUT` says otherwise: generous, since a first
/// `podman` call on macOS may boot the machine's services.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// How many lines of a failed command's stderr are kept in its error.
const STDERR_TAIL_LINES: usize = 12;

/// A command to run: a resolved program plus arguments and how to treat it.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: PathBuf,
    /// The short name shown in logs and errors (`podman`, not `/usr/bin/podman`).
    name: String,
    args: Vec<String>,
    mutating: bool,
    /// Bytes fed on stdin. Secrets travel this way so they never reach argv.
    stdin: Option<Vec<u8>>,
    /// The child talks to the terminal directly (`logs --follow`).
    interactive: bool,
    /// stderr goes to ours (podman's pull progress) while stdout is captured.
    stderr_to_terminal: bool,
    /// The child reads the terminal (sudo's password prompt) while its output
    /// is still captured, so that errors keep stderr and `--json` stays clean.
    terminal_stdin: bool,
    /// Exit codes that are answers rather than failures (e.g. `exists` -> 1).
    accepted: Vec<i32>,
    /// Extra environment for the child.
    env: Vec<(String, String)>,
    /// Deadline of this command, when it differs from the runner's.
    deadline: Deadline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    /// The runner's `--command-timeout`.
    Default,
    /// At least this long (image pulls), or the runner's timeout if longer.
    AtLeast(Duration),
    /// None: the user ends it (`logs --follow`).
    Never,
}

impl Cmd {
    /// A query: it changes nothing and runs even under `--dry-run`.
    pub fn query(program: impl Into<PathBuf>, name: &str) -> Self {
        Cmd {
            program: program.into(),
            name: name.to_string(),
            args: Vec::new(),
            mutating: false,
            stdin: None,
            interactive: false,
            terminal_stdin: false,
            stderr_to_terminal: false,
            accepted: vec![0],
            env: Vec::new(),
            deadline: Deadline::Default,
        }
    }

    /// A mutation: under `--dry-run` it is printed instead of run.
    pub fn mutation(program: impl Into<PathBuf>, name: &str) -> Self {
        Cmd {
            mutating: true,
            ..Cmd::query(program, name)
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Set an environment variable for the child (not shown in `display`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn stdin_bytes(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(bytes);
        self
    }

    pub fn interactive(mut self) -> Self {
        self.interactive = true;
        self
    }

    /// Let the child write progress to our stderr; stdout stays captured.
    pub fn stderr_to_terminal(mut self) -> Self {
        self.stderr_to_terminal = true;
        self
    }

    /// Give this command at least `limit` (an image pull), however short
    /// `--command-timeout` is.
    pub fn deadline_at_least(mut self, limit: Duration) -> Self {
        self.deadline = Deadline::AtLeast(limit);
        self
    }

    /// No deadline: the user ends this command (`logs --follow`).
    pub fn no_deadline(mut self) -> Self {
        self.deadline = Deadline::Never;
        self
    }

    /// Treat these exit codes as answers, not failures.
    pub fn accept(mut self, codes: &[i32]) -> Self {
        self.accepted.extend_from_slice(codes);
        self
    }

    #[cfg(test)]
    pub fn is_mutating(&self) -> bool {
        self.mutating
    }

    /// Run the same call through `sudo`, with the tool's absolute path because
    /// sudo resets PATH. sudo may ask for a password: stdin is the terminal.
    pub fn via_sudo(self, sudo: impl Into<PathBuf>) -> Self {
        let mut args = vec![self.program.to_string_lossy().into_owned()];
        args.extend(self.args);
        Cmd {
            program: sudo.into(),
            name: "sudo".to_string(),
            args,
            terminal_stdin: true,
            ..self
        }
    }

    /// The command line as a user would type it, with the short program name.
    pub fn display(&self) -> String {
        let mut line = self.name.clone();
        for arg in &self.args {
            line.push(' ');
            line.push_str(&shell_quote(arg));
        }
        line
    }
}

/// Quote an argument for display so that a copied line runs the same:
/// only where it needs it, so `-v` output stays readable.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+^{}[]".contains(c));
    if plain {
        arg.to_string()
    } else {
        quote_always(arg)
    }
}

/// Quote an argument for a script drcache writes: always, so that no
/// character (a glob's `[`, a brace) is ever read by the shell.
pub fn quote_always(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// What a finished command produced.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// True when `--dry-run` skipped the command.
    pub skipped: bool,
}

/// A command that ran and failed, or could not be started.
#[derive(Debug)]
pub struct CommandError {
    pub command: String,
    /// None when the process could not be spawned or was killed by a signal.
    pub code: Option<i32>,
    pub stderr_tail: String,
    /// The end of stdout, kept when stderr said nothing (some tools print
    /// their errors there).
    pub stdout_tail: Option<Box<str>>,
    /// Why the process could not be started or waited for; the error's source.
    pub spawn_error: Option<std::io::Error>,
    /// Set when the command was killed at its deadline.
    pub timed_out: Option<Duration>,
    /// The likely fix, when the tool wrapper recognizes the failure.
    pub hint: Option<String>,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.spawn_error, self.code) {
            _ if self.timed_out.is_some() => write!(
                f,
                "`{}` timed out after {} s and was killed",
                self.command,
                self.timed_out.unwrap_or_default().as_secs_f64()
            )?,
            (Some(_), _) => write!(f, "could not run `{}`", self.command)?,
            (None, Some(code)) => write!(f, "`{}` failed (exit status {code})", self.command)?,
            (None, None) => write!(f, "`{}` was killed by a signal", self.command)?,
        }
        if !self.stderr_tail.is_empty() {
            write!(f, "\n--- stderr\n{}", self.stderr_tail)?;
        } else if let Some(stdout) = &self.stdout_tail {
            write!(f, "\n--- stdout\n{stdout}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CommandError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.spawn_error
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs commands on behalf of the whole program.
#[derive(Debug, Clone)]
pub struct Runner {
    pub dry_run: bool,
    ui: Ui,
    timeout: Duration,
}

impl Runner {
    pub fn new(ui: Ui, dry_run: bool) -> Self {
        Runner {
            dry_run,
            ui,
            timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }

    /// The deadline of every command (`--command-timeout`).
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Runner { timeout, ..self }
    }

    fn deadline_of(&self, cmd: &Cmd) -> Option<Duration> {
        match cmd.deadline {
            Deadline::Default => Some(self.timeout),
            Deadline::AtLeast(limit) => Some(limit.max(self.timeout)),
            Deadline::Never => None,
        }
    }

    /// Run `cmd`; an exit code not accepted by `cmd` is an error.
    pub fn run(&self, cmd: &Cmd) -> Result<Output, CommandError> {
        if cmd.mutating && self.dry_run {
            self.ui.dry_run(&cmd.display());
            return Ok(Output {
                skipped: true,
                ..Output::default()
            });
        }
        self.ui.trace(&cmd.display());

        let args: Vec<OsString> = cmd.args.iter().map(OsString::from).collect();
        let mut expr = duct::cmd(&cmd.program, args).unchecked();
        for (name, value) in &cmd.env {
            expr = expr.env(name, value);
        }
        expr = match &cmd.stdin {
            Some(bytes) => expr.stdin_bytes(bytes.clone()),
            None if cmd.interactive || cmd.terminal_stdin => expr,
            None => expr.stdin_null(),
        };
        if !cmd.interactive {
            expr = expr.stdout_capture();
            if !cmd.stderr_to_terminal {
                expr = expr.stderr_capture();
            }
        }
        // A child that needs the terminal (sudo's prompt, `logs`) stays in
        // drcache's process group; every other one gets its own, so that a
        // deadline kills all it started and Ctrl-C reaches drcache first.
        let own_group = !cmd.interactive && !cmd.terminal_stdin;
        if own_group {
            expr = expr.before_spawn(|command| {
                command.process_group(0);
                Ok(())
            });
        }
        let spawn_failed = |e: std::io::Error| CommandError {
            command: cmd.display(),
            code: None,
            stderr_tail: String::new(),
            stdout_tail: None,
            spawn_error: Some(e),
            timed_out: None,
            hint: None,
        };
        let handle = expr.start().map_err(spawn_failed)?;
        let _tracked: Vec<interrupt::ChildGroup> = if own_group {
            handle.pids().into_iter().map(interrupt::track).collect()
        } else {
            Vec::new()
        };
        let finished = match self.deadline_of(cmd) {
            Some(limit) => handle
                .wait_deadline(Instant::now() + limit)
                .map_err(spawn_failed)?
                .is_some(),
            None => true,
        };
        if !finished {
            let limit = self.deadline_of(cmd).unwrap_or_default();
            for pid in handle.pids() {
                kill_tree(pid, own_group);
            }
            // A grandchild that left the group may still hold the pipes:
            // wait briefly for what stderr said, never for ever.
            let out = handle.wait_timeout(Duration::from_secs(2)).ok().flatten();
            let stderr = out.map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
            return Err(CommandError {
                command: cmd.display(),
                code: None,
                stderr_tail: tail(&stderr.unwrap_or_default(), STDERR_TAIL_LINES),
                stdout_tail: None,
                spawn_error: None,
                timed_out: Some(limit),
                hint: None,
            });
        }
        let out = handle.into_output().map_err(spawn_failed)?;
        let output = Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            skipped: false,
        };
        if out.status.code().is_some_and(|c| cmd.accepted.contains(&c)) {
            Ok(output)
        } else {
            Err(CommandError {
                command: cmd.display(),
                code: out.status.code(),
                stderr_tail: tail(&output.stderr, STDERR_TAIL_LINES),
                stdout_tail: Some(tail(&output.stdout, STDERR_TAIL_LINES))
                    .filter(|t| !t.is_empty())
                    .map(String::into_boxed_str),
                spawn_error: None,
                timed_out: None,
                hint: None,
            })
        }
    }
}

/// SIGKILL a timed-out child: its whole process group when it has one.
fn kill_tree(pid: u32, own_group: bool) {
    let Ok(pid) = i32::try_from(pid) else { return };
    let target = if own_group { -pid } else { pid };
    // SAFETY: kill(2) with a pid we started; the worst case is ESRCH.
    unsafe {
        libc::kill(target, libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_needs_it() {
        let cmd = Cmd::query("/usr/bin/podman", "podman")
            .args(["ps", "-a", "--format", "json"])
            .arg("a b")
            .arg("it's");
        assert_eq!(cmd.display(), r"podman ps -a --format json 'a b' 'it'\''s'");
    }

    #[test]
    fn via_sudo_uses_the_absolute_path() {
        let cmd = Cmd::mutation("/usr/bin/firewall-cmd", "firewall-cmd")
            .arg("--reload")
            .via_sudo("/usr/bin/sudo");
        assert_eq!(cmd.display(), "sudo /usr/bin/firewall-cmd --reload");
        assert!(cmd.is_mutating());
    }

    #[test]
    fn error_shows_command_status_and_stderr_tail() {
        let runner = Runner::new(Ui::plain_for_tests(), false);
        let cmd = Cmd::query("/bin/sh", "sh").args(["-c", "echo one >&2; echo two >&2; exit 3"]);
        let err = runner.run(&cmd).unwrap_err();
        assert_eq!(err.code, Some(3));
        let text = err.to_string();
        assert!(
            text.contains("`sh -c 'echo one >&2; echo two >&2; exit 3'` failed (exit status 3)")
        );
        assert!(text.ends_with("--- stderr\none\ntwo"), "{text}");
    }

    #[test]
    fn an_error_on_stdout_is_kept_when_stderr_is_silent() {
        let runner = Runner::new(Ui::plain_for_tests(), false);
        let cmd = Cmd::query("/bin/sh", "sh").args(["-c", "echo 'Error: no such thing'; exit 2"]);
        let err = runner.run(&cmd).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("--- stdout\nError: no such thing"),
            "{err}"
        );
    }

    #[test]
    fn accepted_codes_are_answers() {
        let runner = Runner::new(Ui::plain_for_tests(), false);
        let out = runner
            .run(
                &Cmd::query("/bin/sh", "sh")
                    .args(["-c", "exit 1"])
                    .accept(&[1]),
            )
            .unwrap();
        assert_eq!(out.code, 1);
    }

    #[test]
    fn dry_run_skips_mutations_but_runs_queries() {
        let runner = Runner::new(Ui::plain_for_tests(), true);
        let skipped = runner
            .run(&Cmd::mutation("false", "false"))
            .expect("a skipped mutation succeeds");
        assert!(skipped.skipped);
        let ran = runner
            .run(&Cmd::query("/bin/sh", "sh").args(["-c", "echo hi"]))
            .unwrap();
        assert_eq!(ran.stdout, "hi\n");
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let runner = Runner::new(Ui::plain_for_tests(), false);
        let err = runner
            .run(&Cmd::query("/nonexistent/podman", "podman"))
            .unwrap_err();
        assert_eq!(
            err.spawn_error.as_ref().map(std::io::Error::kind),
            Some(std::io::ErrorKind::NotFound)
        );
        assert!(err.to_string().starts_with("could not run `podman`"));
        // The io error is the cause, for anyhow's chain.
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn a_hung_command_is_killed_with_its_children_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let runner =
            Runner::new(Ui::plain_for_tests(), false).with_timeout(Duration::from_millis(300));
        let script = format!(
            "sleep 60 & echo $! > {0}; echo started >&2; sleep 60 & echo $! >> {0}; wait",
            pids.display()
        );
        let started = Instant::now();
        let err = runner
            .run(&Cmd::query("/bin/sh", "sh").args(["-c", &script]))
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(err.timed_out, Some(Duration::from_millis(300)));
        let text = err.to_string();
        assert!(
            text.starts_with("`sh -c '")
                && text.contains("wait'` timed out after 0.3 s and was killed"),
            "{text}"
        );
        assert!(text.ends_with("--- stderr\nstarted"), "{text}");
        // Both background sleeps died with the group.
        std::thread::sleep(Duration::from_millis(100));
        for pid in std::fs::read_to_string(&pids).unwrap().split_whitespace() {
            let alive = std::path::Path::new(&format!("/proc/{pid}")).exists()
                && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .unwrap_or_default()
                    .contains(") Z ");
            assert!(!alive, "child {pid} survived the deadline");
        }
    }

    #[test]
    fn longer_deadlines_and_none_override_the_runner() {
        let runner =
            Runner::new(Ui::plain_for_tests(), false).with_timeout(Duration::from_millis(100));
        let slow = Cmd::query("/bin/sh", "sh").args(["-c", "sleep 0.4"]);
        assert!(runner.run(&slow).unwrap_err().timed_out.is_some());
        runner
            .run(&slow.clone().deadline_at_least(Duration::from_secs(5)))
            .unwrap();
        runner.run(&slow.no_deadline()).unwrap();
    }

    #[test]
    fn env_reaches_the_child_but_not_the_command_line() {
        let runner = Runner::new(Ui::plain_for_tests(), false);
        let cmd = Cmd::query("/bin/sh", "sh")
            .args(["-c", "echo \"$DRCACHE_EXEC_TEST\""])
            .env("DRCACHE_EXEC_TEST", "set");
        assert_eq!(cmd.display(), "sh -c 'echo \"$DRCACHE_EXEC_TEST\"'");
        assert_eq!(runner.run(&cmd).unwrap().stdout, "set\n");
    }

    #[test]
    fn stdin_bytes_reach_the_child_but_not_the_command_line() {
        let runner = Runner::new(Ui::plain_for_tests(), false);
        let cmd = Cmd::query("/bin/cat", "cat").stdin_bytes(b"s3cret".to_vec());
        assert_eq!(cmd.display(), "cat");
        assert_eq!(runner.run(&cmd).unwrap().stdout, "s3cret");
    }
}
