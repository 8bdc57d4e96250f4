//! WebSockets owned by the host, not by instances: they stay open while their
//! object hibernates, and messages wake it.
//!
//! `SocketHub` holds, per object, its open sockets (tags, attachment, the
//! queue to the connection's writer) and its auto-response pair. Guests never
//! touch it directly: during an event they queue `SocketOp`s, which the actor
//! applies only after the event's commit (output gate), or drops if the event
//! rolls back. `connection::serve_socket` runs one connection: it answers the
//! auto-response without waking the object and turns everything else into
//! events. An object's entry lives while it has sockets; its auto-response
//! pair is stored with the object (`_dohost_meta`) and handed back to the hub
//! when a socket is accepted again.

pub mod connection;
mod hook;
mod import;
mod send_queue;

pub use connection::{serve_socket, SocketEvents};
pub use hook::SocketHook;
pub use import::{new_handle, SocketEffects, SocketLimits, SocketsCtx, SocketsView, MAX_HANDLES};
pub use send_queue::{Outgoing, Refused, SendQueue};

use crate::bindings::dohost::object::types::WsMessage;
use crate::capabilities::storage::{Meta, ObjectDb};
use crate::clock::SharedClock;
use crate::id::ObjectKey;
pub use crate::id::SocketId;
use dashmap::DashMap;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Message;

pub use crate::config::limits::{MAX_ATTACHMENT_BYTES, MAX_TAGS, MAX_TAG_CHARS};

/// The request/response pair answered by the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoPair {
    pub request: String,
    pub response: String,
}

/// What a guest did to sockets during an event, applied after its commit.
#[derive(Debug)]
pub enum SocketOp {
    Accept {
        id: SocketId,
        tags: Vec<String>,
    },
    Send {
        id: SocketId,
        message: Message,
    },
    Close {
        id: SocketId,
        code: u16,
        reason: String,
    },
    Attach {
        id: SocketId,
        data: Vec<u8>,
    },
}

impl SocketOp {
    /// The socket the operation is about.
    pub fn socket(&self) -> Option<SocketId> {
        match self {
            SocketOp::Accept { id, .. }
            | SocketOp::Send { id, .. }
            | SocketOp::Close { id, .. }
            | SocketOp::Attach { id, .. } => Some(*id),
        }
    }
}

/// What the guest sees of a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketView {
    pub id: SocketId,
    pub tags: Vec<String>,
    pub attachment: Option<Vec<u8>>,
    pub auto_response_at: Option<i64>,
}

/// A WebSocket connection waiting for its HTTP upgrade, handed to the object
/// with the request that asks for it: the object serves it once its accept
/// commits (even if the request itself has gone away by then).
pub struct PendingConnection {
    pub upgrade: hyper::upgrade::OnUpgrade,
    /// Held while the socket lives (its place among the host's connections).
    pub hold: Box<dyn std::any::Any + Send + Sync>,
}

impl PendingConnection {
    pub fn new(
        upgrade: hyper::upgrade::OnUpgrade,
        hold: Box<dyn std::any::Any + Send + Sync>,
    ) -> Self {
        PendingConnection { upgrade, hold }
    }
}

/// A connection offered to the events that may accept it: a direct upgrade
/// request offers it to its object; an entry's upgrade request offers it to
/// each object the entry forwards a request to, until one accepts. The
/// accepting event takes it when it ends (and serves it once it commits);
/// the others leave it for the next.
#[derive(Clone, Debug)]
pub struct UpgradeOffer(Arc<std::sync::Mutex<Offered>>);

#[derive(Debug)]
enum Offered {
    Open(PendingConnection),
    /// Taken by an accepting event, with the headers of its 101.
    Accepted(Vec<(String, String)>),
    Withdrawn,
}

impl UpgradeOffer {
    pub fn new(connection: PendingConnection) -> UpgradeOffer {
        UpgradeOffer(Arc::new(std::sync::Mutex::new(Offered::Open(connection))))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Offered> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True while no event has accepted the connection.
    pub fn is_open(&self) -> bool {
        matches!(*self.lock(), Offered::Open(_))
    }

    /// Takes the connection for an event that accepted it and answered 101
    /// with `headers`; `None` if another event took it first.
    pub fn accept(&self, headers: Vec<(String, String)>) -> Option<PendingConnection> {
        let mut offered = self.lock();
        match std::mem::replace(&mut *offered, Offered::Accepted(headers)) {
            Offered::Open(connection) => Some(connection),
            other => {
                *offered = other;
                None
            }
        }
    }

    /// The headers of the 101 of the event that accepted, if one did.
    pub fn accepted(&self) -> Option<Vec<(String, String)>> {
        match &*self.lock() {
            Offered::Accepted(headers) => Some(headers.clone()),
            _ => None,
        }
    }

    /// Drops the connection if nobody accepted it (its request was answered
    /// otherwise), so that its place among the connections is freed.
    pub fn withdraw(&self) {
        let mut offered = self.lock();
        if matches!(*offered, Offered::Open(_)) {
            *offered = Offered::Withdrawn;
        }
    }
}

impl std::fmt::Debug for PendingConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingConnection")
    }
}

