//! The entry worker: the application's front door. A `wasi:http/proxy`
//! component (`[entry] component`) gets every HTTP request that is not for
//! the admin surface (nor, with `expose_objects`, for `/obj/` or `/rpc/`),
//! with dohost's `env` (vars, secrets, bindings) and `namespaces` (stubs to
//! objects) as extra imports.
//!
//! Stateless and concurrent: each request runs on an instance of its own, at
//! most `limits.max_entry_instances` at once, each under the event limits of
//! an object (`cpu_per_event`, `memory_per_instance_mib`). An entry that
//! exports `dohost:entry/reuse` (the JS SDK's) keeps its instances warm
//! between requests (pool.rs); any other gets a fresh one per request, as in
//! `wasmtime serve` (a componentize-js FetchEvent is one-shot). Its response
//! is buffered (at most `MAX_ENTRY_RESPONSE_BYTES`).

mod pool;
mod state;

use crate::capabilities::env::EnvCtx;
use crate::capabilities::namespaces::{EntryUpgrade, NamespacesCtx, Peers};
use crate::capabilities::outbound::{EgressHooks, EgressPolicy};
use crate::clock::SharedClock;
use crate::config::limits::MAX_ENTRY_RESPONSE_BYTES;
use crate::config::{AppEnv, EntryConfig, Limits};
use crate::deadline::{Deadline, DeadlineExceeded};
use crate::guest::engine::{Engine, EpochTicker};
use crate::guest::limiter::MemoryLimiter;
use crate::guest::log::GuestLog;
use crate::guest::store::{guest_table, guest_wasi, limit_store};
use crate::metrics::Metrics;
use anyhow::{anyhow, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
pub use state::EntryState;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};
use wasmtime::component::{ComponentExportIndex, Linker};
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

/// The body of a request handed to the entry.
pub type EntryBody = http_body_util::combinators::UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;

/// Why the entry produced no response. Each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error(
        "overloaded: all {0} entry instances stayed busy (limits.max_entry_instances); retry later"
    )]
    Busy(usize),
    #[error("the entry exceeded the CPU limit of {0:?} per request (limits.cpu_per_event)")]
    Timeout(Duration),
    #[error("the entry exceeded the memory limit of {} MiB (limits.memory_per_instance_mib)", .0 / (1024 * 1024))]
    Memory(u64),
    #[error("the entry trapped: {0}")]
    Trap(String),
    #[error("the entry returned without a response (it never called response-outparam.set)")]
    NoResponse,
    #[error("the entry answered with error-code {0}")]
    ErrorCode(String),
    #[error(
        "the entry's response body failed or was larger than {MAX_ENTRY_RESPONSE_BYTES} bytes: {0}"
    )]
    Body(String),
    #[error("the entry could not be started: {0}")]
    Host(String),
}

impl EntryError {
    /// The HTTP status of the failure.
    pub fn status(&self) -> u16 {
        match self {
            EntryError::Busy(_) => 503,
            EntryError::Timeout(_) => 504,
            _ => 500,
        }
    }
}

/// The loaded entry and what its instances get.
pub struct Entry {
    pre: ProxyPre<EntryState>,
    warm: pool::WarmPool,
    ticker: Arc<EpochTicker>,
    cpu: Duration,
    memory: u64,
    max_instances: usize,
    wait: Duration,
    slots: Arc<Semaphore>,
    peers: Arc<dyn Peers>,
    env: Arc<AppEnv>,
    egress: Arc<EgressPolicy>,
    metrics: Arc<Metrics>,
    assets: Option<Arc<crate::assets::Assets>>,
    clock: SharedClock,
    /// Development mode: trap messages carry the guest's output.
    dev: bool,
}

/// What an entry is given besides its component.
pub struct EntryLinks {
    pub peers: Arc<dyn Peers>,
    pub env: Arc<AppEnv>,
    pub clock: SharedClock,
    pub dev: bool,
    pub metrics: Arc<Metrics>,
    pub assets: Option<Arc<crate::assets::Assets>>,
}

/// The compiled and linked entry component, not yet serving.
pub struct LoadedEntry {
    pre: ProxyPre<EntryState>,
    reuse: Option<ComponentExportIndex>,
    ticker: Arc<EpochTicker>,
    allow: Vec<String>,
}

