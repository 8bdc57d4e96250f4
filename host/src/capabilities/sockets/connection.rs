//! One WebSocket connection: its task reads frames and turns them into events
//! of the object (answering the auto-response itself), and writes what the
//! hub queued for it.
//!
//! Bounds: a write that the client does not take within
//! `limits.ws_write_timeout` ends the connection; a send queue over its budget
//! closes it with 1008 (after telling the object through `web-socket-error`);
//! at most `EVENTS_IN_FLIGHT` of its events wait for the object at once (the
//! reader pauses beyond, so a fast sender cannot fill the host); an event that
//! fails for a host-side reason (no active slot, storage) closes the socket
//! with 1011 so the client knows its message was not handled.

use super::{Outgoing, PendingConnection, SendQueue, SocketEvent, SocketHub, SocketId};
use crate::bindings::dohost::object::types::WsMessage;
use crate::id::ObjectKey;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Read buffer per connection (tungstenite allocates it eagerly).
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// How long a close waits for the peer's answer (at most; and at most the
/// write timeout).
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Events of one socket waiting for their object at once.
const EVENTS_IN_FLIGHT: usize = 32;

/// The outcome of one of a socket's events: `None` once the object handled
/// it (a guest failure included: that is the object's business, the socket
/// stays open), or why the host could not run it.
pub type Handled = BoxFuture<'static, Option<String>>;

/// Where a socket's events go (the runtime: the object's mailbox).
pub trait SocketEvents: Send + Sync {
    /// Queues `event` for the object `key`, waiting while its mailbox is full
    /// (the socket's reader pauses: backpressure, nothing dropped).
    fn deliver(
        &self,
        key: &ObjectKey,
        name: Option<String>,
        event: SocketEvent,
    ) -> BoxFuture<'_, Handled>;
}

/// How a connection is served.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_message: usize,
    pub write_timeout: Duration,
}

/// The events one socket has handed to its object, in order.
struct InFlight {
    replies: FuturesOrdered<Handled>,
}

