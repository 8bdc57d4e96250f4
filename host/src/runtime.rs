//! The runtime: the loaded classes, the engine, the registry of objects and the
//! metrics, for the life of the process, and the wiring between them. Front
//! ends (HTTP server, `namespaces` calls between objects, socket connections,
//! the alarm scheduler) deliver events through `Runtime::deliver`.
//!
//! Object actors do not see the runtime: they get an `ObjectEnv`, whose links
//! back to other objects (`Peers`) and to their mailboxes (`SocketEvents`)
//! are a `RuntimeLink` — a weak reference, so nothing keeps the runtime alive
//! in a cycle.

use crate::bindings::dohost::object::types::{Request, Response};
use crate::capabilities::alarms::{AlarmHook, AlarmScheduler};
use crate::capabilities::namespaces::{BoxFuture, CallChain, Callee, PeerError, Peers, WaitGraph};
use crate::capabilities::sockets::connection::Handled;
use crate::capabilities::sockets::{
    SocketEvent, SocketEvents, SocketHook, SocketHub, UpgradeOffer,
};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::data_dir::DataDirLock;
use crate::entry::{Entry, EntryLinks, LoadedEntry};
use crate::guest::engine::{Engine, LoadKind, LoadedClass};
use crate::id::{ObjectId, ObjectKey};
use crate::metrics::Metrics;
use crate::object::env::{connection_limits, CommitHooks};
use crate::object::{Envelope, EventError, EventKind, EventOutput, ObjectActor, ObjectEnv};
use crate::registry::{Enqueue, Registry};
use crate::rpc::{self, RpcMethod};
use anyhow::Context;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use tokio::sync::oneshot;
use wasmtime::component::Val;

/// The reply to an event, once its batch has committed.
pub type EventReply = oneshot::Receiver<Result<EventOutput, EventError>>;

pub struct Runtime {
    pub config: Config,
    pub engine: Engine,
    classes: BTreeMap<String, Arc<LoadedClass>>,
    pub registry: Arc<Registry<Envelope>>,
    pub metrics: Arc<Metrics>,
    pub sockets: Arc<SocketHub>,
    pub alarms: Arc<AlarmScheduler>,
    /// What every object actor is given.
    env: Arc<ObjectEnv>,
    /// Which object waits on which (cross-request call deadlocks).
    waits: WaitGraph,
    /// The application's front door, if it has one.
    pub entry: Option<Entry>,
    /// `[assets]`: static files served before the entry.
    pub assets: Option<Arc<crate::assets::Assets>>,
    /// Held for the life of the runtime: no second host on this data dir.
    _lock: DataDirLock,
}

/// The way back from objects to the runtime: calls to other objects, and
/// the mailboxes socket connections deliver to.
struct RuntimeLink(Weak<Runtime>);

impl RuntimeLink {
    fn runtime(&self) -> Result<Arc<Runtime>, String> {
        self.0
            .upgrade()
            .ok_or_else(|| "the host is shutting down".to_string())
    }
}

/// Why an RPC call could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("unknown class {class:?}; known classes: {known}")]
    UnknownClass { class: String, known: String },
    #[error("class {class} has no RPC method {method:?}; its methods: {known}")]
    UnknownMethod {
        class: String,
        method: String,
        known: String,
    },
    /// The class's untyped entry point found no public method of that name
    /// (its message lists them).
    #[error("{0}")]
    NoPublicMethod(String),
    #[error("{0}")]
    BadArguments(String),
    #[error(transparent)]
    Event(#[from] EventError),
}

/// What an RPC method answered.
#[derive(Debug)]
pub enum RpcValue {
    /// A typed method's WIT value (none for a method without result).
    Typed(Option<Val>),
    /// An untyped method's JSON result.
    Json(Value),
}