struct SocketState {
    view: SocketView,
    queue: Arc<SendQueue>,
}

#[derive(Default)]
struct ObjectSockets {
    sockets: BTreeMap<SocketId, SocketState>,
    auto_response: Option<AutoPair>,
}

/// Every open socket of the process, by object.
pub struct SocketHub {
    objects: DashMap<ObjectKey, ObjectSockets>,
    next_id: AtomicU64,
    open: AtomicU64,
    auto_responses: AtomicU64,
    /// Bytes a socket may have queued before it is closed (1008).
    send_budget: usize,
    clock: SharedClock,
}

impl Default for SocketHub {
    fn default() -> Self {
        SocketHub::new(
            crate::config::limits::DEFAULT_WS_SEND_QUEUE_BYTES,
            Arc::new(crate::clock::SystemClock),
        )
    }
}

/// Stores (or clears) an object's auto-response pair with the object.
pub fn store_auto_response(
    db: &mut ObjectDb,
    pair: Option<&AutoPair>,
) -> crate::capabilities::storage::Result<()> {
    let value = match pair {
        Some(p) => rusqlite::types::Value::Text(
            serde_json::json!({"request": p.request, "response": p.response}).to_string(),
        ),
        None => rusqlite::types::Value::Null,
    };
    db.set_meta(Meta::AutoResponse, value)
}

