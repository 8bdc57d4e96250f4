//! One component instance of an object: its wasmtime `Store` (with the
//! object's database inside), the exported handler, and the per-call limits.
//!
//! Owned by exactly one object actor; never shared, never called concurrently.
//! After any failure the instance must be dropped (`into_db` keeps the database).

use crate::bindings::dohost::object::types::{Request, Response, WsMessage};
use crate::bindings::Object;
use crate::deadline::Deadline;
use crate::engine::{EpochTicker, LoadedClass, TickGuard};
use crate::guest_log::GuestLog;
use crate::id::ObjectId;
use crate::imports::websockets::{EventSockets, SocketHandle, MAX_HANDLES};
use crate::peers::{CallChain, ChainLink, Peers};
use crate::registry::ObjectKey;
use crate::rpc::RpcMethod;
use crate::sockets::{SocketHub, SocketId, SocketOp, SocketView};
use crate::storage::ObjectDb;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Instance, ResourceTable, Val};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Why an event failed inside the guest. The event is rolled back and the
/// instance discarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestFailure {
    /// The guest trapped; `output` is what it wrote during the event
    /// (panic messages with source paths): shown to clients only in dev mode.
    #[error("trapped: {trap}{}", if output.is_empty() { String::new() } else { format!("; guest output: {output}") })]
    Trap { trap: String, output: String },
    #[error("exceeded the CPU limit of {0:?} per event (limits.cpu_per_event)")]
    CpuLimit(Duration),
    #[error("exceeded the memory limit of {} MiB per instance (limits.memory_per_instance_mib)", .0 / (1024 * 1024))]
    MemoryLimit(u64),
    #[error("aborted: {0}")]
    Aborted(String),
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("constructor failed: {0}")]
    Init(String),
}

impl GuestFailure {
    /// A trap without guest output.
    pub fn trap(trap: impl Into<String>) -> GuestFailure {
        GuestFailure::Trap {
            trap: trap.into(),
            output: String::new(),
        }
    }

    /// The failure as a client outside dev mode sees it: without the guest's
    /// output (kept in the host log).
    pub fn redacted(&self) -> String {
        match self {
            GuestFailure::Trap { trap, output } if !output.is_empty() => {
                format!("trapped: {trap} (the guest's output is in the host log)")
            }
            other => other.to_string(),
        }
    }
}

/// Marker error raised by the epoch callback when an event runs too long.
#[derive(Debug)]
struct CpuLimitExceeded;

impl std::fmt::Display for CpuLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CPU limit exceeded")
    }
}

impl std::error::Error for CpuLimitExceeded {}

/// Table elements all tables of an instance may hold together.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// Caps the linear memory of an instance — all its memories together (a
/// component holds several core instances, each may have its own) — and
/// remembers whether the cap was hit.
#[derive(Default)]
struct MemoryLimiter {
    limit: u64,
    /// Bytes of all memories (creation counts as growing from 0).
    used: u64,
    /// Elements of all tables.
    elements: usize,
    exceeded: bool,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let next = self.used + (desired as u64).saturating_sub(current as u64);
        if next > self.limit {
            self.exceeded = true;
            return Err(wasmtime::Error::msg("memory limit exceeded"));
        }
        self.used = next;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let next = self.elements + desired.saturating_sub(current);
        if next > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        self.elements = next;
        Ok(true)
    }
}

/// What the running event did outside storage, kept until it commits.
#[derive(Debug, Default)]
pub struct EventEffects {
    /// Socket operations, applied in order after the commit.
    pub socket_ops: Vec<SocketOp>,
    /// The alarm was set, deleted or cleared (the index must follow).
    pub alarm_dirty: bool,
    /// Bytes of the messages in `socket_ops`.
    pub send_bytes: usize,
}

