//! Fake tools built from a table of the exact calls they answer.
//!
//! ```ignore
//! let podman = FakeTool::new("podman")
//!     .on(&["ps", "--all", "--format", "json"], Reply::stdout("[]"))
//!     .on(&["volume", "ls", "--format", "json"], Reply::stdout("[]"))
//!     .install(&fake);
//! ```
//!
//! A call matches a rule when its argv is exactly the rule's (`on`), or
//! starts with it (`on_prefix`), each argument compared as a string;
//! `Arg::glob` makes one argument a shell pattern (for temporary file
//! names). The first matching rule answers; any other call is logged to
//! `unexpected.log`, says so on stderr and exits 99, and the test fails
//! when its `FakeBin` is dropped. Every call is logged as `NAME ARGS...`
//! in the shared `calls.log`, in order, across all tools of one `FakeBin`.

use std::path::{Path, PathBuf};

use crate::support::{write_executable, FakeBin};

impl FakeBin {
    pub fn clear_calls(&self) {
        let _ = std::fs::remove_file(self.log_path());
    }
}

/// The path of a file under tests/fixtures/.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// The content of a file under tests/fixtures/.
pub fn fixture_text(rel: &str) -> String {
    std::fs::read_to_string(fixture(rel)).unwrap_or_else(|e| panic!("fixture {rel}: {e}"))
}

/// One argument of a rule: the exact string, or a shell pattern.
#[derive(Clone)]
pub enum Arg {
    Exact(String),
    Glob(String),
}

impl Arg {
    pub fn glob(pattern: &str) -> Arg {
        Arg::Glob(pattern.to_string())
    }
}

impl From<&str> for Arg {
    fn from(s: &str) -> Arg {
        Arg::Exact(s.to_string())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Arg {
        Arg::Exact(s)
    }
}

impl From<&String> for Arg {
    fn from(s: &String) -> Arg {
        Arg::Exact(s.clone())
    }
}

/// What a fake does for a matching call: read stdin into a file, print
/// stdout and stderr, run a shell snippet (with the call's "$@"), exit.
#[derive(Clone, Default)]
pub struct Reply {
    stdout: String,
    stderr: String,
    code: i32,
    stdin_to: Option<PathBuf>,
    script: Option<String>,
    times: Option<u32>,
}

impl Reply {
    /// Exit 0, print nothing.
    pub fn ok() -> Reply {
        Reply::default()
    }

    pub fn stdout(text: impl Into<String>) -> Reply {
        Reply {
            stdout: text.into(),
            ..Reply::default()
        }
    }

    /// Print `stderr` and exit with `code`.
    pub fn fail(code: i32, stderr: impl Into<String>) -> Reply {
        Reply {
            stderr: stderr.into(),
            code,
            ..Reply::default()
        }
    }

    /// A shell snippet that does the work (state in files, exec, ...); the
    /// fake exits with the snippet's status.
    pub fn script(body: impl Into<String>) -> Reply {
        Reply {
            script: Some(body.into()),
            ..Reply::default()
        }
    }

    pub fn with_stderr(mut self, text: impl Into<String>) -> Reply {
        self.stderr = text.into();
        self
    }

    pub fn code(mut self, code: i32) -> Reply {
        self.code = code;
        self
    }

    /// Append what the call gets on stdin to `path`.
    pub fn stdin_to(mut self, path: &Path) -> Reply {
        self.stdin_to = Some(path.to_path_buf());
        self
    }

    /// Answer only the first `n` matching calls; later ones go on to the
    /// next matching rule.
    pub fn times(mut self, n: u32) -> Reply {
        self.times = Some(n);
        self
    }
}

struct Rule {
    args: Vec<Arg>,
    prefix: bool,
    reply: Reply,
}

/// A fake executable: a table of calls and replies, see the module doc.
pub struct FakeTool {
    name: String,
    rules: Vec<Rule>,
}

impl FakeTool {
    pub fn new(name: &str) -> FakeTool {
        FakeTool {
            name: name.to_string(),
            rules: Vec::new(),
        }
    }

    /// Answer the call whose argv is exactly `args`.
    pub fn on<A: Into<Arg> + Clone>(self, args: &[A], reply: Reply) -> FakeTool {
        self.rule(args, false, reply)
    }

