//! `dohost:object/websockets`: the guest's view of its host-owned sockets.
//! Reads see the hub plus the current event's own pending operations; writes
//! are queued as `SocketOp`s and applied after the event commits.

use crate::bindings::dohost::object::types::WsMessage;
use crate::bindings::dohost::object::websockets::{self, AutoResponse};
use crate::instance::InstanceState;
use crate::limits::MAX_EVENT_SEND_BYTES;
use crate::sockets::{check_tags, AutoPair, SocketId, SocketOp, SocketView, MAX_ATTACHMENT_BYTES};
use std::collections::HashMap;
use tokio_tungstenite::tungstenite::Message;
use wasmtime::component::{HasSelf, Linker, Resource};

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    websockets::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

/// Resource handles a guest may hold at once (a guest leaking handles is
/// stopped, not the host).
pub const MAX_HANDLES: usize = 100_000;

/// The host side of a `web-socket` resource handed to a guest.
#[derive(Debug)]
pub struct SocketHandle {
    pub id: SocketId,
}

/// The socket state of the running event (its operations are in the
/// instance's `EventEffects`).
#[derive(Debug, Default)]
pub struct EventSockets {
    /// The event is a fetch that asks for a WebSocket upgrade.
    pub upgrade: bool,
    /// The socket accepted by this event, with its tags.
    pub accepted: Option<(SocketId, Vec<String>)>,
    /// Sockets already closed that this event may still look at (the close event's).
    pub closed: HashMap<SocketId, SocketView>,
}

impl InstanceState {
    /// The socket as this event sees it: accepted now, open in the hub, or closed.
    fn socket_view(&self, id: SocketId) -> Option<SocketView> {
        let mut view = match &self.event_sockets.accepted {
            Some((accepted, tags)) if *accepted == id => Some(SocketView {
                id,
                tags: tags.clone(),
                attachment: None,
                auto_response_at: None,
            }),
            _ => self
                .sockets
                .view(&self.key(), id)
                .or_else(|| self.event_sockets.closed.get(&id).cloned()),
        }?;
        for op in &self.effects.socket_ops {
            if let SocketOp::Attach { id: a, data } = op {
                if *a == id {
                    view.attachment = Some(data.clone());
                }
            }
        }
        Some(view)
    }

    fn socket_is_open(&self, id: SocketId) -> bool {
        let accepted_now = matches!(&self.event_sockets.accepted, Some((a, _)) if *a == id);
        let closed_now = self
            .effects
            .socket_ops
            .iter()
            .any(|op| matches!(op, SocketOp::Close { id: c, .. } if *c == id));
        (accepted_now || self.sockets.is_open(&self.key(), id)) && !closed_now
    }

    /// A new handle; the resource table is capped (`MAX_HANDLES`) so a guest
    /// that leaks handles traps instead of growing the host.
    pub(crate) fn new_handle(&mut self, id: SocketId) -> wasmtime::Result<Resource<SocketHandle>> {
        self.table.push(SocketHandle { id }).map_err(|e| {
            wasmtime::Error::msg(format!(
                "cannot hand out another socket handle ({e}): at most {MAX_HANDLES} resources may be open; drop the ones you no longer use"
            ))
        })
    }

    fn handle_id(&self, ws: &Resource<SocketHandle>) -> wasmtime::Result<SocketId> {
        Ok(self.table.get(ws)?.id)
    }
}

fn to_message(m: WsMessage) -> Message {
    match m {
        WsMessage::Text(t) => Message::text(t),
        WsMessage::Binary(b) => Message::binary(b),
    }
}

impl websockets::HostWebSocket for InstanceState {
    fn id(&mut self, ws: Resource<SocketHandle>) -> wasmtime::Result<String> {
        Ok(self.handle_id(&ws)?.to_string())
    }

    fn send(
        &mut self,
        ws: Resource<SocketHandle>,
        message: WsMessage,
    ) -> wasmtime::Result<Result<(), String>> {
        let id = self.handle_id(&ws)?;
        if !self.socket_is_open(id) {
            return Ok(Err(format!("socket {id} is closed")));
        }
        let len = match &message {
            WsMessage::Text(t) => t.len(),
            WsMessage::Binary(b) => b.len(),
        };
        if len > self.max_ws_message {
            return Ok(Err(format!(
                "message too large: {len} bytes (limits.max_ws_message_bytes = {})",
                self.max_ws_message
            )));
        }
        if self.effects.send_bytes + len > MAX_EVENT_SEND_BYTES {
            return Ok(Err(format!(
                "too much to send in one event: its messages would exceed {MAX_EVENT_SEND_BYTES} \
                 bytes (they are sent when the event commits); send the rest from a later event"
            )));
        }
        self.effects.send_bytes += len;
        self.effects.socket_ops.push(SocketOp::Send {
            id,
            message: to_message(message),
        });
        Ok(Ok(()))
    }