/// The store data of an object instance: what host imports can reach.
pub struct InstanceState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    limiter: MemoryLimiter,
    pub(crate) db: ObjectDb,
    pub(crate) class: Arc<str>,
    pub(crate) id: ObjectId,
    pub(crate) name: Option<String>,
    /// Set by a storage import when the database itself failed.
    pub(crate) storage_failure: Option<String>,
    /// Set by `state.abort`.
    pub(crate) aborted: Option<String>,
    /// What the running event did to sockets and the alarm (the constructor
    /// included: its effects belong to the event that caused it).
    pub(crate) effects: EventEffects,
    /// Other objects, for the `namespaces` import.
    pub(crate) peers: Arc<dyn Peers>,
    /// The call chain of the current event, ending with this object.
    pub(crate) chain: CallChain,
    /// The host's sockets, and this event's view of them.
    pub(crate) sockets: Arc<SocketHub>,
    pub(crate) event_sockets: EventSockets,
    /// Sockets accepted by earlier events of the batch, not yet in the hub.
    pub(crate) batch_accepts: usize,
    pub(crate) max_sockets: usize,
    pub(crate) max_ws_message: usize,
    /// Names of ids this instance derived with `id-from-name`, and their bytes.
    pub(crate) known_names: std::collections::HashMap<(String, ObjectId), String>,
    pub(crate) known_name_bytes: usize,
    /// The running call's deadline (shared with the database's progress
    /// handler and the epoch callback).
    pub(crate) deadline: Deadline,
    log: GuestLog,
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl InstanceState {
    pub(crate) fn key(&self) -> ObjectKey {
        ObjectKey {
            class: self.class.clone(),
            id: self.id,
        }
    }

    /// The guest-visible form of a storage result. Errors the guest cannot
    /// continue after trap here: the deadline passed (the CPU-limit error), or
    /// SQLite ended the transaction. A failure of the database itself is
    /// recorded for the actor (the event then fails) and reported.
    pub(crate) fn storage_result<T>(
        &mut self,
        result: crate::storage::Result<T>,
    ) -> wasmtime::Result<Result<T, String>> {
        use crate::storage::StorageError;
        match result {
            Ok(v) => Ok(Ok(v)),
            Err(StorageError::DeadlineExceeded) => Err(wasmtime::Error::new(CpuLimitExceeded)),
            Err(e @ StorageError::TransactionLost(_)) => {
                self.storage_failure.get_or_insert_with(|| e.to_string());
                Err(wasmtime::Error::msg(e.to_string()))
            }
            Err(e) => {
                if e.is_fatal() {
                    self.storage_failure.get_or_insert_with(|| e.to_string());
                }
                Ok(Err(e.to_string()))
            }
        }
    }
}

/// Limits applied to every call into an instance.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    pub cpu: Duration,
    pub memory: u64,
    pub max_sockets: usize,
    pub max_ws_message: usize,
}

impl From<&crate::config::Limits> for CallLimits {
    fn from(l: &crate::config::Limits) -> Self {
        CallLimits {
            cpu: l.cpu_per_event,
            memory: l.memory_per_instance,
            max_sockets: l.max_sockets_per_object,
            max_ws_message: l.max_ws_message_bytes,
        }
    }
}

/// What an object instance reaches outside itself.
#[derive(Clone)]
pub struct InstanceLinks {
    pub peers: Arc<dyn Peers>,
    pub sockets: Arc<SocketHub>,
    /// The object's deadline (the same one its database's progress handler reads).
    pub deadline: Deadline,
}

impl InstanceLinks {
    /// Links for an instance that runs alone (benches): no other objects.
    pub fn standalone() -> Self {
        InstanceLinks {
            peers: Arc::new(crate::peers::NoPeers),
            sockets: Arc::default(),
            deadline: Deadline::default(),
        }
    }
}

/// Runs a guest call until it completes or the deadline passes; expiry is
/// the CPU-limit error (the call is abandoned and the instance must go).
async fn bounded<T>(
    deadline: &Deadline,
    call: impl Future<Output = wasmtime::Result<T>>,
) -> wasmtime::Result<T> {
    match deadline.bound(call).await {
        Ok(result) => result,
        Err(crate::deadline::Expired) => Err(wasmtime::Error::new(CpuLimitExceeded)),
    }
}

