//! Identity: which object an instance is (`dohost:object/state`), and
//! `abort`, which ends the event like a trap.

use crate::bindings::dohost::object::state;
use crate::id::ObjectId;
use std::sync::Arc;

/// The identity of the object an instance serves.
pub struct IdentityCtx {
    pub class: Arc<str>,
    pub id: ObjectId,
    pub name: Option<String>,
    /// Set by `abort` (the call then traps).
    pub aborted: Option<String>,
}

impl state::Host for &mut IdentityCtx {
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
