//! One batch of events: run them in one transaction, commit it, then release
//! what the events produced — the order durability depends on:
//!
//! 1. every event runs in its own savepoint (`run.rs`); a failed event rolls
//!    back alone. If SQLite itself rolls back the transaction under one
//!    event's statement, the events before it in the batch are void (their
//!    clients are told to retry) and the batch continues in a new transaction;
//! 2. before the commit, the alarm index learns any earlier alarm time
//!    (write-ahead: the index is never later than the object's real alarm);
//! 3. the commit (one fsync for the batch);
//! 4. after it: socket operations, served upgrades, the index settles to the
//!    alarm's new time, and only then the replies (the output gate).
//!
//! A batch whose events queued more than `MAX_EVENT_SEND_BYTES` of socket
//! messages is committed and released early, so that memory stays bounded.

use super::{EventError, EventOutput, ObjectActor};
use crate::instance::EventEffects;
use crate::limits::MAX_EVENT_SEND_BYTES;
use crate::object::Envelope;
use crate::sockets::{SocketId, SocketOp};
use tokio::sync::oneshot;

/// An event that ran, waiting for its batch to commit.
pub(super) struct Pending {
    pub reply: oneshot::Sender<Result<EventOutput, EventError>>,
    pub label: &'static str,
    pub result: Result<EventOutput, EventError>,
    /// What it did to sockets and the alarm (empty if it failed).
    pub effects: EventEffects,
    /// The connection of the socket it accepted, served once it commits.
    pub upgrade: Option<(SocketId, crate::sockets::PendingConnection)>,
}

impl Pending {
    pub fn failed(
        reply: oneshot::Sender<Result<EventOutput, EventError>>,
        label: &'static str,
        error: EventError,
    ) -> Pending {
        Pending {
            reply,
            label,
            result: Err(error),
            effects: EventEffects::default(),
            upgrade: None,
        }
    }
}

/// The events of the open transaction.
#[derive(Default)]
struct Batch {
    pending: Vec<Pending>,
    /// Bytes of socket messages the events queued.
    send_bytes: usize,
    /// Sockets the events accepted (not in the hub until the commit).
    accepts: usize,
}

impl Batch {
    fn push(&mut self, p: Pending) {
        self.send_bytes += p.effects.send_bytes;
        self.accepts += p
            .effects
            .socket_ops
            .iter()
            .filter(|op| matches!(op, SocketOp::Accept { .. }))
            .count();
        self.pending.push(p);
    }

    /// SQLite rolled back the transaction: nothing of the events so far was
    /// kept, whatever they answered.
    fn void(&mut self, object: &str, reason: &str) {
        for p in &mut self.pending {
            if p.result.is_ok() {
                p.result = Err(EventError::BatchRolledBack {
                    object: object.to_string(),
                    reason: reason.to_string(),
                });
            }
            p.effects = EventEffects::default();
            p.upgrade = None;
        }
        self.send_bytes = 0;
        self.accepts = 0;
    }

    /// An event changed the alarm (a failed one too: an alarm event that
    /// failed records its retry outside its own savepoint).
    fn alarm_changed(&self) -> bool {
        self.pending.iter().any(|p| p.effects.alarm_dirty)
    }
}

impl ObjectActor {
    pub(super) async fn run_batch(&mut self, envelopes: Vec<Envelope>) {
        if let Err(e) = self.ensure_db().await {
            for envelope in envelopes {
                let label = envelope.kind.label();
                self.runtime
                    .metrics
                    .event(&self.key.class, label, "refused");
                let _ = envelope.reply.send(Err(e.clone()));
            }
            return;
        }
        if let Some(permit) = &self.permit {
            permit.touch();
        }
        if let Err(e) = self.db().begin() {
            let err = self.storage_failed(e);
            self.reset();
            for envelope in envelopes {
                let label = envelope.kind.label();
                self.release(Pending::failed(envelope.reply, label, err.clone()));
            }
            return;
        }
        let mut batch = Batch::default();
        for envelope in envelopes {
            let pending = self.run_envelope(envelope, batch.accepts).await;
            if let Some(reason) = self.db().take_lost() {
                batch.void(&self.object(), &reason);
                self.begin_again();
            }
            batch.push(pending);
            if batch.send_bytes >= MAX_EVENT_SEND_BYTES && self.broken.is_none() {
                self.commit_and_release(std::mem::take(&mut batch)).await;
                self.begin_again();
            }
        }
        self.commit_and_release(batch).await;
    }