/// A live instance of an object.
pub struct ObjectInstance {
    store: Store<InstanceState>,
    instance: Instance,
    bindings: Object,
    limits: CallLimits,
    ticker: Arc<EpochTicker>,
}

impl ObjectInstance {
    /// Instantiates `class` for object `id` with its database. On failure the
    /// database is handed back.
    pub async fn instantiate(
        class: &LoadedClass,
        id: ObjectId,
        name: Option<String>,
        db: ObjectDb,
        limits: CallLimits,
        links: InstanceLinks,
    ) -> Result<ObjectInstance, (String, ObjectDb)> {
        let log = GuestLog::new(format!("{}/{id}", class.name));
        let wasi = WasiCtx::builder()
            .stdout(log.clone())
            .stderr(log.clone())
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_HANDLES);
        let deadline = links.deadline.clone();
        let state = InstanceState {
            wasi,
            table,
            limiter: MemoryLimiter {
                limit: limits.memory,
                ..Default::default()
            },
            db,
            class: class.name.clone(),
            id,
            chain: Arc::new(vec![ChainLink {
                class: class.name.clone(),
                id,
                name: name.clone(),
            }]),
            name,
            storage_failure: None,
            aborted: None,
            effects: EventEffects::default(),
            peers: links.peers,
            sockets: links.sockets,
            event_sockets: EventSockets::default(),
            batch_accepts: 0,
            max_sockets: limits.max_sockets,
            max_ws_message: limits.max_ws_message,
            known_names: Default::default(),
            known_name_bytes: 0,
            deadline: deadline.clone(),
            log,
        };
        let mut store = Store::new(class.pre.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(|ctx| {
            if ctx.data().deadline.expired() {
                Err(wasmtime::Error::new(CpuLimitExceeded))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store.set_epoch_deadline(1);
        let clock = class.ticker.running();
        deadline.arm(limits.cpu);
        let instantiated = bounded(
            &deadline,
            class.pre.instance_pre().instantiate_async(&mut store),
        )
        .await;
        deadline.disarm();
        drop(clock);
        let instance = match instantiated {
            Ok(instance) => instance,
            Err(e) => return Err((format!("instantiation failed: {e:#}"), store.into_data().db)),
        };
        match class.indices.load(&mut store, &instance) {
            Ok(bindings) => Ok(ObjectInstance {
                store,
                instance,
                bindings,
                limits,
                ticker: class.ticker.clone(),
            }),
            Err(e) => Err((format!("instantiation failed: {e:#}"), store.into_data().db)),
        }
    }

    pub fn db(&mut self) -> &mut ObjectDb {
        &mut self.store.data_mut().db
    }

    /// Drops the instance and keeps the database.
    pub fn into_db(self) -> ObjectDb {
        self.store.into_data().db
    }

    /// Starts an event: its call chain (waiting callers, then this object),
    /// whether it is a WebSocket upgrade, how many sockets earlier events of
    /// the batch accepted, and empty effects. The constructor, if it runs
    /// now, is part of this event.
    pub fn begin_event(&mut self, callers: &[ChainLink], upgrade: bool, batch_accepts: usize) {
        let state = self.store.data_mut();
        let mut chain = callers.to_vec();
        chain.push(ChainLink {
            class: state.class.clone(),
            id: state.id,
            name: state.name.clone(),
        });
        state.chain = Arc::new(chain);
        state.event_sockets = EventSockets {
            upgrade,
            ..EventSockets::default()
        };
        state.effects = EventEffects::default();
        state.batch_accepts = batch_accepts;
    }

    /// Takes what the event did to sockets and the alarm (to apply after
    /// its commit).
    pub fn take_effects(&mut self) -> EventEffects {
        let state = self.store.data_mut();
        state.event_sockets.accepted = None;
        std::mem::take(&mut state.effects)
    }

    /// The alarm changed during the event so far.
    pub fn alarm_changed(&self) -> bool {
        self.store.data().effects.alarm_dirty
    }

    /// The socket the running event accepted, if any.
    pub fn accepted_socket(&self) -> Option<SocketId> {
        self.store
            .data()
            .event_sockets
            .accepted
            .as_ref()
            .map(|(id, _)| *id)
    }

    /// Drops every pending operation of the socket accepted by the running
    /// event (the handler accepted it but did not answer 101).
    pub fn discard_accepted(&mut self) {
        let state = self.store.data_mut();
        if let Some((id, _)) = state.event_sockets.accepted.take() {
            state.effects.socket_ops.retain(|op| match op {
                SocketOp::Accept { id: a, .. }
                | SocketOp::Send { id: a, .. }
                | SocketOp::Close { id: a, .. }
                | SocketOp::Attach { id: a, .. } => *a != id,
                SocketOp::SetAutoResponse(_) => true,
            });
        }
    }

    /// Prepares a guest call: arms the deadline (every call gets the full
    /// `cpu_per_event`); the returned guard keeps the CPU-limit clock ticking
    /// and must live until the call returns.
    fn start_call(&mut self) -> (TickGuard, Deadline) {
        let state = self.store.data_mut();
        state.log.start_event();
        state.storage_failure = None;
        state.deadline.arm(self.limits.cpu);
        let deadline = state.deadline.clone();
        // The epoch deadline is absolute: re-arm it before every call.
        self.store.set_epoch_deadline(1);
        (self.ticker.running(), deadline)
    }

    /// Turns a failed call (or a call that hit a storage failure) into the reason.
    fn failure(&mut self, err: Option<wasmtime::Error>) -> Option<GuestFailure> {
        let state = self.store.data_mut();
        state.deadline.disarm();
        if let Some(f) = state.storage_failure.take() {
            return Some(GuestFailure::Storage(f));
        }
        let err = err?;
        if state.limiter.exceeded {
            return Some(GuestFailure::MemoryLimit(self.limits.memory));
        }
        if err.downcast_ref::<CpuLimitExceeded>().is_some() {
            return Some(GuestFailure::CpuLimit(self.limits.cpu));
        }
        if let Some(reason) = state.aborted.take() {
            return Some(GuestFailure::Aborted(reason));
        }
        let trap = match err.downcast_ref::<wasmtime::Trap>() {
            Some(trap) => trap.to_string(),
            None => format!("{}", err.root_cause()),
        };
        let output = state.log.tail();
        Some(GuestFailure::Trap { trap, output })
    }

    /// Runs the constructor.
    pub async fn init(&mut self) -> Result<(), GuestFailure> {
        let (_clock, deadline) = self.start_call();
        let call = self
            .bindings
            .dohost_object_handler()
            .call_init(&mut self.store);
        let result = bounded(&deadline, call).await;
        self.finish(result)?.map_err(GuestFailure::Init)
    }

    /// Calls an RPC method with decoded arguments.
    pub async fn call(
        &mut self,
        method: &RpcMethod,
        args: &[Val],
    ) -> Result<Option<Val>, GuestFailure> {
        let Some(func) = self.instance.get_func(&mut self.store, method.index) else {
            return Err(GuestFailure::trap(format!(
                "the instance does not export {}",
                method.name
            )));
        };
        let (_clock, deadline) = self.start_call();
        let mut results = vec![Val::Bool(false); usize::from(method.result.is_some())];
        let result = bounded(
            &deadline,
            func.call_async(&mut self.store, args, &mut results),
        )
        .await;
        self.finish(result)?;
        Ok(results.pop())
    }

    /// Runs the alarm handler.
    pub async fn alarm(&mut self, retry_count: u32) -> Result<Result<(), String>, GuestFailure> {
        let (_clock, deadline) = self.start_call();
        let info = crate::bindings::dohost::object::types::AlarmInfo {
            retry_count,
            is_retry: retry_count > 0,
        };
        let call = self
            .bindings
            .dohost_object_handler()
            .call_alarm(&mut self.store, info);
        let result = bounded(&deadline, call).await;
        self.finish(result)
    }

    /// Delivers a WebSocket message.
    pub async fn socket_message(
        &mut self,
        socket: SocketId,
        message: &WsMessage,
    ) -> Result<Result<(), String>, GuestFailure> {
        let ws = self.socket_handle(socket)?;
        let (_clock, deadline) = self.start_call();
        let call = self
            .bindings
            .dohost_object_handler()
            .call_web_socket_message(&mut self.store, ws, message);
        let result = bounded(&deadline, call).await;
        self.finish(result)
    }

    /// Delivers a closed socket's close.
    pub async fn socket_close(
        &mut self,
        socket: &SocketView,
        code: u16,
        reason: &str,
        was_clean: bool,
    ) -> Result<Result<(), String>, GuestFailure> {
        let ws = self.closed_socket_handle(socket)?;
        let (_clock, deadline) = self.start_call();
        let call = self.bindings.dohost_object_handler().call_web_socket_close(
            &mut self.store,
            ws,
            code,
            reason,
            was_clean,
        );
        let result = bounded(&deadline, call).await;
        self.finish(result)
    }

    /// Delivers a socket's protocol error.
    pub async fn socket_error(
        &mut self,
        socket: &SocketView,
        error: &str,
    ) -> Result<Result<(), String>, GuestFailure> {
        let ws = self.closed_socket_handle(socket)?;
        let (_clock, deadline) = self.start_call();
        let call =
            self.bindings
                .dohost_object_handler()
                .call_web_socket_error(&mut self.store, ws, error);
        let result = bounded(&deadline, call).await;
        self.finish(result)
    }

    fn socket_handle(
        &mut self,
        socket: SocketId,
    ) -> Result<wasmtime::component::Resource<SocketHandle>, GuestFailure> {
        self.store
            .data_mut()
            .new_handle(socket)
            .map_err(|e| GuestFailure::trap(e.to_string()))
    }

    /// A handle to a socket that already left the hub (its close or error
    /// event), which the handler may still look at.
    fn closed_socket_handle(
        &mut self,
        socket: &SocketView,
    ) -> Result<wasmtime::component::Resource<SocketHandle>, GuestFailure> {
        self.store
            .data_mut()
            .event_sockets
            .closed
            .insert(socket.id, socket.clone());
        self.socket_handle(socket.id)
    }

    /// Classifies the outcome of a call.
    fn finish<T>(&mut self, result: wasmtime::Result<T>) -> Result<T, GuestFailure> {
        match result {
            Ok(value) => match self.failure(None) {
                Some(f) => Err(f),
                None => Ok(value),
            },
            Err(e) => Err(self.failure(Some(e)).expect("an error is a failure")),
        }
    }

    /// Delivers an HTTP request (a WebSocket upgrade if the event began as one).
    pub async fn fetch(&mut self, req: &Request) -> Result<Response, GuestFailure> {
        let (_clock, deadline) = self.start_call();
        let call = self
            .bindings
            .dohost_object_handler()
            .call_fetch(&mut self.store, req);
        let result = bounded(&deadline, call).await;
        self.finish(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn the_memory_limit_counts_every_memory_of_the_instance() {
        let mut limiter = MemoryLimiter {
            limit: 100,
            ..Default::default()
        };
        // Two memories created (growing from 0): 60 + 40 fit, exactly.
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        assert!(limiter.memory_growing(0, 40, None).unwrap());
        assert!(!limiter.exceeded);
        // One byte more in either is over the limit for the instance.
        assert!(limiter.memory_growing(40, 41, None).is_err());
        assert!(limiter.exceeded);
    }

    #[test]
    fn tables_share_one_element_budget() {
        let mut limiter = MemoryLimiter::default();
        assert!(limiter
            .table_growing(0, MAX_TABLE_ELEMENTS - 1, None)
            .unwrap());
        assert!(limiter.table_growing(0, 1, None).unwrap());
        assert!(!limiter.table_growing(0, 1, None).unwrap());
    }
}