/// How a failed call looks to the calling guest.
impl From<CallError> for PeerError {
    fn from(err: CallError) -> PeerError {
        let message = err.to_string();
        match err {
            CallError::UnknownClass { .. } => PeerError::UnknownClass(message),
            CallError::UnknownMethod { .. } | CallError::NoPublicMethod(_) => {
                PeerError::NotFound(message)
            }
            CallError::BadArguments(_) => PeerError::Invalid(message),
            CallError::Event(
                EventError::Overloaded { .. }
                | EventError::OverloadedBytes { .. }
                | EventError::NoCapacity { .. },
            ) => PeerError::Overloaded(message),
            CallError::Event(EventError::Guest {
                failure: crate::guest::GuestFailure::Thrown { name, message },
                ..
            }) => PeerError::Thrown { name, message },
            CallError::Event(_) => PeerError::Failed(message),
        }
    }
}

impl Runtime {
    /// Creates the engine and loads (compiles or reads from cache) every class.
    pub fn new(config: Config) -> anyhow::Result<Arc<Runtime>> {
        Runtime::with_clock(config, Arc::new(SystemClock))
    }

    /// The same, with wall time read from `clock` (virtual time in tests).
    pub fn with_clock(config: Config, clock: SharedClock) -> anyhow::Result<Arc<Runtime>> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let lock = DataDirLock::take(&config.data_dir)?;
        let applied =
            crate::migrations::apply(&config.data_dir, &config.migrations, clock.now_ms())?;
        if !applied.is_empty() {
            tracing::info!("applied migrations {}", applied.join(", "));
        }
        install_storage_layers(&config)?;
        let engine = Engine::new(
            &config.limits,
            &config.cache_dir,
            &config.pooled_components(),
            config.entry_slots(),
        )?;
        let classes = load_classes(&engine, &config)?;
        let entry = config
            .entry
            .as_ref()
            .map(|e| LoadedEntry::load(&engine, e))
            .transpose()?;
        let class_names: Vec<Arc<str>> = classes.values().map(|c| c.name.clone()).collect();
        let alarms =
            AlarmScheduler::open(&config.data_dir, &class_names, config.alarms, clock.clone())
                .context("opening the alarm index")?;
        let alarms = Arc::new(alarms);
        let registry = Registry::new(config.limits.max_active);
        let sockets = Arc::new(SocketHub::new(
            config.limits.max_ws_send_queue_bytes,
            clock.clone(),
        ));
        let metrics = Arc::new(Metrics::default());
        let assets = match &config.assets {
            Some(a) => Some(Arc::new(
                crate::assets::Assets::open(&a.directory)
                    .with_context(|| format!("assets.directory: {}", a.directory.display()))?,
            )),
            None => None,
        };
        Ok(Arc::new_cyclic(|me| {
            let link = Arc::new(RuntimeLink(me.clone()));
            let app_env = Arc::new(config.env.clone());
            let entry = entry.map(|e| {
                let links = EntryLinks {
                    peers: link.clone(),
                    env: app_env.clone(),
                    clock: clock.clone(),
                    dev: config.dev,
                    metrics: metrics.clone(),
                    assets: assets.clone(),
                };
                e.start(&config.limits, links)
            });
            let env = Arc::new(ObjectEnv {
                limits: config.limits.clone(),
                data_dir: config.data_dir.clone(),
                clock,
                metrics: metrics.clone(),
                registry: registry.clone(),
                sockets: sockets.clone(),
                alarms: alarms.clone(),
                peers: link.clone(),
                hooks: CommitHooks {
                    alarms: AlarmHook(alarms.clone()),
                    sockets: SocketHook {
                        hub: sockets.clone(),
                        events: link,
                        limits: connection_limits(&config.limits),
                    },
                },
                app_env,
                assets: assets.clone(),
            });
            Runtime {
                alarms,
                registry,
                sockets,
                config,
                engine,
                classes,
                metrics,
                env,
                waits: WaitGraph::default(),
                entry,
                assets,
                _lock: lock,
            }
        }))
    }

    /// Starts the actor of an object (the registry calls it when the object
    /// has none).
    fn spawner<'a>(
        &'a self,
        class: &'a Arc<LoadedClass>,
        id: ObjectId,
    ) -> impl Fn() -> crate::registry::Mailbox<Envelope> + Sync + 'a {
        move || ObjectActor::spawn(self.env.clone(), Arc::clone(class), id)
    }

    pub fn class(&self, name: &str) -> Option<&Arc<LoadedClass>> {
        self.classes.get(name)
    }

    pub fn class_names(&self) -> Vec<&str> {
        self.classes.keys().map(String::as_str).collect()
    }

    fn known_class(&self, name: &str) -> Result<&Arc<LoadedClass>, CallError> {
        self.class(name).ok_or_else(|| CallError::UnknownClass {
            class: name.to_string(),
            known: self.class_names().join(", "),
        })
    }

    /// Where the database of an object lives.
    pub fn object_path(&self, key: &ObjectKey) -> PathBuf {
        self.env.object_path(key)
    }

    /// Delivers an HTTP request to an object's `fetch` handler.
    pub async fn fetch(
        &self,
        class: &Arc<LoadedClass>,
        id: ObjectId,
        name: Option<String>,
        request: Request,
        callers: CallChain,
    ) -> Result<Response, EventError> {
        let kind = EventKind::Fetch {
            request,
            upgrade: None,
        };
        match self.deliver(class, id, name, kind, callers).await? {
            EventOutput::Response(r) => Ok(r),
            other => unreachable!("fetch answered {other:?}"),
        }
    }

    /// Delivers a request that asks for a WebSocket upgrade, with the
    /// connection to serve the socket from: the answer is either an ordinary
    /// response or an accepted socket with its 101 (the object then serves
    /// the connection itself, even if the caller goes away).
    pub async fn fetch_upgrade(
        &self,
        class: &Arc<LoadedClass>,
        id: ObjectId,
        name: Option<String>,
        request: Request,
        offer: crate::capabilities::sockets::UpgradeOffer,
        callers: CallChain,
    ) -> Result<EventOutput, EventError> {
        let kind = EventKind::Fetch {
            request,
            upgrade: Some(offer),
        };
        self.deliver(class, id, name, kind, callers).await
    }

    /// Queues a WebSocket event for an object, waiting for room in its mailbox
    /// (the socket's reader pauses meanwhile: backpressure, nothing dropped).
    /// Returns the event's reply.
    pub async fn deliver_socket_event(
        &self,
        class: &Arc<LoadedClass>,
        id: ObjectId,
        name: Option<String>,
        event: SocketEvent,
    ) -> EventReply {
        let key = ObjectKey {
            class: class.name.clone(),
            id,
        };
        let (reply, response) = oneshot::channel();
        let envelope = Envelope::new(EventKind::Socket(event), name, CallChain::default(), reply);
        let spawn = self.spawner(class, id);
        self.registry.enqueue_wait(&key, envelope, &spawn).await;
        self.metrics.mailbox_depth.inc();
        response
    }

    /// Starts the background work of the runtime (the alarm scheduler).
    pub fn start(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(self.alarms.clone().run(move |key| {
            let me = me.clone();
            async move {
                if let Some(rt) = me.upgrade() {
                    rt.deliver_alarm(key).await;
                }
            }
        }));
    }

    /// Winds down after the HTTP server stopped: closes every WebSocket with
    /// 1001, stops dispatching alarms, lets running batches commit and
    /// hibernates every object, waiting at most `bound`.
    pub async fn shutdown(&self, bound: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + bound;
        self.alarms.stop();
        self.sockets.close_all(1001, "server shutting down");
        while self.sockets.open_sockets() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        while self.registry.actors() > 0 && tokio::time::Instant::now() < deadline {
            self.registry.evict_all();
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        if self.registry.actors() > 0 || self.sockets.open_sockets() > 0 {
            tracing::warn!(
                "shutdown bound of {bound:?} reached with {} objects and {} sockets still open",
                self.registry.actors(),
                self.sockets.open_sockets()
            );
        }
    }

    /// Runs an object's alarm event (the scheduler tries again later if it
    /// could not be delivered).
    async fn deliver_alarm(&self, key: ObjectKey) {
        let Some(class) = self.class(&key.class).cloned() else {
            return;
        };
        let delivered = self
            .deliver(&class, key.id, None, EventKind::Alarm, CallChain::default())
            .await;
        match delivered {
            Ok(_) | Err(EventError::Guest { .. }) => {}
            Err(e) => tracing::warn!("alarm of {key} not delivered, retrying soon: {e}"),
        }
    }

    /// The metrics in Prometheus text, with the gauges that are computed on demand.
    pub fn render_metrics(&self) -> String {
        let m = &self.metrics;
        m.sockets_active.set(self.sockets.open_sockets() as i64);
        m.actors.set(self.registry.actors() as i64);
        m.socket_objects.set(self.sockets.entries() as i64);
        m.temp_bytes
            .set(crate::capabilities::storage::temp_files::used() as i64);
        let hibernated = self
            .sockets
            .objects_with_sockets()
            .iter()
            .filter(|k| !self.registry.is_active(k))
            .count();
        m.objects_hibernated_with_sockets.set(hibernated as i64);
        let served = self.sockets.auto_responses();
        m.socket_auto_responses
            .inc_by(served.saturating_sub(m.socket_auto_responses.get()));
        m.render()
    }

    /// Looks up an RPC method of a class: a typed one, else the class's
    /// untyped entry point (`dohost:object/dynamic`), if it has one.
    pub fn method(
        &self,
        class: &str,
        method: &str,
    ) -> Result<(&Arc<LoadedClass>, &Arc<RpcMethod>), CallError> {
        let class_rt = self.known_class(class)?;
        let m = class_rt
            .rpc
            .get(method)
            .or_else(|| class_rt.rpc.dynamic())
            .ok_or_else(|| CallError::UnknownMethod {
                class: class.to_string(),
                method: method.to_string(),
                known: match class_rt.rpc.names() {
                    names if names.is_empty() => "none (it exports no RPC interface)".to_string(),
                    names => names.join(", "),
                },
            })?;
        Ok((class_rt, m))
    }

    /// Calls an RPC method with JSON arguments (array or object; an untyped
    /// method takes an array).
    pub async fn call(
        &self,
        class: &str,
        id: ObjectId,
        name: Option<String>,
        method: &str,
        args: &Value,
        callers: CallChain,
    ) -> Result<RpcValue, CallError> {
        let (class_rt, m) = self.method(class, method)?;
        let args = if m.dynamic {
            if !matches!(args, Value::Array(_) | Value::Null) {
                return Err(CallError::BadArguments(format!(
                    "{class}.{method} takes a JSON array of arguments, got {args}"
                )));
            }
            rpc::dynamic::args(method, args)
        } else {
            m.decode_args(args)
                .map_err(|e| CallError::BadArguments(e.0))?
        };
        let class_rt = class_rt.clone();
        let kind = EventKind::Rpc {
            method: m.clone(),
            args,
        };
        match self.deliver(&class_rt, id, name, kind, callers).await? {
            EventOutput::Value(v) => Ok(RpcValue::Typed(v)),
            EventOutput::Dynamic(rpc::dynamic::Answer::Value(json)) => Ok(RpcValue::Json(json)),
            EventOutput::Dynamic(rpc::dynamic::Answer::NotFound(message)) => {
                Err(CallError::NoPublicMethod(message))
            }
            other => unreachable!("rpc answered {other:?}"),
        }
    }

    async fn deliver(
        &self,
        class: &Arc<LoadedClass>,
        id: ObjectId,
        name: Option<String>,
        kind: EventKind,
        callers: CallChain,
    ) -> Result<EventOutput, EventError> {
        let key = ObjectKey {
            class: class.name.clone(),
            id,
        };
        let label = kind.label();
        let (reply, response) = oneshot::channel();
        let envelope = Envelope::new(kind, name, callers, reply);
        let spawn = self.spawner(class, id);
        match self.registry.enqueue(&key, envelope, &spawn) {
            Ok(()) => {
                self.metrics.mailbox_depth.inc();
            }
            Err(Enqueue::Full(_)) => {
                self.metrics.event(&class.name, label, "overloaded");
                return Err(EventError::Overloaded {
                    object: key.to_string(),
                    limit: self.config.limits.mailbox,
                });
            }
            Err(Enqueue::FullBytes(_)) => {
                self.metrics.event(&class.name, label, "overloaded");
                return Err(EventError::OverloadedBytes {
                    object: key.to_string(),
                    limit: self.config.limits.mailbox_bytes,
                });
            }
            // The envelope (and its reply sender) is dropped: answered below.
            Err(Enqueue::Stopped(_)) => {}
        };
        response.await.unwrap_or_else(|_| {
            Err(EventError::Dropped {
                object: key.to_string(),
            })
        })
    }
}

