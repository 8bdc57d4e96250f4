//! Host implementations of the `dohost:object` imports: one file per WIT
//! interface, each a thin adapter from WIT values to the storage layer and the
//! host. Outer `wasmtime::Result` errors trap (host bugs, `abort`); inner
//! `Result<_, String>` errors are the guest's to handle.

pub mod alarms;
pub mod kv;
pub mod namespaces;
pub mod sql;
pub mod state;
pub mod websockets;

use crate::bindings::dohost::object::types;
use crate::instance::InstanceState;
use anyhow::anyhow;
use wasmtime::component::{HasSelf, Linker};

impl types::Host for InstanceState {}

/// Adds every `dohost:object` import to `linker`.
pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
    fn wire(r: wasmtime::Result<()>, what: &str) -> anyhow::Result<()> {
        r.map_err(|e| anyhow!("linking dohost:object/{what}: {e}"))
    }
    wire(
        types::add_to_linker::<_, HasSelf<_>>(linker, |s| s),
        "types",
    )?;
    wire(sql::add_to_linker(linker), "sql")?;
    wire(kv::add_to_linker(linker), "kv")?;
    wire(alarms::add_to_linker(linker), "alarms")?;
    wire(websockets::add_to_linker(linker), "websockets")?;
    wire(state::add_to_linker(linker), "state")?;
    wire(namespaces::add_to_linker(linker), "namespaces")?;
    Ok(())
}
