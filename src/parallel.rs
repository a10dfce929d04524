//! Work on every item at once, one thread each: every item here is a
//! subprocess or an HTTP request that mostly waits.

use std::thread;

/// Run `work` for each item on its own thread; results keep the input order.
pub fn map<'a, T: Sync, R: Send>(items: &'a [T], work: impl Fn(&'a T) -> R + Sync) -> Vec<R> {
    thread::scope(|s| {
        let handles: Vec<_> = items.iter().map(|item| s.spawn(|| work(item))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker thread panicked"))
            .collect()
    })
}
