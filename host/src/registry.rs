//! The registry of running objects: (class, id) → the mailbox of its actor,
//! plus the cap on active objects with least-recently-used eviction.
//!
//! Invariant: at most one actor per object. Senders enqueue while holding the
//! map entry's lock, and an actor leaves the map only while holding the same
//! lock and only if its mailbox is empty; so no event is ever sent to an actor
//! that has left, and a new actor is only spawned after the old one left.

pub use crate::id::ObjectKey;
use dashmap::DashMap;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};

/// At most this many slots are kept free by evicting ahead of demand (and
/// at most 1/16 of `max_active`).
const MAX_HEADROOM: usize = 16;
/// Hibernated objects tracked for the `dohost_objects_hibernated` gauge; past
/// it the gauge stops counting new ones (it must not grow with every object
/// that ever hibernated).
const MAX_TRACKED_HIBERNATED: usize = 1_000_000;

/// What a mailbox holds: something with a size in bytes.
pub trait Weighted {
    /// Bytes it holds while it waits.
    fn weight(&self) -> usize;
}

/// Why an event could not be enqueued.
#[derive(Debug)]
pub enum Enqueue<M> {
    /// The mailbox holds its limit of events; the event is handed back.
    Full(Box<M>),
    /// The mailbox holds its limit of bytes; the event is handed back.
    FullBytes(Box<M>),
    /// No actor can take it: even a freshly spawned one closed its mailbox at
    /// once (the host is stopping). The event is handed back.
    Stopped(Box<M>),
}

/// The sending side of an object's mailbox: at most `events` events and
/// `max_bytes` bytes of them (request bodies and arguments).
pub struct Mailbox<M> {
    tx: mpsc::Sender<M>,
    shared: Arc<MailboxBytes>,
}

impl<M> Clone for Mailbox<M> {
    fn clone(&self) -> Self {
        Mailbox {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
        }
    }
}

struct MailboxBytes {
    held: AtomicUsize,
    max: usize,
    /// Signalled when the actor takes events (room for waiting senders).
    drained: Notify,
}

/// The actor's side of its mailbox.
pub struct MailboxReceiver<M> {
    rx: mpsc::Receiver<M>,
    shared: Arc<MailboxBytes>,
}

impl<M: Weighted> Mailbox<M> {
    pub fn new(events: usize, max_bytes: usize) -> (Mailbox<M>, MailboxReceiver<M>) {
        let (tx, rx) = mpsc::channel(events);
        let shared = Arc::new(MailboxBytes {
            held: AtomicUsize::new(0),
            max: max_bytes,
            drained: Notify::new(),
        });
        let receiver = MailboxReceiver {
            rx,
            shared: shared.clone(),
        };
        (Mailbox { tx, shared }, receiver)
    }

    /// True if `weight` more bytes would go over the byte budget (one event
    /// larger than the budget still goes into an empty mailbox).
    fn over_bytes(&self, weight: usize) -> bool {
        let held = self.shared.held.load(Ordering::SeqCst);
        held > 0 && held + weight > self.shared.max
    }

    #[allow(clippy::result_large_err)] // hands the envelope back, as mpsc does
    fn try_send(&self, envelope: M) -> Result<(), mpsc::error::TrySendError<M>> {
        let weight = envelope.weight();
        self.shared.held.fetch_add(weight, Ordering::SeqCst);
        self.tx.try_send(envelope).inspect_err(|_| {
            self.shared.held.fetch_sub(weight, Ordering::SeqCst);
        })
    }
}

impl<M: Weighted> MailboxReceiver<M> {
    fn took(&self, envelope: &M) {
        self.shared
            .held
            .fetch_sub(envelope.weight(), Ordering::SeqCst);
        self.shared.drained.notify_waiters();
    }

    pub async fn recv(&mut self) -> Option<M> {
        let envelope = self.rx.recv().await?;
        self.took(&envelope);
        Some(envelope)
    }

