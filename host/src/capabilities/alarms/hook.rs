//! The alarm capability at the commit: the index is written ahead when the
//! batch moves an alarm earlier (or sets one), and settles after the commit.

use super::AlarmScheduler;
use crate::blocking::blocking;
use crate::capabilities::hooks::{BatchCommit, CommitHook};
use crate::capabilities::storage::Meta;
use std::sync::Arc;

/// Keeps the alarm index in step with the objects' alarms.
pub struct AlarmHook(pub Arc<AlarmScheduler>);

fn changed(batch: &BatchCommit<'_>) -> bool {
    batch.changes.batch_changed(Meta::Alarm) || batch.changes.batch_changed(Meta::AlarmRetry)
}

impl CommitHook for AlarmHook {
    /// The object's own alarm state is all the hook needs.
    type Effects = ();

    fn before_commit(&self, batch: &mut BatchCommit<'_>) -> Result<(), String> {
        if !changed(batch) {
            return Ok(());
        }
        let at = super::read(batch.db)
            .map_err(|e| e.to_string())?
            .map(|(at, _)| at);
        blocking(|| self.0.before_commit(batch.key, at)).map_err(|e| e.to_string())
    }

    fn after_commit(&self, batch: &mut BatchCommit<'_>, _: Vec<()>) {
        if !changed(batch) {
            return;
        }
        match super::read(batch.db) {
            Ok(alarm) => self.0.after_commit(batch.key, alarm.map(|(at, _)| at)),
            // The index keeps the earlier time: a harmless wake-up resyncs it.
            Err(e) => tracing::warn!("object {}: reading its committed alarm: {e}", batch.key),
        }
    }
}
