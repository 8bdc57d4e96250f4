//! The alarm event of an object actor, and keeping the alarm index in step.

use super::{AlarmOutcome, EventError, EventOutput, ObjectActor};
use crate::alarms::{self, AfterFailure};
use crate::storage::StorageError;

impl ObjectActor {
    /// Runs the object's alarm if it is due. Inside the handler the object has
    /// no alarm unless the handler sets one. A returned error keeps the
    /// handler's writes; an error or a trap schedules a retry with backoff
    /// (unless the handler set or deleted the alarm itself).
    pub(super) async fn run_alarm(&mut self) -> Result<EventOutput, EventError> {
        self.alarm_dirty = true;
        let now = alarms::now_ms();
        let state = alarms::read(self.db()).map_err(|e| self.storage_failed(e))?;
        let Some((_, retry)) = state.filter(|(at, _)| *at <= now) else {
            // Deleted or moved since it was indexed: the index resyncs at commit.
            return Ok(EventOutput::Alarm(AlarmOutcome::NotDue));
        };
        self.ensure_instance(false).await?;
        let (instance, _) = self.instance.as_mut().expect("ensured");
        let started = instance
            .db()
            .begin_event()
            .and_then(|()| alarms::write(instance.db(), None));
        if let Err(e) = started {
            return Err(self.storage_failed(e));
        }
        instance.set_callers(&[]);
        self.runtime.metrics.alarm(&self.key.class, "fired");
        let (instance, _) = self.instance.as_mut().expect("ensured");
        match instance.alarm(retry).await {
            Ok(Ok(())) => {
                instance
                    .db()
                    .finish_event()
                    .map_err(|e| self.storage_failed(e))?;
                Ok(EventOutput::Alarm(AlarmOutcome::Succeeded))
            }
            Ok(Err(message)) => {
                let handler_chose = instance.take_alarm_dirty();
                instance
                    .db()
                    .finish_event()
                    .map_err(|e| self.storage_failed(e))?;
                tracing::warn!("object {} alarm handler failed: {message}", self.key);
                if !handler_chose {
                    self.schedule_retry(retry)?;
                }
                Ok(EventOutput::Alarm(AlarmOutcome::Failed(message)))
            }
            Err(failure) => {
                // Undoing the event restores the alarm as it was; then retry it.
                self.discard_instance();
                self.schedule_retry(retry)?;
                Err(self.guest_failed(failure))
            }
        }
    }

    /// Records the next attempt (or gives up) in the object's database.
    fn schedule_retry(&mut self, retry: u32) -> Result<(), EventError> {
        let policy = self.runtime.alarms.policy;
        let jitter = rand::random::<f64>() * 0.5 - 0.25;
        let next = alarms::next_after_failure(&policy, retry, alarms::now_ms(), jitter);
        let written = match next {
            AfterFailure::Retry { at, retry } => {
                self.runtime.metrics.alarm(&self.key.class, "retried");
                alarms::write(self.db(), Some((at, retry)))
            }
            AfterFailure::GiveUp => {
                self.runtime.metrics.alarm(&self.key.class, "failed");
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

    /// Before the batch commits: if the alarm changed, index its new time now
    /// (write-ahead). Returns true if the index entry must be removed after
    /// the commit (the object has no alarm any more).
    pub(super) fn sync_alarm_index_before_commit(&mut self) -> Result<bool, StorageError> {
        if !self.alarm_dirty {
            return Ok(false);
        }
        if crate::failpoints::hit("persist-alarm").is_some() {
            return Err(StorageError::Failed("failpoint persist-alarm".into()));
        }
        match alarms::read(self.db())? {
            Some((at, _)) => {
                let (alarms, key) = (self.runtime.alarms.clone(), self.key.clone());
                tokio::task::block_in_place(|| alarms.upsert(&key, at))?;
                Ok(false)
            }
            None => Ok(true),
        }
    }
}
