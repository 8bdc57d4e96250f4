//! The object actor: one tokio task per active object, the only owner of the
//! object's database connection and component instance.
//!
//! Events are processed strictly one at a time. Events that queue up while a
//! batch runs form the next batch: one SQLite transaction with one savepoint
//! per event, committed (one fsync) before any reply of the batch is released
//! (the output gate; `batch.rs`). A guest failure rolls back only its own
//! event and discards the instance (`run.rs`); a storage failure rolls back
//! the whole batch and resets the object. An idle object hibernates: instance
//! and database are dropped and the actor leaves the registry.

mod alarm;
mod batch;
mod event;
mod run;

pub use event::{AlarmOutcome, Envelope, EventError, EventKind, EventOutput};

use crate::deadline::Deadline;
use crate::engine::LoadedClass;
use crate::id::ObjectId;
use crate::instance::ObjectInstance;
use crate::limits::MAX_EVENTS_PER_COMMIT;
use crate::metrics::LiveGuard;
use crate::registry::{ActivePermit, Mailbox, MailboxReceiver, ObjectKey};
use crate::runtime::Runtime;
use crate::storage::ObjectDb;
use std::sync::Arc;

/// The actor of one object.
pub struct ObjectActor {
    runtime: Arc<Runtime>,
    class: Arc<LoadedClass>,
    key: ObjectKey,
    mailbox: MailboxReceiver,
    /// Present while active. Always dropped together with `db` and `instance`.
    permit: Option<ActivePermit>,
    db: Option<ObjectDb>,
    instance: Option<(ObjectInstance, LiveGuard)>,
    name: Option<String>,
    /// Set when the database failed; the batch is rolled back and the object reset.
    broken: Option<String>,
    /// The deadline of the running guest call, shared by the instance and the
    /// database's progress handler.
    deadline: Deadline,
}

impl ObjectActor {
    /// Starts the actor of (class, id) and returns its mailbox.
    pub fn spawn(runtime: Arc<Runtime>, class: Arc<LoadedClass>, id: ObjectId) -> Mailbox {
        let limits = &runtime.config.limits;
        let (mailbox, receiver) = Mailbox::new(limits.mailbox, limits.mailbox_bytes);
        let key = ObjectKey {
            class: class.name.clone(),
            id,
        };
        let actor = ObjectActor {
            runtime,
            class,
            key,
            mailbox: receiver,
            permit: None,
            db: None,
            instance: None,
            name: None,
            broken: None,
            deadline: Deadline::default(),
        };
        tokio::spawn(actor.run());
        mailbox
    }

    fn object(&self) -> String {
        self.key.to_string()
    }

    async fn run(mut self) {
        let hibernate_after = self.runtime.config.limits.hibernate_after;
        loop {
            let first = match &self.permit {
                None => self.mailbox.recv().await,
                Some(permit) => {
                    let slot = permit.slot().clone();
                    tokio::select! {
                        biased;
                        event = self.mailbox.recv() => event,
                        () = slot.evict.notified() => {
                            self.hibernate("lru");
                            if self.runtime.registry.leave_if_idle(&self.key, &self.mailbox) {
                                return;
                            }
                            continue;
                        }
                        () = tokio::time::sleep(hibernate_after) => {
                            self.hibernate("idle");
                            if self.runtime.registry.leave_if_idle(&self.key, &self.mailbox) {
                                return;
                            }
                            continue;
                        }
                    }
                }
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
            self.runtime
                .metrics
                .mailbox_depth
                .dec_by(batch.len() as i64);
            self.run_batch(batch).await;
            // `hibernate_after = "0s"`: evict after every batch (nothing may
            // live in the instance between events). An object that could not
            // get an active slot leaves as soon as nothing waits for it.
            let leave =
                (hibernate_after.is_zero() || self.permit.is_none()) && self.mailbox.is_empty();
            if leave {
                self.hibernate("idle");
                if self
                    .runtime
                    .registry
                    .leave_if_idle(&self.key, &self.mailbox)
                {
                    return;
                }
            }
        }
    }

    /// Drops the instance and the database; the object now lives only on disk
    /// (and not even there when it holds nothing a constructor would not
    /// rebuild). A large WAL is checkpointed first, so waking reads little.
    fn hibernate(&mut self, reason: &str) {
        if self.permit.is_none() {
            return;
        }
        if let Some((instance, _guard)) = self.instance.take() {
            self.db = Some(instance.into_db());
        }
        let _ = crate::failpoints::hit("mid-eviction");
        if let Some(mut db) = self.db.take() {
            let disposable = db.is_disposable().unwrap_or(false);
            if !disposable {
                if let Err(e) = tokio::task::block_in_place(|| db.compact_wal()) {
                    tracing::warn!("object {}: checkpoint at hibernation: {e}", self.key);
                }
            }
            let path = db.path().to_path_buf();
            drop(db);
            if disposable {
                if let Err(e) = crate::storage::remove_database(&path) {
                    tracing::warn!("object {}: removing its empty database: {e}", self.key);
                }
            }
        }
        self.permit = None;
        self.runtime.metrics.hibernation(reason);
        if self.runtime.registry.mark_hibernated(&self.key) {
            self.runtime.metrics.objects_hibernated.inc();
        }
    }

    /// Drops instance and database after a storage failure (reopened on demand).
    fn reset(&mut self) {
        self.instance = None;
        self.db = None;
        self.broken = None;
    }

    /// Opens the database if needed (acquiring an active slot first).
    async fn ensure_db(&mut self) -> Result<(), EventError> {
        if self.permit.is_none() {
            let limits = &self.runtime.config.limits;
            let (limit, wait) = (limits.max_active, limits.activation_wait);
            let permit = self
                .runtime
                .registry
                .activate(&self.key, wait)
                .await
                .ok_or_else(|| EventError::NoCapacity {
                    object: self.object(),
                    limit,
                })?;
            self.permit = Some(permit);
            if self.runtime.registry.mark_woken(&self.key) {
                self.runtime.metrics.objects_hibernated.dec();
            }
        }
        if self.db.is_none() && self.instance.is_none() {
            let path = self.runtime.object_path(&self.key);
            let limits = self.runtime.config.limits.storage();
            let deadline = self.deadline.clone();
            let db = tokio::task::block_in_place(|| ObjectDb::open_with(&path, limits, deadline))
                .map_err(|e| EventError::Storage {
                object: self.object(),
                message: e.to_string(),
            })?;
            self.db = Some(db);
        }
        Ok(())
    }

    fn db(&mut self) -> &mut ObjectDb {
        match (&mut self.instance, &mut self.db) {
            (Some((instance, _)), _) => instance.db(),
            (None, Some(db)) => db,
            (None, None) => unreachable!("ensure_db runs before any storage access"),
        }
    }

    fn storage_failed(&mut self, err: impl std::fmt::Display) -> EventError {
        let message = err.to_string();
        self.broken.get_or_insert_with(|| message.clone());
        EventError::Storage {
            object: self.object(),
            message,
        }
    }

    /// Moves the database out of a failed instance and undoes its event.
    fn discard_instance(&mut self) {
        if let Some((instance, _guard)) = self.instance.take() {
            self.db = Some(instance.into_db());
        }
        let db = self.db();
        if db.in_transaction() {
            if let Err(e) = db.undo_event() {
                self.broken.get_or_insert_with(|| e.to_string());
            }
        }
    }
}