    fn close(
        &mut self,
        ws: Resource<SocketHandle>,
        code: u16,
        reason: String,
    ) -> wasmtime::Result<Result<(), String>> {
        let id = self.handle_id(&ws)?;
        if !self.socket_is_open(id) {
            return Ok(Err(format!("socket {id} is already closed")));
        }
        if !(code == 1000 || (3000..=4999).contains(&code)) {
            return Ok(Err(format!(
                "close code {code} is not allowed: use 1000 or 3000-4999"
            )));
        }
        if reason.len() > 123 {
            return Ok(Err("close reason too long: at most 123 bytes".into()));
        }
        self.effects
            .socket_ops
            .push(SocketOp::Close { id, code, reason });
        Ok(Ok(()))
    }

    fn tags(&mut self, ws: Resource<SocketHandle>) -> wasmtime::Result<Vec<String>> {
        let id = self.handle_id(&ws)?;
        Ok(self.socket_view(id).map(|v| v.tags).unwrap_or_default())
    }

    fn serialize_attachment(
        &mut self,
        ws: Resource<SocketHandle>,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        let id = self.handle_id(&ws)?;
        if data.len() > MAX_ATTACHMENT_BYTES {
            return Ok(Err(format!(
                "attachment too large: {} bytes (at most {MAX_ATTACHMENT_BYTES})",
                data.len()
            )));
        }
        if self.socket_view(id).is_none() {
            return Ok(Err(format!("socket {id} is closed")));
        }
        self.effects.socket_ops.push(SocketOp::Attach { id, data });
        Ok(Ok(()))
    }

    fn deserialize_attachment(
        &mut self,
        ws: Resource<SocketHandle>,
    ) -> wasmtime::Result<Option<Vec<u8>>> {
        let id = self.handle_id(&ws)?;
        Ok(self.socket_view(id).and_then(|v| v.attachment))
    }

    fn auto_response_timestamp(
        &mut self,
        ws: Resource<SocketHandle>,
    ) -> wasmtime::Result<Option<i64>> {
        let id = self.handle_id(&ws)?;
        Ok(self.socket_view(id).and_then(|v| v.auto_response_at))
    }

    fn drop(&mut self, ws: Resource<SocketHandle>) -> wasmtime::Result<()> {
        self.table.delete(ws)?;
        Ok(())
    }
}

impl websockets::Host for InstanceState {
    fn accept(
        &mut self,
        tags: Vec<String>,
    ) -> wasmtime::Result<Result<Resource<SocketHandle>, String>> {
        if !self.event_sockets.upgrade {
            return Ok(Err(
                "accept is only possible while handling a fetch that asks for a WebSocket upgrade"
                    .into(),
            ));
        }
        if self.event_sockets.accepted.is_some() {
            return Ok(Err("this request's WebSocket was already accepted".into()));
        }
        if let Err(e) = check_tags(&tags) {
            return Ok(Err(e));
        }
        // Sockets accepted by earlier events of the batch count: they are
        // not in the hub until the batch commits.
        let open = self.sockets.count(&self.key()) + self.batch_accepts;
        if open >= self.max_sockets {
            return Ok(Err(format!(
                "too many WebSockets: this object already has {open} (limits.max_sockets_per_object)"
            )));
        }
        let id = self.sockets.new_id();
        self.event_sockets.accepted = Some((id, tags.clone()));
        self.effects.socket_ops.push(SocketOp::Accept { id, tags });
        Ok(Ok(self.new_handle(id)?))
    }

    fn get_web_sockets(
        &mut self,
        tag: Option<String>,
    ) -> wasmtime::Result<Result<Vec<Resource<SocketHandle>>, String>> {
        let mut ids: Vec<SocketId> = self
            .sockets
            .list(&self.key(), tag.as_deref())
            .into_iter()
            .map(|v| v.id)
            .collect();
        if let Some((id, tags)) = &self.event_sockets.accepted {
            if tag.as_ref().is_none_or(|t| tags.contains(t)) {
                ids.push(*id);
            }
        }
        ids.retain(|id| self.socket_is_open(*id));
        let mut handles = Vec::with_capacity(ids.len());
        for id in ids {
            handles.push(self.new_handle(id)?);
        }
        Ok(Ok(handles))
    }

    fn set_auto_response(
        &mut self,
        pair: Option<AutoResponse>,
    ) -> wasmtime::Result<Result<(), String>> {
        if let Some(p) = &pair {
            if p.request.is_empty() || p.request.len() > 2048 || p.response.len() > 2048 {
                return Ok(Err(
                    "auto-response request must be 1-2048 bytes and response at most 2048".into(),
                ));
            }
        }
        let pair = pair.map(|p| AutoPair {
            request: p.request,
            response: p.response,
        });
        // Stored with the object (so it outlives its sockets and the hub's
        // entry), and handed to the hub when the event commits.
        let stored = self.db.guest_op(true, |db| {
            crate::sockets::store_auto_response(db, pair.as_ref())
        });
        if let Err(e) = self.storage_result(stored)? {
            return Ok(Err(e));
        }
        self.effects
            .socket_ops
            .push(SocketOp::SetAutoResponse(pair));
        Ok(Ok(()))
    }

    fn get_auto_response(&mut self) -> wasmtime::Result<Option<AutoResponse>> {
        let stored = self
            .db
            .guest_op(false, crate::sockets::stored_auto_response);
        let pair = self.storage_result(stored)?.unwrap_or_default();
        Ok(pair.map(|p| AutoResponse {
            request: p.request,
            response: p.response,
        }))
    }
}
