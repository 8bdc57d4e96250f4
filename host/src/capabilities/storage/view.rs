//! The storage capability as its imports see it: the object's database, and
//! the place where a failure of the database itself is recorded for the actor.

use super::{ObjectDb, Result, StorageError};
use crate::deadline::DeadlineExceeded;

/// What the `sql` and `kv` imports (and those that store host metadata:
/// alarms, the auto-response pair) reach.
pub struct StorageView<'a> {
    pub db: &'a mut ObjectDb,
    /// Set when the database itself failed during this call: the event fails.
    pub failure: &'a mut Option<String>,
}

impl StorageView<'_> {
    /// The guest-visible form of a storage result. Errors the guest cannot
    /// continue after trap here: the deadline passed (the CPU-limit error), or
    /// SQLite ended the transaction. A failure of the database itself is
    /// recorded (the event then fails) and reported.
    pub fn result<T>(
        &mut self,
        result: Result<T>,
    ) -> wasmtime::Result<std::result::Result<T, String>> {
        match result {
            Ok(v) => Ok(Ok(v)),
            Err(StorageError::DeadlineExceeded) => Err(wasmtime::Error::new(DeadlineExceeded)),
            Err(e @ StorageError::TransactionLost(_)) => {
                self.failure.get_or_insert_with(|| e.to_string());
                Err(wasmtime::Error::msg(e.to_string()))
            }
            Err(e) => {
                if e.is_fatal() {
                    self.failure.get_or_insert_with(|| e.to_string());
                }
                Ok(Err(e.to_string()))
            }
        }
    }

    /// Runs a guest operation on the database and maps its result.
    pub fn guest<T>(
        &mut self,
        write: bool,
        f: impl FnOnce(&mut ObjectDb) -> Result<T>,
    ) -> wasmtime::Result<std::result::Result<T, String>> {
        let result = self.db.guest_op(write, f);
        self.result(result)
    }
}
