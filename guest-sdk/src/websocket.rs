//! `WebSocket`: a socket accepted by this object and owned by the host.

use crate::bindings::dohost::object::{types, websockets};
use crate::{Error, Result};

/// A WebSocket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl Message {
    pub(crate) fn from_wit(m: types::WsMessage) -> Self {
        match m {
            types::WsMessage::Text(t) => Message::Text(t),
            types::WsMessage::Binary(b) => Message::Binary(b),
        }
    }

    fn to_wit(&self) -> types::WsMessage {
        match self {
            Message::Text(t) => types::WsMessage::Text(t.clone()),
            Message::Binary(b) => types::WsMessage::Binary(b.clone()),
        }
    }
}

/// The request/response pair the host answers itself, without waking the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoResponse {
    /// The incoming message that triggers the auto-response.
    pub request: String,
    /// The message the host sends back.
    pub response: String,
}

impl AutoResponse {
    /// A pair that answers `request` with `response`.
    pub fn new(request: impl Into<String>, response: impl Into<String>) -> Self {
        AutoResponse {
            request: request.into(),
            response: response.into(),
        }
    }
}

/// A WebSocket of this object. Messages and closes take effect when the current
/// event commits.
#[derive(Debug)]
pub struct WebSocket {
    inner: websockets::WebSocket,
}

impl WebSocket {
    pub(crate) fn from_wit(inner: websockets::WebSocket) -> Self {
        WebSocket { inner }
    }

    /// Stable id of the socket within the object.
    pub fn id(&self) -> String {
        self.inner.id()
    }

    /// Queues a message; it is sent when the current event commits.
    pub fn send(&self, message: &Message) -> Result<()> {
        self.inner.send(&message.to_wit()).map_err(Error::from)
    }

    /// Queues a text message; it is sent when the current event commits.
    pub fn send_text(&self, text: impl Into<String>) -> Result<()> {
        self.send(&Message::Text(text.into()))
    }

    /// Closes the socket with `code` and `reason` when the current event commits.
    pub fn close(&self, code: u16, reason: &str) -> Result<()> {
        self.inner.close(code, reason).map_err(Error::from)
    }

    /// The tags given when the socket was accepted.
    pub fn tags(&self) -> Vec<String> {
        self.inner.tags()
    }

    /// Stores up to 2,048 bytes of JSON with the socket (survives hibernation).
    pub fn serialize_attachment<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.inner
            .serialize_attachment(&serde_json::to_vec(value)?)
            .map_err(Error::from)
    }

    /// The attachment stored with [`Self::serialize_attachment`].
    pub fn deserialize_attachment<T: serde::de::DeserializeOwned>(&self) -> Result<Option<T>> {
        self.inner
            .deserialize_attachment()
            .map(|bytes| serde_json::from_slice(&bytes).map_err(Error::from))
            .transpose()
    }

    /// When the host last answered this socket with the auto-response (epoch ms).
    pub fn auto_response_timestamp(&self) -> Option<i64> {
        self.inner.auto_response_timestamp()
    }
}
