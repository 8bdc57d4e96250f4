//! `dohost:object/websockets`: the guest's view of its host-owned sockets.
//! Reads see the hub plus the current event's own pending operations; writes
//! are queued as `SocketOp`s and applied after the event commits.

use super::{check_tags, AutoPair, SocketHub, SocketOp, SocketView, MAX_ATTACHMENT_BYTES};
use crate::bindings::dohost::object::types::WsMessage;
use crate::bindings::dohost::object::websockets::{self, AutoResponse};
use crate::bindings::SocketHandle;
use crate::capabilities::storage::StorageView;
use crate::config::limits::MAX_EVENT_SEND_BYTES;
use crate::id::{ObjectKey, SocketId};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Message;
use wasmtime::component::{Resource, ResourceTable};

pub use crate::config::limits::MAX_HANDLES;

/// Per-socket limits an import enforces.
#[derive(Debug, Clone, Copy)]
pub struct SocketLimits {
    pub max_sockets: usize,
    pub max_message: usize,
}

/// The socket state of the running event.
#[derive(Debug, Default)]
pub struct EventSockets {
    /// The event is a fetch that asks for a WebSocket upgrade.
    pub upgrade: bool,
    /// The socket accepted by this event, with its tags.
    pub accepted: Option<(SocketId, Vec<String>)>,
    /// Sockets already closed that this event may still look at (the close event's).
    pub closed: HashMap<SocketId, SocketView>,
}

/// What an event did to sockets, applied after its commit.
#[derive(Debug, Default)]
pub struct SocketEffects {
    /// In order.
    pub ops: Vec<SocketOp>,
    /// Bytes of the messages in `ops`.
    pub send_bytes: usize,
    /// The connection of the socket the event accepted (a fetch that
    /// answered 101), served once the event commits.
    pub served: Option<(SocketId, super::PendingConnection)>,
}

/// The sockets capability of one instance.
pub struct SocketsCtx {
    pub hub: Arc<SocketHub>,
    pub key: ObjectKey,
    pub limits: SocketLimits,
    pub event: EventSockets,
    pub effects: SocketEffects,
    /// Sockets accepted by earlier events of the batch, not yet in the hub.
    pub batch_accepts: usize,
}

impl SocketsCtx {
    pub fn new(hub: Arc<SocketHub>, key: ObjectKey, limits: SocketLimits) -> SocketsCtx {
        SocketsCtx {
            hub,
            key,
            limits,
            event: EventSockets::default(),
            effects: SocketEffects::default(),
            batch_accepts: 0,
        }
    }

    /// A new event starts: `upgrade` if it is a fetch asking for a WebSocket.
    pub fn begin_event(&mut self, upgrade: bool, batch_accepts: usize) {
        self.event = EventSockets {
            upgrade,
            ..EventSockets::default()
        };
        self.effects = SocketEffects::default();
        self.batch_accepts = batch_accepts;
    }

    /// What the event did (to apply after its commit).
    pub fn take_effects(&mut self) -> SocketEffects {
        self.event.accepted = None;
        std::mem::take(&mut self.effects)
    }

    /// The socket the running event accepted, if any.
    pub fn accepted(&self) -> Option<SocketId> {
        self.event.accepted.as_ref().map(|(id, _)| *id)
    }

    /// Drops every pending operation of the socket the running event
    /// accepted (the handler accepted it but did not answer 101).
    pub fn discard_accepted(&mut self) {
        if let Some((id, _)) = self.event.accepted.take() {
            self.effects.ops.retain(|op| op.socket() != Some(id));
        }
    }

    /// A socket that already left the hub (its close or error event), which
    /// the handler may still look at.
    pub fn lend_closed(&mut self, view: SocketView) {
        self.event.closed.insert(view.id, view);
    }
}

/// What the websockets import reaches: its context, the resource table, and
/// storage (the auto-response pair is stored with the object).
pub struct SocketsView<'a> {
    pub ctx: &'a mut SocketsCtx,
    pub table: &'a mut ResourceTable,
    pub storage: StorageView<'a>,
}

/// A new handle; the resource table is capped (`MAX_HANDLES`) so a guest
/// that leaks handles traps instead of growing the host.
pub fn new_handle(
    table: &mut ResourceTable,
    id: SocketId,
) -> wasmtime::Result<Resource<SocketHandle>> {
    table.push(SocketHandle { id }).map_err(|e| {
        wasmtime::Error::msg(format!(
            "cannot hand out another socket handle ({e}): at most {MAX_HANDLES} resources may be open; drop the ones you no longer use"
        ))
    })
}

