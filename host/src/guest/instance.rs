//! One component instance of an object: its wasmtime `Store` (with the
//! object's database and the capability contexts inside), the exported
//! handler, and the per-call limits.
//!
//! Owned by exactly one object actor; never shared, never called concurrently.
//! After any failure the instance must be dropped (`into_db` keeps the database).

use super::engine::{EpochTicker, LoadedClass, TickGuard};
use super::failure::GuestFailure;
use super::limiter::MemoryLimiter;
use super::log::GuestLog;
use super::state::{InstanceState, StorageCtx};
use crate::bindings::dohost::object::types::{Request, Response, WsMessage};
use crate::bindings::{Object, SocketHandle};
use crate::capabilities::env::EnvCtx;
use crate::capabilities::identity::IdentityCtx;
use crate::capabilities::namespaces::{ChainLink, NamespacesCtx, Peers};
use crate::capabilities::sockets::{
    new_handle, SocketEffects, SocketHub, SocketLimits, SocketView, SocketsCtx,
};
use crate::capabilities::storage::ObjectDb;
use crate::capabilities::timers::TimersCtx;
use crate::clock::SharedClock;
use crate::config::AppEnv;
use crate::deadline::{Deadline, DeadlineExceeded};
use crate::id::{ObjectId, ObjectKey, SocketId};
use crate::rpc::RpcMethod;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Instance, Val};
use wasmtime::Store;

/// What the running event did outside storage, kept until it commits (what it
/// did to host metadata — the alarm, the auto-response pair — the database
/// itself records).
#[derive(Debug, Default)]
pub struct EventEffects {
    pub sockets: SocketEffects,
    /// The event committed at the output gate: its batch so far is durable.
    pub flushed: bool,
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
    /// The wall clock the guest reads.
    pub clock: SharedClock,
    /// The application's vars and secrets.
    pub env: Arc<AppEnv>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The alarm index the output gate writes ahead (none: runs alone).
    pub alarms: Option<Arc<crate::capabilities::alarms::AlarmScheduler>>,
    /// `[assets]`, for the `ASSETS` binding.
    pub assets: Option<Arc<crate::assets::Assets>>,
}

impl InstanceLinks {
    /// Links for an instance that runs alone (benches): no other objects.
    pub fn standalone() -> Self {
        InstanceLinks {
            peers: Arc::new(crate::capabilities::namespaces::NoPeers),
            sockets: Arc::default(),
            deadline: Deadline::default(),
            clock: Arc::new(crate::clock::SystemClock),
            env: Arc::default(),
            metrics: Arc::default(),
            alarms: None,
            assets: None,
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
        Err(crate::deadline::Expired) => Err(wasmtime::Error::new(DeadlineExceeded)),
    }
}

/// A live instance of an object.
pub struct ObjectInstance {
    store: Store<InstanceState>,
    instance: Instance,
    bindings: Object,
    limits: CallLimits,
    ticker: Arc<EpochTicker>,
    /// `timer-events.fire`, if the class exports it.
    timer_events: Option<wasmtime::component::ComponentExportIndex>,
}

/// Which object an instance is.
pub struct Identity {
    pub id: ObjectId,
    pub name: Option<String>,
}

impl ObjectInstance {
    /// Instantiates `class` for object `who` with its database. On failure
    /// the database is handed back.
    pub async fn instantiate(
        class: &LoadedClass,
        who: Identity,
        db: ObjectDb,
        limits: CallLimits,
        links: InstanceLinks,
    ) -> Result<ObjectInstance, (String, ObjectDb)> {
        let state = new_state(class, who, db, &limits, links);
        let deadline = state.deadline.clone();
        let mut store = Store::new(class.pre.engine(), state);
        super::store::limit_store(&mut store, |s| &mut s.limiter, |s| &s.deadline);
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
            Err(e) => {
                let db = store.into_data().storage.db;
                return Err((format!("instantiation failed: {e:#}"), db));
            }
        };
        match class.indices.load(&mut store, &instance) {
            Ok(bindings) => Ok(ObjectInstance {
                store,
                instance,
                bindings,
                limits,
                ticker: class.ticker.clone(),
                timer_events: class.timer_events,
            }),
            Err(e) => {
                let db = store.into_data().storage.db;
                Err((format!("instantiation failed: {e:#}"), db))
            }
        }
    }

    pub fn db(&mut self) -> &mut ObjectDb {
        &mut self.store.data_mut().storage.db
    }

    /// Drops the instance and keeps the database.
    pub fn into_db(self) -> ObjectDb {
        self.store.into_data().storage.db
    }

    /// Starts an event: its call chain (waiting callers, then this object),
    /// whether it is a WebSocket upgrade, and how many sockets earlier events
    /// of the batch accepted. The constructor, if it runs now, is part of
    /// this event.
    /// `alarm`: the alarm (at, retry) an alarm event handles, which the
    /// output gate keeps stored across a commit in the event.
    pub fn begin_event(
        &mut self,
        callers: &[ChainLink],
        upgrade: bool,
        batch_accepts: usize,
        alarm: Option<(i64, u32)>,
    ) {
        let state = self.store.data_mut();
        state.namespaces.begin_event(callers);
        state.sockets.begin_event(upgrade, batch_accepts);
        state.gate.begin_event(alarm);
    }