/// The auto-response pair stored with the object.
pub fn stored_auto_response(
    db: &ObjectDb,
) -> crate::capabilities::storage::Result<Option<AutoPair>> {
    let Some(rusqlite::types::Value::Text(text)) = db.meta(Meta::AutoResponse)? else {
        return Ok(None);
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    Ok(match (v["request"].as_str(), v["response"].as_str()) {
        (Some(request), Some(response)) => Some(AutoPair {
            request: request.to_string(),
            response: response.to_string(),
        }),
        _ => None,
    })
}

/// Checks the tags of `accept`.
pub fn check_tags(tags: &[String]) -> Result<(), String> {
    if tags.len() > MAX_TAGS {
        return Err(format!(
            "too many tags: {} (at most {MAX_TAGS} per socket)",
            tags.len()
        ));
    }
    if let Some(t) = tags.iter().find(|t| t.chars().count() > MAX_TAG_CHARS) {
        let shown: String = t.chars().take(32).collect();
        return Err(format!(
            "tag {shown:?}… is too long: {} chars (at most {MAX_TAG_CHARS})",
            t.chars().count()
        ));
    }
    Ok(())
}

impl SocketHub {
    /// A hub whose sockets may each queue `send_budget` bytes.
    /// A hub whose sockets may each queue `send_budget` bytes; auto-response
    /// times are read from `clock`.
    pub fn new(send_budget: usize, clock: SharedClock) -> SocketHub {
        SocketHub {
            objects: DashMap::new(),
            next_id: AtomicU64::new(0),
            open: AtomicU64::new(0),
            auto_responses: AtomicU64::new(0),
            send_budget,
            clock,
        }
    }

    pub fn new_id(&self) -> SocketId {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Open sockets in the process.
    pub fn open_sockets(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Auto-responses sent so far.
    pub fn auto_responses(&self) -> u64 {
        self.auto_responses.load(Ordering::Relaxed)
    }

    /// Objects that have at least one open socket.
    pub fn objects_with_sockets(&self) -> Vec<ObjectKey> {
        self.objects
            .iter()
            .filter(|e| !e.value().sockets.is_empty())
            .map(|e| e.key().clone())
            .collect()
    }

    pub fn count(&self, key: &ObjectKey) -> usize {
        self.objects.get(key).map_or(0, |o| o.sockets.len())
    }

    /// The object's open sockets, all or those with `tag`, in accept order.
    pub fn list(&self, key: &ObjectKey, tag: Option<&str>) -> Vec<SocketView> {
        self.objects.get(key).map_or_else(Vec::new, |o| {
            o.sockets
                .values()
                .filter(|s| {
                    !s.queue.is_closing() && tag.is_none_or(|t| s.view.tags.iter().any(|x| x == t))
                })
                .map(|s| s.view.clone())
                .collect()
        })
    }

    pub fn view(&self, key: &ObjectKey, id: SocketId) -> Option<SocketView> {
        self.objects
            .get(key)?
            .sockets
            .get(&id)
            .map(|s| s.view.clone())
    }

    /// True if the socket is open (not closed, not closing).
    pub fn is_open(&self, key: &ObjectKey, id: SocketId) -> bool {
        self.objects
            .get(key)
            .and_then(|o| o.sockets.get(&id).map(|s| !s.queue.is_closing()))
            .unwrap_or(false)
    }

    pub fn auto_response(&self, key: &ObjectKey) -> Option<AutoPair> {
        self.objects.get(key)?.auto_response.clone()
    }

    /// The write queue of a socket (for its connection task).
    pub fn queue(&self, key: &ObjectKey, id: SocketId) -> Option<Arc<SendQueue>> {
        Some(self.objects.get(key)?.sockets.get(&id)?.queue.clone())
    }

    /// Applies the committed operations of an event, in order. When an accept
    /// gives the object its first socket, `stored_pair` supplies the object's
    /// auto-response pair (it is stored with the object, not kept here
    /// while the object has no sockets).
    pub fn apply(
        &self,
        key: &ObjectKey,
        ops: Vec<SocketOp>,
        stored_pair: impl FnOnce() -> Option<AutoPair>,
    ) {
        if ops.is_empty() {
            return;
        }
        let mut stored_pair = Some(stored_pair);
        for op in ops {
            match op {
                SocketOp::Accept { id, tags } => {
                    let mut object = self.objects.entry(key.clone()).or_default();
                    if object.sockets.is_empty() {
                        if let Some(pair) = stored_pair.take() {
                            object.auto_response = pair();
                        }
                    }
                    let state = SocketState {
                        view: SocketView {
                            id,
                            tags,
                            attachment: None,
                            auto_response_at: None,
                        },
                        queue: Arc::new(SendQueue::new(self.send_budget)),
                    };
                    object.sockets.insert(id, state);
                    self.open.fetch_add(1, Ordering::Relaxed);
                }
                other => {
                    if let Some(mut object) = self.objects.get_mut(key) {
                        apply_to(&mut object, other);
                    }
                }
            }
        }
    }

    /// Forgets a socket whose connection ended; returns its last state.
    pub fn remove(&self, key: &ObjectKey, id: SocketId) -> Option<SocketView> {
        let removed = {
            let mut object = self.objects.get_mut(key)?;
            object.sockets.remove(&id)
        };
        self.objects.remove_if(key, |_, o| o.sockets.is_empty());
        removed.map(|s| {
            self.open.fetch_sub(1, Ordering::Relaxed);
            s.view
        })
    }

    /// Answers `text` with the object's auto-response if it matches, without
    /// waking the object. Returns true if it answered.
    pub(crate) fn try_auto_respond(&self, key: &ObjectKey, id: SocketId, text: &str) -> bool {
        let Some(mut object) = self.objects.get_mut(key) else {
            return false;
        };
        let Some(pair) = object.auto_response.clone().filter(|p| p.request == text) else {
            return false;
        };
        let Some(s) = object.sockets.get_mut(&id) else {
            return false;
        };
        s.view.auto_response_at = Some(self.clock.now_ms());
        // Over the budget the socket closes (the connection task reports it).
        let _ = s.queue.push(Message::text(pair.response));
        self.auto_responses.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Closes every socket with `code` (shutdown).
    pub fn close_all(&self, code: u16, reason: &str) {
        for object in self.objects.iter() {
            for s in object.sockets.values() {
                s.queue.close(code, reason.to_string());
            }
        }
    }

    /// Sets the auto-response pair of an object that has sockets (after the
    /// event that stored it committed).
    pub fn set_auto_response(&self, key: &ObjectKey, pair: Option<AutoPair>) {
        if let Some(mut object) = self.objects.get_mut(key) {
            object.auto_response = pair;
        }
    }

    /// Closes one socket with `code` (after a host-side failure).
    pub fn close(&self, key: &ObjectKey, id: SocketId, code: u16, reason: &str) {
        if let Some(q) = self.queue(key, id) {
            q.close(code, reason.to_string());
        }
    }

    /// Objects with an entry (tests: entries must not outlive their sockets).
    pub fn entries(&self) -> usize {
        self.objects.len()
    }
}

/// Applies one committed operation (not an accept) to an object's sockets.
fn apply_to(object: &mut ObjectSockets, op: SocketOp) {
    match op {
        SocketOp::Accept { .. } => unreachable!("accepts create the entry"),
        SocketOp::Send { id, message } => {
            if let Some(s) = object.sockets.get(&id) {
                // Closed: dropped. Over the budget: the queue turns into a close.
                let _ = s.queue.push(message);
            }
        }
        SocketOp::Close { id, code, reason } => {
            if let Some(s) = object.sockets.get(&id) {
                s.queue.close(code, reason);
            }
        }
        SocketOp::Attach { id, data } => {
            if let Some(s) = object.sockets.get_mut(&id) {
                s.view.attachment = Some(data);
            }
        }
    }
}

/// A WebSocket event for an object.
#[derive(Debug)]
pub enum SocketEvent {
    Message {
        socket: SocketId,
        message: WsMessage,
    },
    Close {
        socket: SocketView,
        code: u16,
        reason: String,
        was_clean: bool,
    },
    /// The socket failed; it carries its last state, as it closes right after.
    Error { socket: SocketView, error: String },
}
