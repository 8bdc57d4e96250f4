//! The runtime: the loaded classes, the engine, the registry of objects and the
//! metrics, for the life of the process. Front ends (HTTP server, later RPC
//! and sockets) deliver events through `Runtime::deliver`.

use crate::bindings::dohost::object::types::{Request, Response};
use crate::config::Config;
use crate::engine::{ClassRuntime, Engine, LoadKind};
use crate::id::ObjectId;
use crate::metrics::Metrics;
use crate::object::{Envelope, EventError, EventKind, ObjectActor};
use crate::registry::{Enqueue, ObjectKey, Registry};
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;

pub struct Runtime {
    pub config: Config,
    pub engine: Engine,
    classes: BTreeMap<String, Arc<ClassRuntime>>,
    pub registry: Arc<Registry>,
    pub metrics: Metrics,
}

impl Runtime {
    /// Creates the engine and loads (compiles or reads from cache) every class.
    pub fn new(config: Config) -> anyhow::Result<Arc<Runtime>> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let engine = Engine::new(&config.limits, &config.cache_dir)?;
        let mut classes = BTreeMap::new();
        for class in &config.classes {
            let loaded = engine.load_class(class)?;
            tracing::info!(
                class = %class.name,
                bytes = loaded.size,
                ms = loaded.load_time.as_secs_f64() * 1e3,
                "{} {}",
                if loaded.load == LoadKind::Cached { "loaded compiled" } else { "compiled" },
                class.component.display()
            );
            classes.insert(class.name.clone(), Arc::new(loaded));
        }
        Ok(Arc::new(Runtime {
            registry: Registry::new(config.limits.max_active),
            config,
            engine,
            classes,
            metrics: Metrics::default(),
        }))
    }

    pub fn class(&self, name: &str) -> Option<&Arc<ClassRuntime>> {
        self.classes.get(name)
    }

    pub fn class_names(&self) -> Vec<&str> {
        self.classes.keys().map(String::as_str).collect()
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
        self: &Arc<Self>,
        class: &Arc<ClassRuntime>,
        id: ObjectId,
        name: Option<String>,
        request: Request,
    ) -> Result<Response, EventError> {
        self.deliver(class, id, name, EventKind::Fetch(request))
            .await
    }

    async fn deliver(
        self: &Arc<Self>,
        class: &Arc<ClassRuntime>,
        id: ObjectId,
        name: Option<String>,
        kind: EventKind,
    ) -> Result<Response, EventError> {
        let key = ObjectKey {
            class: class.name.clone(),
            id,
        };
        let (reply, response) = oneshot::channel();
        let envelope = Envelope { kind, name, reply };
        let spawn = || ObjectActor::spawn(Arc::clone(self), Arc::clone(class), id);
        match self.registry.enqueue(&key, envelope, &spawn) {
            Ok(()) => self.metrics.mailbox_depth.inc(),
            Err(Enqueue::Full) => {
                self.metrics.event(&class.name, "fetch", "overloaded");
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
