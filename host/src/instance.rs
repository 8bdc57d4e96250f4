//! One component instance of an object: its wasmtime `Store` (with the
//! object's database inside), the exported handler, and the per-call limits.
//!
//! Owned by exactly one object actor; never shared, never called concurrently.
//! After any failure the instance must be dropped (`into_db` keeps the database).

use crate::bindings::dohost::object::types::{Request, Response, WsMessage};
use crate::bindings::Object;
use crate::engine::{ClassRuntime, EpochTicker, TickGuard};
use crate::guest_log::GuestLog;
use crate::id::ObjectId;
use crate::imports::websockets::{EventSockets, SocketHandle, MAX_HANDLES};
use crate::peers::{CallChain, ChainLink, Peers};
use crate::registry::ObjectKey;
use crate::rpc::RpcMethod;
use crate::sockets::{SocketHub, SocketId, SocketOp, SocketView};
use crate::storage::ObjectDb;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Instance, ResourceTable, Val};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Why an event failed inside the guest. The event is rolled back and the
/// instance discarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestFailure {
    #[error("trapped: {0}")]
    Trap(String),
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

/// Marker error raised by the epoch callback when an event runs too long.
#[derive(Debug)]
struct CpuLimitExceeded;

impl std::fmt::Display for CpuLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CPU limit exceeded")
    }
}

impl std::error::Error for CpuLimitExceeded {}

