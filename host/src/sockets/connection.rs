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

use super::{Outgoing, PendingConnection, SocketEvent, SocketId};
use crate::bindings::dohost::object::types::WsMessage;
use crate::engine::LoadedClass;
use crate::object::{EventError, EventOutput};
use crate::registry::ObjectKey;
use crate::runtime::Runtime;
use futures_util::stream::FuturesOrdered;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
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

type Reply = oneshot::Receiver<Result<EventOutput, EventError>>;

/// The events one socket has handed to its object, in order.
struct InFlight {
    replies: FuturesOrdered<Reply>,
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

impl InFlight {
    /// Waits for the next reply; `None` while nothing is in flight.
    async fn next_failure(&mut self) -> String {
        loop {
            match self.replies.next().await {
                Some(reply) => {
                    if let Some(why) = host_failure(Ok(reply.unwrap_or(Err(EventError::Dropped {
                        object: String::new(),
                    })))) {
                        return why;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        }
    }
}

/// What a connection needs to know about its socket.
struct Socket {
    runtime: Arc<Runtime>,
    class: Arc<LoadedClass>,
    key: ObjectKey,
    name: Option<String>,
    id: SocketId,
}

impl Socket {
    async fn deliver(&self, event: SocketEvent) -> Reply {
        self.runtime
            .deliver_socket_event(&self.class, self.key.id, self.name.clone(), event)
            .await
    }
}

/// How a connection ended: (code, reason, was_clean) for the close event.
type Ending = (u16, String, bool);

/// Runs one accepted connection until it closes: waits for the HTTP upgrade
/// to complete (a client that left before it is forgotten, and the object
/// gets its close), then serves it.
pub async fn serve_socket(
    runtime: Arc<Runtime>,
    class: Arc<LoadedClass>,
    key: ObjectKey,
    name: Option<String>,
    id: SocketId,
    connection: PendingConnection,
) {
    let PendingConnection {
        upgrade: on_upgrade,
        hold: _hold,
    } = connection;
    let socket = Socket {
        runtime,
        class,
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
    let hub = &socket.runtime.sockets;
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

async fn serve(socket: &Socket, upgraded: hyper::upgrade::Upgraded) -> Ending {
    let limits = &socket.runtime.config.limits;
    let max = limits.max_ws_message_bytes;
    let write_timeout = limits.ws_write_timeout;
    let Some(queue) = socket.runtime.sockets.queue(&socket.key, socket.id) else {
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
            out = queue.pop() => {
                match out {
                    Outgoing::Message(m) => {
                        let written = tokio::select! {
                            written = tokio::time::timeout(write_timeout, sink.send(m)) => written,
                            // Stuck on a client that does not read: the
                            // frame is abandoned, so no close frame can follow.
                            reason = queue.overflowed() => {
                                return overflowed(socket, reason).await;
                            }
                        };
                        match written {
                            Ok(Ok(())) => continue,
                            Ok(Err(_)) => return (1006, String::new(), false),
                            Err(_) => {
                                tracing::warn!("WebSocket of {} did not take a write within {write_timeout:?} (limits.ws_write_timeout); dropping it", socket.key);
                                return (1006, "write timeout".into(), false);
                            }
                        }
                    }
                    Outgoing::Close(code, reason) => {
                        let clean = close_handshake(&mut sink, &mut stream, close_frame(code, &reason), write_timeout).await;
                        return (code, reason, clean);
                    }
                    Outgoing::Overflow(reason) => {
                        let ending = overflowed(socket, reason.clone()).await;
                        let _ = tokio::time::timeout(write_timeout, sink.send(close_frame(1008, &reason))).await;
                        return ending;
                    }
                }
            }
            why = in_flight.next_failure() => {
                tracing::warn!("WebSocket of {}: an event failed on the host side ({why}); closing it with 1011", socket.key);
                return server_error(&mut sink, &mut stream, why, write_timeout).await;
            }
            incoming = stream.next() => incoming,
        };
        let event = match incoming {
            Some(Ok(Message::Text(text))) => {
                if socket
                    .runtime
                    .sockets
                    .try_auto_respond(&socket.key, socket.id, &text)
                {
                    continue;
                }
                SocketEvent::Message {
                    socket: socket.id,
                    message: WsMessage::Text(text.to_string()),
                }
            }
            Some(Ok(Message::Binary(data))) => SocketEvent::Message {
                socket: socket.id,
                message: WsMessage::Binary(data.to_vec()),
            },
            Some(Ok(Message::Close(frame))) => {
                // Answer the close handshake, then report it.
                let _ = tokio::time::timeout(write_timeout, sink.close()).await;
                return match frame {
                    Some(f) => (u16::from(f.code), f.reason.to_string(), true),
                    None => (1005, String::new(), true),
                };
            }
            Some(Ok(_)) => continue, // ping/pong are answered by the protocol layer
            Some(Err(e)) => return protocol_error(socket, &mut sink, e, max, write_timeout).await,
            None => return (1006, String::new(), false),
        };
        // Backpressure: wait for the oldest event before handing over more.
        if in_flight.replies.len() >= EVENTS_IN_FLIGHT {
            if let Some(reply) = in_flight.replies.next().await {
                if let Some(why) = host_failure(Ok(reply.unwrap_or(Err(EventError::Dropped {
                    object: String::new(),
                })))) {
                    let reason = format!("server error: {why}");
                    let frame = Message::Close(Some(CloseFrame {
                        code: CloseCode::from(1011),
                        reason: reason.chars().take(120).collect::<String>().into(),
                    }));
                    let clean = close_handshake(&mut sink, &mut stream, frame, write_timeout).await;
                    return (1011, reason, clean);
                }
            }
        }
        let reply = socket.deliver(event).await;
        in_flight.replies.push_back(reply);
    }
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
    if let Some(view) = socket.runtime.sockets.view(&socket.key, socket.id) {
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
    if let Some(view) = socket.runtime.sockets.view(&socket.key, socket.id) {
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
