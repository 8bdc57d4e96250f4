//! `dohost:object/timers`: the wake-up a class asks for when timers outlive
//! the event that set them (JavaScript's `setTimeout`), and `keep-awake`. The
//! actor reads them after each batch: while a wake-up is pending (or the class
//! keeps awake) the object does not go idle, and when it is due the actor runs
//! `timer-events.fire` as an event of its own.

use crate::bindings::dohost::object::timers;
use crate::clock::SharedClock;
use std::time::Duration;

/// The exported interface that runs due timers (looked up by name: it is not
/// part of the `object` world the host's bindings are generated from).
pub const EVENTS_INTERFACE: &str = "dohost:object/timer-events";

/// The shortest wait between two timer events of an object, so a
/// `setInterval(f, 0)` cannot turn into a busy loop of events. It counts from
/// the last timer event, not from the request: an object busy with other
/// events must not push a due timer back with every one of them.
const MIN_DELAY: Duration = Duration::from_millis(1);

/// The timers capability of one instance.
pub struct TimersCtx {
    clock: SharedClock,
    /// The class exports `timer-events` (else no wake-up is ever taken).
    fires: bool,
    /// When the class asked to be woken (epoch time on `clock`).
    wake_at: Option<Duration>,
    /// The class asked to stay awake (`keep-awake`).
    keep_awake: bool,
    /// When the last timer event started.
    fired_at: Option<Duration>,
}

impl TimersCtx {
    pub fn new(clock: SharedClock, fires: bool) -> Self {
        TimersCtx {
            clock,
            fires,
            wake_at: None,
            keep_awake: false,
            fired_at: None,
        }
    }

    /// When the instance wants its timer event, if it does.
    pub fn wake_at(&self) -> Option<Duration> {
        self.wake_at
    }

    /// A timer event starts now.
    pub fn firing(&mut self) {
        self.fired_at = Some(self.clock.now());
        self.wake_at = None;
    }

    /// The instance must not hibernate when idle (`keep-awake`).
    pub fn keeps_awake(&self) -> bool {
        self.keep_awake
    }
}

impl timers::Host for &mut TimersCtx {
    fn wake_after(&mut self, delay_ms: Option<u32>) -> wasmtime::Result<bool> {
        if !self.fires {
            self.wake_at = None;
            return Ok(false);
        }
        let earliest = self.fired_at.map(|at| at + MIN_DELAY);
        self.wake_at = delay_ms.map(|ms| {
            let at = self.clock.now() + Duration::from_millis(u64::from(ms));
            earliest.map_or(at, |earliest| at.max(earliest))
        });
        Ok(true)
    }

    fn keep_awake(&mut self, on: bool) -> wasmtime::Result<()> {
        self.keep_awake = on;
        Ok(())
    }
}