    pub fn try_recv(&mut self) -> Option<M> {
        let envelope = self.rx.try_recv().ok()?;
        self.took(&envelope);
        Some(envelope)
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

/// An active object's entry for LRU eviction.
#[derive(Default)]
pub struct ActiveSlot {
    last_used: AtomicU64,
    /// Notified when the registry wants the object to hibernate.
    pub evict: Notify,
}

/// A permit to be active (hold an open database and maybe an instance).
pub struct ActivePermit {
    _permit: OwnedSemaphorePermit,
    slot: Arc<ActiveSlot>,
    key: ObjectKey,
    slots: Arc<Slots>,
}

impl ActivePermit {
    /// Marks the object as just used.
    pub fn touch(&self) {
        self.slot
            .last_used
            .store(self.slots.now(), Ordering::Relaxed);
    }

    pub fn slot(&self) -> &Arc<ActiveSlot> {
        &self.slot
    }
}

impl Drop for ActivePermit {
    fn drop(&mut self) {
        self.slots.active.remove(&self.key);
    }
}

/// The active slots, and the time base of their LRU order.
struct Slots {
    active: DashMap<ObjectKey, Arc<ActiveSlot>>,
    started: Instant,
}

impl Slots {
    fn now(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }
}

/// Mailboxes of messages `M` (the object actor's envelopes).
pub struct Registry<M> {
    actors: DashMap<ObjectKey, Mailbox<M>>,
    /// Hashes of objects hibernated and not woken since (bounded).
    hibernated: Mutex<HashSet<u64>>,
    slots: Arc<Slots>,
    permits: Arc<Semaphore>,
    /// Free slots kept by evicting ahead of demand (see [`Registry::activate`]).
    headroom: usize,
}

impl<M: Weighted> Registry<M> {
    pub fn new(max_active: usize) -> Arc<Registry<M>> {
        Arc::new(Registry {
            actors: DashMap::new(),
            hibernated: Mutex::default(),
            slots: Arc::new(Slots {
                active: DashMap::new(),
                started: Instant::now(),
            }),
            permits: Arc::new(Semaphore::new(max_active)),
            headroom: (max_active / 16).min(MAX_HEADROOM),
        })
    }

    /// Enqueues `envelope` for `key`, spawning its actor with `spawn` if none runs.
    pub fn enqueue(
        &self,
        key: &ObjectKey,
        envelope: M,
        spawn: &(dyn Fn() -> Mailbox<M> + Sync),
    ) -> Result<(), Enqueue<M>> {
        let mut envelope = envelope;
        // One dead mailbox is replaced; a replacement that is dead too means
        // no actor can run (the runtime is stopping): retrying would spin.
        for _ in 0..2 {
            let entry = self.actors.entry(key.clone()).or_insert_with(spawn);
            if entry.over_bytes(envelope.weight()) {
                return Err(Enqueue::FullBytes(Box::new(envelope)));
            }
            match entry.try_send(envelope) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(e)) => return Err(Enqueue::Full(Box::new(e))),
                // The actor died without leaving (a host bug): replace it.
                Err(mpsc::error::TrySendError::Closed(e)) => {
                    tracing::error!("object {key} had a dead mailbox; restarting it");
                    envelope = e;
                    drop(entry);
                    self.actors.remove(key);
                }
            }
        }
        Err(Enqueue::Stopped(Box::new(envelope)))
    }

    /// Enqueues `envelope` for `key`, waiting while its mailbox is full (the
    /// caller is a reader that can pause, such as a WebSocket).
    pub async fn enqueue_wait(
        &self,
        key: &ObjectKey,
        mut envelope: M,
        spawn: &(dyn Fn() -> Mailbox<M> + Sync),
    ) {
        loop {
            // Listen for the actor taking events before trying, so that a
            // drain between the attempt and the wait is not missed.
            let shared = self.actors.get(key).map(|m| m.shared.clone());
            let drained = shared.as_ref().map(|s| s.drained.notified());
            tokio::pin!(drained);
            if let Some(d) = drained.as_mut().as_pin_mut() {
                d.enable();
            }
            match self.enqueue(key, envelope, spawn) {
                Ok(()) => return,
                Err(Enqueue::Full(back) | Enqueue::FullBytes(back)) => envelope = *back,
                // Dropped: its reply channel tells the waiting socket.
                Err(Enqueue::Stopped(_)) => return,
            }
            if let Some(d) = drained.as_pin_mut() {
                d.await;
            }
        }
    }

    /// Removes the actor of `key` if its mailbox is empty. Returns true if it
    /// left; false if events arrived meanwhile (it must keep running).
    pub fn leave_if_idle(&self, key: &ObjectKey, mailbox: &MailboxReceiver<M>) -> bool {
        self.actors
            .remove_if(key, |_, _| mailbox.is_empty())
            .is_some()
    }

    /// Number of objects with a running actor.
    pub fn actors(&self) -> usize {
        self.actors.len()
    }

    /// True if the object holds an active slot (open database or instance).
    pub fn is_active(&self, key: &ObjectKey) -> bool {
        self.slots.active.contains_key(key)
    }

