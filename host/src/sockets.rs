//! WebSockets owned by the host, not by instances: they stay open while their
//! object hibernates, and messages wake it.
//!
//! `SocketHub` holds, per object, its open sockets (tags, attachment, the
//! channel to the connection's writer) and its auto-response pair. Guests never
//! touch it directly: during an event they queue `SocketOp`s, which the actor
//! applies only after the event's commit (output gate), or drops if the event
//! rolls back. `serve_socket` runs one connection: it answers the auto-response
//! without waking the object and turns everything else into events.

use crate::bindings::dohost::object::types::WsMessage;
use crate::engine::ClassRuntime;
use crate::registry::ObjectKey;
use crate::runtime::Runtime;
use dashmap::DashMap;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Identifies a socket within the process.
pub type SocketId = u64;

/// Tags per socket, and characters per tag.
pub const MAX_TAGS: usize = 10;
pub const MAX_TAG_CHARS: usize = 256;
/// Read buffer per connection (tungstenite allocates it eagerly).
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// How long a close waits for the peer's answer.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Bytes of a socket's attachment.
pub const MAX_ATTACHMENT_BYTES: usize = 2048;

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
    SetAutoResponse(Option<AutoPair>),
}

/// What the guest sees of a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketView {
    pub id: SocketId,
    pub tags: Vec<String>,
    pub attachment: Option<Vec<u8>>,
    pub auto_response_at: Option<i64>,
}

enum Outgoing {
    Message(Message),
    Close(u16, String),
}

struct SocketState {
    view: SocketView,
    tx: mpsc::UnboundedSender<Outgoing>,
    /// Handed to the connection once the upgrade completes.
    rx: Option<mpsc::UnboundedReceiver<Outgoing>>,
    closing: bool,
}

#[derive(Default)]
struct ObjectSockets {
    sockets: BTreeMap<SocketId, SocketState>,
    auto_response: Option<AutoPair>,
}

