//! The wasmtime engine: one `Engine` (component model, async, epoch
//! interruption, pooling allocator) for the process, one compiled component and
//! `ObjectPre` per class, and an on-disk cache of compiled components.
//!
//! Never instantiates anything itself: instances belong to object actors.

use crate::bindings::{ObjectIndices, ObjectPre};
use crate::config::limits::EPOCH_TICK;
use crate::config::{ClassConfig, Limits};
use crate::guest::footprint::Footprint;
use crate::guest::InstanceState;
use crate::rpc::RpcMethods;
use anyhow::{anyhow, Context};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Pool resources reserved per slot at least (a Rust class needs 1 of each).
const MIN_FOOTPRINT: Footprint = Footprint {
    core_instances: 8,
    memories: 4,
    tables: 8,
};
/// Linear memories the pool may reserve address space for: each reserves
/// wasmtime's default 4 GiB plus guard pages, and x86-64 user space is 128 TiB.
const MAX_POOL_MEMORIES: u32 = 24_000;

/// Instance slots beyond `max_active`, for instances being torn down.
const SPARE_SLOTS: u32 = 16;
/// Bytes of linear memory an evicted instance's slot keeps resident (reset in
/// place, not unmapped); see the pooling configuration in [`Engine::new`].
const KEEP_RESIDENT_BYTES: usize = 1 << 20;

/// The process-wide engine and linker.
pub struct Engine {
    engine: wasmtime::Engine,
    ticker: Arc<EpochTicker>,
    linker: Linker<InstanceState>,
    cache_dir: PathBuf,
}

