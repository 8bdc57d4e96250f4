//! Durable alarms: one per object, delivered at least once, retried with
//! exponential backoff, surviving hibernation and restarts.
//!
//! The truth is in each object's database (`_dohost_meta` keys `alarm` and
//! `alarm_retry`), written in the event's transaction. The host index
//! (`<data_dir>/_dohost/alarms.sqlite`) lists (class, id, time) so alarms fire
//! after a restart without opening every object. Invariant: whenever an object
//! has an alarm at T, the index has an entry for it at T or earlier. So an
//! alarm that moves earlier (or appears) is written to the index *before* the
//! object's commit and waited for (`before_commit`); one that moves later or
//! goes away is settled *after* it, without waiting (`after_commit`): until
//! then the index holds the earlier time, which only causes a harmless
//! wake-up that resyncs it. A commit that fails leaves the index earlier than
//! the object, never later.
//!
//! `AlarmScheduler` mirrors the index in memory and dispatches due alarms as
//! events; the object actor runs the handler and decides what comes next
//! (`next_after_failure`).

mod hook;
mod import;
pub mod index;

pub use hook::AlarmHook;
pub use import::AlarmsView;

use crate::capabilities::storage::{Meta, ObjectDb, StorageError};
use crate::clock::SharedClock;
use crate::config::limits::MAX_ALARM_MS;
use crate::id::{ObjectId, ObjectKey};
use index::AlarmIndex;
use rusqlite::types::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Alarm events running at once (the rest wait their turn).
const MAX_CONCURRENT_DISPATCH: usize = 256;
/// When an alarm could not be delivered (object overloaded, no slot), try again this soon.
const REDELIVERY_DELAY_MS: i64 = 1_000;

pub use crate::config::AlarmPolicy;

/// The longest the scheduler sleeps before looking again (so that a far
/// alarm never needs a huge timer).
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// Checks an alarm time from a guest: milliseconds since the Unix epoch,
/// from 1 to the end of year 9999. (A time in the past fires at once.)
pub fn check_time(epoch_ms: i64) -> Result<(), String> {
    if (1..=MAX_ALARM_MS).contains(&epoch_ms) {
        Ok(())
    } else {
        Err(format!(
            "alarm time {epoch_ms} is out of range: pass milliseconds since the Unix epoch, \
             from 1 to {MAX_ALARM_MS} (the end of year 9999)"
        ))
    }
}

/// The delay before retry number `retry + 1`: `base · 2^retry`, scaled by
/// `1 + jitter` (jitter in [-0.25, 0.25]).
pub fn retry_delay(base: Duration, retry: u32, jitter: f64) -> Duration {
    let factor = 2f64.powi(retry.min(30) as i32) * (1.0 + jitter.clamp(-0.25, 0.25));
    base.mul_f64(factor)
}

/// What happens to an alarm whose handler failed (returned an error, trapped
/// or hit a limit) on attempt `retry` (0 = first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this time, as attempt `retry`.
    Retry { at: i64, retry: u32 },
    /// The retries are used up: the alarm is dropped.
    GiveUp,
}

/// Decides the next step after a failed attempt, at time `now`.
pub fn next_after_failure(policy: &AlarmPolicy, retry: u32, now: i64, jitter: f64) -> AfterFailure {
    if retry >= policy.max_retries {
        return AfterFailure::GiveUp;
    }
    let delay = retry_delay(policy.retry_base, retry, jitter);
    let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    AfterFailure::Retry {
        at: now.saturating_add(delay_ms).min(MAX_ALARM_MS),
        retry: retry + 1,
    }
}

/// The alarm of an object, from its database: (time, failed attempts).
pub fn read(db: &ObjectDb) -> Result<Option<(i64, u32)>, StorageError> {
    let at = match db.meta(Meta::Alarm)? {
        Some(Value::Integer(at)) => at,
        _ => return Ok(None),
    };
    let retry = match db.meta(Meta::AlarmRetry)? {
        Some(Value::Integer(n)) => n.clamp(0, u32::MAX as i64) as u32,
        _ => 0,
    };
    Ok(Some((at, retry)))
}