    /// Opens a new transaction in the middle of a batch.
    fn begin_again(&mut self) {
        if self.db.is_none() && self.instance.is_none() {
            return;
        }
        if let Err(e) = self.db().begin() {
            let _ = self.storage_failed(e);
        }
    }

    /// Commits the events of `batch` and releases what they produced.
    async fn commit_and_release(&mut self, batch: Batch) {
        let alarm_changed = batch.alarm_changed();
        let mut pending = batch.pending;
        let committed = match self.broken.clone() {
            Some(message) => Err(message),
            None => self.commit(alarm_changed).await,
        };
        match committed {
            Ok(()) => {
                self.runtime.metrics.commits.inc();
                self.runtime
                    .metrics
                    .events_committed
                    .inc_by(pending.len() as u64);
                self.apply_effects(&mut pending);
            }
            Err(message) => {
                if self.db.is_some() || self.instance.is_some() {
                    self.db().rollback();
                }
                let err = EventError::Storage {
                    object: self.object(),
                    message,
                };
                for p in &mut pending {
                    p.result = Err(err.clone());
                }
                self.reset();
            }
        }
        // Output gate: replies leave only now, after the commit.
        for p in pending {
            self.release(p);
        }
    }

    /// The commit itself, with the alarm index's write-ahead before it.
    async fn commit(&mut self, alarm_changed: bool) -> Result<(), String> {
        let alarm = if alarm_changed {
            Some(crate::alarms::read(self.db()).map_err(|e| e.to_string())?)
        } else {
            None
        };
        if let Some(alarm) = alarm {
            let (alarms, key) = (self.runtime.alarms.clone(), self.key.clone());
            let at = alarm.map(|(at, _)| at);
            tokio::task::block_in_place(|| alarms.before_commit(&key, at))
                .map_err(|e| e.to_string())?;
        }
        if crate::failpoints::hit("before-commit").is_some() {
            return Err("failpoint before-commit".into());
        }
        let db = self.db();
        tokio::task::block_in_place(|| db.commit()).map_err(|e| e.to_string())?;
        if crate::failpoints::hit("after-commit").is_some() {
            // Committed, but the client is told it failed: allowed (an error is
            // never a lie about durability; it is "unknown").
            return Err("failpoint after-commit".into());
        }
        if let Some(alarm) = alarm {
            self.runtime
                .alarms
                .after_commit(&self.key, alarm.map(|(at, _)| at));
        }
        Ok(())
    }

    /// After the commit: socket operations in order, then the connections of
    /// accepted sockets.
    fn apply_effects(&mut self, pending: &mut [Pending]) {
        let mut ops = Vec::new();
        let mut upgrades = Vec::new();
        for p in pending.iter_mut() {
            ops.append(&mut p.effects.socket_ops);
            upgrades.extend(p.upgrade.take());
        }
        if ops.is_empty() {
            return;
        }
        if crate::failpoints::hit("after-accept").is_some() {
            return;
        }
        let (sockets, key) = (self.runtime.sockets.clone(), self.key.clone());
        let db = self.db();
        let stored = || crate::sockets::stored_auto_response(db).ok().flatten();
        sockets.apply(&key, ops, stored);
        for (socket, connection) in upgrades {
            tokio::spawn(crate::sockets::serve_socket(
                self.runtime.clone(),
                self.class.clone(),
                self.key.clone(),
                self.name.clone(),
                socket,
                connection,
            ));
        }
    }

    /// Sends one reply, counting its outcome.
    fn release(&self, p: Pending) {
        let outcome = match &p.result {
            Ok(_) => "ok",
            Err(EventError::Guest { .. }) => "guest_failure",
            Err(EventError::Storage { .. }) => "storage_failure",
            Err(_) => "error",
        };
        self.runtime
            .metrics
            .event(&self.key.class, p.label, outcome);
        let _ = p.reply.send(p.result);
    }
}