/// One loaded class: its name and pre-linked component.
pub struct LoadedClass {
    pub name: Arc<str>,
    pub pre: ObjectPre<InstanceState>,
    /// The engine's CPU-limit clock (held while the class's guest code runs).
    pub ticker: Arc<EpochTicker>,
    /// Where the handler exports are, looked up once.
    pub indices: ObjectIndices,
    pub component: Component,
    /// The class's RPC methods.
    pub rpc: RpcMethods,
    /// `timer-events.fire`, if the class exports it (its timers then fire
    /// as events of their own).
    pub timer_events: Option<wasmtime::component::ComponentExportIndex>,
    /// Where its objects may send HTTP requests (`[classes.X] allow`).
    pub egress: Arc<crate::capabilities::outbound::EgressPolicy>,
    /// Bytes of the component file.
    pub size: u64,
    /// How the component was obtained: compiled now or loaded from the cache.
    pub load: LoadKind,
    pub load_time: std::time::Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadKind {
    Compiled,
    Cached,
}

/// The pool footprint of the largest of `classes` (at least `MIN_FOOTPRINT`).
pub fn largest_footprint(classes: &[ClassConfig]) -> Footprint {
    classes
        .iter()
        .filter_map(|c| std::fs::read(&c.component).ok())
        .map(|bytes| crate::guest::footprint::of_component(&bytes))
        .fold(MIN_FOOTPRINT, Footprint::max)
}

impl Engine {
    /// Creates the engine, its pool sized so that `limits.max_active`
    /// instances (plus `extra_slots`: the entry's) of the largest of
    /// `components` fit, and starts its epoch ticker.
    pub fn new(
        limits: &Limits,
        cache_dir: &Path,
        components: &[ClassConfig],
        extra_slots: usize,
    ) -> anyhow::Result<Engine> {
        let classes = components;
        let slots = u32::try_from(limits.max_active.saturating_add(extra_slots))
            .unwrap_or(u32::MAX / 64)
            .saturating_add(SPARE_SLOTS);
        let per = largest_footprint(classes);
        let memories = slots.saturating_mul(per.memories);
        if memories > MAX_POOL_MEMORIES {
            anyhow::bail!(
                "limits.max_active = {} is too many for the largest class ({} memories per                  instance): the pool would reserve address space for {memories} memories (at                  most {MAX_POOL_MEMORIES}); lower max_active to {}",
                limits.max_active,
                per.memories,
                MAX_POOL_MEMORIES / per.memories - SPARE_SLOTS
            );
        }
        tracing::debug!("instance pool: {slots} slots of {per:?}");
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(per.core_instances))
            .max_core_instances_per_component(per.core_instances)
            .max_memories_per_component(per.memories)
            .max_tables_per_component(per.tables)
            .total_memories(memories)
            .total_tables(slots.saturating_mul(per.tables))
            .total_stacks(slots)
            .max_memory_size(limits.memory_per_instance as usize)
            // Evicting an instance resets its slot. With `madvise` that is a
            // TLB shootdown across every CPU per eviction (~10 % of a waking
            // host's CPU); resetting the dirty resident pages in place
            // (PAGEMAP_SCAN, Linux ≥ 6.7, else memset) avoids it, at the cost
            // of keeping up to this much resident per unused warm slot.
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES / 16)
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine =
            wasmtime::Engine::new(&config).map_err(|e| anyhow!("creating the wasm engine: {e}"))?;
        let ticker = EpochTicker::start(&engine);

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow!("linking WASI: {e}"))?;
        crate::capabilities::add_to_linker(&mut linker)?;
        crate::capabilities::outbound::object_http::add_to_linker(&mut linker)?;
        Ok(Engine {
            engine,
            ticker,
            linker,
            cache_dir: cache_dir.to_path_buf(),
        })
    }

    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.engine
    }

    /// The CPU-limit clock, for instances the engine does not load itself.
    pub fn ticker(&self) -> Arc<EpochTicker> {
        self.ticker.clone()
    }

    /// Compiles (or loads from the cache) and pre-links a class's component.
    pub fn load_class(&self, class: &ClassConfig) -> anyhow::Result<LoadedClass> {
        let started = Instant::now();
        let path = &class.component;
        let bytes = std::fs::read(path)
            .with_context(|| format!("class {}: cannot read {}", class.name, path.display()))?;
        let (component, load) = self.compile_cached(&bytes).with_context(|| {
            format!(
                "class {}: {} is not a valid WebAssembly component",
                class.name,
                path.display()
            )
        })?;
        check_world_version(&self.engine, &component)
            .map_err(|e| anyhow!("class {}: {} {e}", class.name, path.display()))?;
        prepare_memory_images(&component)
            .with_context(|| format!("class {}: {}", class.name, path.display()))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow!("{e:#}"))
            .with_context(|| {
                format!(
                    "class {}: {} imports something the host does not provide (build it against wit/ world dohost:object/object)",
                    class.name,
                    path.display()
                )
            })?;
        let pre = ObjectPre::new(pre).map_err(|e| anyhow!("{e:#}")).with_context(|| {
            format!(
                "class {}: {} does not implement the world dohost:object/object (it must export dohost:object/handler)",
                class.name,
                path.display()
            )
        })?;
        let indices = ObjectIndices::new(pre.instance_pre()).map_err(|e| anyhow!("{e:#}"))?;
        let rpc = RpcMethods::discover(&self.engine, &component)
            .with_context(|| format!("class {}: {}", class.name, path.display()))?;
        Ok(LoadedClass {
            name: class.name.as_str().into(),
            pre,
            ticker: self.ticker.clone(),
            indices,
            timer_events: timer_events_export(&component),
            component,
            rpc,
            egress: Arc::new(crate::capabilities::outbound::EgressPolicy::for_class(
                &class.name,
                class.allow.clone(),
            )),
            size: bytes.len() as u64,
            load,
            load_time: started.elapsed(),
        })
    }

    /// A compiled component for `bytes`, from the cache when its key matches
    /// (component bytes, wasmtime version and engine configuration).
    pub(crate) fn compile_cached(&self, bytes: &[u8]) -> anyhow::Result<(Component, LoadKind)> {
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let mut key = blake3::Hasher::new();
        key.update(bytes);
        key.update(&engine_hash.finish().to_le_bytes());
        key.update(env!("CARGO_PKG_VERSION").as_bytes());
        let file = self
            .cache_dir
            .join(format!("{}.cwasm", key.finalize().to_hex()));
        if let Some(compiled) = read_checked(&file) {
            // SAFETY: the bytes were written by `Component::serialize` of an
            // engine with the same compatibility hash (it is in the key), into
            // the host's own data dir, and their checksum matches.
            match unsafe { Component::deserialize(&self.engine, &compiled) } {
                Ok(component) => return Ok((component, LoadKind::Cached)),
                Err(e) => {
                    tracing::warn!("ignoring unusable compiled cache {}: {e}", file.display())
                }
            }
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| anyhow!("{e:#}"))?;
        if let Err(e) = self.store_compiled(&component, &file) {
            tracing::warn!(
                "cannot cache compiled component at {}: {e:#}",
                file.display()
            );
        }
        Ok((component, LoadKind::Compiled))
    }

    /// Writes the compiled component with a checksum, durably (written,
    /// synced, then renamed into place and the directory synced): a torn or
    /// half-written entry is never loaded as machine code.
    fn store_compiled(&self, component: &Component, file: &Path) -> anyhow::Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(&self.cache_dir)?;
        let data = component.serialize().map_err(|e| anyhow!("{e}"))?;
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        let mut out = std::fs::File::create(&tmp)?;
        out.write_all(&data)?;
        out.write_all(blake3::hash(&data).as_bytes())?;
        out.sync_all()?;
        std::fs::rename(&tmp, file)?;
        std::fs::File::open(&self.cache_dir)?.sync_all()?;
        Ok(())
    }
}

