//! `dohost:object/alarms`: the object's one alarm, stored in its database in
//! the event's transaction (so a trapped event leaves no alarm behind). The
//! actor keeps the host's alarm index in step after the event.

use crate::alarms;
use crate::bindings::dohost::object::alarms as wit;
use crate::instance::InstanceState;
use wasmtime::component::{HasSelf, Linker};

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    wit::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

impl wit::Host for InstanceState {
    fn set_alarm(&mut self, epoch_ms: i64) -> wasmtime::Result<Result<(), String>> {
        if let Err(e) = alarms::check_time(epoch_ms) {
            return Ok(Err(e));
        }
        // A new alarm starts with a clean retry count.
        let result = self
            .db
            .guest_op(true, |db| alarms::write(db, Some((epoch_ms, 0))));
        self.effects.alarm_dirty = true;
        self.storage_result(result)
    }

    fn get_alarm(&mut self) -> wasmtime::Result<Result<Option<i64>, String>> {
        let result = self
            .db
            .guest_op(false, |db| alarms::read(db).map(|a| a.map(|(at, _)| at)));
        self.storage_result(result)
    }

    fn delete_alarm(&mut self) -> wasmtime::Result<Result<(), String>> {
        let result = self.db.guest_op(false, |db| alarms::write(db, None));
        self.effects.alarm_dirty = true;
        self.storage_result(result)
    }
}
