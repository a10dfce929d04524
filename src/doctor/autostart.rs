//! Doctor's autostart group: whether `drcache start` runs by itself at boot
//! (or login) and from its timer, and how its last run ended.

use crate::doctor::{Check, Inputs};

pub fn checks(inputs: &Inputs) -> Vec<Check> {
    let name = "autostart";
    let Some((status, now)) = &inputs.autostart else {
        return vec![Check::pass(
            name,
            format!("not checked on {}", std::env::consts::OS),
        )];
    };
    let check = if let Some(why) = &status.unavailable {
        Check::pass(
            name,
            format!("not available here ({why}); run `drcache start` after each boot"),
        )
    } else if status.unit.is_none() {
        Check::note(
            name,
            "not set up: the caches do not come back by themselves after a reboot, and a \
             cache that fell back to offline mode stays offline until `drcache start`",
            "`drcache setup-host`",
        )
    } else if !status.problems.is_empty() {
        Check::fail(
            name,
            format!("broken: {}", status.problems.join("; ")),
            "`drcache setup-host` with the drcache and config you use now",
        )
    } else {
        match &status.last_run {
            Some(run) if run.code != 0 => Check::note(
                name,
                status.describe(*now),
                "run `drcache start` to see why the last automatic run failed",
            ),
            _ => Check::pass(name, status.describe(*now)),
        }
    };
    vec![check]
}

#[cfg(test)]
mod tests {
    use super::checks;
    use crate::doctor::testing::inputs;
    use crate::host::autostart::{LastRun, Status};

    fn status() -> Status {
        Status {
            manager: Some("systemd"),
            unit: Some("/etc/systemd/system/drcache-p.timer".into()),
            problems: vec![],
            last_run: Some(LastRun {
                time: 100,
                code: 0,
                summary: "5 ready, 0 changed".into(),
            }),
            unavailable: None,
        }
    }

    #[test]
    fn set_up_broken_failed_missing_and_unavailable() {
        let mut i = inputs(vec![], vec![]);
        i.autostart = Some((status(), 160));
        let c = &checks(&i)[0];
        assert!(c.ok && !c.is_note(), "{c:?}");
        assert!(
            c.detail.contains("last automatic run 1m00s ago (ok)"),
            "{c:?}"
        );

        let mut s = status();
        s.last_run.as_mut().unwrap().code = 1;
        i.autostart = Some((s, 160));
        let c = &checks(&i)[0];
        assert!(
            c.ok && c.is_note() && c.detail.contains("(exit 1)"),
            "{c:?}"
        );

        let mut s = status();
        s.problems = vec!["the unit runs /old/drcache, which no longer exists".into()];
        i.autostart = Some((s, 160));
        let c = &checks(&i)[0];
        assert!(!c.ok && c.detail.contains("/old/drcache"), "{c:?}");

        let mut s = status();
        s.unit = None;
        i.autostart = Some((s, 160));
        let c = &checks(&i)[0];
        assert!(
            c.ok && c.is_note() && c.tip.as_deref() == Some("`drcache setup-host`"),
            "{c:?}"
        );

        let mut s = status();
        s.unavailable = Some("systemd does not run here".into());
        i.autostart = Some((s, 160));
        let c = &checks(&i)[0];
        assert!(
            c.ok && !c.is_note() && c.detail.contains("systemd does not run here"),
            "{c:?}"
        );
    }
}
