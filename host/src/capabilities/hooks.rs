//! What a capability does around an object's commit. The commit pipeline
//! drives every capability through the same two steps:
//!
//! - `before_commit`: write ahead what must be durable before the object's
//!   commit (the alarm index learns an earlier time). An error fails the
//!   batch: nothing is committed, nothing applied.
//! - `after_commit`: only after the commit succeeded, apply what the
//!   committed events did (socket operations and accepted connections, the
//!   index settles). Each event's `Effects` are handed over in order; a
//!   failed or rolled-back event has none.
//!
//! Hooks learn what the batch changed in the object's host metadata from
//! `BatchCommit::changes`, whoever changed it (an import, `delete-all`, the
//! alarm event itself), and read the committed values from the database.

use crate::capabilities::storage::{MetaChanges, ObjectDb};
use crate::id::ObjectKey;

/// A batch at its commit, as hooks see it.
pub struct BatchCommit<'a> {
    pub key: &'a ObjectKey,
    /// The name the object goes by, if known.
    pub name: Option<&'a str>,
    pub db: &'a mut ObjectDb,
    /// What the batch's kept events changed in host metadata (taken before
    /// the commit: the database forgets it at the commit).
    pub changes: MetaChanges,
}

/// One capability's part in the commit.
pub trait CommitHook: Send + Sync {
    /// What one event recorded for this capability, applied after the commit.
    type Effects: Default + Send;

    /// Before the commit; an error fails the whole batch.
    fn before_commit(&self, _batch: &mut BatchCommit<'_>) -> Result<(), String> {
        Ok(())
    }

    /// After a successful commit, with the effects of each committed event.
    fn after_commit(&self, batch: &mut BatchCommit<'_>, effects: Vec<Self::Effects>);
}
