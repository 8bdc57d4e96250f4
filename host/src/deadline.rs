//! The deadline of the event an instance is running: one point in (monotonic)
//! wall time, shared by everything that must stop when the event runs out of
//! time — the epoch callback (guest code), the SQLite progress handler (host
//! calls into the database) and the wall-clock bound around every guest call
//! (time blocked in host futures: WASI clocks and poll, timers).
//!
//! Waiting on another object does not count: the caller pauses the deadline
//! for the duration of the call (which `limits.call_timeout` bounds) and
//! resumes it afterwards with the time that was left.
//!
//! Never decides what happens at expiry; it only answers "has it expired?".

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// No deadline (outside guest calls, or paused).
const NONE: u64 = u64::MAX;

/// The reference point of the deadline's nanosecond clock.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

fn now_nanos() -> u64 {
    origin().elapsed().as_nanos() as u64
}

#[derive(Default)]
struct Shared {
    /// Nanoseconds since `origin()`, or `NONE`.
    at: AtomicU64,
    /// Signalled whenever `at` changes, so a waiting bound recomputes.
    changed: Notify,
}

/// A deadline shared by the parts of one instance; cheap to clone.
#[derive(Clone)]
pub struct Deadline(Arc<Shared>);

impl Default for Deadline {
    fn default() -> Self {
        let d = Deadline(Arc::default());
        d.0.at.store(NONE, Ordering::SeqCst);
        d
    }
}

/// The deadline ran out while a bounded future was pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired;

/// The error a guest call fails with at its deadline (raised by the epoch
/// callback, the wall-clock bound or a storage call; recognized by downcast).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the event's deadline passed (limits.cpu_per_event)")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// What a paused deadline had left.
#[derive(Debug, Clone, Copy)]
pub struct Paused(Option<Duration>);

impl Deadline {
    fn set(&self, at: u64) {
        self.0.at.store(at, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }

    /// Starts a budget of `budget` from now.
    pub fn arm(&self, budget: Duration) {
        let budget = u64::try_from(budget.as_nanos()).unwrap_or(NONE - 1);
        self.set(now_nanos().saturating_add(budget).min(NONE - 1));
    }

    /// No deadline until the next `arm`.
    pub fn disarm(&self) {
        self.set(NONE);
    }

    /// True if armed and in the past.
    pub fn expired(&self) -> bool {
        let at = self.0.at.load(Ordering::Relaxed);
        at != NONE && now_nanos() >= at
    }

    /// The deadline as an `Instant`, if armed.
    pub fn instant(&self) -> Option<Instant> {
        match self.0.at.load(Ordering::SeqCst) {
            NONE => None,
            at => Some(origin() + Duration::from_nanos(at)),
        }
    }

    /// Stops the clock (the caller waits on something bounded elsewhere).
    pub fn pause(&self) -> Paused {
        let left = self
            .instant()
            .map(|at| at.saturating_duration_since(Instant::now()));
        self.disarm();
        Paused(left)
    }

    /// Restarts the clock with what was left when it was paused.
    pub fn resume(&self, paused: Paused) {
        if let Paused(Some(left)) = paused {
            self.arm(left);
        }
    }

    /// Runs `fut` until it completes or the deadline passes, whichever is
    /// first; follows the deadline when it is re-armed, paused or resumed.
    pub async fn bound<F: Future>(&self, fut: F) -> Result<F::Output, Expired> {
        tokio::pin!(fut);
        loop {
            let changed = self.0.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let until = self.instant();
            if self.expired() {
                return Err(Expired);
            }
            let sleep = async {
                match until {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                out = &mut fut => return Ok(out),
                () = sleep => {
                    if self.expired() {
                        return Err(Expired);
                    }
                }
                () = &mut changed => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bounded_future_that_outlives_the_deadline_expires() {
        let d = Deadline::default();
        d.arm(Duration::from_millis(20));
        let r = d.bound(tokio::time::sleep(Duration::from_secs(30))).await;
        assert_eq!(r, Err(Expired));
        assert!(d.expired());
    }

    #[tokio::test]
    async fn a_paused_deadline_does_not_expire_and_resumes_with_what_was_left() {
        let d = Deadline::default();
        d.arm(Duration::from_millis(200));
        let paused = d.pause();
        assert!(!d.expired());
        // Paused: a wait longer than the budget completes.
        let r = d
            .bound(tokio::time::sleep(Duration::from_millis(300)))
            .await;
        assert_eq!(r, Ok(()));
        d.resume(paused);
        let left = d.instant().unwrap() - Instant::now();
        assert!(left <= Duration::from_millis(200), "{left:?}");
        assert!(left > Duration::from_millis(100), "{left:?}");
    }

    #[tokio::test]
    async fn a_bound_follows_a_deadline_armed_while_it_waits() {
        let d = Deadline::default();
        let waiter = d.clone();
        let task = tokio::spawn(async move {
            waiter
                .bound(tokio::time::sleep(Duration::from_secs(30)))
                .await
        });
        tokio::task::yield_now().await;
        d.arm(Duration::from_millis(10));
        assert_eq!(task.await.unwrap(), Err(Expired));
    }

    #[test]
    fn an_unarmed_deadline_never_expires() {
        let d = Deadline::default();
        assert!(!d.expired());
        assert!(d.instant().is_none());
        d.arm(Duration::ZERO);
        assert!(d.expired());
        d.disarm();
        assert!(!d.expired());
    }
}
