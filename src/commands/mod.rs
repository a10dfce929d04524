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

use std::thread;

/// Run `work` for each item on its own thread; results keep the input order.
pub fn parallel<'a, T: Sync, R: Send>(items: &'a [T], work: impl Fn(&'a T) -> R + Sync) -> Vec<R> {
    thread::scope(|s| {
        let handles: Vec<_> = items.iter().map(|item| s.spawn(|| work(item))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker thread panicked"))
            .collect()
    })
}
