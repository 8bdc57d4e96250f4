//! The object actor: one tokio task per active object, the only owner of the
//! object's database connection and component instance.
//!
//! Events are processed strictly one at a time. Events that queue up while a
//! batch runs form the next batch, which the commit pipeline (`pipeline.rs`)
//! runs in one transaction and commits before any reply is released. The
//! actor is the pipeline's stage (`stage.rs`): it runs events (`run.rs`,
//! `alarm.rs`) and drives the capabilities' hooks around the commit. An idle
//! object hibernates: instance and database are dropped and the actor leaves
//! the registry.

mod alarm;
pub mod env;
mod event;
pub mod pipeline;
mod residency;
mod run;
mod stage;

pub use env::ObjectEnv;
pub use event::{AlarmOutcome, Envelope, EventError, EventKind, EventOutput};

use crate::config::limits::MAX_EVENTS_PER_COMMIT;
use crate::deadline::Deadline;
use crate::guest::engine::LoadedClass;
use crate::id::{ObjectId, ObjectKey};
use crate::registry::{Mailbox, MailboxReceiver};
use residency::Residency;
use std::sync::Arc;

/// The actor of one object.
pub struct ObjectActor {
    env: Arc<ObjectEnv>,
    class: Arc<LoadedClass>,
    key: ObjectKey,
    mailbox: MailboxReceiver<Envelope>,
    residency: Residency,
    name: Option<String>,
    /// Set when the database failed; the batch is rolled back and the object reset.
    broken: Option<String>,
    /// The deadline of the running guest call, shared by the instance and the
    /// database's progress handler.
    deadline: Deadline,
    /// What the committing batch changed in host metadata (read before the
    /// commit, for the after-commit hooks).
    commit_changes: crate::capabilities::storage::MetaChanges,
    /// When the object last released a reply (epoch time on its clock): it
    /// hibernates `hibernate_after` later if nothing arrives. Taken before
    /// the reply leaves, so no one can see the reply before it is set.
    idle_since: std::time::Duration,
}

/// What an idle actor waited for.
enum Waited {
    /// An event (or a due timer's); `None` once every sender is gone.
    Event(Option<Envelope>),
    /// It hibernated but something arrived meanwhile: wait again.
    Again,
    /// It hibernated and left the registry.
    Left,
}

/// The event that runs an instance's due timers: nobody waits for its reply.
fn timer_envelope() -> Envelope {
    let (reply, _) = tokio::sync::oneshot::channel();
    Envelope::new(EventKind::Timer, None, Default::default(), reply)
}

impl ObjectActor {
    /// Starts the actor of (class, id) and returns its mailbox.
    pub fn spawn(env: Arc<ObjectEnv>, class: Arc<LoadedClass>, id: ObjectId) -> Mailbox<Envelope> {
        let (mailbox, receiver) = Mailbox::new(env.limits.mailbox, env.limits.mailbox_bytes);
        let key = ObjectKey {
            class: class.name.clone(),
            id,
        };
        let idle_since = env.clock.now();
        let actor = ObjectActor {
            env,
            class,
            key,
            mailbox: receiver,
            residency: Residency::Hibernated,
            name: None,
            broken: None,
            deadline: Deadline::default(),
            commit_changes: Default::default(),
            idle_since,
        };
        tokio::spawn(actor.run());
        mailbox
    }

    fn object(&self) -> String {
        self.key.to_string()
    }