/// Before any database opens: temporary files go to a bounded place in the
/// data dir, commits of all objects share flushes, and (test builds only)
/// the failpoint VFS goes on top of that.
fn install_storage_layers(config: &Config) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    crate::capabilities::storage::temp_files::install(dir, config.limits.max_temp_bytes)
        .with_context(|| format!("setting up temporary files under {}", dir.display()))?;
    crate::capabilities::storage::group_sync::install(dir)
        .with_context(|| format!("installing the group-sync VFS on {}", dir.display()))?;
    crate::failpoints::install_from_env();
    Ok(())
}

/// Compiles (or reads from the cache) every class of the manifest.
fn load_classes(
    engine: &Engine,
    config: &Config,
) -> anyhow::Result<BTreeMap<String, Arc<LoadedClass>>> {
    let mut classes = BTreeMap::new();
    for class in &config.classes {
        let loaded = engine.load_class(class)?;
        tracing::info!(
            class = %class.name,
            bytes = loaded.size,
            ms = loaded.load_time.as_secs_f64() * 1e3,
            methods = %loaded.rpc.names().join(","),
            "{} {}",
            if loaded.load == LoadKind::Cached { "loaded compiled" } else { "compiled" },
            class.component.display()
        );
        classes.insert(class.name.clone(), Arc::new(loaded));
    }
    Ok(classes)
}

