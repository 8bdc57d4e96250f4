//! `dohost:object/storage`: what cuts across SQL, KV and alarms in the
//! object's one database: nested transactions, delete-all and its size.

use super::StorageView;
use crate::bindings::dohost::object::storage;
use crate::bindings::StorageFailure;

type Result<T> = std::result::Result<T, StorageFailure>;

impl storage::Host for StorageView<'_> {
    fn begin_nested(&mut self) -> Result<()> {
        self.guest(false, |db| db.begin_nested())
    }

    fn commit_nested(&mut self) -> Result<()> {
        self.guest(false, |db| db.commit_nested())
    }

    fn rollback_nested(&mut self) -> Result<()> {
        self.guest(false, |db| db.rollback_nested())
    }

    /// Everything of the guest goes, host metadata about it too (the alarm,
    /// the auto-response pair); the alarm index and the socket hub follow at
    /// the commit, from the metadata changes.
    fn delete_all(&mut self) -> Result<()> {
        self.guest(true, |db| db.delete_all())
    }

    fn database_size(&mut self) -> Result<u64> {
        Ok(self.db.size()?)
    }
}
