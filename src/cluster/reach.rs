//! How a node reaches a cache, judged from the node's own check, and a
//! failed `minikube ssh` told in one line.

use crate::exec::CommandError;
use crate::minikube::node_scripts::CheckLine;

/// A cache as a node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    Ok,
    Unreachable { cause: String, fix: String },
}

/// Judge a node's `GET /v2/` of a cache. `answers_here`: whether the cache
/// answers on this host, which tells "not running" from "blocked".
pub fn classify(line: Option<&CheckLine>, host: &str, answers_here: bool) -> Reach {
    let unreachable = |cause: String, fix: &str| Reach::Unreachable {
        cause,
        fix: fix.to_string(),
    };
    let Some(line) = line else {
        return unreachable(
            "the node printed no result".into(),
            "run again with -v to see the node's output",
        );
    };
    match (line.curl_exit, line.http_status) {
        (0, 200) => Reach::Ok,
        (0, code) => unreachable(
            format!("answered HTTP {code}, not like a registry cache"),
            "check what listens on that port on this host: `drcache status`",
        ),
        (6, _) => unreachable(
            format!("the node cannot resolve {host}"),
            "set `host` in the config to a name or address the nodes resolve",
        ),
        (127, _) => unreachable(
            "curl is missing on the node".into(),
            "check by hand: `minikube ssh`",
        ),
        _ if !answers_here => unreachable(
            "the cache does not answer on this host either (not running?)".into(),
            "run `drcache start`",
        ),
        (7, _) => unreachable(
            "connection refused or no route, while the cache answers on this host (firewall?)"
                .into(),
            "run `drcache setup-host`",
        ),
        (28, _) => unreachable(
            "timed out, while the cache answers on this host (firewall dropping packets?)".into(),
            "run `drcache setup-host`",
        ),
        (code, _) => unreachable(
            format!("curl failed with exit code {code}, while the cache answers on this host"),
            "run `drcache setup-host`",
        ),
    }
}

/// A failed `minikube ssh` in one line, without the (long) script.
pub fn ssh_failure(e: &CommandError, profile: &str, machine: &str) -> String {
    let how = match (&e.spawn_error, e.code) {
        _ if e.timed_out.is_some() => format!(
            "timed out after {} s and was killed",
            e.timed_out.unwrap_or_default().as_secs_f64()
        ),
        (Some(spawn), _) => spawn.to_string(),
        (None, Some(code)) => format!("exit status {code}"),
        (None, None) => "killed by a signal".into(),
    };
    let lines: Vec<&str> = e
        .stderr_tail
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let stderr = lines[lines.len().saturating_sub(3)..].join("; ");
    let mut text = format!(
        "`minikube ssh -p {} -n {}` failed ({how})",
        crate::ui::quoted_name(profile),
        crate::ui::quoted_name(machine)
    );
    if !stderr.is_empty() {
        text += &format!(": {stderr}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_names_the_cause_and_the_fix() {
        let line = |exit, http| CheckLine {
            registry: "quay.io".into(),
            curl_exit: exit,
            http_status: http,
        };
        assert_eq!(classify(Some(&line(0, 200)), "h", false), Reach::Ok);
        let fix = |r: Reach| match r {
            Reach::Unreachable { cause, fix } => (cause, fix),
            Reach::Ok => panic!("ok"),
        };
        assert_eq!(
            fix(classify(Some(&line(7, 0)), "h", false)).1,
            "run `drcache start`"
        );
        assert_eq!(
            fix(classify(Some(&line(28, 0)), "h", false)).1,
            "run `drcache start`"
        );
        let (cause, f) = fix(classify(Some(&line(7, 0)), "h", true));
        assert!(cause.starts_with("connection refused"));
        assert_eq!(f, "run `drcache setup-host`");
        let (cause, f) = fix(classify(Some(&line(28, 0)), "h", true));
        assert!(cause.starts_with("timed out"));
        assert_eq!(f, "run `drcache setup-host`");
        assert!(fix(classify(Some(&line(6, 0)), "h.example", true))
            .0
            .contains("resolve h.example"));
        assert!(fix(classify(Some(&line(0, 404)), "h", true))
            .0
            .contains("HTTP 404"));
        assert!(fix(classify(None, "h", true)).0.contains("no result"));
    }
}
