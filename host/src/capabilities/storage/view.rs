//! The storage capability as its imports see it: the object's database, and
//! the place where a failure of the database itself is recorded for the actor.
//! Also the one place where a storage error becomes either a `storage-error`
//! case for the guest or a trap.

use super::{ObjectDb, Result, StorageError};
use crate::bindings::dohost::object::types::{self as wit, StorageError as GuestError};
use crate::bindings::StorageFailure;
use crate::deadline::DeadlineExceeded;

/// What the `storage`, `sql` and `kv` imports (and those that store host
/// metadata: alarms, the auto-response pair) reach.
pub struct StorageView<'a> {
    pub db: &'a mut ObjectDb,
    /// Set when the database itself failed during this call: the event fails.
    pub failure: &'a mut Option<String>,
}

impl StorageView<'_> {
    /// Runs a guest operation on the database (`write` if it changes it).
    pub fn guest<T>(
        &mut self,
        write: bool,
        f: impl FnOnce(&mut ObjectDb) -> Result<T>,
    ) -> std::result::Result<T, StorageFailure> {
        Ok(self.db.guest_op(write, f)?)
    }

    /// The same for an import whose errors are strings (websockets): a
    /// guest-visible storage error becomes its message.
    pub fn guest_str<T>(
        &mut self,
        write: bool,
        f: impl FnOnce(&mut ObjectDb) -> Result<T>,
    ) -> wasmtime::Result<std::result::Result<T, String>> {
        match self.db.guest_op(write, f) {
            Ok(v) => Ok(Ok(v)),
            Err(e) => self.classify(e).map(|e| Err(e.message().to_string())),
        }
    }

    /// The guest-visible form of a storage error, or the trap it must be.
    /// The guest cannot continue after the deadline passed (the CPU-limit
    /// error), after SQLite ended the transaction, or after the database
    /// itself failed: those trap, and the last two are recorded so the event
    /// fails as a storage failure.
    pub fn classify(&mut self, err: StorageError) -> wasmtime::Result<GuestError> {
        match err {
            StorageError::Refused(m) => Ok(GuestError::Refused(m)),
            StorageError::Invalid(m) => Ok(GuestError::Invalid(m)),
            StorageError::Sql(m) => Ok(GuestError::Sql(m)),
            StorageError::Quota(m) => Ok(GuestError::Quota(m)),
            StorageError::DeadlineExceeded => Err(wasmtime::Error::new(DeadlineExceeded)),
            e @ (StorageError::TransactionLost(_) | StorageError::Failed(_)) => {
                let message = e.to_string();
                self.failure.get_or_insert_with(|| message.clone());
                Err(wasmtime::Error::msg(message))
            }
        }
    }
}

impl wit::Host for StorageView<'_> {
    fn convert_storage_error(&mut self, err: StorageFailure) -> wasmtime::Result<GuestError> {
        match err.downcast::<StorageError>() {
            Ok(err) => self.classify(err),
            Err(trap) => Err(trap),
        }
    }
}