impl Peers for RuntimeLink {
    fn knows_class(&self, class: &str) -> bool {
        self.0
            .upgrade()
            .is_some_and(|rt| rt.classes.contains_key(class))
    }

    fn call(
        &self,
        target: Callee,
        method: String,
        args: Value,
        chain: CallChain,
    ) -> BoxFuture<Result<Value, PeerError>> {
        let rt = self.runtime();
        Box::pin(async move {
            let rt = rt.map_err(PeerError::Failed)?;
            let _waiting = rt
                .waits
                .wait_on(&chain, &target)
                .map_err(PeerError::Cycle)?;
            let Callee { class, id, name } = target;
            let timeout = rt.config.limits.call_timeout;
            let call = rt.call(&class, id, name, &method, &args, chain);
            let max = crate::config::limits::MAX_RPC_RESULT_BYTES;
            let too_big = |e: String| PeerError::Failed(format!("{class}/{id} {method}: {e}"));
            match tokio::time::timeout(timeout, call).await {
                Ok(Ok(RpcValue::Typed(value))) => match &value {
                    Some(v) => rpc::json::encode_bounded(v, max).map_err(too_big),
                    None => Ok(Value::Null),
                },
                // Its size was checked as text (rpc::dynamic::answer).
                Ok(Ok(RpcValue::Json(json))) => Ok(json),
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err(PeerError::Timeout(format!(
                    "timeout: {class}/{id} did not answer {method} within {timeout:?} (limits.call_timeout)"
                ))),
            }
        })
    }

