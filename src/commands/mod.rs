//! One module per subcommand: orchestration only.

pub mod clean;
pub mod completions;
pub mod configure;
pub mod doctor;
pub mod hosts_toml;
pub mod logs;
pub mod prune;
pub mod setup_host;
pub mod start;
pub mod stats;
pub mod status;
pub mod stop;
pub mod warm;
