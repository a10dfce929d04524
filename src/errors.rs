//! Error kinds that decide the exit status and carry a `hint:`.

use std::fmt;

use crate::config::ConfigError;
use crate::exec::CommandError;

/// Exit statuses, documented in the README.
pub mod exit {
    pub const OK: i32 = 0;
    /// A command failed or a change could not be made.
    pub const FAILURE: i32 = 1;
    /// Bad command line or invalid configuration; nothing was changed.
    pub const USAGE: i32 = 2;
    /// Ran fine, but something is not ready / not set up (status, checks).
    pub const NOT_READY: i32 = 3;
    /// A required tool (podman, firewall-cmd, ...) is not installed.
    pub const TOOL_MISSING: i32 = 4;
}

/// A usage error found after argument parsing (e.g. an unknown registry).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UsageError {}

/// An error with a known fix.
#[derive(Debug)]
pub struct Hinted {
    pub message: String,
    pub hint: String,
    pub code: i32,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
impl std::error::Error for Hinted {}

/// A command ran to completion but reported a state that is not OK; the
/// report has been printed already.
#[derive(Debug)]
pub struct Unsatisfied {
    pub message: String,
    pub code: i32,
}

impl fmt::Display for Unsatisfied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
impl std::error::Error for Unsatisfied {}

/// Ctrl-C ended the run after the step in progress finished.
#[derive(Debug)]
pub struct Interrupted;

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("interrupted: the step in progress was finished, nothing new was started")
    }
}
impl std::error::Error for Interrupted {}

/// The exit status for an error: the first cause that decides one wins.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if cause.is::<Interrupted>() {
            return crate::interrupt::EXIT_INTERRUPTED;
        }
        if cause.is::<UsageError>() || cause.is::<ConfigError>() {
            return exit::USAGE;
        }
        if let Some(h) = cause.downcast_ref::<Hinted>() {
            return h.code;
        }
        if let Some(u) = cause.downcast_ref::<Unsatisfied>() {
            return u.code;
        }
    }
    exit::FAILURE
}

/// The `hint:` for an error, from the first cause that knows one.
pub fn hint(err: &anyhow::Error) -> Option<String> {
    err.chain().find_map(|cause| {
        if let Some(h) = cause.downcast_ref::<Hinted>() {
            Some(h.hint.clone())
        } else if let Some(c) = cause.downcast_ref::<CommandError>() {
            c.hint.clone()
        } else if cause.is::<ConfigError>() {
            Some("fix the config file, or see `drcache --help` for where the configuration is read from".into())
        } else {
            None
        }
    })
}
