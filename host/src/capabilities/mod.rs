//! What a guest imports, one capability per folder: `storage` (SQL, KV, the
//! object's database and its guard), `alarms` (policy, index, scheduler),
//! `sockets` (the hub, connections, send budgets), `namespaces` (calls to
//! other objects, call chains), `identity`, `env` (vars and secrets) and
//! `timers` (the wake-up for timers that outlive their event).
//!
//! Each capability owns its per-instance context (the state its WIT import
//! reaches), the view its import adapter works on, and what it does around
//! an event's commit. The instance's store state lends each import only its
//! own view (wasmtime's `HasData` pattern), so an import cannot touch another
//! capability's state. Outer `wasmtime::Result` errors trap (host bugs,
//! `abort`, the deadline); typed errors (`storage-error`, `call-error`) are
//! classified by their interface's `convert_*` method into a case for the
//! guest or a trap; `Result<_, String>` errors are the guest's.

pub mod alarms;
pub mod env;
pub mod hooks;
pub mod identity;
pub mod namespaces;
pub mod outbound;
pub mod sockets;
pub mod storage;
pub mod timers;

use crate::bindings::dohost::object as wit;
use anyhow::anyhow;
use wasmtime::component::{HasData, Linker};

/// What a store state lends the imports: one view per capability.
pub trait Capabilities: Send + 'static {
    fn storage(&mut self) -> storage::StorageView<'_>;
    fn alarms(&mut self) -> alarms::AlarmsView<'_>;
    fn sockets(&mut self) -> sockets::SocketsView<'_>;
    fn namespaces(&mut self) -> namespaces::NamespacesView<'_>;
    fn identity(&mut self) -> &mut identity::IdentityCtx;
    fn env(&mut self) -> &mut env::EnvCtx;
    fn timers(&mut self) -> &mut timers::TimersCtx;
}

struct Storage;
impl HasData for Storage {
    type Data<'a> = storage::StorageView<'a>;
}

struct Alarms;
impl HasData for Alarms {
    type Data<'a> = alarms::AlarmsView<'a>;
}

struct Sockets;
impl HasData for Sockets {
    type Data<'a> = sockets::SocketsView<'a>;
}

struct Namespaces;
impl HasData for Namespaces {
    type Data<'a> = namespaces::NamespacesView<'a>;
}

struct Identity;
impl HasData for Identity {
    type Data<'a> = &'a mut identity::IdentityCtx;
}

struct Env;
impl HasData for Env {
    type Data<'a> = &'a mut env::EnvCtx;
}

struct Timers;
impl HasData for Timers {
    type Data<'a> = &'a mut timers::TimersCtx;
}

/// The error of linking one interface, named.
fn wire(r: wasmtime::Result<()>, what: &str) -> anyhow::Result<()> {
    r.map_err(|e| anyhow!("linking dohost:object/{what}: {e}"))
}

/// Adds every `dohost:object` import to `linker`, each on its capability's view.
pub fn add_to_linker<T: Capabilities>(linker: &mut Linker<T>) -> anyhow::Result<()> {
    wire(
        wit::types::add_to_linker::<T, Storage>(linker, T::storage),
        "types",
    )?;
    wire(
        wit::storage::add_to_linker::<T, Storage>(linker, T::storage),
        "storage",
    )?;
    wire(
        wit::sql::add_to_linker::<T, Storage>(linker, T::storage),
        "sql",
    )?;
    wire(
        wit::kv::add_to_linker::<T, Storage>(linker, T::storage),
        "kv",
    )?;
    wire(
        wit::alarms::add_to_linker::<T, Alarms>(linker, T::alarms),
        "alarms",
    )?;
    wire(
        wit::websockets::add_to_linker::<T, Sockets>(linker, T::sockets),
        "websockets",
    )?;
    wire(
        wit::state::add_to_linker::<T, Identity>(linker, T::identity),
        "state",
    )?;
    wire(
        wit::namespaces::add_to_linker::<T, Namespaces>(linker, T::namespaces),
        "namespaces",
    )?;
    wire(wit::env::add_to_linker::<T, Env>(linker, T::env), "env")?;
    wire(
        wit::timers::add_to_linker::<T, Timers>(linker, T::timers),
        "timers",
    )?;
    Ok(())
}

/// What an entry worker's store lends its dohost imports: stubs to objects
/// and the env (no storage, sockets or identity: an entry is stateless).
pub trait EntryCapabilities: Send + 'static {
    fn namespaces(&mut self) -> namespaces::NamespacesView<'_>;
    fn env(&mut self) -> &mut env::EnvCtx;
}

/// `dohost:object/types` for an entry: its types only (it has no storage, so
/// no storage error ever needs converting).
struct NoStorage;
impl HasData for NoStorage {
    type Data<'a> = NoStorage;
}

impl wit::types::Host for NoStorage {
    fn convert_storage_error(
        &mut self,
        err: crate::bindings::StorageFailure,
    ) -> wasmtime::Result<wit::types::StorageError> {
        Err(err)
    }
}

/// Adds the dohost imports an entry may use (`types`, `env`, `namespaces`).
pub fn add_entry_imports<T: EntryCapabilities>(linker: &mut Linker<T>) -> anyhow::Result<()> {
    wire(
        wit::types::add_to_linker::<T, NoStorage>(linker, |_| NoStorage),
        "types",
    )?;
    wire(
        wit::namespaces::add_to_linker::<T, Namespaces>(linker, T::namespaces),
        "namespaces",
    )?;
    wire(wit::env::add_to_linker::<T, Env>(linker, T::env), "env")?;
    Ok(())
}
