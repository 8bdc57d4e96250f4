//! `dohost:object/alarms`: the object's one alarm, stored in its database in
//! the event's transaction (so a trapped event leaves no alarm behind). The
//! host's alarm index follows at the commit, from the metadata the event
//! changed.

use crate::bindings::dohost::object::alarms as wit;
use crate::bindings::dohost::object::types::{self, StorageError as GuestError};
use crate::bindings::StorageFailure;
use crate::capabilities::alarms;
use crate::capabilities::storage::{StorageError, StorageView};

type Result<T> = std::result::Result<T, StorageFailure>;

/// What the alarms import reaches: the object's storage (the alarm is host
/// metadata there).
pub struct AlarmsView<'a> {
    pub storage: StorageView<'a>,
}

impl wit::Host for AlarmsView<'_> {
    fn set_alarm(&mut self, epoch_ms: i64) -> Result<()> {
        alarms::check_time(epoch_ms).map_err(StorageError::Invalid)?;
        // A new alarm starts with a clean retry count.
        self.storage
            .guest(true, |db| alarms::write(db, Some((epoch_ms, 0))))
    }

    fn get_alarm(&mut self) -> Result<Option<i64>> {
        self.storage
            .guest(false, |db| alarms::read(db).map(|a| a.map(|(at, _)| at)))
    }

    fn delete_alarm(&mut self) -> Result<()> {
        self.storage.guest(false, |db| alarms::write(db, None))
    }
}

/// Storage errors of the alarm calls are classified as every storage error is.
impl types::Host for AlarmsView<'_> {
    fn convert_storage_error(&mut self, err: StorageFailure) -> wasmtime::Result<GuestError> {
        types::Host::convert_storage_error(&mut self.storage, err)
    }
}