/// Every open socket of the process, by object.
#[derive(Default)]
pub struct SocketHub {
    objects: DashMap<ObjectKey, ObjectSockets>,
    next_id: AtomicU64,
    open: AtomicU64,
    auto_responses: AtomicU64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
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
                .filter(|s| !s.closing && tag.is_none_or(|t| s.view.tags.iter().any(|x| x == t)))
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
            .and_then(|o| o.sockets.get(&id).map(|s| !s.closing))
            .unwrap_or(false)
    }

    pub fn auto_response(&self, key: &ObjectKey) -> Option<AutoPair> {
        self.objects.get(key)?.auto_response.clone()
    }

    /// Applies the committed operations of an event, in order.
    pub fn apply(&self, key: &ObjectKey, ops: Vec<SocketOp>) {
        if ops.is_empty() {
            return;
        }
        let mut object = self.objects.entry(key.clone()).or_default();
        for op in ops {
            match op {
                SocketOp::Accept { id, tags } => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    object.sockets.insert(
                        id,
                        SocketState {
                            view: SocketView {
                                id,
                                tags,
                                attachment: None,
                                auto_response_at: None,
                            },
                            tx,
                            rx: Some(rx),
                            closing: false,
                        },
                    );
                    self.open.fetch_add(1, Ordering::Relaxed);
                }
                SocketOp::Send { id, message } => {
                    if let Some(s) = object.sockets.get(&id).filter(|s| !s.closing) {
                        let _ = s.tx.send(Outgoing::Message(message));
                    }
                }
                SocketOp::Close { id, code, reason } => {
                    if let Some(s) = object.sockets.get_mut(&id).filter(|s| !s.closing) {
                        s.closing = true;
                        let _ = s.tx.send(Outgoing::Close(code, reason));
                    }
                }
                SocketOp::Attach { id, data } => {
                    if let Some(s) = object.sockets.get_mut(&id) {
                        s.view.attachment = Some(data);
                    }
                }
                SocketOp::SetAutoResponse(pair) => object.auto_response = pair,
            }
        }
    }

    fn take_receiver(
        &self,
        key: &ObjectKey,
        id: SocketId,
    ) -> Option<mpsc::UnboundedReceiver<Outgoing>> {
        self.objects.get_mut(key)?.sockets.get_mut(&id)?.rx.take()
    }

    /// Forgets a socket whose connection ended; returns its last state.
    pub fn remove(&self, key: &ObjectKey, id: SocketId) -> Option<SocketView> {
        let removed = {
            let mut object = self.objects.get_mut(key)?;
            object.sockets.remove(&id)
        };
        self.objects.remove_if(key, |_, o| {
            o.sockets.is_empty() && o.auto_response.is_none()
        });
        removed.map(|s| {
            self.open.fetch_sub(1, Ordering::Relaxed);
            s.view
        })
    }

    /// Answers `text` with the object's auto-response if it matches, without
    /// waking the object. Returns true if it answered.
    fn try_auto_respond(&self, key: &ObjectKey, id: SocketId, text: &str) -> bool {
        let Some(mut object) = self.objects.get_mut(key) else {
            return false;
        };
        let Some(pair) = object.auto_response.clone().filter(|p| p.request == text) else {
            return false;
        };
        let Some(s) = object.sockets.get_mut(&id) else {
            return false;
        };
        s.view.auto_response_at = Some(now_ms());
        let _ = s.tx.send(Outgoing::Message(Message::text(pair.response)));
        self.auto_responses.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Closes every socket with `code` (shutdown).
    pub fn close_all(&self, code: u16, reason: &str) {
        for mut object in self.objects.iter_mut() {
            for s in object.sockets.values_mut().filter(|s| !s.closing) {
                s.closing = true;
                let _ = s.tx.send(Outgoing::Close(code, reason.to_string()));
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

/// Runs one accepted connection until it closes.
pub async fn serve_socket(
    runtime: Arc<Runtime>,
    class: Arc<ClassRuntime>,
    key: ObjectKey,
    name: Option<String>,
    id: SocketId,
    on_upgrade: hyper::upgrade::OnUpgrade,
) {
    let hub = runtime.sockets.clone();
    let deliver =
        |event: SocketEvent| runtime.deliver_socket_event(&class, key.id, name.clone(), event);
    let upgraded = match on_upgrade.await {
        Ok(upgraded) => upgraded,
        Err(e) => {
            // The client left before the upgrade completed.
            tracing::debug!("WebSocket upgrade for {key} failed: {e}");
            if let Some(socket) = hub.remove(&key, id) {
                deliver(SocketEvent::Close {
                    socket,
                    code: 1006,
                    reason: String::new(),
                    was_clean: false,
                })
                .await;
            }
            return;
        }
    };
    let Some(mut rx) = hub.take_receiver(&key, id) else {
        return;
    };
    let max = runtime.config.limits.max_ws_message_bytes;
    // Small buffers: thousands of mostly idle sockets must stay cheap.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let ws =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
    // One task per socket: it reads messages and writes what the hub queues.
    let (mut sink, mut stream) = ws.split();
    let (code, reason, was_clean) = loop {
        let incoming = tokio::select! {
            out = rx.recv() => {
                match out {
                    Some(Outgoing::Message(m)) => {
                        if sink.send(m).await.is_err() {
                            break (1006, String::new(), false);
                        }
                        continue;
                    }
                    Some(Outgoing::Close(code, reason)) => {
                        let frame = CloseFrame { code: CloseCode::from(code), reason: reason.clone().into() };
                        let _ = sink.send(Message::Close(Some(frame))).await;
                        // Give the peer a moment to answer the close handshake.
                        let _ = tokio::time::timeout(CLOSE_WAIT, async {
                            while let Some(Ok(m)) = stream.next().await {
                                if m.is_close() {
                                    break;
                                }
                            }
                        })
                        .await;
                        break (code, reason, true);
                    }
                    // The hub forgot the socket (shutdown): hang up.
                    None => break (1001, String::new(), false),
                }
            }
            incoming = stream.next() => incoming,
        };
        match incoming {
            Some(Ok(Message::Text(text))) => {
                if hub.try_auto_respond(&key, id, &text) {
                    continue;
                }
                deliver(SocketEvent::Message {
                    socket: id,
                    message: WsMessage::Text(text.to_string()),
                })
                .await;
            }
            Some(Ok(Message::Binary(data))) => {
                deliver(SocketEvent::Message {
                    socket: id,
                    message: WsMessage::Binary(data.to_vec()),
                })
                .await;
            }
            Some(Ok(Message::Close(frame))) => {
                // Answer the close handshake, then report it.
                let _ = sink.close().await;
                break match frame {
                    Some(f) => (u16::from(f.code), f.reason.to_string(), true),
                    None => (1005, String::new(), true),
                };
            }
            Some(Ok(_)) => {} // ping/pong are answered by the protocol layer
            Some(Err(e)) => {
                use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
                let (code, error) = match &e {
                    // The peer went away without a close frame: not a protocol error.
                    WsError::Io(_)
                    | WsError::ConnectionClosed
                    | WsError::AlreadyClosed
                    | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                        break (1006, String::new(), false)
                    }
                    WsError::Capacity(c) => (
                        1009,
                        format!("message too large: {c} (limits.max_ws_message_bytes = {max})"),
                    ),
                    other => (1002, format!("protocol error: {other}")),
                };
                if let Some(socket) = hub.view(&key, id) {
                    deliver(SocketEvent::Error {
                        socket,
                        error: error.clone(),
                    })
                    .await;
                }
                // Tell the peer why before hanging up.
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: error.chars().take(120).collect::<String>().into(),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
                break (code, error, false);
            }
            None => break (1006, String::new(), false),
        }
    };
    // Forget the socket first, so the close handler's getWebSockets excludes it;
    // dropping its sender ends the writer, which completes the close handshake.
    let last = hub.remove(&key, id);
    drop(sink);
    if let Some(socket) = last {
        deliver(SocketEvent::Close {
            socket,
            code,
            reason,
            was_clean,
        })
        .await;
    }
}
