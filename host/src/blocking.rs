//! Blocking sections on a runtime worker: a commit's flush, a database open,
//! a wait for the alarm index. On the multi-threaded runtime the worker hands
//! its other tasks over first (`block_in_place`); on a current-thread runtime
//! (in-process tests on virtual time) the section simply runs.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `f`, which may block, on the current worker.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
