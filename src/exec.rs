//! The one place that spawns processes. Every external tool call goes through
//! [`Runner::run`], which logs it at `-v`, skips mutations under `--dry-run`,
//! and turns a failure into a [`CommandError`] carrying the command line, the
//! exit status and the tail of stderr.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use crate::ui::Ui;

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
    /// The child reads the terminal (sudo's password prompt) while its output
    /// is still captured, so that errors keep stderr and `--json` stays clean.
    terminal_stdin: bool,
    /// Exit codes that are answers rather than failures (e.g. `exists` -> 1).
    accepted: Vec<i32>,
    /// Variables set for the child on top of our environment.
    env: Vec<(String, String)>,
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
            accepted: vec![0],
            env: Vec::new(),
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

/// Quote an argument for display so that a copied line runs the same.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+^{}[]".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
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
    pub spawn_error: Option<String>,
    /// The likely fix, when the tool wrapper recognizes the failure.
    pub hint: Option<String>,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.spawn_error, self.code) {
            (Some(e), _) => write!(f, "could not run `{}`: {e}", self.command)?,
            (None, Some(code)) => write!(f, "`{}` failed (exit status {code})", self.command)?,
            (None, None) => write!(f, "`{}` was killed by a signal", self.command)?,
        }
        if !self.stderr_tail.is_empty() {
            write!(f, "\n--- stderr\n{}", self.stderr_tail)?;
        }
        Ok(())
    }
}

impl std::error::Error for CommandError {}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs commands on behalf of the whole program.
#[derive(Debug, Clone)]
pub struct Runner {
    pub dry_run: bool,
    ui: Ui,
}

impl Runner {
    pub fn new(ui: Ui, dry_run: bool) -> Self {
        Runner { dry_run, ui }
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
        for (key, value) in &cmd.env {
            expr = expr.env(key, value);
        }
        expr = match &cmd.stdin {
            Some(bytes) => expr.stdin_bytes(bytes.clone()),
            None if cmd.interactive || cmd.terminal_stdin => expr,
            None => expr.stdin_null(),
        };
        if !cmd.interactive {
            expr = expr.stdout_capture().stderr_capture();
        }
        let out = expr.run().map_err(|e| CommandError {
            command: cmd.display(),
            code: None,
            stderr_tail: String::new(),
            spawn_error: Some(e.to_string()),
            hint: None,
        })?;
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
                spawn_error: None,
                hint: None,
            })
        }
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
        assert!(err.spawn_error.is_some());
        assert!(err.to_string().starts_with("could not run `podman`"));
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