    async fn run(mut self) {
        let hibernate_after = self.env.limits.hibernate_after;
        loop {
            let first = match self.next_event(hibernate_after).await {
                Waited::Event(first) => first,
                Waited::Again => continue,
                Waited::Left => return,
            };
            let Some(first) = first else {
                // Every sender is gone: the registry dropped us (shutdown).
                self.hibernate("shutdown");
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_EVENTS_PER_COMMIT {
                match self.mailbox.try_recv() {
                    Some(e) => batch.push(e),
                    None => break,
                }
            }
            let queued = batch
                .iter()
                .filter(|e| !matches!(e.kind, EventKind::Timer))
                .count();
            self.env.metrics.mailbox_depth.dec_by(queued as i64);
            self.run_batch(batch).await;
            // `hibernate_after = "0s"`: evict after every batch (nothing may
            // live in the instance between events) unless timers are pending
            // or the class keeps awake.
            // An object that could not get an active slot leaves as soon as
            // nothing waits for it.
            let leave = (hibernate_after.is_zero() || self.residency.permit().is_none())
                && self.mailbox.is_empty()
                && !self.stays_awake();
            if leave && self.hibernate_and_leave("idle") {
                return;
            }
        }
    }

    /// Waits for what comes next: an event, a due timer, or the time to
    /// hibernate (idle, or evicted for another object's slot).
    async fn next_event(&mut self, hibernate_after: std::time::Duration) -> Waited {
        // Pending timers and keep-awake keep the object from going idle (not
        // from eviction).
        let timer = self.timer_due();
        let awake = self.stays_awake();
        let Some(permit) = self.residency.permit() else {
            return Waited::Event(self.mailbox.recv().await);
        };
        // Due already: a new sleep could wait for the next tick of the timer
        // wheel while events keep arriving.
        if timer.is_some_and(|due| due <= self.env.clock.now()) {
            return Waited::Event(Some(timer_envelope()));
        }
        let slot = permit.slot().clone();
        // A due timer goes first: a stream of other events must not starve it
        // (timer events are at least 1 ms apart).
        let reason = tokio::select! {
            biased;
            () = self.env.clock.sleep_until(timer.unwrap_or_default()), if timer.is_some() => {
                return Waited::Event(Some(timer_envelope()));
            }
            event = self.mailbox.recv() => return Waited::Event(event),
            () = slot.evict.notified() => {
                if awake {
                    tracing::info!("object {}: evicted for another object's slot; its pending timers and in-memory state are dropped", self.key);
                }
                "lru"
            }
            () = self.env.clock.sleep_until(self.idle_since + hibernate_after), if !awake => "idle",
        };
        if self.hibernate_and_leave(reason) {
            Waited::Left
        } else {
            Waited::Again
        }
    }

    async fn run_batch(&mut self, batch: Vec<Envelope>) {
        if let Err(e) = self.activate().await {
            for envelope in batch {
                let label = envelope.kind.label();
                self.env.metrics.event(&self.key.class, label, "refused");
                let _ = envelope.reply.send(Err(e.clone()));
            }
            return;
        }
        if let Some(permit) = self.residency.permit() {
            permit.touch();
        }
        let object = self.key.clone();
        pipeline::run_batch(self, &object, batch).await;
    }

    /// The live instance must not go idle: a timer is pending, or it asked
    /// to keep awake.
    fn stays_awake(&mut self) -> bool {
        self.residency
            .instance()
            .is_some_and(|i| i.timer_wake_at().is_some() || i.keeps_awake())
    }

    /// When the live instance wants its pending timers run, if it has any.
    fn timer_due(&mut self) -> Option<std::time::Duration> {
        self.residency.instance()?.timer_wake_at()
    }

    /// Hibernates, then leaves the registry if nothing arrived meanwhile.
    fn hibernate_and_leave(&mut self, reason: &str) -> bool {
        self.hibernate(reason);
        self.env.registry.leave_if_idle(&self.key, &self.mailbox)
    }

    /// Drops the instance and the database; the object now lives only on disk
    /// (and not even there when it holds nothing a constructor would not
    /// rebuild). A large WAL is checkpointed first, so waking reads little.
    fn hibernate(&mut self, reason: &str) {
        if self.residency.permit().is_none() {
            return;
        }
        let db = std::mem::take(&mut self.residency).close();
        let _ = crate::failpoints::hit("mid-eviction");
        if let Some(db) = db {
            self.close_database(db);
        }
        self.env.metrics.hibernation(reason);
        if self.env.registry.mark_hibernated(&self.key) {
            self.env.metrics.objects_hibernated.inc();
        }
    }

    /// Closes a hibernating object's database: removed when it holds
    /// nothing a constructor would not rebuild, else its WAL compacted.
    fn close_database(&self, mut db: crate::capabilities::storage::ObjectDb) {
        let disposable = db.is_disposable().unwrap_or(false);
        if !disposable {
            if let Err(e) = crate::blocking::blocking(|| db.compact_wal()) {
                tracing::warn!("object {}: checkpoint at hibernation: {e}", self.key);
            }
        }
        let path = db.path().to_path_buf();
        drop(db);
        if disposable {
            if let Err(e) = crate::capabilities::storage::remove_database(&path) {
                tracing::warn!("object {}: removing its empty database: {e}", self.key);
            }
        }
    }

    /// Takes an active slot and opens the database, if the object has none.
    async fn activate(&mut self) -> Result<(), EventError> {
        if !self.residency.needs_db() {
            return Ok(());
        }
        let limits = &self.env.limits;
        let permit = match std::mem::take(&mut self.residency) {
            Residency::Slot { permit } => permit,
            _ => {
                let permit = self
                    .env
                    .registry
                    .activate(&self.key, limits.activation_wait)
                    .await
                    .ok_or_else(|| EventError::NoCapacity {
                        object: self.object(),
                        limit: limits.max_active,
                    })?;
                if self.env.registry.mark_woken(&self.key) {
                    self.env.metrics.objects_hibernated.dec();
                }
                permit
            }
        };
        let path = self.env.object_path(&self.key);
        let storage_limits = crate::capabilities::storage::StorageLimits {
            max_bytes: limits.max_storage_bytes,
        };
        let deadline = self.deadline.clone();
        let opened = crate::blocking::blocking(|| {
            crate::capabilities::storage::ObjectDb::open_with(&path, storage_limits, deadline)
        });
        match opened {
            Ok(db) => {
                self.residency = Residency::Open { permit, db };
                Ok(())
            }
            Err(e) => {
                self.residency = Residency::Slot { permit };
                Err(EventError::Storage {
                    object: self.object(),
                    message: e.to_string(),
                })
            }
        }
    }

    /// Drops the instance and the database after a storage failure (the slot
    /// stays; the database is reopened on demand).
    fn reset(&mut self) {
        self.residency = std::mem::take(&mut self.residency).reset();
        self.broken = None;
    }

    fn storage_failed(&mut self, err: impl std::fmt::Display) -> EventError {
        let message = err.to_string();
        self.broken.get_or_insert_with(|| message.clone());
        EventError::Storage {
            object: self.object(),
            message,
        }
    }

    /// Drops a failed instance and undoes its event.
    fn discard_instance(&mut self) {
        self.residency.discard_instance();
        if let Some(db) = self.residency.db() {
            if let Err(e) = db.undo_event() {
                self.broken.get_or_insert_with(|| e.to_string());
            }
        }
    }
}
