//! The object actor as the commit pipeline's stage: it runs the events
//! (`run.rs`, `alarm.rs`) and drives each capability's hooks around the
//! commit — the alarm index before it (write-ahead) and after it (settle),
//! the socket hub after it (operations, accepted connections, the
//! auto-response pair). What changed is read from the database's host
//! metadata changes, whoever changed it.

use super::pipeline::{Pending, Stage};
use super::{Envelope, EventError, ObjectActor};
use crate::capabilities::alarms;
use crate::capabilities::sockets::{self, SocketOp};
use crate::capabilities::storage::{Meta, ObjectDb};

/// What the before-commit hooks learned, for the after-commit hooks (the
/// database forgets its changes at the commit).
#[derive(Debug, Default)]
pub struct CommitNotes {
    /// The alarm the batch leaves, if the batch changed it.
    alarm: Option<Option<i64>>,
    /// The batch changed the auto-response pair.
    auto_response: bool,
}

impl ObjectActor {
    /// The database: open for the whole batch (the pipeline only runs once
    /// the object is active).
    pub(super) fn db(&mut self) -> &mut ObjectDb {
        self.residency
            .db()
            .expect("the database is open while a batch runs")
    }
}

impl Stage for ObjectActor {
    fn broken(&self) -> Option<String> {
        self.broken.clone()
    }

    fn begin(&mut self) -> Result<(), String> {
        match self.db().begin() {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = self.storage_failed(&e);
                Err(e.to_string())
            }
        }
    }

    async fn run(&mut self, envelope: Envelope, batch_accepts: usize) -> Pending {
        self.run_envelope(envelope, batch_accepts).await
    }

    fn take_lost(&mut self) -> Option<String> {
        self.residency.db()?.take_lost()
    }

    fn before_commit(&mut self) -> Result<(), String> {
        let changes = *self.db().meta_changes();
        let mut notes = CommitNotes {
            alarm: None,
            auto_response: changes.batch_changed(Meta::AutoResponse),
        };
        if changes.batch_changed(Meta::Alarm) || changes.batch_changed(Meta::AlarmRetry) {
            let at = alarms::read(self.db())
                .map_err(|e| e.to_string())?
                .map(|(at, _)| at);
            let (scheduler, key) = (&self.env.alarms, &self.key);
            tokio::task::block_in_place(|| scheduler.before_commit(key, at))
                .map_err(|e| e.to_string())?;
            notes.alarm = Some(at);
        }
        self.commit_notes = notes;
        if crate::failpoints::hit("before-commit").is_some() {
            return Err("failpoint before-commit".into());
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), String> {
        let db = self.db();
        tokio::task::block_in_place(|| db.commit()).map_err(|e| e.to_string())?;
        if crate::failpoints::hit("after-commit").is_some() {
            // Committed, but the client is told it failed: allowed (an error is
            // never a lie about durability; it is "unknown").
            return Err("failpoint after-commit".into());
        }
        Ok(())
    }

    fn after_commit(&mut self, committed: &mut [Pending]) {
        let metrics = &self.env.metrics;
        metrics.commits.inc();
        // Events that failed were rolled back to their savepoint: not committed.
        let kept = committed.iter().filter(|p| p.result.is_ok()).count();
        metrics.events_committed.inc_by(kept as u64);
        let notes = std::mem::take(&mut self.commit_notes);
        if let Some(at) = notes.alarm {
            self.env.alarms.after_commit(&self.key, at);
        }
        self.apply_socket_effects(committed, notes.auto_response);
    }

    fn abandon(&mut self) {
        if let Some(db) = self.residency.db() {
            db.rollback();
        }
        self.reset();
    }

    fn release(&mut self, p: Pending) {
        let outcome = match &p.result {
            Ok(_) => "ok",
            Err(EventError::Guest { .. }) => "guest_failure",
            Err(EventError::Storage { .. }) => "storage_failure",
            Err(_) => "error",
        };
        self.env.metrics.event(&self.key.class, p.label, outcome);
        let _ = p.reply.send(p.result);
    }
}

impl ObjectActor {
    /// After the commit: socket operations in order, the auto-response pair
    /// if the batch changed it, then the connections of accepted sockets.
    fn apply_socket_effects(&mut self, committed: &mut [Pending], auto_response: bool) {
        let mut ops: Vec<SocketOp> = Vec::new();
        let mut upgrades = Vec::new();
        for p in committed.iter_mut() {
            ops.append(&mut p.effects.sockets.ops);
            upgrades.extend(p.upgrade.take());
        }
        if ops.is_empty() && !auto_response {
            return;
        }
        if crate::failpoints::hit("after-accept").is_some() {
            return;
        }
        let (hub, key) = (self.env.sockets.clone(), self.key.clone());
        let db = self.db();
        hub.apply(&key, ops, || {
            sockets::stored_auto_response(db).ok().flatten()
        });
        if auto_response {
            let pair = sockets::stored_auto_response(self.db()).ok().flatten();
            hub.set_auto_response(&key, pair);
        }
        for (socket, connection) in upgrades {
            tokio::spawn(sockets::serve_socket(
                self.env.socket_events.clone(),
                hub.clone(),
                self.env.connection_limits(),
                (key.clone(), self.name.clone(), socket),
                connection,
            ));
        }
    }
}