/// Sets (or clears) the alarm as the host, not as the running event: the
/// handler's own writes stay countable (see `event_alarm_writes`).
pub fn restore(db: &mut ObjectDb, alarm: Option<(i64, u32)>) -> Result<(), StorageError> {
    let (at, retry) = match alarm {
        Some((at, 0)) => (Value::Integer(at), Value::Null),
        Some((at, retry)) => (Value::Integer(at), Value::Integer(retry.into())),
        None => (Value::Null, Value::Null),
    };
    db.restore_meta(Meta::Alarm, at)?;
    db.restore_meta(Meta::AlarmRetry, retry)
}

/// Sets (or clears) the alarm of an object in its database.
pub fn write(db: &mut ObjectDb, alarm: Option<(i64, u32)>) -> Result<(), StorageError> {
    match alarm {
        Some((at, retry)) => {
            db.set_meta(Meta::Alarm, Value::Integer(at))?;
            db.set_meta(
                Meta::AlarmRetry,
                if retry == 0 {
                    Value::Null
                } else {
                    Value::Integer(retry.into())
                },
            )
        }
        None => {
            db.set_meta(Meta::Alarm, Value::Null)?;
            db.set_meta(Meta::AlarmRetry, Value::Null)
        }
    }
}

#[derive(Default)]
struct Queue {
    by_time: BTreeSet<(i64, ObjectKey)>,
    by_key: HashMap<ObjectKey, i64>,
    /// Alarms being delivered, with the time they were dispatched for.
    in_flight: HashMap<ObjectKey, i64>,
}

impl Queue {
    fn set(&mut self, key: &ObjectKey, at: i64) {
        if let Some(old) = self.by_key.insert(key.clone(), at) {
            self.by_time.remove(&(old, key.clone()));
        }
        self.by_time.insert((at, key.clone()));
    }

    fn remove(&mut self, key: &ObjectKey) {
        if let Some(old) = self.by_key.remove(key) {
            self.by_time.remove(&(old, key.clone()));
        }
    }

    /// The earliest alarm that is not being delivered.
    fn next(&self) -> Option<(i64, ObjectKey)> {
        self.by_time
            .iter()
            .find(|(_, k)| !self.in_flight.contains_key(k))
            .cloned()
    }

    /// A delivery ended. If the object did not move its alarm (the event
    /// could not record anything), try again later instead of at once.
    fn delivered(&mut self, key: &ObjectKey, dispatched_at: i64, now: i64) {
        self.in_flight.remove(key);
        if self.by_key.get(key) == Some(&dispatched_at) {
            self.set(key, now.saturating_add(REDELIVERY_DELAY_MS));
        }
    }
}

/// The durable index of alarms and the in-memory queue over it.
pub struct AlarmScheduler {
    /// Set at shutdown: no new alarm is dispatched.
    stopping: std::sync::atomic::AtomicBool,
    index: AlarmIndex,
    /// What the index holds (or will, once submitted writes commit), by object.
    indexed: Mutex<HashMap<ObjectKey, i64>>,
    queue: Mutex<Queue>,
    changed: Notify,
    pub policy: AlarmPolicy,
    clock: SharedClock,
    /// The clock's time when the dispatcher last looked (`settled_at`).
    scanned: AtomicI64,
}

