//! Ctrl-C. Children run in process groups of their own (see `exec.rs`), so
//! the terminal's SIGINT reaches drcache alone and drcache decides:
//! - by default it stops every running child's process group and exits 130
//!   at once, like any command-line tool;
//! - inside [`finish_steps`] (used by `start`) it only records the request:
//!   the step in progress (a `podman run`, a removal) completes, no new step
//!   begins, and the command exits 130 when its steps have wound down, so no
//!   half-made container is left behind.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The exit status of a run ended by Ctrl-C (128 + SIGINT), as shells report it.
pub const EXIT_INTERRUPTED: i32 = 130;

static REQUESTED: AtomicBool = AtomicBool::new(false);
static GRACEFUL: AtomicBool = AtomicBool::new(false);

/// Process groups of running children; 0 marks a free slot. Fixed-size and
/// lock-free because the signal handler reads it.
const SLOTS: usize = 64;
static CHILD_GROUPS: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];

/// Install the SIGINT handler; called once at program start.
pub fn install() {
    let handler: extern "C" fn(libc::c_int) = on_sigint;
    // SAFETY: the handler only touches atomics and calls the
    // async-signal-safe kill(2) and _exit(2).
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
    }
}

extern "C" fn on_sigint(_signal: libc::c_int) {
    REQUESTED.store(true, Ordering::SeqCst);
    if GRACEFUL.load(Ordering::SeqCst) {
        return;
    }
    for slot in &CHILD_GROUPS {
        let group = slot.load(Ordering::SeqCst);
        if group > 0 {
            // SAFETY: kill(2) is async-signal-safe.
            unsafe {
                libc::kill(-group, libc::SIGTERM);
            }
        }
    }
    // SAFETY: _exit(2) is async-signal-safe; nothing is flushed, and stderr
    // is unbuffered.
    unsafe { libc::_exit(EXIT_INTERRUPTED) }
}

/// Whether Ctrl-C was pressed.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Run `steps` with Ctrl-C deferred: it only sets [`requested`], which the
/// steps check before starting anything new.
pub fn finish_steps<T>(steps: impl FnOnce() -> T) -> T {
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            GRACEFUL.store(false, Ordering::SeqCst);
        }
    }
    GRACEFUL.store(true, Ordering::SeqCst);
    let _restore = Restore;
    steps()
}

/// A running child's process group, forgotten when dropped.
pub struct ChildGroup(Option<usize>);

/// Remember `group` so that a default Ctrl-C stops it too.
pub fn track(group: u32) -> ChildGroup {
    let Ok(group) = i32::try_from(group) else {
        return ChildGroup(None);
    };
    for (index, slot) in CHILD_GROUPS.iter().enumerate() {
        if slot
            .compare_exchange(0, group, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return ChildGroup(Some(index));
        }
    }
    // More than SLOTS children at once: this one is not stopped by Ctrl-C,
    // but still ends by its deadline.
    ChildGroup(None)
}

impl Drop for ChildGroup {
    fn drop(&mut self) {
        if let Some(index) = self.0 {
            CHILD_GROUPS[index].store(0, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracked_groups_take_and_free_slots() {
        let a = track(4242);
        let b = track(4343);
        let held: Vec<i32> = CHILD_GROUPS
            .iter()
            .map(|s| s.load(Ordering::SeqCst))
            .filter(|g| *g == 4242 || *g == 4343)
            .collect();
        assert_eq!(held.len(), 2);
        drop(a);
        drop(b);
        assert!(!CHILD_GROUPS
            .iter()
            .any(|s| matches!(s.load(Ordering::SeqCst), 4242 | 4343)));
    }

    #[test]
    fn finish_steps_defers_and_then_restores() {
        let inside = finish_steps(|| GRACEFUL.load(Ordering::SeqCst));
        assert!(inside);
        assert!(!GRACEFUL.load(Ordering::SeqCst));
    }
}
