//! `dohost:object/env`: the application's `[vars]` and `[secrets]`, the same
//! for every object of the host.

use crate::bindings::dohost::object::env;
use crate::config::AppEnv;
use std::sync::Arc;

/// The env capability of one instance: a shared, read-only view.
pub struct EnvCtx {
    pub env: Arc<AppEnv>,
}

impl env::Host for &mut EnvCtx {
    fn get(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.env.get(&name).map(str::to_string))
    }

    fn names(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.env.names())
    }

    fn bindings(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self
            .env
            .bindings
            .iter()
            .map(|(name, class)| (name.clone(), class.clone()))
            .collect())
    }
}
