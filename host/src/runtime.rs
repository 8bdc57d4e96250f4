//! The runtime: the loaded classes, the engine, the registry of objects and the
//! metrics, for the life of the process. Front ends (HTTP server, `namespaces`
//! calls between objects) deliver events through `Runtime::deliver`.

use crate::alarms::AlarmScheduler;
use crate::bindings::dohost::object::types::{Request, Response};
use crate::config::Config;
use crate::engine::{ClassRuntime, Engine, LoadKind};
use crate::id::ObjectId;
use crate::metrics::Metrics;
use crate::object::{Envelope, EventError, EventKind, EventOutput, ObjectActor};
use crate::peers::{BoxFuture, CallChain, Peers, Target};
use crate::registry::{Enqueue, ObjectKey, Registry};
use crate::rpc::{self, RpcMethod};
use crate::sockets::{SocketEvent, SocketHub};
use anyhow::Context;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use tokio::sync::oneshot;
use wasmtime::component::Val;

pub struct Runtime {
    pub config: Config,
    pub engine: Engine,
    classes: BTreeMap<String, Arc<ClassRuntime>>,
    pub registry: Arc<Registry>,
    pub metrics: Metrics,
    pub sockets: Arc<SocketHub>,
    pub alarms: Arc<AlarmScheduler>,
    /// Itself, for handing out to actors spawned from `&self`.
    me: Weak<Runtime>,
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
    #[error("{0}")]
    BadArguments(String),
    #[error(transparent)]
    Event(#[from] EventError),
}

impl Runtime {
    /// Creates the engine and loads (compiles or reads from cache) every class.
    pub fn new(config: Config) -> anyhow::Result<Arc<Runtime>> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        // Before any database opens: commits of all objects share flushes, and
        // (test builds only) the failpoint VFS goes on top of that.
        crate::storage::group_sync::install(&config.data_dir).with_context(|| {
            format!(
                "installing the group-sync VFS on {}",
                config.data_dir.display()
            )
        })?;
        crate::failpoints::install_from_env();
        let engine = Engine::new(&config.limits, &config.cache_dir)?;
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
        let class_names: Vec<Arc<str>> = classes.values().map(|c| c.name.clone()).collect();
        let alarms = AlarmScheduler::open(&config.data_dir, &class_names, config.alarms)
            .context("opening the alarm index")?;
        Ok(Arc::new_cyclic(|me| Runtime {
            alarms: Arc::new(alarms),
            registry: Registry::new(config.limits.max_active),
            config,
            engine,
            classes,
            metrics: Metrics::default(),
            sockets: Arc::default(),
            me: me.clone(),
        }))
    }

    fn arc(&self) -> Arc<Runtime> {
        self.me.upgrade().expect("the runtime outlives its users")
    }

    pub fn class(&self, name: &str) -> Option<&Arc<ClassRuntime>> {
        self.classes.get(name)
    }

    pub fn class_names(&self) -> Vec<&str> {
        self.classes.keys().map(String::as_str).collect()
    }

    fn known_class(&self, name: &str) -> Result<&Arc<ClassRuntime>, CallError> {
        self.class(name).ok_or_else(|| CallError::UnknownClass {
            class: name.to_string(),
            known: self.class_names().join(", "),
        })
    }

    /// Where the database of an object lives. Class names are validated
    /// identifiers and ids are hex, so the path cannot escape the data dir.
    pub fn object_path(&self, key: &ObjectKey) -> PathBuf {
        self.config
            .data_dir
            .join(&*key.class)
            .join(format!("{}.sqlite", key.id))
    }

    /// Delivers an HTTP request to an object's `fetch` handler.
    pub async fn fetch(
        &self,
        class: &Arc<ClassRuntime>,
        id: ObjectId,
        name: Option<String>,
        request: Request,
        callers: CallChain,
    ) -> Result<Response, EventError> {
        let kind = EventKind::Fetch {
            request,
            upgrade: false,
        };
        match self.deliver(class, id, name, kind, callers).await? {
            EventOutput::Response(r) => Ok(r),
            other => unreachable!("fetch answered {other:?}"),
        }
    }

    /// Delivers a request that asks for a WebSocket upgrade: the answer is
    /// either an ordinary response or an accepted socket with its 101.
    pub async fn fetch_upgrade(
        &self,
        class: &Arc<ClassRuntime>,
        id: ObjectId,
        name: Option<String>,
        request: Request,
    ) -> Result<EventOutput, EventError> {
        let kind = EventKind::Fetch {
            request,
            upgrade: true,
        };
        self.deliver(class, id, name, kind, CallChain::default())
            .await
    }