/// Creates the component's memory images (on Linux, sealed memfds holding
/// each module's initial data) before any request waits on them.
///
/// Sealing a memfd can fail with EBUSY while the kernel still holds a
/// transient reference to a freshly written page (seen under load in CI as
/// "cannot add seals to the memfd" on a first request). wasmtime leaves a
/// failed image uncreated and tries again on the next call, so a few
/// spaced attempts here turn that race into a start-up delay instead of a
/// failed request; a persistent failure stops start-up with the cause.
pub(crate) fn prepare_memory_images(component: &Component) -> anyhow::Result<()> {
    const ATTEMPTS: u32 = 5;
    let mut attempt = 1;
    loop {
        match component.initialize_copy_on_write_image() {
            Ok(()) => return Ok(()),
            Err(e) if attempt < ATTEMPTS => {
                tracing::debug!("memory image not ready (attempt {attempt}): {e:#}");
                std::thread::sleep(std::time::Duration::from_millis(10 << attempt));
                attempt += 1;
            }
            Err(e) => {
                return Err(anyhow!(
                    "cannot create the component's memory images after {ATTEMPTS} attempts: {e:#}"
                ));
            }
        }
    }
}

/// A cache entry's compiled bytes, if its trailing checksum matches.
fn read_checked(file: &Path) -> Option<Vec<u8>> {
    let mut bytes = std::fs::read(file).ok()?;
    let split = bytes.len().checked_sub(blake3::OUT_LEN)?;
    let ok = blake3::hash(&bytes[..split]).as_bytes() == &bytes[split..];
    if !ok {
        tracing::warn!(
            "ignoring compiled cache {} (checksum mismatch)",
            file.display()
        );
        return None;
    }
    bytes.truncate(split);
    Some(bytes)
}

/// The CPU limit's clock: advances the engine's epoch every `EPOCH_TICK` while
/// guest code runs anywhere, and parks while none does, so an idle host does
/// not wake up 200 times a second.
pub struct EpochTicker {
    shared: Arc<TickerShared>,
    thread: std::thread::Thread,
}

#[derive(Default)]
struct TickerShared {
    /// Guest calls (and instantiations) in progress.
    running: AtomicUsize,
    /// The engine is gone: the thread exits.
    stopped: AtomicBool,
}

/// Keeps the clock ticking while held (see [`EpochTicker::running`]).
pub struct TickGuard(Arc<TickerShared>);

impl Drop for TickGuard {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl EpochTicker {
    fn start(engine: &wasmtime::Engine) -> Arc<EpochTicker> {
        let weak = engine.weak();
        let shared = Arc::new(TickerShared::default());
        let state = shared.clone();
        let handle = std::thread::Builder::new()
            .name("dohost-epoch".into())
            .spawn(move || loop {
                while state.running.load(Ordering::SeqCst) == 0 {
                    if state.stopped.load(Ordering::SeqCst) {
                        return;
                    }
                    // `running` may change between the check and here: an
                    // `unpark` that came first makes this return at once.
                    std::thread::park();
                }
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => return,
                }
            })
            .expect("spawning the epoch thread");
        Arc::new(EpochTicker {
            shared,
            thread: handle.thread().clone(),
        })
    }

    /// Guest code is about to run: the clock ticks until the guard drops.
    pub fn running(&self) -> TickGuard {
        if self.shared.running.fetch_add(1, Ordering::SeqCst) == 0 {
            self.thread.unpark();
        }
        TickGuard(self.shared.clone())
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// The version of the `dohost:object` WIT package this host serves.
pub const WORLD_VERSION: &str = "0.2.0";

/// Refuses a component built against another version of `dohost:object`, with
/// a message that says so (the linker alone would only report a missing import).
fn check_world_version(engine: &wasmtime::Engine, component: &Component) -> Result<(), String> {
    let ty = component.component_type();
    let names = ty
        .imports(engine)
        .map(|(name, _)| name)
        .chain(ty.exports(engine).map(|(name, _)| name));
    for name in names {
        let Some(version) = name
            .strip_prefix("dohost:object/")
            .and_then(|rest| rest.split_once('@'))
            .map(|(_, version)| version)
        else {
            continue;
        };
        if version != WORLD_VERSION {
            return Err(format!(
                "was built against dohost:object@{version} ({name}); this host serves \
                 dohost:object@{WORLD_VERSION}: rebuild it with the current SDK (wit/object.wit)"
            ));
        }
    }
    Ok(())
}

/// Where `dohost:object/timer-events.fire` is, whatever the version suffix.
fn timer_events_export(component: &Component) -> Option<wasmtime::component::ComponentExportIndex> {
    let ty = component.component_type();
    let engine = component.engine();
    let name = ty.exports(engine).map(|(name, _)| name).find(|name| {
        name.split('@').next() == Some(crate::capabilities::timers::EVENTS_INTERFACE)
    })?;
    let interface = component.get_export_index(None, name)?;
    component.get_export_index(Some(&interface), "fire")
}
