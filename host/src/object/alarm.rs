//! The alarm event of an object actor.

use super::run::{EventStart, Ran};
use super::{AlarmOutcome, EventError, EventOutput, ObjectActor};
use crate::capabilities::alarms::{self, AfterFailure};
use crate::capabilities::namespaces::ChainLink;
use crate::guest::instance::EventEffects;

impl ObjectActor {
    /// Runs the object's alarm if it is due. The handler (and the constructor
    /// of an instance built for it) sees no alarm unless it sets one. A
    /// returned error keeps the handler's writes; an error, a trap, or a
    /// constructor or instantiation that fails schedules a retry with backoff
    /// (unless the handler set or deleted the alarm itself).
    pub(super) async fn run_alarm(&mut self, callers: &[ChainLink]) -> Ran {
        // The index resyncs with the object at the commit, from the alarm
        // metadata this event writes (it always writes it: clears it to run
        // the handler, or rewrites it when it is not due).
        let host_effects = EventEffects::default;
        if let Err(e) = self.db().begin_event() {
            return (Err(self.storage_failed(e)), host_effects());
        }
        let now = self.env.clock.now_ms();
        let state = match alarms::read(self.db()) {
            Ok(state) => state,
            Err(e) => return (Err(self.storage_failed(e)), host_effects()),
        };
        let Some((at, retry)) = state.filter(|(at, _)| *at <= now) else {
            // Deleted or moved since it was indexed: rewriting it makes the
            // index resync at the commit.
            if let Err(e) = alarms::write(self.db(), state) {
                return (Err(self.storage_failed(e)), host_effects());
            }
            return match self.db().finish_event() {
                Ok(()) => (Ok(EventOutput::Alarm(AlarmOutcome::NotDue)), host_effects()),
                Err(e) => (Err(self.storage_failed(e)), host_effects()),
            };
        };
        if let Err(e) = alarms::write(self.db(), None) {
            return (Err(self.storage_failed(e)), host_effects());
        }
        let start = EventStart {
            callers,
            upgrade: false,
            batch_accepts: 0,
            alarm: Some((at, retry)),
        };
        if let Err(e) = self.ensure_instance(&start, false).await {
            // The event was undone (the alarm is back): retry it later.
            return (self.retry_after(retry, Err(e)), host_effects());
        }
        self.env.metrics.alarm(&self.key.class, "fired");
        let instance = self.residency.instance().expect("ensured");
        let writes_before = instance.db().meta_changes().event_alarm_writes();
        let result = match instance.alarm(retry).await {
            Ok(Ok(())) => Ok(AlarmOutcome::Succeeded),
            Ok(Err(message)) => {
                tracing::warn!("object {} alarm handler failed: {message}", self.key);
                Ok(AlarmOutcome::Failed(message))
            }
            Err(failure) => Err(failure),
        };
        let instance = self.residency.instance().expect("ensured");
        let handler_chose = instance.db().meta_changes().event_alarm_writes() > writes_before;
        let (result, effects) = self.finish_event(result.map(EventOutput::Alarm));
        let failed = matches!(
            result,
            Err(_) | Ok(EventOutput::Alarm(AlarmOutcome::Failed(_)))
        );
        // A trap undid the event, so the handler's choice is gone with it.
        if failed && (result.is_err() || !handler_chose) {
            return (self.retry_after(retry, result), effects);
        }
        (result, effects)
    }

    /// Records the next attempt (or gives up) and passes `result` on; a
    /// failure to record it is a storage failure.
    fn retry_after(
        &mut self,
        retry: u32,
        result: Result<EventOutput, EventError>,
    ) -> Result<EventOutput, EventError> {
        // Nothing can be recorded without a transaction (a failed database,
        // or SQLite rolled it back): the scheduler redelivers later.
        if !self.residency.db().is_some_and(|db| db.in_transaction()) {
            return result;
        }
        match self.schedule_retry(retry) {
            Ok(()) => result,
            Err(e) => Err(e),
        }
    }

    /// Records the next attempt (or gives up) in the object's database.
    fn schedule_retry(&mut self, retry: u32) -> Result<(), EventError> {
        let policy = self.env.alarms.policy;
        let jitter = rand::random::<f64>() * 0.5 - 0.25;
        let next = alarms::next_after_failure(&policy, retry, self.env.clock.now_ms(), jitter);
        let written = match next {
            AfterFailure::Retry { at, retry } => {
                self.env.metrics.alarm(&self.key.class, "retried");
                alarms::write(self.db(), Some((at, retry)))
            }
            AfterFailure::GiveUp => {
                self.env.metrics.alarm(&self.key.class, "failed");
                tracing::error!(
                    "object {}: alarm failed {} times; giving up (alarms.max_retries)",
                    self.key,
                    retry + 1
                );
                alarms::write(self.db(), None)
            }
        };
        written.map_err(|e| self.storage_failed(e))
    }
}
