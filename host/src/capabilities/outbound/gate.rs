//! The output gate of an object: nothing leaves it (an outbound HTTP
//! request, a call to another object) before the writes that precede it are
//! durable. At such a point the gate commits the open transaction — the
//! earlier events of the batch and the running event's writes so far — and
//! the event goes on in a new one. The event is then atomic only up to that
//! point: a later failure rolls back what it wrote after it (as Cloudflare
//! documents for its output gate).
//!
//! The commit is a batch commit in small: the alarm index is written ahead
//! first (so a crash never leaves a committed alarm the index does not know),
//! and an alarm event keeps its alarm stored across the commit (so a crash
//! before the handler finishes fires it again). Replies and socket
//! operations are not released here: they wait for the batch's own commit,
//! which is later, and therefore as safe.

use crate::blocking::blocking;
use crate::capabilities::alarms::{self, AlarmHook, AlarmScheduler};
use crate::capabilities::hooks::{BatchCommit, CommitHook};
use crate::capabilities::storage::ObjectDb;
use crate::id::ObjectKey;
use std::sync::Arc;

pub struct OutputGate {
    key: ObjectKey,
    /// The alarm index (none for an instance that runs alone: benches).
    alarms: Option<Arc<AlarmScheduler>>,
    /// The running event committed at the gate: the batch so far is durable.
    flushed: bool,
    /// The alarm the running alarm event is handling (cleared in its
    /// transaction while the handler runs).
    running_alarm: Option<(i64, u32)>,
}

impl OutputGate {
    pub fn new(key: ObjectKey, alarms: Option<Arc<AlarmScheduler>>) -> OutputGate {
        OutputGate {
            key,
            alarms,
            flushed: false,
            running_alarm: None,
        }
    }

    /// A new event starts (`running_alarm`: the alarm it handles).
    pub fn begin_event(&mut self, running_alarm: Option<(i64, u32)>) {
        self.flushed = false;
        self.running_alarm = running_alarm;
    }

    /// True once if the event committed at the gate.
    pub fn take_flushed(&mut self) -> bool {
        std::mem::take(&mut self.flushed)
    }

    /// Makes everything written so far durable, before something leaves.
    /// The error says why the gate cannot open (and nothing was committed).
    pub fn open(&mut self, db: &mut ObjectDb) -> Result<(), String> {
        db.check_gate().map_err(|e| e.to_string())?;
        let Some(alarm) = self.running_alarm else {
            return self.commit(db);
        };
        // A crash after this commit must find the running alarm still set;
        // the event goes on with it cleared again, however the commit went.
        alarms::restore(db, Some(alarm)).map_err(|e| e.to_string())?;
        let committed = self.commit(db);
        // Without a transaction (the commit failed and rolled back) a write
        // would commit on its own: nothing to undo then.
        if db.in_transaction() {
            alarms::restore(db, None).map_err(|e| e.to_string())?;
        }
        committed
    }

    /// The commit itself: the alarm index written ahead, the commit, the
    /// index settled.
    fn commit(&mut self, db: &mut ObjectDb) -> Result<(), String> {
        let hook = self.alarms.clone().map(AlarmHook);
        let changes = db.meta_changes().so_far();
        if let Some(hook) = &hook {
            hook.before_commit(&mut BatchCommit {
                key: &self.key,
                name: None,
                db,
                changes,
            })?;
        }
        blocking(|| db.commit_at_gate()).map_err(|e| e.to_string())?;
        if let Some(hook) = &hook {
            let mut batch = BatchCommit {
                key: &self.key,
                name: None,
                db,
                changes,
            };
            hook.after_commit(&mut batch, Vec::new());
        }
        self.flushed = true;
        Ok(())
    }
}