impl LoadedEntry {
    /// Compiles (or loads from the cache) and links the entry component.
    pub fn load(engine: &Engine, config: &EntryConfig) -> anyhow::Result<LoadedEntry> {
        let path = &config.component;
        let bytes = std::fs::read(path)
            .with_context(|| format!("entry: cannot read {}", path.display()))?;
        let (component, _) = engine.compile_cached(&bytes).with_context(|| {
            format!(
                "entry: {} is not a valid WebAssembly component",
                path.display()
            )
        })?;
        crate::guest::engine::prepare_memory_images(&component)
            .with_context(|| format!("entry: {}", path.display()))?;
        let mut linker: Linker<EntryState> = Linker::new(engine.wasmtime());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow!("linking WASI for the entry: {e}"))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| anyhow!("linking wasi:http for the entry: {e}"))?;
        crate::capabilities::add_entry_imports(&mut linker).context("linking the entry")?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow!("{e:#}"))
            .with_context(|| {
                format!(
                    "entry: {} imports something the host does not provide (an entry targets \
                     wasi:http/proxy plus dohost:object/env and namespaces: wit/entry)",
                    path.display()
                )
            })?;
        let pre = ProxyPre::new(pre)
            .map_err(|e| anyhow!("{e:#}"))
            .with_context(|| {
                format!(
                    "entry: {} does not export wasi:http/incoming-handler",
                    path.display()
                )
            })?;
        Ok(LoadedEntry {
            reuse: pool::reuse_export(&component),
            pre,
            ticker: engine.ticker(),
            allow: config.allow.clone(),
        })
    }

    /// The entry, serving with `limits` and `links`.
    pub fn start(self, limits: &Limits, links: EntryLinks) -> Entry {
        Entry {
            pre: self.pre,
            warm: pool::WarmPool::new(self.reuse, limits.max_entry_instances),
            ticker: self.ticker,
            cpu: limits.cpu_per_event,
            memory: limits.memory_per_instance,
            max_instances: limits.max_entry_instances,
            wait: limits.activation_wait,
            slots: Arc::new(Semaphore::new(limits.max_entry_instances)),
            peers: links.peers,
            env: links.env,
            egress: Arc::new(EgressPolicy::for_entry(self.allow)),
            clock: links.clock,
            dev: links.dev,
            metrics: links.metrics,
            assets: links.assets,
        }
    }
}

impl Entry {
    fn new_state(&self, deadline: Deadline, namespaces: NamespacesCtx) -> EntryState {
        let log = GuestLog::new("entry".into());
        EntryState {
            wasi: guest_wasi(&log, self.clock.clone()),
            table: guest_table(),
            http: WasiHttpCtx::new(),
            hooks: EgressHooks {
                policy: self.egress.clone(),
                metrics: self.metrics.clone(),
                assets: self.assets.clone(),
            },
            limiter: MemoryLimiter::new(self.memory),
            namespaces,
            env: EnvCtx {
                env: self.env.clone(),
            },
            deadline,
            log,
        }
    }

    /// Serves one request on a warm or a fresh instance (`upgrade`: its
    /// WebSocket connection, for the objects it forwards the request to).
    pub async fn handle(
        &self,
        request: hyper::Request<EntryBody>,
        upgrade: Option<EntryUpgrade>,
    ) -> Result<hyper::Response<Full<Bytes>>, EntryError> {
        let _slot = tokio::time::timeout(self.wait, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| EntryError::Busy(self.max_instances))?
            .expect("the semaphore is never closed");
        let deadline = Deadline::default();
        let namespaces = NamespacesCtx::for_entry(self.peers.clone(), deadline.clone(), upgrade);
        let mut instance = match self.warm.take() {
            Some(mut warm) => {
                warm.store.data_mut().renew(deadline.clone(), namespaces);
                warm
            }
            None => {
                let mut store = Store::new(
                    self.pre.engine(),
                    self.new_state(deadline.clone(), namespaces),
                );
                limit_store(&mut store, |s| &mut s.limiter, |s| &s.deadline);
                pool::Instance::cold(store)
            }
        };
        let host = |e: wasmtime::Error| EntryError::Host(format!("{e:#}"));
        let (tx, rx) = oneshot::channel();
        let mut http = instance.store.data_mut().http();
        let req = http
            .new_incoming_request(Scheme::Http, request)
            .map_err(host)?;
        let out = http.new_response_outparam(tx).map_err(host)?;
        let _clock = self.ticker.running();
        deadline.arm(self.cpu);
        let ran = deadline
            .bound(run(
                &self.pre,
                &self.warm,
                &mut instance,
                req,
                out,
                rx,
                self.cpu,
            ))
            .await;
        deadline.disarm();
        let failure = match ran {
            Ok(Ok((response, reusable))) => {
                if reusable && !instance.store.data().limiter.exceeded {
                    let busy = self.max_instances - self.slots.available_permits();
                    self.warm.keep(instance, self.peers.clone(), busy);
                }
                return Ok(response);
            }
            Ok(Err(e)) => e,
            Err(crate::deadline::Expired) => EntryError::Timeout(self.cpu),
        };
        Err(self.explain(failure, instance.store.data()))
    }

