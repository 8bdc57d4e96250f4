//! The events an object receives and what it answers.

use crate::bindings::dohost::object::types::{Request, Response};
use crate::instance::GuestFailure;
use crate::peers::CallChain;
use crate::rpc::RpcMethod;
use crate::sockets::{SocketEvent, SocketId};
use std::sync::Arc;
use tokio::sync::oneshot;
use wasmtime::component::Val;

/// What an event asks of the object.
#[derive(Debug)]
pub enum EventKind {
    /// An HTTP request; `upgrade` if it asks for a WebSocket.
    Fetch {
        request: Request,
        upgrade: bool,
    },
    Rpc {
        method: Arc<RpcMethod>,
        args: Vec<Val>,
    },
    Socket(SocketEvent),
    /// The object's alarm may be due.
    Alarm,
}

impl EventKind {
    pub fn label(&self) -> &'static str {
        match self {
            EventKind::Fetch { .. } => "fetch",
            EventKind::Rpc { .. } => "rpc",
            EventKind::Socket(SocketEvent::Message { .. }) => "websocket_message",
            EventKind::Socket(SocketEvent::Close { .. }) => "websocket_close",
            EventKind::Socket(SocketEvent::Error { .. }) => "websocket_error",
            EventKind::Alarm => "alarm",
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
    /// The name the object was addressed by, if any.
    pub name: Option<String>,
    /// Objects blocked waiting for this event (for cycle detection).
    pub callers: CallChain,
    pub reply: oneshot::Sender<Result<EventOutput, EventError>>,
}

/// Why an event produced no reply from the guest.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EventError {
    #[error("overloaded: object {object} already has {limit} events queued (limits.mailbox); retry later")]
    Overloaded { object: String, limit: usize },
    #[error("overloaded: no active slot for object {object}: all {limit} stayed busy (limits.max_active); retry later")]
    NoCapacity { object: String, limit: usize },
    #[error("object {object} {failure}")]
    Guest {
        object: String,
        failure: GuestFailure,
    },
    #[error("object {object}: storage failure: {message}; the event was rolled back and the object reset")]
    Storage { object: String, message: String },
    #[error("object {object}: {message}")]
    Instantiate { object: String, message: String },
    #[error("object {object} stopped before replying (host error)")]
    Dropped { object: String },
}
