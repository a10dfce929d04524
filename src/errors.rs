//! Error kinds that decide the exit status and carry a `hint:`.

use std::fmt;

use crate::config::ConfigError;
use crate::exec::CommandError;

/// How a command ended, decided in one place (`main`) from what the
/// command returned: a finished command returns its status as a value
/// ("not ready" is an outcome, not an error); an error maps to one too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    /// A command failed or a change could not be made.
    Failure,
    /// Bad command line or invalid configuration; nothing was changed.
    Usage,
    /// Ran fine, but something is not ready / not set up.
    NotReady,
    /// A required tool is not installed.
    ToolMissing,
    /// Ctrl-C.
    Interrupted,
}

impl ExitStatus {
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Success => exit::OK,
            ExitStatus::Failure => exit::FAILURE,
            ExitStatus::Usage => exit::USAGE,
            ExitStatus::NotReady => exit::NOT_READY,
            ExitStatus::ToolMissing => exit::TOOL_MISSING,
            ExitStatus::Interrupted => crate::interrupt::EXIT_INTERRUPTED,
        }
    }

    fn from_code(code: i32) -> ExitStatus {
        match code {
            exit::OK => ExitStatus::Success,
            exit::USAGE => ExitStatus::Usage,
            exit::NOT_READY => ExitStatus::NotReady,
            exit::TOOL_MISSING => ExitStatus::ToolMissing,
            crate::interrupt::EXIT_INTERRUPTED => ExitStatus::Interrupted,
            _ => ExitStatus::Failure,
        }
    }
}

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

/// The exit status for an error: the first cause that decides one wins.
pub fn exit_status(err: &anyhow::Error) -> ExitStatus {
    for cause in err.chain() {
        if cause.is::<UsageError>() || cause.is::<ConfigError>() {
            return ExitStatus::Usage;
        }
        if let Some(h) = cause.downcast_ref::<Hinted>() {
            return ExitStatus::from_code(h.code);
        }
    }
    ExitStatus::Failure
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
