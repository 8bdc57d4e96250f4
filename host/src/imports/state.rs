//! `dohost:object/state`: the object's identity, and `abort`.

use crate::bindings::dohost::object::state;
use crate::instance::InstanceState;
use wasmtime::component::{HasSelf, Linker};

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    state::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

impl state::Host for InstanceState {
    fn id(&mut self) -> wasmtime::Result<String> {
        Ok(self.id.to_string())
    }

    fn name(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.name.clone())
    }

    fn class_name(&mut self) -> wasmtime::Result<String> {
        Ok(self.class.to_string())
    }

    fn abort(&mut self, reason: String) -> wasmtime::Result<()> {
        self.aborted = Some(reason.clone());
        Err(wasmtime::Error::msg(format!("object aborted: {reason}")))
    }
}
