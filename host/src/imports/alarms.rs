//! `dohost:object/alarms`: not implemented yet; every call says so.

use super::unsupported;
use crate::bindings::dohost::object::alarms;
use crate::instance::InstanceState;
use wasmtime::component::{HasSelf, Linker};

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    alarms::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

impl alarms::Host for InstanceState {
    fn set_alarm(&mut self, _epoch_ms: i64) -> wasmtime::Result<Result<(), String>> {
        Ok(Err(unsupported("alarms")))
    }

    fn get_alarm(&mut self) -> wasmtime::Result<Result<Option<i64>, String>> {
        Ok(Err(unsupported("alarms")))
    }

    fn delete_alarm(&mut self) -> wasmtime::Result<Result<(), String>> {
        Ok(Err(unsupported("alarms")))
    }
}
