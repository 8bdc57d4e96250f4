//! Warm entry instances. An entry that exports `dohost:entry/reuse` serves
//! request after request on one instance, as a Cloudflare isolate does: the
//! host keeps the idle ones (at most `limits.max_entry_instances`, the most
//! recently used served first) and retires an instance that failed in any
//! way, hit its memory limit, said it is not reusable, served
//! `MAX_REQUESTS_PER_INSTANCE` requests (bounding what a slow leak can hold)
//! or stayed idle for `IDLE_TTL`. Any other entry gets a fresh instance per
//! request.

use super::EntryState;
use crate::capabilities::namespaces::{NamespacesCtx, Peers};
use crate::deadline::Deadline;
use std::sync::{Arc, Mutex, Once, Weak};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, ComponentExportIndex, TypedFunc};
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};

/// An instance retires after this many requests.
const MAX_REQUESTS_PER_INSTANCE: u32 = 1000;
/// An instance idle this long retires (each holds its guest's heap: about
/// 12 MB for a JavaScript entry).
const IDLE_TTL: Duration = Duration::from_secs(10);

const REUSE_INTERFACE: &str = "dohost:entry/reuse@0.2.0";

/// `reuse.reusable`, if the entry exports it.
pub(super) fn reuse_export(component: &Component) -> Option<ComponentExportIndex> {
    let interface = component.get_export_index(None, REUSE_INTERFACE)?;
    component.get_export_index(Some(&interface), "reusable")
}

/// A store with its instance, once it has one.
pub(super) struct Instance {
    pub(super) store: Store<EntryState>,
    proxy: Option<Arc<Proxy>>,
    reusable: Option<TypedFunc<(), (bool,)>>,
    served: u32,
}

impl Instance {
    pub(super) fn cold(store: Store<EntryState>) -> Instance {
        Instance {
            store,
            proxy: None,
            reusable: None,
            served: 0,
        }
    }

    /// The instance's exports, instantiating it first when cold.
    pub(super) async fn proxy(
        &mut self,
        pre: &ProxyPre<EntryState>,
        warm: &WarmPool,
    ) -> wasmtime::Result<Arc<Proxy>> {
        if let Some(proxy) = &self.proxy {
            return Ok(proxy.clone());
        }
        let instance = pre
            .instance_pre()
            .instantiate_async(&mut self.store)
            .await?;
        let proxy = Arc::new(Proxy::new(&mut self.store, &instance)?);
        if let Some(index) = &warm.reuse {
            self.reusable = Some(instance.get_typed_func(&mut self.store, index)?);
        }
        self.proxy = Some(proxy.clone());
        Ok(proxy)
    }

    /// Whether the instance may serve another request (it asks the guest).
    pub(super) async fn reusable(&mut self) -> wasmtime::Result<bool> {
        self.served += 1;
        let Some(reusable) = self.reusable else {
            return Ok(false);
        };
        if self.served >= MAX_REQUESTS_PER_INSTANCE {
            return Ok(false);
        }
        let (again,) = reusable.call_async(&mut self.store, ()).await?;
        Ok(again)
    }
}

/// The idle instances of a reusable entry, oldest first.
pub(super) struct WarmPool {
    reuse: Option<ComponentExportIndex>,
    idle: Arc<Mutex<Vec<Idle>>>,
    max_live: usize,
    sweeper: Once,
}

struct Idle {
    instance: Instance,
    since: Instant,
}

impl WarmPool {
    /// A pool whose idle and busy instances together stay within `max_live`
    /// (`limits.max_entry_instances`, the entry's slots of the instance pool).
    pub(super) fn new(reuse: Option<ComponentExportIndex>, max_live: usize) -> WarmPool {
        WarmPool {
            reuse,
            idle: Arc::default(),
            max_live,
            sweeper: Once::new(),
        }
    }

    /// The most recently used idle instance, if any.
    pub(super) fn take(&self) -> Option<Instance> {
        let mut idle = self.idle.lock().expect("the pool is never poisoned");
        idle.pop().map(|i| i.instance)
    }

    /// Keeps `instance` for a later request, unless the idle ones and the
    /// `busy` requests (this one among them) already fill `max_live`: the
    /// entry's share of the instance pool. What belonged to its last request
    /// (the client's connection) is let go.
    pub(super) fn keep(&self, mut instance: Instance, peers: Arc<dyn Peers>, busy: usize) {
        let deadline = Deadline::default();
        let namespaces = NamespacesCtx::for_entry(peers, deadline.clone(), None);
        instance.store.data_mut().renew(deadline, namespaces);
        self.sweeper.call_once(|| sweep(Arc::downgrade(&self.idle)));
        let mut idle = self.idle.lock().expect("the pool is never poisoned");
        // After this the request holds no instance: live = busy - 1 + idle + 1.
        if idle.len() + busy <= self.max_live {
            let since = Instant::now();
            idle.push(Idle { instance, since });
        }
    }
}

/// Every `IDLE_TTL / 2`, until the pool is gone, retires the instances idle
/// for `IDLE_TTL`, giving their memory back.
fn sweep(idle: Weak<Mutex<Vec<Idle>>>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(IDLE_TTL / 2);
        loop {
            tick.tick().await;
            let Some(idle) = idle.upgrade() else { break };
            let stale: Vec<Idle> = {
                let mut idle = idle.lock().expect("the pool is never poisoned");
                let fresh = idle.iter().position(|i| i.since.elapsed() < IDLE_TTL);
                let stale = fresh.unwrap_or(idle.len());
                idle.drain(..stale).collect()
            };
            // Dropped outside the lock: freeing a store takes a while.
            drop(stale);
        }
    });
}
