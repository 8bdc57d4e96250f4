//! The store data of one entry instance: WASI, wasi:http (with the egress
//! hooks), the memory budget, stubs to objects and the env.

use crate::capabilities::env::EnvCtx;
use crate::capabilities::namespaces::{NamespacesCtx, NamespacesView};
use crate::capabilities::outbound::EgressHooks;
use crate::capabilities::EntryCapabilities;
use crate::deadline::Deadline;
use crate::guest::limiter::MemoryLimiter;
use crate::guest::log::GuestLog;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub struct EntryState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) http: WasiHttpCtx,
    pub(super) hooks: EgressHooks,
    pub(super) limiter: MemoryLimiter,
    pub(super) namespaces: NamespacesCtx,
    pub(super) env: EnvCtx,
    /// The request's deadline (`limits.cpu_per_event`; paused while an
    /// object call is waited on).
    pub(super) deadline: Deadline,
    pub(super) log: GuestLog,
}

impl EntryState {
    /// Readies a kept instance's state for its next request.
    pub(super) fn renew(&mut self, deadline: Deadline, namespaces: NamespacesCtx) {
        self.deadline = deadline;
        self.namespaces = namespaces;
    }
}

impl WasiView for EntryState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for EntryState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl EntryCapabilities for EntryState {
    fn namespaces(&mut self) -> NamespacesView<'_> {
        NamespacesView {
            ctx: &mut self.namespaces,
            gate: None,
        }
    }

    fn env(&mut self) -> &mut EnvCtx {
        &mut self.env
    }
}
