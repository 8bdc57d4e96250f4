//! The object actor as the commit pipeline's stage: it runs the events
//! (`run.rs`, `alarm.rs`) and drives each capability's commit hooks
//! (`capabilities::hooks`): the alarm index before the commit (write-ahead)
//! and after it (settle), the socket hub after it (operations, accepted
//! connections, the auto-response pair).

use super::pipeline::{Pending, Stage};
use super::{Envelope, EventError, ObjectActor};
use crate::blocking::blocking;
use crate::capabilities::hooks::{BatchCommit, CommitHook};
use crate::capabilities::storage::{MetaChanges, ObjectDb};

impl ObjectActor {
    /// The database: open for the whole batch (the pipeline only runs once
    /// the object is active).
    pub(super) fn db(&mut self) -> &mut ObjectDb {
        self.residency
            .db()
            .expect("the database is open while a batch runs")
    }

    /// The batch as the commit hooks see it (`changes`: what it changed in
    /// host metadata, read before the commit).
    fn batch_commit(&mut self, changes: MetaChanges) -> BatchCommit<'_> {
        BatchCommit {
            key: &self.key,
            name: self.name.as_deref(),
            db: self
                .residency
                .db()
                .expect("the database is open while a batch runs"),
            changes,
        }
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
        self.commit_changes = changes;
        let env = self.env.clone();
        let mut batch = self.batch_commit(changes);
        env.hooks.alarms.before_commit(&mut batch)?;
        env.hooks.sockets.before_commit(&mut batch)?;
        if crate::failpoints::hit("before-commit").is_some() {
            return Err("failpoint before-commit".into());
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), String> {
        let db = self.db();
        blocking(|| db.commit()).map_err(|e| e.to_string())?;
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
        let sockets = committed
            .iter_mut()
            .map(|p| std::mem::take(&mut p.effects.sockets))
            .collect();
        let changes = std::mem::take(&mut self.commit_changes);
        let env = self.env.clone();
        let mut batch = self.batch_commit(changes);
        env.hooks.alarms.after_commit(&mut batch, Vec::new());
        env.hooks.sockets.after_commit(&mut batch, sockets);
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
        self.idle_since = self.env.clock.now();
        let _ = p.reply.send(p.result);
    }
}