    /// Answer every call whose argv starts with `args` (use sparingly: the
    /// rest of the argv is then not checked by the fake).
    pub fn on_prefix<A: Into<Arg> + Clone>(self, args: &[A], reply: Reply) -> FakeTool {
        self.rule(args, true, reply)
    }

    fn rule<A: Into<Arg> + Clone>(mut self, args: &[A], prefix: bool, reply: Reply) -> FakeTool {
        self.rules.push(Rule {
            args: args.iter().cloned().map(Into::into).collect(),
            prefix,
            reply,
        });
        self
    }

    /// Write the fake into the fake's dir under its name.
    pub fn install(self, fake: &FakeBin) -> PathBuf {
        let path = fake.path().join(&self.name);
        self.install_at(fake, &path)
    }

    /// Write the fake at `path` (for tools found by where they live); it
    /// logs under its own name.
    pub fn install_at(self, fake: &FakeBin, path: &Path) -> PathBuf {
        let data = fake.path().join(format!(".{}-{}", self.name, unique()));
        std::fs::create_dir_all(&data).unwrap();
        let name = &self.name;
        let mut text = format!(
            "#!/bin/sh\nprintf '%s\\n' \"{name} $*\" >> {log}\n",
            log = quote(&fake.log_path().display().to_string())
        );
        for (n, rule) in self.rules.iter().enumerate() {
            text.push_str(&rule_text(rule, n, &data));
        }
        text.push_str(&format!(
            "printf '%s\\n' \"{name} $*\" >> {unexpected}\n\
             printf '%s\\n' \"fake {name}: unexpected call: {name} $*\" >&2\nexit 99\n",
            unexpected = quote(&fake.path().join("unexpected.log").display().to_string())
        ));
        write_executable(path, &text);
        path.to_path_buf()
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// `'text'` for sh.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn rule_text(rule: &Rule, n: usize, data: &Path) -> String {
    let count = rule.args.len();
    let mut tests = vec![if rule.prefix {
        format!("[ $# -ge {count} ]")
    } else {
        format!("[ $# -eq {count} ]")
    }];
    for (i, arg) in rule.args.iter().enumerate() {
        let var = format!("${{{}}}", i + 1);
        tests.push(match arg {
            Arg::Exact(s) => format!("[ \"{var}\" = {} ]", quote(s)),
            // The pattern unquoted: case matches it as a pattern.
            Arg::Glob(p) => format!("{{ case \"{var}\" in {p}) true ;; *) false ;; esac; }}"),
        });
    }
    let reply = &rule.reply;
    let mut body = String::new();
    if let Some(path) = &reply.stdin_to {
        body.push_str(&format!("cat >> {}\n", quote(&path.display().to_string())));
    }
    for (stream, text, redirect) in [("out", &reply.stdout, ""), ("err", &reply.stderr, " >&2")] {
        if !text.is_empty() {
            let file = data.join(format!("{n}.{stream}"));
            std::fs::write(&file, text).unwrap();
            body.push_str(&format!(
                "cat {}{redirect}\n",
                quote(&file.display().to_string())
            ));
        }
    }
    match &reply.script {
        Some(script) => body.push_str(&format!("{script}\nexit $?\n")),
        None => body.push_str(&format!("exit {}\n", reply.code)),
    }
    if let Some(times) = reply.times {
        let counter = quote(&data.join(format!("{n}.count")).display().to_string());
        body = format!(
            "n=$(cat {counter} 2>/dev/null || echo 0)\n\
             if [ \"$n\" -lt {times} ]; then\necho $((n + 1)) > {counter}\n{body}fi\n"
        );
    }
    format!("if {}; then\n{body}fi\n", tests.join(" && "))
}

/// One `podman ps --all --format json` row in the shape podman 5 prints
/// (every field of a real sample), for the cache `name` of `registry` under
/// `prefix`, published on `port`.
pub fn ps_row(state: &str, prefix: &str, registry: &str, port: u16) -> serde_json::Value {
    let sample = match state {
        "running" => "podman5/podman5-ps-a-cache.json",
        "exited" => "podman5/podman5-ps-a-exited.json",
        "created" => "podman5/podman5-ps-a-created.json",
        other => panic!("no podman 5 sample of a {other} container"),
    };
    let mut row =
        serde_json::from_str::<serde_json::Value>(&fixture_text(sample)).unwrap()[0].take();
    let name = format!("{prefix}-{}", registry.replace('.', "-"));
    row["Names"] = serde_json::json!([name]);
    row["Labels"]["drcache.prefix"] = prefix.into();
    row["Labels"]["drcache.registry"] = registry.into();
    row["Ports"][0]["host_port"] = port.into();
    row
}

/// `ps` rows as podman prints them.
pub fn ps_json(rows: &[serde_json::Value]) -> String {
    serde_json::to_string_pretty(rows).unwrap()
}

/// One `podman volume ls --format json` row in podman 5's shape, named
/// `name`, with `labels` (`[]`: none).
pub fn volume_row(name: &str, labels: &[(&str, &str)]) -> serde_json::Value {
    let mut row = serde_json::from_str::<serde_json::Value>(&fixture_text(
        "podman5/podman5-volume-ls-cache.json",
    ))
    .unwrap()[0]
        .take();
    row["Name"] = name.into();
    row["Mountpoint"] = format!("/var/lib/containers/storage/volumes/{name}/_data").into();
    row["Labels"] = labels
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    row
}

/// `podman ps --all --format json`, drcache's one container listing.
pub const PS: [&str; 4] = ["ps", "--all", "--format", "json"];
/// `podman volume ls --format json`, drcache's one volume listing.
pub const VOLUME_LS: [&str; 4] = ["volume", "ls", "--format", "json"];

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn call(tool: &Path, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(tool).args(args).output().unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[test]
    fn a_fake_answers_exactly_its_calls_and_rejects_every_other() {
        let fake = FakeBin::new();
        let tool = FakeTool::new("tool")
            .on(&PS, Reply::stdout("[]\n").with_stderr("note\n"))
            .on(&["volume", "rm", "it's"], Reply::fail(2, "no\n"))
            .on(&["once"], Reply::stdout("first\n").times(1))
            .on(&["once"], Reply::stdout("then\n"))
            .on(&[Arg::from("file"), Arg::glob("/tmp/*.xml")], Reply::ok())
            .on_prefix(&["run", "--detach"], Reply::stdout("id\n"))
            .install(&fake);
        assert_eq!(call(&tool, &PS), (0, "[]\n".into(), "note\n".into()));
        assert_eq!(
            call(&tool, &["volume", "rm", "it's"]),
            (2, "".into(), "no\n".into())
        );
        assert_eq!(call(&tool, &["once"]).1, "first\n");
        assert_eq!(call(&tool, &["once"]).1, "then\n");
        assert_eq!(call(&tool, &["file", "/tmp/a b.xml"]).0, 0);
        assert_eq!(call(&tool, &["run", "--detach", "x"]).1, "id\n");
        // A flag more, a flag less, another value, a glob that does not match.
        for args in [
            &["ps", "--all", "--format", "json", "--quiet"][..],
            &["ps", "--all", "--format"],
            &["ps", "-a", "--format", "json"],
            &["file", "/tmp/a.txt"],
            &["run"],
        ] {
            let (code, _, stderr) = call(&tool, args);
            assert_eq!(code, 99, "{args:?}");
            assert_eq!(
                stderr,
                format!("fake tool: unexpected call: tool {}\n", args.join(" "))
            );
        }
        assert_eq!(fake.unexpected_calls().len(), 5);
        assert_eq!(fake.calls().len(), 11);
        assert_eq!(fake.calls()[1], "tool volume rm it's");
        // Dropping the fake would fail the test: these calls were meant.
        std::fs::remove_file(fake.path().join("unexpected.log")).unwrap();
    }

    #[test]
    #[should_panic(expected = "calls no fake was written for")]
    fn an_unexpected_call_fails_the_test_even_when_its_exit_was_ignored() {
        let fake = FakeBin::new();
        let tool = FakeTool::new("podman").install(&fake);
        let _ = call(&tool, &["ps"]);
    }
}