    fn fetch(
        &self,
        target: Callee,
        req: Request,
        chain: CallChain,
    ) -> BoxFuture<Result<Response, PeerError>> {
        self.fetch_with(target, req, None, chain)
    }

    fn fetch_upgrade(
        &self,
        target: Callee,
        req: Request,
        offer: UpgradeOffer,
        chain: CallChain,
    ) -> BoxFuture<Result<Response, PeerError>> {
        self.fetch_with(target, req, Some(offer), chain)
    }
}

impl RuntimeLink {
    /// A fetch to another object, offering a WebSocket connection with it
    /// when the caller (an entry) has one.
    fn fetch_with(
        &self,
        target: Callee,
        req: Request,
        offer: Option<UpgradeOffer>,
        chain: CallChain,
    ) -> BoxFuture<Result<Response, PeerError>> {
        let rt = self.runtime();
        Box::pin(async move {
            let rt = rt.map_err(PeerError::Failed)?;
            let _waiting = rt
                .waits
                .wait_on(&chain, &target)
                .map_err(PeerError::Cycle)?;
            let Callee { class, id, name } = target;
            let timeout = rt.config.limits.call_timeout;
            let class_rt = rt.known_class(&class)?.clone();
            let answer = async {
                match offer {
                    None => rt.fetch(&class_rt, id, name, req, chain).await,
                    Some(offer) => {
                        match rt
                            .fetch_upgrade(&class_rt, id, name, req, offer, chain)
                            .await?
                        {
                            EventOutput::Upgrade { response, .. } => Ok(response),
                            EventOutput::Response(response) => Ok(response),
                            other => unreachable!("fetch answered {other:?}"),
                        }
                    }
                }
            };
            match tokio::time::timeout(timeout, answer).await {
                Ok(result) => result.map_err(|e| CallError::from(e).into()),
                Err(_) => Err(PeerError::Timeout(format!(
                    "timeout: {class}/{id} did not answer a fetch within {timeout:?} (limits.call_timeout)"
                ))),
            }
        })
    }
}