    /// Takes what the event did (to apply after its commit).
    pub fn take_effects(&mut self) -> EventEffects {
        let state = self.store.data_mut();
        EventEffects {
            sockets: state.sockets.take_effects(),
            flushed: state.gate.take_flushed(),
        }
    }

    /// The socket the running event accepted, if any.
    pub fn accepted_socket(&self) -> Option<SocketId> {
        self.store.data().sockets.accepted()
    }

    /// Drops every pending operation of the socket accepted by the running
    /// event (the handler accepted it but did not answer 101).
    pub fn discard_accepted(&mut self) {
        self.store.data_mut().sockets.discard_accepted();
    }

    /// Prepares a guest call: arms the deadline (every call gets the full
    /// `cpu_per_event`); the returned guard keeps the CPU-limit clock ticking
    /// and must live until the call returns.
    fn start_call(&mut self) -> (TickGuard, Deadline) {
        let state = self.store.data_mut();
        state.log.start_event();
        state.storage.failure = None;
        state.identity.aborted = None;
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
        if let Some(f) = state.storage.failure.take() {
            return Some(GuestFailure::Storage(f));
        }
        let err = err?;
        if state.limiter.exceeded {
            return Some(GuestFailure::MemoryLimit(self.limits.memory));
        }
        if err.downcast_ref::<DeadlineExceeded>().is_some() {
            return Some(GuestFailure::CpuLimit(self.limits.cpu));
        }
        if let Some(reason) = state.identity.aborted.take() {
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

    /// Calls the untyped entry point (`dohost:object/dynamic`) and decodes its
    /// answer; a throw is a failure of the event (rolled back, instance reset).
    pub async fn call_dynamic(
        &mut self,
        method: &RpcMethod,
        args: &[Val],
    ) -> Result<crate::rpc::dynamic::Answer, GuestFailure> {
        let result = self.call(method, args).await?;
        crate::rpc::dynamic::answer(result.as_ref()).map_err(|t| GuestFailure::Thrown {
            name: t.name,
            message: t.message,
        })
    }

    /// When the instance wants its timers run (`timers.wake-after`), if it does.
    pub fn timer_wake_at(&self) -> Option<Duration> {
        self.store.data().timers.wake_at()
    }

    /// The class asked not to hibernate when idle (`timers.keep-awake`).
    pub fn keeps_awake(&self) -> bool {
        self.store.data().timers.keeps_awake()
    }

    /// Runs the due timers (`timer-events.fire`); nothing for a class
    /// without timers.
    pub async fn fire_timers(&mut self) -> Result<Result<(), String>, GuestFailure> {
        let Some(index) = self.timer_events else {
            return Ok(Ok(()));
        };
        let func = self
            .instance
            .get_typed_func::<(), (Result<(), String>,)>(&mut self.store, index)
            .map_err(|e| GuestFailure::trap(format!("timer-events.fire: {e}")))?;
        self.store.data_mut().timers.firing();
        let (_clock, deadline) = self.start_call();
        let result = bounded(&deadline, func.call_async(&mut self.store, ())).await;
        self.finish(result).map(|(fired,)| fired)
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
        new_handle(&mut self.store.data_mut().table, socket)
            .map_err(|e| GuestFailure::trap(e.to_string()))
    }

    /// A handle to a socket that already left the hub (its close or error
    /// event), which the handler may still look at.
    fn closed_socket_handle(
        &mut self,
        socket: &SocketView,
    ) -> Result<wasmtime::component::Resource<SocketHandle>, GuestFailure> {
        self.store.data_mut().sockets.lend_closed(socket.clone());
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

/// The store data of a new instance of `class` for object `who`.
fn new_state(
    class: &LoadedClass,
    who: Identity,
    db: ObjectDb,
    limits: &CallLimits,
    links: InstanceLinks,
) -> InstanceState {
    let log = GuestLog::new(format!("{}/{}", class.name, who.id));
    let wasi = super::store::guest_wasi(&log, links.clock.clone());
    let table = super::store::guest_table();
    let key = ObjectKey {
        class: class.name.clone(),
        id: who.id,
    };
    let me = ChainLink {
        class: class.name.clone(),
        id: who.id,
        name: who.name.clone(),
    };
    let socket_limits = SocketLimits {
        max_sockets: limits.max_sockets,
        max_message: limits.max_ws_message,
    };
    InstanceState {
        wasi,
        table,
        limiter: MemoryLimiter::new(limits.memory),
        storage: StorageCtx { db, failure: None },
        identity: IdentityCtx {
            class: class.name.clone(),
            id: who.id,
            name: who.name,
            aborted: None,
        },
        sockets: SocketsCtx::new(links.sockets, key.clone(), socket_limits),
        namespaces: NamespacesCtx::new(links.peers, me, links.deadline.clone()),
        env: EnvCtx { env: links.env },
        timers: TimersCtx::new(links.clock.clone(), class.timer_events.is_some()),
        http: wasmtime_wasi_http::WasiHttpCtx::new(),
        egress: crate::capabilities::outbound::EgressHooks {
            policy: class.egress.clone(),
            metrics: links.metrics,
            assets: links.assets,
        },
        gate: crate::capabilities::outbound::OutputGate::new(key, links.alarms),
        deadline: links.deadline,
        log,
    }
}