    /// The precise reason of a failure: the memory limit behind a trap, and
    /// (dev mode) the guest's output.
    fn explain(&self, failure: EntryError, state: &EntryState) -> EntryError {
        if state.limiter.exceeded {
            return EntryError::Memory(self.memory);
        }
        match failure {
            EntryError::Trap(trap) => {
                let output = state.log.tail();
                tracing::warn!("entry trapped: {trap}; guest output: {output}");
                if self.dev && !output.is_empty() {
                    EntryError::Trap(format!("{trap}; guest output: {output}"))
                } else {
                    EntryError::Trap(trap)
                }
            }
            other => {
                tracing::warn!("entry failed: {other}");
                other
            }
        }
    }
}

type Outparam = oneshot::Receiver<
    Result<hyper::Response<wasmtime_wasi_http::p2::body::HyperOutgoingBody>, ErrorCode>,
>;

/// Instantiates (when cold), calls `handle` and collects the response, which
/// the guest may go on writing after it set the head; then asks a reusable
/// entry whether the instance may serve again.
async fn run(
    pre: &ProxyPre<EntryState>,
    warm: &pool::WarmPool,
    instance: &mut pool::Instance,
    req: wasmtime::component::Resource<wasmtime_wasi_http::p2::types::HostIncomingRequest>,
    out: wasmtime::component::Resource<wasmtime_wasi_http::p2::types::HostResponseOutparam>,
    mut rx: Outparam,
    cpu: Duration,
) -> Result<(hyper::Response<Full<Bytes>>, bool), EntryError> {
    let call = async {
        let proxy = instance.proxy(pre, warm).await?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut instance.store, req, out)
            .await?;
        instance.reusable().await
    };
    tokio::pin!(call);
    // The epoch callback's deadline trap is the CPU limit, told by its type.
    let trap = |e: wasmtime::Error| match e.downcast_ref::<DeadlineExceeded>() {
        Some(_) => EntryError::Timeout(cpu),
        None => EntryError::Trap(format!("{e:#}")),
    };
    // The head arrives first, or the call ends first (with or without one).
    let mut ended = None;
    let head = tokio::select! {
        head = &mut rx => head.map_err(drop),
        result = &mut call => {
            ended = Some(result);
            rx.try_recv().map_err(drop)
        }
    };
    let response = match head {
        Ok(Ok(response)) => response,
        Ok(Err(code)) => return Err(EntryError::ErrorCode(format!("{code:?}"))),
        // The outparam was dropped unset: the call's end says why.
        Err(()) => {
            match ended {
                Some(result) => result,
                None => call.await,
            }
            .map_err(trap)?;
            return Err(EntryError::NoResponse);
        }
    };
    let (parts, body) = response.into_parts();
    let collect = Limited::new(body, MAX_ENTRY_RESPONSE_BYTES).collect();
    let (reusable, collected) = match ended {
        Some(result) => (result.map_err(trap)?, collect.await),
        None => {
            let (result, collected) = tokio::join!(call, collect);
            (result.map_err(trap)?, collected)
        }
    };
    let body = collected
        .map_err(|e| EntryError::Body(e.to_string()))?
        .to_bytes();
    Ok((
        hyper::Response::from_parts(parts, Full::new(body)),
        reusable,
    ))
}
