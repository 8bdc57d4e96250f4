//! An object's `wasi:http`: wasmtime-wasi-http's client, with its
//! `outgoing-handler.handle` wrapped so that the output gate (`gate`) opens
//! before the request goes to the class's egress policy (`egress`).

use super::OutputGate;
use crate::capabilities::storage::ObjectDb;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi_http::p2::bindings::http::outgoing_handler::Host as _;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, RequestOptions};
use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, HostOutgoingRequest};
use wasmtime_wasi_http::WasiHttpView;

/// The interface whose `handle` is gated (wasmtime-wasi-http's version; a
/// guest's import of an older 0.2 version resolves to it).
const OUTGOING_HANDLER: &str = "wasi:http/outgoing-handler@0.2.12";

/// A store whose outbound requests pass the output gate.
pub trait ObjectHttpView: WasiHttpView {
    /// The gate and the database it commits.
    fn gate(&mut self) -> (&mut OutputGate, &mut ObjectDb);
}

type Handled = (Result<Resource<HostFutureIncomingResponse>, ErrorCode>,);

/// Links wasi:http (types and client), then replaces `handle` by the gated one.
pub fn add_to_linker<T: ObjectHttpView + 'static>(linker: &mut Linker<T>) -> anyhow::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
        .map_err(|e| anyhow::anyhow!("linking wasi:http: {e}"))?;
    linker.allow_shadowing(true);
    let defined = linker.instance(OUTGOING_HANDLER).and_then(|mut handler| {
        handler.func_wrap(
            "handle",
            |mut store: wasmtime::StoreContextMut<'_, T>,
             (request, options): (
                Resource<HostOutgoingRequest>,
                Option<Resource<RequestOptions>>,
            )|
             -> wasmtime::Result<Handled> {
                Ok((gated_handle(store.data_mut(), request, options)?,))
            },
        )
    });
    linker.allow_shadowing(false);
    defined.map_err(|e| anyhow::anyhow!("linking the gated {OUTGOING_HANDLER}: {e}"))?;
    Ok(())
}

/// Opens the gate (the writes so far become durable), then sends.
fn gated_handle<T: ObjectHttpView>(
    state: &mut T,
    request: Resource<HostOutgoingRequest>,
    options: Option<Resource<RequestOptions>>,
) -> wasmtime::Result<Result<Resource<HostFutureIncomingResponse>, ErrorCode>> {
    let (gate, db) = state.gate();
    if let Err(why) = gate.open(db) {
        tracing::warn!("outbound request refused at the output gate: {why}");
        let message = format!("the request cannot leave before the writes before it: {why}");
        // The request is the guest's to drop; it never left.
        return Ok(Err(ErrorCode::InternalError(Some(message))));
    }
    match state.http().handle(request, options) {
        Ok(response) => Ok(Ok(response)),
        Err(e) => e.downcast().map(Err),
    }
}