    fn key_hash(key: &ObjectKey) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        h.finish()
    }

    /// Records that `key` hibernated; true if it was not counted yet.
    pub fn mark_hibernated(&self, key: &ObjectKey) -> bool {
        let mut set = self.hibernated.lock().unwrap_or_else(|p| p.into_inner());
        set.len() < MAX_TRACKED_HIBERNATED && set.insert(Self::key_hash(key))
    }

    /// Records that `key` woke; true if it was counted as hibernated.
    pub fn mark_woken(&self, key: &ObjectKey) -> bool {
        let mut set = self.hibernated.lock().unwrap_or_else(|p| p.into_inner());
        set.remove(&Self::key_hash(key))
    }

    /// A permit to be active. When all are taken, asks the least recently used
    /// other object to hibernate and waits, up to `wait`.
    ///
    /// When fewer than `headroom` slots are free, an activation also asks the
    /// least recently used object to hibernate, so that the next activations
    /// find a free slot. Evicting only on demand formed a convoy: every
    /// waiting activation evicted one object, whose slot went to the oldest
    /// waiter, so the queue never drained and activations ran about one at a
    /// time (10,000 objects round robin: ~1,700/s, ~18 ms of each request
    /// spent waiting here; with the headroom ~3,400/s).
    pub async fn activate(
        self: &Arc<Self>,
        key: &ObjectKey,
        wait: Duration,
    ) -> Option<ActivePermit> {
        let deadline = tokio::time::Instant::now() + wait;
        let permit = loop {
            if let Ok(p) = self.permits.clone().try_acquire_owned() {
                break p;
            }
            self.evict_lru(key);
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            let step = left.min(Duration::from_millis(20));
            if let Ok(Ok(p)) =
                tokio::time::timeout(step, self.permits.clone().acquire_owned()).await
            {
                break p;
            }
        };
        if self.permits.available_permits() < self.headroom {
            self.evict_lru(key);
        }
        let slot = Arc::new(ActiveSlot::default());
        slot.last_used.store(self.slots.now(), Ordering::Relaxed);
        self.slots.active.insert(key.clone(), slot.clone());
        Some(ActivePermit {
            _permit: permit,
            slot,
            key: key.clone(),
            slots: self.slots.clone(),
        })
    }

    /// Asks every active object to hibernate once its current batch is done.
    pub fn evict_all(&self) {
        for slot in self.slots.active.iter() {
            slot.value().evict.notify_one();
        }
    }

    /// Asks the least recently used active object other than `except` to hibernate.
    fn evict_lru(&self, except: &ObjectKey) {
        let victim = self
            .slots
            .active
            .iter()
            .filter(|e| e.key() != except)
            .min_by_key(|e| e.value().last_used.load(Ordering::Relaxed))
            .map(|e| e.value().clone());
        if let Some(slot) = victim {
            // Push it to the back so concurrent evictions pick different victims.
            slot.last_used.store(u64::MAX, Ordering::Relaxed);
            slot.evict.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ObjectId;

    struct Msg;
    impl Weighted for Msg {
        fn weight(&self) -> usize {
            1
        }
    }

    fn key(n: u8) -> ObjectKey {
        ObjectKey {
            class: "C".into(),
            id: ObjectId::from_name("C", &n.to_string()),
        }
    }

    async fn was_asked_to_hibernate(permit: &ActivePermit) -> bool {
        tokio::time::timeout(Duration::from_millis(10), permit.slot().evict.notified())
            .await
            .is_ok()
    }

    #[test]
    fn a_dead_mailbox_is_replaced_once_and_a_host_that_cannot_spawn_is_stopped() {
        let registry = Registry::<Msg>::new(4);
        let spawned = std::sync::atomic::AtomicUsize::new(0);
        let mut keep = Vec::new();
        // The first actor died; its replacement runs and takes the event.
        let (dead, rx) = Mailbox::new(4, 1024);
        drop(rx);
        registry.actors.insert(key(1), dead);
        let (alive, alive_rx) = Mailbox::new(4, 1024);
        let spawn = || {
            spawned.fetch_add(1, Ordering::SeqCst);
            alive.clone()
        };
        assert!(registry.enqueue(&key(1), Msg, &spawn).is_ok());
        assert!(!alive_rx.is_empty());
        keep.push(alive_rx);
        // Every spawned actor dies at once (a runtime shutting down): the
        // enqueue gives up instead of spinning.
        let dying = || {
            spawned.fetch_add(1, Ordering::SeqCst);
            let (tx, rx) = Mailbox::new(4, 1024);
            drop(rx);
            tx
        };
        let result = registry.enqueue(&key(2), Msg, &dying);
        assert!(matches!(result, Err(Enqueue::Stopped(_))));
        assert_eq!(spawned.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn activations_keep_headroom_by_evicting_the_least_recently_used() {
        let registry = Registry::<Msg>::new(32); // headroom 2
        let mut permits = Vec::new();
        for n in 0..30 {
            permits.push(registry.activate(&key(n), Duration::ZERO).await.unwrap());
        }
        // 2 slots free: nobody was asked to leave yet.
        assert!(!was_asked_to_hibernate(&permits[0]).await);
        permits.push(registry.activate(&key(30), Duration::ZERO).await.unwrap());
        // 1 slot free < headroom: the least recently used object is asked to go,
        // before any activation has to wait for it; the others are not.
        assert!(was_asked_to_hibernate(&permits[0]).await);
        assert!(!was_asked_to_hibernate(&permits[1]).await);
        assert!(!was_asked_to_hibernate(&permits[30]).await);
    }

    #[tokio::test]
    async fn a_full_registry_evicts_on_demand_and_times_out_without_a_free_slot() {
        let registry = Registry::<Msg>::new(2); // no headroom
        let first = registry.activate(&key(0), Duration::ZERO).await.unwrap();
        let _second = registry.activate(&key(1), Duration::ZERO).await.unwrap();
        assert!(!was_asked_to_hibernate(&first).await);
        // Full: the third asks the LRU (the first) to go and waits for its slot.
        let third = registry.activate(&key(2), Duration::from_millis(30)).await;
        assert!(third.is_none(), "no slot was freed");
        assert!(was_asked_to_hibernate(&first).await);
        drop(first);
        assert!(registry.activate(&key(2), Duration::ZERO).await.is_some());
    }
}