impl InFlight {
    /// The first host-side failure among the replies, as they come in
    /// (pending while nothing is in flight).
    async fn next_failure(&mut self) -> String {
        loop {
            match self.replies.next().await {
                Some(None) => {}
                Some(Some(why)) => return why,
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// Waits for the oldest reply; its host-side failure, if any.
    async fn oldest_failure(&mut self) -> Option<String> {
        self.replies.next().await.flatten()
    }
}

/// What a connection needs to know about its socket.
struct Socket {
    events: Arc<dyn SocketEvents>,
    hub: Arc<SocketHub>,
    limits: ConnectionLimits,
    key: ObjectKey,
    name: Option<String>,
    id: SocketId,
}

impl Socket {
    async fn deliver(&self, event: SocketEvent) -> Handled {
        self.events
            .deliver(&self.key, self.name.clone(), event)
            .await
    }
}

/// How a connection ended: (code, reason, was_clean) for the close event.
type Ending = (u16, String, bool);

/// Runs one accepted connection until it closes: waits for the HTTP upgrade
/// to complete (a client that left before it is forgotten, and the object
/// gets its close), then serves it.
pub async fn serve_socket(
    events: Arc<dyn SocketEvents>,
    hub: Arc<SocketHub>,
    limits: ConnectionLimits,
    (key, name, id): (ObjectKey, Option<String>, SocketId),
    connection: PendingConnection,
) {
    let PendingConnection {
        upgrade: on_upgrade,
        hold: _hold,
    } = connection;
    let socket = Socket {
        events,
        hub,
        limits,
        key,
        name,
        id,
    };
    let ending = match on_upgrade.await {
        Ok(upgraded) => serve(&socket, upgraded).await,
        Err(e) => {
            tracing::debug!("WebSocket upgrade for {} failed: {e}", socket.key);
            (1006, String::new(), false)
        }
    };
    let hub = &socket.hub;
    if let Some(q) = hub.queue(&socket.key, id) {
        q.shut();
    }
    // Forget the socket first, so the close handler's getWebSockets excludes it.
    if let Some(view) = hub.remove(&socket.key, id) {
        let (code, reason, was_clean) = ending;
        // Nobody waits for the close event's reply: the socket is gone.
        drop(
            socket
                .deliver(SocketEvent::Close {
                    socket: view,
                    code,
                    reason,
                    was_clean,
                })
                .await,
        );
    }
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;
type WsSink = futures_util::stream::SplitSink<Ws, Message>;
type WsStream = futures_util::stream::SplitStream<Ws>;

async fn serve(socket: &Socket, upgraded: hyper::upgrade::Upgraded) -> Ending {
    let max = socket.limits.max_message;
    let write_timeout = socket.limits.write_timeout;
    let Some(queue) = socket.hub.queue(&socket.key, socket.id) else {
        return (1006, String::new(), false);
    };
    // Small buffers: thousands of mostly idle sockets must stay cheap.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let ws =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
    let (mut sink, mut stream) = ws.split();
    let mut in_flight = InFlight {
        replies: FuturesOrdered::new(),
    };
    loop {
        let incoming = tokio::select! {
            out = queue.pop() => match write_out(socket, &mut sink, &mut stream, &queue, out).await {
                Some(ending) => return ending,
                None => continue,
            },
            why = in_flight.next_failure() => {
                tracing::warn!("WebSocket of {}: an event failed on the host side ({why}); closing it with 1011", socket.key);
                return server_error(&mut sink, &mut stream, why, write_timeout).await;
            }
            incoming = stream.next() => incoming,
        };
        let event = match read_in(socket, &mut sink, incoming).await {
            Incoming::Event(event) => event,
            Incoming::Handled => continue,
            Incoming::End(ending) => return ending,
        };
        // Backpressure: wait for the oldest event before handing over more.
        if in_flight.replies.len() >= EVENTS_IN_FLIGHT {
            if let Some(why) = in_flight.oldest_failure().await {
                return server_error(&mut sink, &mut stream, why, write_timeout).await;
            }
        }
        let reply = socket.deliver(event).await;
        in_flight.replies.push_back(reply);
    }
}

/// Writes what the hub queued for the socket; `Some` when that ends the
/// connection.
async fn write_out(
    socket: &Socket,
    sink: &mut WsSink,
    stream: &mut WsStream,
    queue: &SendQueue,
    out: Outgoing,
) -> Option<Ending> {
    let write_timeout = socket.limits.write_timeout;
    match out {
        Outgoing::Message(m) => {
            let written = tokio::select! {
                written = tokio::time::timeout(write_timeout, sink.send(m)) => written,
                // Stuck on a client that does not read: the frame is
                // abandoned, so no close frame can follow.
                reason = queue.overflowed() => return Some(overflowed(socket, reason).await),
            };
            match written {
                Ok(Ok(())) => None,
                Ok(Err(_)) => Some((1006, String::new(), false)),
                Err(_) => {
                    tracing::warn!("WebSocket of {} did not take a write within {write_timeout:?} (limits.ws_write_timeout); dropping it", socket.key);
                    Some((1006, "write timeout".into(), false))
                }
            }
        }
        Outgoing::Close(code, reason) => {
            let frame = close_frame(code, &reason);
            let clean = close_handshake(sink, stream, frame, write_timeout).await;
            Some((code, reason, clean))
        }
        Outgoing::Overflow(reason) => {
            let ending = overflowed(socket, reason.clone()).await;
            let _ =
                tokio::time::timeout(write_timeout, sink.send(close_frame(1008, &reason))).await;
            Some(ending)
        }
    }
}

/// What a frame from the client comes to.
enum Incoming {
    /// An event for the object.
    Event(SocketEvent),
    /// Answered by the host (auto-response, ping) or nothing to do.
    Handled,
    /// The connection ends.
    End(Ending),
}

/// Turns a frame from the client into an event, answering what the host
/// answers itself.
async fn read_in(
    socket: &Socket,
    sink: &mut WsSink,
    incoming: Option<Result<Message, WsError>>,
) -> Incoming {
    let write_timeout = socket.limits.write_timeout;
    let message = match incoming {
        Some(Ok(Message::Text(text))) => {
            if socket.hub.try_auto_respond(&socket.key, socket.id, &text) {
                return Incoming::Handled;
            }
            WsMessage::Text(text.to_string())
        }
        Some(Ok(Message::Binary(data))) => WsMessage::Binary(data.to_vec()),
        Some(Ok(Message::Close(frame))) => {
            // Answer the close handshake, then report it.
            let _ = tokio::time::timeout(write_timeout, sink.close()).await;
            return Incoming::End(match frame {
                Some(f) => (u16::from(f.code), f.reason.to_string(), true),
                None => (1005, String::new(), true),
            });
        }
        Some(Ok(_)) => return Incoming::Handled, // ping/pong: the protocol layer answers
        Some(Err(e)) => {
            let max = socket.limits.max_message;
            return Incoming::End(protocol_error(socket, sink, e, max, write_timeout).await);
        }
        None => return Incoming::End((1006, String::new(), false)),
    };
    Incoming::Event(SocketEvent::Message {
        socket: socket.id,
        message,
    })
}

/// A close frame with `code` and `reason` (cut to what a frame holds).
fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.chars().take(120).collect::<String>().into(),
    }))
}