impl AlarmScheduler {
    /// Opens (creating) the index under `data_dir` and loads it; entries of
    /// classes not in `classes` stay in the index but are not scheduled.
    pub fn open(
        data_dir: &Path,
        classes: &[Arc<str>],
        policy: AlarmPolicy,
        clock: SharedClock,
    ) -> anyhow::Result<AlarmScheduler> {
        let dir = data_dir.join("_dohost");
        std::fs::create_dir_all(&dir)?;
        let (index, entries) = AlarmIndex::open(&dir.join("alarms.sqlite"))?;
        let mut queue = Queue::default();
        let mut indexed = HashMap::new();
        for (class, id, at) in entries {
            let (Some(class), Ok(id)) =
                (classes.iter().find(|c| ***c == class), ObjectId::parse(&id))
            else {
                continue;
            };
            let key = ObjectKey {
                class: class.clone(),
                id,
            };
            // An entry outside the valid range (written before times were
            // checked) fires at once: the object then resyncs it.
            queue.set(&key, at.clamp(0, MAX_ALARM_MS));
            indexed.insert(key, at);
        }
        Ok(AlarmScheduler {
            stopping: Default::default(),
            index,
            indexed: Mutex::new(indexed),
            queue: Mutex::new(queue),
            changed: Notify::new(),
            policy,
            clock,
            scanned: AtomicI64::new(i64::MIN),
        })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn indexed(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, i64>> {
        self.indexed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Before the object commits its alarm `at`: if that is earlier than
    /// what the index holds (or the index holds nothing), write it to the
    /// index now and wait until it is durable.
    pub fn before_commit(&self, key: &ObjectKey, at: Option<i64>) -> Result<(), StorageError> {
        if crate::failpoints::hit("persist-alarm").is_some() {
            return Err(StorageError::Failed("failpoint persist-alarm".into()));
        }
        let ticket = {
            let mut indexed = self.indexed();
            match (at, indexed.get(key)) {
                (Some(t), Some(&old)) if t >= old => None,
                (Some(t), _) => {
                    indexed.insert(key.clone(), t);
                    Some(self.index.submit_upsert(&key.class, key.id.to_string(), t))
                }
                (None, _) => None,
            }
        };
        match ticket {
            Some(t) => self.index.wait(t),
            None => Ok(()),
        }
    }

    /// After the object committed its alarm `at`: schedule it, and settle the
    /// index to it (a later time or a removal; no need to wait).
    pub fn after_commit(&self, key: &ObjectKey, at: Option<i64>) {
        match at {
            Some(t) => self.queue().set(key, t),
            None => self.queue().remove(key),
        }
        self.changed.notify_one();
        let mut indexed = self.indexed();
        match at {
            Some(t) if indexed.get(key) != Some(&t) => {
                indexed.insert(key.clone(), t);
                self.index.submit_upsert(&key.class, key.id.to_string(), t);
            }
            None if indexed.remove(key).is_some() => {
                self.index.submit_remove(&key.class, key.id.to_string());
            }
            _ => {}
        }
    }

    /// What the index holds for `key` (tests).
    pub fn indexed_at(&self, key: &ObjectKey) -> Option<i64> {
        self.indexed().get(key).copied()
    }

    /// True once the dispatcher has looked at the clock at `now` or later and
    /// every alarm it dispatched has been delivered: nothing due by `now` is
    /// waiting or running. (Call `nudge` first, so that a dispatcher asleep
    /// until a later alarm looks again.)
    pub fn settled_at(&self, now: i64) -> bool {
        self.scanned.load(Ordering::SeqCst) >= now && self.queue().in_flight.is_empty()
    }

    /// Makes the dispatcher look at the clock again.
    pub fn nudge(&self) {
        self.changed.notify_one();
    }

    /// Stops dispatching (shutdown); alarms already running finish.
    pub fn stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.changed.notify_one();
    }

    /// Scheduled alarms, earliest first.
    pub fn list(&self) -> Vec<(ObjectKey, i64)> {
        self.queue()
            .by_time
            .iter()
            .map(|(at, k)| (k.clone(), *at))
            .collect()
    }

    /// Delivers due alarms until the process ends. `deliver(key)` runs the
    /// object's alarm event; an alarm whose object did not move it (the event
    /// failed before recording anything) is tried again a second later.
    pub async fn run<F, Fut>(self: Arc<Self>, deliver: F)
    where
        F: Fn(ObjectKey) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let deliver = Arc::new(deliver);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_DISPATCH));
        loop {
            if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let next = self.queue().next();
            let now = self.clock.now_ms();
            let Some((at, _)) = next else {
                self.scanned.store(now, Ordering::SeqCst);
                self.changed.notified().await;
                continue;
            };
            if at > now {
                self.scanned.store(now, Ordering::SeqCst);
                // `at` is in 1..=MAX_ALARM_MS: positive.
                let until = Duration::from_millis(at as u64).min(self.clock.now() + MAX_SLEEP);
                tokio::select! {
                    () = self.clock.sleep_until(until) => {}
                    () = self.changed.notified() => {}
                }
                continue;
            }
            let due: Vec<(i64, ObjectKey)> = {
                let mut q = self.queue();
                let now = self.clock.now_ms();
                let due: Vec<(i64, ObjectKey)> = q
                    .by_time
                    .iter()
                    .take_while(|(at, _)| *at <= now)
                    .filter(|(_, k)| !q.in_flight.contains_key(k))
                    .cloned()
                    .collect();
                q.in_flight
                    .extend(due.iter().map(|(at, k)| (k.clone(), *at)));
                self.scanned.store(now, Ordering::SeqCst);
                due
            };
            for (at, key) in due {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (me, deliver) = (self.clone(), deliver.clone());
                tokio::spawn(async move {
                    deliver(key.clone()).await;
                    let now = me.clock.now_ms();
                    me.queue().delivered(&key, at, now);
                    me.changed.notify_one();
                    drop(permit);
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(class: &str, name: &str) -> ObjectKey {
        ObjectKey {
            class: class.into(),
            id: ObjectId::from_name(class, name),
        }
    }

    #[test]
    fn the_index_is_written_ahead_only_when_an_alarm_moves_earlier() {
        let dir = tempfile::tempdir().unwrap();
        let classes: Vec<Arc<str>> = vec!["A".into()];
        let a = key("A", "x");
        let s = AlarmScheduler::open(
            dir.path(),
            &classes,
            AlarmPolicy::default(),
            Arc::new(crate::clock::SystemClock),
        )
        .unwrap();
        // New: written ahead (and durable before the commit).
        s.before_commit(&a, Some(1000)).unwrap();
        assert_eq!(s.indexed_at(&a), Some(1000));
        // The commit failed: nothing else happens, the index stays earlier.
        // Later: not written ahead (the earlier entry is safe)...
        s.before_commit(&a, Some(5000)).unwrap();
        assert_eq!(
            s.indexed_at(&a),
            Some(1000),
            "min(old, new) before the commit"
        );
        // ...and settled after the commit.
        s.after_commit(&a, Some(5000));
        assert_eq!(s.indexed_at(&a), Some(5000));
        assert_eq!(s.list(), vec![(a.clone(), 5000)]);
        // Earlier again: written ahead.
        s.before_commit(&a, Some(2000)).unwrap();
        assert_eq!(s.indexed_at(&a), Some(2000));
        drop(s);
        let s = AlarmScheduler::open(
            dir.path(),
            &classes,
            AlarmPolicy::default(),
            Arc::new(crate::clock::SystemClock),
        )
        .unwrap();
        assert_eq!(s.list(), vec![(a, 2000)], "the write-ahead was durable");
    }

    #[test]
    fn times_outside_the_epoch_range_are_refused() {
        assert!(check_time(i64::MIN).unwrap_err().contains("out of range"));
        assert!(check_time(0).is_err());
        assert!(check_time(-1).is_err());
        assert!(check_time(MAX_ALARM_MS + 1).is_err());
        assert!(check_time(1).is_ok());
        assert!(check_time(MAX_ALARM_MS).is_ok());
    }

    #[test]
    fn a_delivery_that_moved_nothing_is_retried_later_not_at_once() {
        let mut q = Queue::default();
        let k = key("A", "1");
        q.set(&k, 10);
        q.in_flight.insert(k.clone(), 10);
        q.delivered(&k, 10, 100);
        assert_eq!(q.by_key[&k], 100 + REDELIVERY_DELAY_MS);
        // The object moved its alarm: that time stands.
        q.in_flight.insert(k.clone(), q.by_key[&k]);
        q.set(&k, 7);
        q.delivered(&k, 100 + REDELIVERY_DELAY_MS, 200);
        assert_eq!(q.by_key[&k], 7);
    }

    #[test]
    fn retry_delays_double_from_the_base_within_the_jitter() {
        let base = Duration::from_secs(2);
        assert_eq!(retry_delay(base, 0, 0.0), Duration::from_secs(2));
        assert_eq!(retry_delay(base, 1, 0.0), Duration::from_secs(4));
        assert_eq!(retry_delay(base, 5, 0.0), Duration::from_secs(64));
        assert_eq!(retry_delay(base, 1, 0.25), Duration::from_secs(5));
        assert_eq!(retry_delay(base, 1, -0.25), Duration::from_secs(3));
        assert_eq!(
            retry_delay(base, 1, 9.0),
            Duration::from_secs(5),
            "jitter is clamped"
        );
        // With ±25 % jitter, each delay still exceeds the one before.
        for r in 0..10 {
            assert!(retry_delay(base, r + 1, -0.25) > retry_delay(base, r, 0.25));
        }
    }

    #[test]
    fn failures_are_retried_until_the_limit_then_given_up() {
        let policy = AlarmPolicy {
            retry_base: Duration::from_millis(100),
            max_retries: 2,
        };
        assert_eq!(
            next_after_failure(&policy, 0, 1000, 0.0),
            AfterFailure::Retry { at: 1100, retry: 1 }
        );
        assert_eq!(
            next_after_failure(&policy, 1, 1000, 0.0),
            AfterFailure::Retry { at: 1200, retry: 2 }
        );
        assert_eq!(
            next_after_failure(&policy, 2, 1000, 0.0),
            AfterFailure::GiveUp
        );
    }

    #[test]
    fn the_index_survives_reopening_and_skips_unknown_classes() {
        let dir = tempfile::tempdir().unwrap();
        let classes: Vec<Arc<str>> = vec!["A".into()];
        let a = ObjectKey {
            class: classes[0].clone(),
            id: ObjectId::from_name("A", "x"),
        };
        let b = ObjectKey {
            class: "B".into(),
            id: ObjectId::from_name("B", "y"),
        };
        {
            let s = AlarmScheduler::open(
                dir.path(),
                &classes,
                AlarmPolicy::default(),
                Arc::new(crate::clock::SystemClock),
            )
            .unwrap();
            s.before_commit(&a, Some(50)).unwrap();
            s.after_commit(&a, Some(50));
            s.before_commit(&a, Some(40)).unwrap();
            s.after_commit(&a, Some(40));
            s.before_commit(&b, Some(10)).unwrap();
            s.after_commit(&b, Some(10));
        }
        let s = AlarmScheduler::open(
            dir.path(),
            &classes,
            AlarmPolicy::default(),
            Arc::new(crate::clock::SystemClock),
        )
        .unwrap();
        assert_eq!(s.list(), vec![(a.clone(), 40)]);
        s.before_commit(&a, None).unwrap();
        s.after_commit(&a, None);
        drop(s);
        let s = AlarmScheduler::open(
            dir.path(),
            &classes,
            AlarmPolicy::default(),
            Arc::new(crate::clock::SystemClock),
        )
        .unwrap();
        assert!(s.list().is_empty());
    }

    #[test]
    fn the_queue_skips_alarms_in_flight() {
        let mut q = Queue::default();
        let k1 = ObjectKey {
            class: "A".into(),
            id: ObjectId::from_name("A", "1"),
        };
        let k2 = ObjectKey {
            class: "A".into(),
            id: ObjectId::from_name("A", "2"),
        };
        q.set(&k1, 5);
        q.set(&k2, 7);
        assert_eq!(q.next(), Some((5, k1.clone())));
        q.in_flight.insert(k1.clone(), 5);
        assert_eq!(q.next(), Some((7, k2.clone())));
        q.set(&k2, 3);
        assert_eq!(q.by_time.len(), 2, "an update replaces the old time");
        q.remove(&k2);
        assert_eq!(q.next(), None);
    }
}