impl SocketEvents for RuntimeLink {
    fn deliver(
        &self,
        key: &ObjectKey,
        name: Option<String>,
        event: SocketEvent,
    ) -> futures_util::future::BoxFuture<'_, Handled> {
        let key = key.clone();
        // Two steps: queueing (awaited by the reader: backpressure), then the
        // outcome (awaited in order with the socket's other events).
        #[allow(clippy::async_yields_async)]
        Box::pin(async move {
            let queued = match self.runtime() {
                Ok(rt) => match rt.known_class(&key.class).cloned() {
                    Ok(class) => Ok(rt.deliver_socket_event(&class, key.id, name, event).await),
                    Err(e) => Err(e.to_string()),
                },
                Err(why) => Err(why),
            };
            let handled: Handled = match queued {
                Ok(reply) => Box::pin(async move { host_failure(reply.await) }),
                Err(why) => Box::pin(std::future::ready(Some(why))),
            };
            handled
        })
    }
}

/// Why the object could not handle a socket's event, if the host is at
/// fault (a guest failure is the object's business: the socket stays open).
fn host_failure(
    reply: Result<Result<EventOutput, EventError>, oneshot::error::RecvError>,
) -> Option<String> {
    match reply {
        Ok(Ok(_)) | Ok(Err(EventError::Guest { .. })) => None,
        Ok(Err(e)) => Some(without_object(&e.to_string()).to_string()),
        Err(_) => Some("the object stopped before handling a message".into()),
    }
}

/// `message` without its leading "object <class>/<id>": a close reason holds
/// 123 bytes, and the client knows which object it is connected to.
fn without_object(message: &str) -> &str {
    message
        .strip_prefix("object ")
        .and_then(|rest| rest.split_once(' '))
        .map_or(message, |(_, cause)| cause)
}
