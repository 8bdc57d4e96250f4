//! `dohost:object/websockets`: not implemented yet; every call says so.

use super::unsupported;
use crate::bindings::dohost::object::types::WsMessage;
use crate::bindings::dohost::object::websockets::{self, AutoResponse};
use crate::instance::InstanceState;
use wasmtime::component::{HasSelf, Linker, Resource};

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    websockets::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

/// The host side of a `web-socket` resource handed to a guest.
#[derive(Debug)]
pub struct SocketHandle {
    pub id: u64,
}

impl websockets::HostWebSocket for InstanceState {
    fn id(&mut self, ws: Resource<SocketHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(&ws)?.id.to_string())
    }

    fn send(
        &mut self,
        _ws: Resource<SocketHandle>,
        _message: WsMessage,
    ) -> wasmtime::Result<Result<(), String>> {
        Ok(Err(unsupported("websockets")))
    }

    fn close(
        &mut self,
        _ws: Resource<SocketHandle>,
        _code: u16,
        _reason: String,
    ) -> wasmtime::Result<Result<(), String>> {
        Ok(Err(unsupported("websockets")))
    }

    fn tags(&mut self, _ws: Resource<SocketHandle>) -> wasmtime::Result<Vec<String>> {
        Ok(Vec::new())
    }

    fn serialize_attachment(
        &mut self,
        _ws: Resource<SocketHandle>,
        _data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        Ok(Err(unsupported("websockets")))
    }

    fn deserialize_attachment(
        &mut self,
        _ws: Resource<SocketHandle>,
    ) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(None)
    }

    fn auto_response_timestamp(
        &mut self,
        _ws: Resource<SocketHandle>,
    ) -> wasmtime::Result<Option<i64>> {
        Ok(None)
    }

    fn drop(&mut self, ws: Resource<SocketHandle>) -> wasmtime::Result<()> {
        self.table.delete(ws)?;
        Ok(())
    }
}

impl websockets::Host for InstanceState {
    fn accept(
        &mut self,
        _tags: Vec<String>,
    ) -> wasmtime::Result<Result<Resource<SocketHandle>, String>> {
        Ok(Err(unsupported("websockets")))
    }

    fn get_web_sockets(
        &mut self,
        _tag: Option<String>,
    ) -> wasmtime::Result<Result<Vec<Resource<SocketHandle>>, String>> {
        Ok(Err(unsupported("websockets")))
    }

    fn set_auto_response(
        &mut self,
        _pair: Option<AutoResponse>,
    ) -> wasmtime::Result<Result<(), String>> {
        Ok(Err(unsupported("websockets")))
    }

    fn get_auto_response(&mut self) -> wasmtime::Result<Option<AutoResponse>> {
        Ok(None)
    }
}