    /// Queues a WebSocket event for an object, waiting for room in its mailbox
    /// (the socket's reader pauses meanwhile: backpressure, nothing dropped).
    pub async fn deliver_socket_event(
        &self,
        class: &Arc<ClassRuntime>,
        id: ObjectId,
        name: Option<String>,
        event: SocketEvent,
    ) {
        let key = ObjectKey {
            class: class.name.clone(),
            id,
        };
        let (reply, _ignored) = oneshot::channel();
        let mut envelope = Envelope {
            kind: EventKind::Socket(event),
            name,
            callers: CallChain::default(),
            reply,
        };
        let spawn = || ObjectActor::spawn(self.arc(), Arc::clone(class), id);
        loop {
            match self.registry.enqueue(&key, envelope, &spawn) {
                Ok(()) => {
                    self.metrics.mailbox_depth.inc();
                    return;
                }
                Err(Enqueue::Full(back)) => {
                    envelope = *back;
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            }
        }
    }

    /// Starts the background work of the runtime (the alarm scheduler).
    pub fn start(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(self.alarms.clone().run(move |key| {
            let me = me.clone();
            async move {
                match me.upgrade() {
                    Some(rt) => rt.deliver_alarm(key).await,
                    None => true,
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

    /// Runs an object's alarm event; false if it could not be delivered (the
    /// scheduler tries again soon).
    async fn deliver_alarm(&self, key: ObjectKey) -> bool {
        let Some(class) = self.class(&key.class).cloned() else {
            return true;
        };
        match self
            .deliver(&class, key.id, None, EventKind::Alarm, CallChain::default())
            .await
        {
            Ok(_) | Err(EventError::Guest { .. }) => true,
            Err(e) => {
                tracing::warn!("alarm of {key} not delivered, retrying soon: {e}");
                false
            }
        }
    }

    /// The metrics in Prometheus text, with the gauges that are computed on demand.
    pub fn render_metrics(&self) -> String {
        let m = &self.metrics;
        m.sockets_active.set(self.sockets.open_sockets() as i64);
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

    /// Looks up an RPC method of a class.
    pub fn method(
        &self,
        class: &str,
        method: &str,
    ) -> Result<(&Arc<ClassRuntime>, &Arc<RpcMethod>), CallError> {
        let class_rt = self.known_class(class)?;
        let m = class_rt
            .rpc
            .get(method)
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

    /// Calls an RPC method with JSON arguments (array or object).
    pub async fn call(
        &self,
        class: &str,
        id: ObjectId,
        name: Option<String>,
        method: &str,
        args: &Value,
        callers: CallChain,
    ) -> Result<(Arc<RpcMethod>, Option<Val>), CallError> {
        let (class_rt, m) = self.method(class, method)?;
        let args = m
            .decode_args(args)
            .map_err(|e| CallError::BadArguments(e.0))?;
        let (class_rt, m) = (class_rt.clone(), m.clone());
        let kind = EventKind::Rpc {
            method: m.clone(),
            args,
        };
        match self.deliver(&class_rt, id, name, kind, callers).await? {
            EventOutput::Value(v) => Ok((m, v)),
            other => unreachable!("rpc answered {other:?}"),
        }
    }

    async fn deliver(
        &self,
        class: &Arc<ClassRuntime>,
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
        let envelope = Envelope {
            kind,
            name,
            callers,
            reply,
        };
        let spawn = || ObjectActor::spawn(self.arc(), Arc::clone(class), id);
        match self.registry.enqueue(&key, envelope, &spawn) {
            Ok(()) => self.metrics.mailbox_depth.inc(),
            Err(Enqueue::Full(_)) => {
                self.metrics.event(&class.name, label, "overloaded");
                return Err(EventError::Overloaded {
                    object: key.to_string(),
                    limit: self.config.limits.mailbox,
                });
            }
        };
        response.await.unwrap_or_else(|_| {
            Err(EventError::Dropped {
                object: key.to_string(),
            })
        })
    }
}

impl Peers for Runtime {
    fn knows_class(&self, class: &str) -> bool {
        self.classes.contains_key(class)
    }

    fn call(
        &self,
        target: Target,
        method: String,
        args: Value,
        chain: CallChain,
    ) -> BoxFuture<Result<Value, String>> {
        let rt = self.arc();
        Box::pin(async move {
            let Target { class, id, name } = target;
            let timeout = rt.config.limits.call_timeout;
            let call = rt.call(&class, id, name, &method, &args, chain);
            match tokio::time::timeout(timeout, call).await {
                Ok(Ok((_, value))) => Ok(value.as_ref().map_or(Value::Null, rpc::json::encode)),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!(
                    "timeout: {class}/{id} did not answer {method} within {timeout:?} (limits.call_timeout)"
                )),
            }
        })
    }

    fn fetch(
        &self,
        target: Target,
        req: Request,
        chain: CallChain,
    ) -> BoxFuture<Result<Response, String>> {
        let rt = self.arc();
        Box::pin(async move {
            let Target { class, id, name } = target;
            let timeout = rt.config.limits.call_timeout;
            let class_rt = rt.known_class(&class).map_err(|e| e.to_string())?.clone();
            match tokio::time::timeout(timeout, rt.fetch(&class_rt, id, name, req, chain)).await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(_) => Err(format!(
                    "timeout: {class}/{id} did not answer a fetch within {timeout:?} (limits.call_timeout)"
                )),
            }
        })
    }
}
