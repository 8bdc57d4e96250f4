//! `dohost:object/timers`: the wake-up a class asks for when timers outlive
//! the event that set them (JavaScript's `setTimeout`). The actor reads it
//! after each batch: while one is pending the object stays awake, and when it
//! is due the actor runs `timer-events.fire` as an event of its own.

use crate::bindings::dohost::object::timers;
use crate::clock::SharedClock;
use std::time::Duration;

/// The exported interface that runs due timers (looked up by name: it is not
/// part of the `object` world the host's bindings are generated from).
pub const EVENTS_INTERFACE: &str = "dohost:object/timer-events";

/// The shortest wait between two timer events of an object, so a
/// `setInterval(f, 0)` cannot turn into a busy loop of events.
const MIN_DELAY: Duration = Duration::from_millis(1);

/// The timers capability of one instance.
pub struct TimersCtx {
    clock: SharedClock,
    /// The class exports `timer-events` (else no wake-up is ever taken).
    fires: bool,
    /// When the class asked to be woken (epoch time on `clock`).
    wake_at: Option<Duration>,
}

impl TimersCtx {
    pub fn new(clock: SharedClock, fires: bool) -> Self {
        TimersCtx {
            clock,
            fires,
            wake_at: None,
        }
    }

    /// When the instance wants its timer event, if it does.
    pub fn wake_at(&self) -> Option<Duration> {
        self.wake_at
    }
}

impl timers::Host for &mut TimersCtx {
    fn wake_after(&mut self, delay_ms: Option<u32>) -> wasmtime::Result<bool> {
        if !self.fires {
            self.wake_at = None;
            return Ok(false);
        }
        self.wake_at = delay_ms.map(|ms| {
            let delay = Duration::from_millis(u64::from(ms)).max(MIN_DELAY);
            self.clock.now() + delay
        });
        Ok(true)
    }
}
