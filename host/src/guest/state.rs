//! The store data of an object instance: WASI, the resource table, the
//! memory budget, and one context per capability. It lends each import only
//! its capability's view (`Capabilities`), so imports cannot reach into each
//! other's state.

use super::limiter::MemoryLimiter;
use super::log::GuestLog;
use crate::capabilities::alarms::AlarmsView;
use crate::capabilities::env::EnvCtx;
use crate::capabilities::identity::IdentityCtx;
use crate::capabilities::namespaces::{NamespacesCtx, NamespacesView};
use crate::capabilities::outbound::object_http::ObjectHttpView;
use crate::capabilities::outbound::{EgressHooks, OutputGate};
use crate::capabilities::sockets::{SocketsCtx, SocketsView};
use crate::capabilities::storage::{ObjectDb, StorageView};
use crate::capabilities::timers::TimersCtx;
use crate::capabilities::Capabilities;
use crate::deadline::Deadline;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The storage capability of one instance.
pub struct StorageCtx {
    pub db: ObjectDb,
    /// Set when the database itself failed during the running call.
    pub failure: Option<String>,
}

pub struct InstanceState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limiter: MemoryLimiter,
    pub(super) storage: StorageCtx,
    pub(super) identity: IdentityCtx,
    pub(super) sockets: SocketsCtx,
    pub(super) namespaces: NamespacesCtx,
    pub(super) env: EnvCtx,
    pub(super) timers: TimersCtx,
    /// Outbound HTTP: wasi:http, the class's egress policy, the output gate.
    pub(super) http: WasiHttpCtx,
    pub(super) egress: EgressHooks,
    pub(super) gate: OutputGate,
    /// The running call's deadline (shared with the database's progress
    /// handler, the epoch callback and the namespaces import).
    pub(super) deadline: Deadline,
    pub(super) log: GuestLog,
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
        }
    }
}

impl ObjectHttpView for InstanceState {
    fn gate(&mut self) -> (&mut OutputGate, &mut ObjectDb) {
        (&mut self.gate, &mut self.storage.db)
    }
}

impl Capabilities for InstanceState {
    fn storage(&mut self) -> StorageView<'_> {
        StorageView {
            db: &mut self.storage.db,
            failure: &mut self.storage.failure,
        }
    }

    fn alarms(&mut self) -> AlarmsView<'_> {
        AlarmsView {
            storage: self.storage(),
        }
    }

    fn sockets(&mut self) -> SocketsView<'_> {
        SocketsView {
            ctx: &mut self.sockets,
            table: &mut self.table,
            storage: StorageView {
                db: &mut self.storage.db,
                failure: &mut self.storage.failure,
            },
        }
    }

    fn namespaces(&mut self) -> NamespacesView<'_> {
        NamespacesView {
            ctx: &mut self.namespaces,
            gate: Some((&mut self.gate, &mut self.storage.db)),
        }
    }

    fn identity(&mut self) -> &mut IdentityCtx {
        &mut self.identity
    }

    fn env(&mut self) -> &mut EnvCtx {
        &mut self.env
    }

    fn timers(&mut self) -> &mut TimersCtx {
        &mut self.timers
    }
}