/// A host-side failure: the client learns with 1011 that its message was
/// not handled.
async fn server_error<S, R>(
    sink: &mut S,
    stream: &mut R,
    why: String,
    write_timeout: Duration,
) -> Ending
where
    S: futures_util::Sink<Message> + Unpin,
    R: futures_util::Stream<Item = Result<Message, WsError>> + Unpin,
{
    let reason = format!("server error: {why}");
    let clean = close_handshake(sink, stream, close_frame(1011, &reason), write_timeout).await;
    (1011, reason, clean)
}

/// The send queue overflowed: the object learns why (`web-socket-error`),
/// then the socket closes with 1008.
async fn overflowed(socket: &Socket, reason: String) -> Ending {
    tracing::warn!(
        "WebSocket of {}: {reason}; closing it with 1008",
        socket.key
    );
    if let Some(view) = socket.hub.view(&socket.key, socket.id) {
        let event = SocketEvent::Error {
            socket: view,
            error: reason.clone(),
        };
        drop(socket.deliver(event).await);
    }
    (1008, reason, false)
}

/// Sends a close frame and waits (at most `CLOSE_WAIT`) for the peer's; true
/// only if the peer answered (a clean close).
async fn close_handshake<S, R>(
    sink: &mut S,
    stream: &mut R,
    frame: Message,
    write_timeout: Duration,
) -> bool
where
    S: futures_util::Sink<Message> + Unpin,
    R: futures_util::Stream<Item = Result<Message, WsError>> + Unpin,
{
    match tokio::time::timeout(write_timeout, sink.send(frame)).await {
        Ok(Ok(())) => {}
        _ => return false,
    }
    tokio::time::timeout(CLOSE_WAIT.min(write_timeout), async {
        while let Some(Ok(m)) = stream.next().await {
            if m.is_close() {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false)
}

/// A read error: the peer went away, or broke the protocol (the object gets
/// `web-socket-error`, the peer a close that says why).
async fn protocol_error<S>(
    socket: &Socket,
    sink: &mut S,
    e: WsError,
    max: usize,
    write_timeout: Duration,
) -> Ending
where
    S: futures_util::Sink<Message> + Unpin,
{
    let (code, error) = match &e {
        // The peer went away without a close frame: not a protocol error.
        WsError::Io(_)
        | WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            return (1006, String::new(), false)
        }
        WsError::Capacity(c) => (
            1009,
            format!("message too large: {c} (limits.max_ws_message_bytes = {max})"),
        ),
        WsError::Utf8(detail) => (1007, format!("invalid UTF-8 in a text message: {detail}")),
        other => (1002, format!("protocol error: {other}")),
    };
    if let Some(view) = socket.hub.view(&socket.key, socket.id) {
        let event = SocketEvent::Error {
            socket: view,
            error: error.clone(),
        };
        drop(socket.deliver(event).await);
    }
    // Tell the peer why before hanging up.
    let _ = tokio::time::timeout(write_timeout, sink.send(close_frame(code, &error))).await;
    (code, error, false)
}