impl SocketsView<'_> {
    fn socket_view(&self, id: SocketId) -> Option<SocketView> {
        let ctx = &*self.ctx;
        let mut view = match &ctx.event.accepted {
            Some((accepted, tags)) if *accepted == id => Some(SocketView {
                id,
                tags: tags.clone(),
                attachment: None,
                auto_response_at: None,
            }),
            _ => ctx
                .hub
                .view(&ctx.key, id)
                .or_else(|| ctx.event.closed.get(&id).cloned()),
        }?;
        for op in &ctx.effects.ops {
            if let SocketOp::Attach { id: a, data } = op {
                if *a == id {
                    view.attachment = Some(data.clone());
                }
            }
        }
        Some(view)
    }

    fn socket_is_open(&self, id: SocketId) -> bool {
        let ctx = &*self.ctx;
        let accepted_now = matches!(&ctx.event.accepted, Some((a, _)) if *a == id);
        let closed_now = ctx
            .effects
            .ops
            .iter()
            .any(|op| matches!(op, SocketOp::Close { id: c, .. } if *c == id));
        (accepted_now || ctx.hub.is_open(&ctx.key, id)) && !closed_now
    }

    fn new_handle(&mut self, id: SocketId) -> wasmtime::Result<Resource<SocketHandle>> {
        new_handle(self.table, id)
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

impl websockets::HostWebSocket for SocketsView<'_> {
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
        if len > self.ctx.limits.max_message {
            return Ok(Err(format!(
                "message too large: {len} bytes (limits.max_ws_message_bytes = {})",
                self.ctx.limits.max_message
            )));
        }
        if self.ctx.effects.send_bytes + len > MAX_EVENT_SEND_BYTES {
            return Ok(Err(format!(
                "too much to send in one event: its messages would exceed {MAX_EVENT_SEND_BYTES} \
                 bytes (they are sent when the event commits); send the rest from a later event"
            )));
        }
        self.ctx.effects.send_bytes += len;
        self.ctx.effects.ops.push(SocketOp::Send {
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
        if let Some(refused) = refused_close_code(code) {
            return Ok(Err(refused));
        }
        if reason.len() > 123 {
            return Ok(Err("close reason too long: at most 123 bytes".into()));
        }
        self.ctx
            .effects
            .ops
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
        self.ctx.effects.ops.push(SocketOp::Attach { id, data });
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

impl websockets::Host for SocketsView<'_> {
    fn accept(
        &mut self,
        tags: Vec<String>,
    ) -> wasmtime::Result<Result<Resource<SocketHandle>, String>> {
        if !self.ctx.event.upgrade {
            return Ok(Err(
                "accept is only possible while handling a fetch that asks for a WebSocket upgrade"
                    .into(),
            ));
        }
        if self.ctx.event.accepted.is_some() {
            return Ok(Err("this request's WebSocket was already accepted".into()));
        }
        if let Err(e) = check_tags(&tags) {
            return Ok(Err(e));
        }
        // Sockets accepted by earlier events of the batch count: they are
        // not in the hub until the batch commits.
        let ctx = &mut *self.ctx;
        let open = ctx.hub.count(&ctx.key) + ctx.batch_accepts;
        if open >= ctx.limits.max_sockets {
            return Ok(Err(format!(
                "too many WebSockets: this object already has {open} (limits.max_sockets_per_object)"
            )));
        }
        let id = ctx.hub.new_id();
        ctx.event.accepted = Some((id, tags.clone()));
        ctx.effects.ops.push(SocketOp::Accept { id, tags });
        Ok(Ok(self.new_handle(id)?))
    }

    fn get_web_sockets(
        &mut self,
        tag: Option<String>,
    ) -> wasmtime::Result<Result<Vec<Resource<SocketHandle>>, String>> {
        let mut ids: Vec<SocketId> = self
            .ctx
            .hub
            .list(&self.ctx.key, tag.as_deref())
            .into_iter()
            .map(|v| v.id)
            .collect();
        if let Some((id, tags)) = &self.ctx.event.accepted {
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
        // entry); the hub learns it when the event commits.
        self.storage
            .guest_str(true, |db| super::store_auto_response(db, pair.as_ref()))
    }

    fn get_auto_response(&mut self) -> wasmtime::Result<Option<AutoResponse>> {
        let pair = self
            .storage
            .guest_str(false, |db| super::stored_auto_response(db))?
            .unwrap_or_default();
        Ok(pair.map(|p| AutoResponse {
            request: p.request,
            response: p.response,
        }))
    }
}

/// Why a guest may not close with `code`, as Cloudflare decides: 1000-4999
/// but the codes that are never sent in a close frame (RFC 6455 §7.4.1).
fn refused_close_code(code: u16) -> Option<String> {
    match code {
        1004..=1006 | 1015 => Some(format!(
            "close code {code} is not allowed: it is reserved (never sent in a close frame); use 1000, another of 1001-4999, or your own 4000-4999"
        )),
        1000..=4999 => None,
        _ => Some(format!("close code {code} is not allowed: use 1000-4999 (1004-1006 and 1015 are reserved)")),
    }
}

#[cfg(test)]
mod close_code_tests {
    use super::refused_close_code;

    #[test]
    fn close_codes_are_those_of_cloudflare_at_and_past_each_bound() {
        for ok in [
            1000, 1001, 1003, 1007, 1009, 1011, 1014, 1016, 2999, 3000, 4999,
        ] {
            assert_eq!(refused_close_code(ok), None, "{ok}");
        }
        for refused in [0, 999, 1004, 1005, 1006, 1015, 5000, 65535] {
            let why = refused_close_code(refused).expect("refused");
            assert!(
                why.starts_with(&format!("close code {refused} is not allowed")),
                "{why}"
            );
        }
    }
}
