//! Wall-clock time, behind a trait so that tests can run on virtual time:
//! what alarms are due, when a retry is, when an idle object hibernates,
//! auto-response timestamps, and the wall clock guests read through WASI.
//! (Deadlines, I/O timeouts and the guests' monotonic clock stay on real
//! time: they bound real work.)

use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

/// A source of wall time and of sleeps measured on it.
pub trait Clock: Send + Sync {
    /// Time since the Unix epoch.
    fn now(&self) -> Duration;
    /// Completes once this clock reads `when` (time since the epoch) or
    /// later. Deadlines are absolute so that a sleep started a little late
    /// still ends on time.
    fn sleep_until(&self, when: Duration) -> BoxFuture<'static, ()>;
    /// Epoch milliseconds, now.
    fn now_ms(&self) -> i64 {
        i64::try_from(self.now().as_millis()).unwrap_or(i64::MAX)
    }
}

/// The clock a runtime reads.
pub type SharedClock = Arc<dyn Clock>;

/// The system's wall clock, with tokio's timers.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
    }

    fn sleep_until(&self, when: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(when.saturating_sub(self.now())))
    }
}

/// Virtual time for tests: it stands still until `advance` moves it, and
/// every sleep that is then due completes at once.
pub struct ManualClock {
    now: tokio::sync::watch::Sender<Duration>,
}

impl ManualClock {
    /// A clock at the current system time, standing still.
    pub fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now: tokio::sync::watch::Sender::new(SystemClock.now()),
        })
    }

    /// Moves time forward by `d`, waking the sleeps that are due.
    pub fn advance(&self, d: Duration) {
        self.now.send_modify(|now| *now += d);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        *self.now.borrow()
    }

    fn sleep_until(&self, due: Duration) -> BoxFuture<'static, ()> {
        let mut now = self.now.subscribe();
        Box::pin(async move {
            while *now.borrow_and_update() < due {
                if now.changed().await.is_err() {
                    // The clock is gone: time never comes.
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}

/// A clock as the guests' WASI wall clock.
pub struct WasiWallClock(pub SharedClock);

impl wasmtime_wasi::HostWallClock for WasiWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        self.0.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_only_the_sleeps_that_are_due() {
        let clock = ManualClock::new();
        let (t0, start) = (clock.now_ms(), clock.now());
        let short = tokio::spawn(clock.sleep_until(start + Duration::from_secs(10)));
        let long = tokio::spawn(clock.sleep_until(start + Duration::from_secs(3600)));
        clock.advance(Duration::from_secs(10));
        short.await.unwrap();
        assert!(!long.is_finished());
        assert_eq!(clock.now_ms() - t0, 10_000);
        clock.advance(Duration::from_secs(3590));
        long.await.unwrap();
    }
}
