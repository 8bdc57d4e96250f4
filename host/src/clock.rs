//! Wall-clock time for alarms and socket timestamps (epoch milliseconds),
//! behind a trait so that tests can run on virtual time. Timers (hibernation,
//! backoff sleeps, deadlines) use tokio's clock, which tests pause and
//! advance; `TokioClock` keeps wall time in step with it.

use std::sync::Arc;

/// Epoch milliseconds, now.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// The clock a runtime reads.
pub type SharedClock = Arc<dyn Clock>;

/// The system's wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}

/// Wall time that follows tokio's clock: the system time when it was
/// created, plus the tokio time elapsed since (paused and advanced in tests).
pub struct TokioClock {
    base_ms: i64,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// Starts at the current system time (call inside a tokio runtime).
    pub fn new() -> TokioClock {
        TokioClock {
            base_ms: SystemClock.now_ms(),
            start: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        self.base_ms + self.start.elapsed().as_millis() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_tokio_clock_moves_with_tokio_time() {
        let clock = TokioClock::new();
        let t0 = clock.now_ms();
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(clock.now_ms() - t0, 3_600_000);
    }
}