/// Caps linear memory and remembers whether the cap was hit.
struct MemoryLimiter {
    limit: u64,
    exceeded: bool,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.limit {
            self.exceeded = true;
            return Err(wasmtime::Error::msg("memory limit exceeded"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
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
    /// The event set, deleted or cleared the alarm (the index must follow).
    pub(crate) alarm_dirty: bool,
    /// Other objects, for the `namespaces` import.
    pub(crate) peers: Arc<dyn Peers>,
    /// The call chain of the current event, ending with this object.
    pub(crate) chain: CallChain,
    /// The host's sockets, and this event's view of them.
    pub(crate) sockets: Arc<SocketHub>,
    pub(crate) event_sockets: EventSockets,
    pub(crate) max_sockets: usize,
    pub(crate) max_ws_message: usize,
    /// Names of ids this instance derived with `id-from-name`.
    pub(crate) known_names: std::collections::HashMap<(String, ObjectId), String>,
    deadline: Instant,
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

    /// Pushes the CPU deadline of the running event back by `by`.
    pub(crate) fn extend_deadline(&mut self, by: Duration) {
        self.deadline += by;
    }

    /// Records a fatal storage error for the actor and returns the guest message.
    pub(crate) fn storage_error(&mut self, err: crate::storage::StorageError) -> String {
        if err.is_fatal() {
            self.storage_failure.get_or_insert_with(|| err.to_string());
        }
        err.to_string()
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
}

impl InstanceLinks {
    /// Links for an instance that runs alone (benches): no other objects.
    pub fn standalone() -> Self {
        InstanceLinks {
            peers: Arc::new(crate::peers::NoPeers),
            sockets: Arc::default(),
        }
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
        class: &ClassRuntime,
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
        let state = InstanceState {
            wasi,
            table,
            limiter: MemoryLimiter {
                limit: limits.memory,
                exceeded: false,
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
            alarm_dirty: false,
            peers: links.peers,
            sockets: links.sockets,
            event_sockets: EventSockets::default(),
            max_sockets: limits.max_sockets,
            max_ws_message: limits.max_ws_message,
            known_names: Default::default(),
            deadline: Instant::now() + limits.cpu,
            log,
        };
        let mut store = Store::new(class.pre.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Err(wasmtime::Error::new(CpuLimitExceeded))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store.set_epoch_deadline(1);
        let clock = class.ticker.running();
        let instantiated = class.pre.instance_pre().instantiate_async(&mut store).await;
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

    /// Sets the call chain of the next event: its waiting callers, then this object.
    pub fn set_callers(&mut self, callers: &[ChainLink]) {
        let state = self.store.data_mut();
        let mut chain = callers.to_vec();
        chain.push(ChainLink {
            class: state.class.clone(),
            id: state.id,
            name: state.name.clone(),
        });
        state.chain = Arc::new(chain);
    }

    /// Takes the socket operations of the last event (to apply after commit).
    pub fn take_socket_ops(&mut self) -> Vec<SocketOp> {
        std::mem::take(&mut self.store.data_mut().event_sockets.ops)
    }

    /// The socket the last event accepted, if any.
    pub fn accepted_socket(&self) -> Option<SocketId> {
        self.store
            .data()
            .event_sockets
            .accepted
            .as_ref()
            .map(|(id, _)| *id)
    }

    /// Drops every pending operation of the socket accepted by the last event
    /// (the handler accepted it but did not answer 101).
    pub fn discard_accepted(&mut self) {
        let sockets = &mut self.store.data_mut().event_sockets;
        if let Some((id, _)) = sockets.accepted.take() {
            sockets.ops.retain(|op| match op {
                SocketOp::Accept { id: a, .. }
                | SocketOp::Send { id: a, .. }
                | SocketOp::Close { id: a, .. }
                | SocketOp::Attach { id: a, .. } => *a != id,
                SocketOp::SetAutoResponse(_) => true,
            });
        }
    }

    /// True if the last event changed the alarm; resets the flag.
    pub fn take_alarm_dirty(&mut self) -> bool {
        std::mem::take(&mut self.store.data_mut().alarm_dirty)
    }

    /// Prepares a guest call; the returned guard keeps the CPU-limit clock
    /// ticking and must live until the call returns.
    fn start_call(&mut self) -> TickGuard {
        let state = self.store.data_mut();
        state.event_sockets = EventSockets::default();
        state.alarm_dirty = false;
        state.deadline = Instant::now() + self.limits.cpu;
        state.log.start_event();
        state.storage_failure = None;
        // The deadline is absolute: re-arm it before every call.
        self.store.set_epoch_deadline(1);
        self.ticker.running()
    }

    /// Turns a failed call (or a call that hit a storage failure) into the reason.
    fn failure(&mut self, err: Option<wasmtime::Error>) -> Option<GuestFailure> {
        let state = self.store.data_mut();
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
        Some(GuestFailure::Trap(if output.is_empty() {
            trap
        } else {
            format!("{trap}; guest output: {output}")
        }))
    }

    /// Runs the constructor.
    pub async fn init(&mut self) -> Result<(), GuestFailure> {
        let _clock = self.start_call();
        let result = self
            .bindings
            .dohost_object_handler()
            .call_init(&mut self.store)
            .await;
        match result {
            Ok(inner) => match self.failure(None) {
                Some(f) => Err(f),
                None => inner.map_err(GuestFailure::Init),
            },
            Err(e) => Err(self.failure(Some(e)).expect("an error is a failure")),
        }
    }

    /// Calls an RPC method with decoded arguments.
    pub async fn call(
        &mut self,
        method: &RpcMethod,
        args: &[Val],
    ) -> Result<Option<Val>, GuestFailure> {
        let _clock = self.start_call();
        let Some(func) = self.instance.get_func(&mut self.store, method.index) else {
            return Err(GuestFailure::Trap(format!(
                "the instance does not export {}",
                method.name
            )));
        };
        let mut results = vec![Val::Bool(false); usize::from(method.result.is_some())];
        match func.call_async(&mut self.store, args, &mut results).await {
            Ok(()) => match self.failure(None) {
                Some(f) => Err(f),
                None => Ok(results.pop()),
            },
            Err(e) => Err(self.failure(Some(e)).expect("an error is a failure")),
        }
    }

    /// Runs the alarm handler.
    pub async fn alarm(&mut self, retry_count: u32) -> Result<Result<(), String>, GuestFailure> {
        let _clock = self.start_call();
        let info = crate::bindings::dohost::object::types::AlarmInfo {
            retry_count,
            is_retry: retry_count > 0,
        };
        let result = self
            .bindings
            .dohost_object_handler()
            .call_alarm(&mut self.store, info)
            .await;
        self.finish(result)
    }

    /// Delivers a WebSocket message.
    pub async fn socket_message(
        &mut self,
        socket: SocketId,
        message: &WsMessage,
    ) -> Result<Result<(), String>, GuestFailure> {
        let _clock = self.start_call();
        let ws = self.socket_handle(socket)?;
        let result = self
            .bindings
            .dohost_object_handler()
            .call_web_socket_message(&mut self.store, ws, message)
            .await;
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
        let _clock = self.start_call();
        self.store
            .data_mut()
            .event_sockets
            .closed
            .insert(socket.id, socket.clone());
        let ws = self.socket_handle(socket.id)?;
        let result = self
            .bindings
            .dohost_object_handler()
            .call_web_socket_close(&mut self.store, ws, code, reason, was_clean)
            .await;
        self.finish(result)
    }

    /// Delivers a socket's protocol error.
    pub async fn socket_error(
        &mut self,
        socket: &SocketView,
        error: &str,
    ) -> Result<Result<(), String>, GuestFailure> {
        let _clock = self.start_call();
        self.store
            .data_mut()
            .event_sockets
            .closed
            .insert(socket.id, socket.clone());
        let ws = self.socket_handle(socket.id)?;
        let result = self
            .bindings
            .dohost_object_handler()
            .call_web_socket_error(&mut self.store, ws, error)
            .await;
        self.finish(result)
    }

    fn socket_handle(
        &mut self,
        socket: SocketId,
    ) -> Result<wasmtime::component::Resource<SocketHandle>, GuestFailure> {
        self.store
            .data_mut()
            .new_handle(socket)
            .map_err(|e| GuestFailure::Trap(e.to_string()))
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

    /// Delivers an HTTP request; `upgrade` if it asks for a WebSocket.
    pub async fn fetch(&mut self, req: &Request, upgrade: bool) -> Result<Response, GuestFailure> {
        let _clock = self.start_call();
        self.store.data_mut().event_sockets.upgrade = upgrade;
        let result = self
            .bindings
            .dohost_object_handler()
            .call_fetch(&mut self.store, req)
            .await;
        match result {
            Ok(res) => match self.failure(None) {
                Some(f) => Err(f),
                None => Ok(res),
            },
            Err(e) => Err(self.failure(Some(e)).expect("an error is a failure")),
        }
    }
}
