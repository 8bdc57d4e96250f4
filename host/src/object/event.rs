//! The events an object receives and what it answers.

use crate::bindings::dohost::object::types::{Request, Response};
use crate::capabilities::namespaces::CallChain;
use crate::capabilities::sockets::SocketEvent;
use crate::guest::GuestFailure;
use crate::id::SocketId;
use crate::registry::Weighted;
use crate::rpc::RpcMethod;
use std::sync::Arc;
use tokio::sync::oneshot;
use wasmtime::component::Val;

/// What an event asks of the object.
#[derive(Debug)]
pub enum EventKind {
    /// An HTTP request; `upgrade` offers the connection if it asks for a
    /// WebSocket (the socket is served from it once the accept commits).
    Fetch {
        request: Request,
        upgrade: Option<crate::capabilities::sockets::UpgradeOffer>,
    },
    Rpc {
        method: Arc<RpcMethod>,
        args: Vec<Val>,
    },
    Socket(SocketEvent),
    /// The object's alarm may be due.
    Alarm,
    /// Timers the instance left pending are due (`timer-events.fire`).
    Timer,
}

impl EventKind {
    /// Bytes the event holds while it waits in a mailbox (its body or arguments).
    pub fn weight(&self) -> usize {
        const BASE: usize = 256;
        BASE + match self {
            EventKind::Fetch { request, .. } => {
                request.body.len()
                    + request.url.len()
                    + request
                        .headers
                        .iter()
                        .map(|(k, v)| k.len() + v.len())
                        .sum::<usize>()
            }
            EventKind::Rpc { args, .. } => args.len() * 64,
            EventKind::Socket(SocketEvent::Message { message, .. }) => match message {
                crate::bindings::dohost::object::types::WsMessage::Text(t) => t.len(),
                crate::bindings::dohost::object::types::WsMessage::Binary(b) => b.len(),
            },
            EventKind::Socket(_) | EventKind::Alarm | EventKind::Timer => 0,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            EventKind::Fetch { .. } => "fetch",
            EventKind::Rpc { .. } => "rpc",
            EventKind::Socket(SocketEvent::Message { .. }) => "websocket_message",
            EventKind::Socket(SocketEvent::Close { .. }) => "websocket_close",
            EventKind::Socket(SocketEvent::Error { .. }) => "websocket_error",
            EventKind::Alarm => "alarm",
            EventKind::Timer => "timer",
        }
    }
}

/// What the guest answered.
#[derive(Debug)]
pub enum EventOutput {
    Response(Response),
    /// A fetch accepted a WebSocket and answered 101.
    Upgrade {
        response: Response,
        socket: SocketId,
    },
    /// The result of an RPC method (none for a method without result).
    Value(Option<Val>),
    /// What an untyped method (`dohost:object/dynamic`) answered.
    Dynamic(crate::rpc::dynamic::Answer),
    /// A WebSocket event was handled.
    Done,
    /// An alarm event ran (or found nothing due).
    Alarm(AlarmOutcome),
}

/// What an alarm event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlarmOutcome {
    /// No alarm was due (it was deleted or moved): nothing ran.
    NotDue,
    Succeeded,
    /// The handler returned an error; its writes are kept and a retry is scheduled.
    Failed(String),
}

/// An event in a mailbox, with the channel for its reply.
#[derive(Debug)]
pub struct Envelope {
    pub kind: EventKind,
    /// Bytes it holds (`EventKind::weight`), counted against the mailbox.
    pub weight: usize,
    /// The name the object was addressed by, if any.
    pub name: Option<String>,
    /// Objects blocked waiting for this event (for cycle detection).
    pub callers: CallChain,
    pub reply: oneshot::Sender<Result<EventOutput, EventError>>,
}

impl Envelope {
    /// An envelope for `kind`, weighed.
    pub fn new(
        kind: EventKind,
        name: Option<String>,
        callers: CallChain,
        reply: oneshot::Sender<Result<EventOutput, EventError>>,
    ) -> Envelope {
        Envelope {
            weight: kind.weight(),
            kind,
            name,
            callers,
            reply,
        }
    }
}

impl Weighted for Envelope {
    fn weight(&self) -> usize {
        self.weight
    }
}

/// Why an event produced no reply from the guest.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EventError {
    #[error("overloaded: object {object} already has {limit} events queued (limits.mailbox); retry later")]
    Overloaded { object: String, limit: usize },
    #[error("overloaded: object {object} already has {limit} bytes of events queued (limits.mailbox_bytes); retry later")]
    OverloadedBytes { object: String, limit: usize },
    #[error("overloaded: no active slot for object {object}: all {limit} stayed busy (limits.max_active); retry later")]
    NoCapacity { object: String, limit: usize },
    #[error("object {object} {failure}")]
    Guest {
        object: String,
        failure: GuestFailure,
    },
    #[error("object {object}: storage failure: {message}; the event was rolled back and the object reset")]
    Storage { object: String, message: String },
    /// The event ran, but its storage changes were refused when it ended
    /// (a deferred foreign key): it was rolled back alone.
    #[error("object {object}: the event was rolled back: {message}")]
    Refused { object: String, message: String },
    #[error("object {object}: {message}; the event was rolled back")]
    Quota { object: String, message: String },
    /// Another event of the same batch made SQLite roll back the batch's
    /// transaction; this one's writes went with it. Nothing was kept: retry.
    #[error("object {object}: rolled back with its batch because another event of the object failed inside SQLite ({reason}); nothing was stored, retry")]
    BatchRolledBack { object: String, reason: String },
    #[error("object {object}: {message}")]
    Instantiate { object: String, message: String },
    #[error("object {object} stopped before replying (host error)")]
    Dropped { object: String },
}

impl EventError {
    /// The message for a client: outside dev mode, without the guest's
    /// output (panic messages, stack traces and build paths stay in the log).
    pub fn public_message(&self, dev: bool) -> String {
        match self {
            EventError::Guest { object, failure } if !dev => {
                format!("object {object} {}", failure.redacted())
            }
            other => other.to_string(),
        }
    }
}
