//! The direct routes to objects: `fetch` (with WebSocket upgrades) and RPC.

use super::admission::{BodyPermit, ConnectionPermit};
use super::responses::{guest_response, json_response};
use super::routes::ObjectAddress;
use super::{error_response, event_error_response, Front, HttpResponse, REQUEST_READ_TIMEOUT};
use crate::bindings::dohost::object::types::Request;
use crate::capabilities::sockets::{PendingConnection, UpgradeOffer};
use crate::config::limits::{MAX_RPC_ARGS_BYTES, MAX_RPC_RESULT_BYTES};
use crate::guest::engine::LoadedClass;
use crate::object::EventOutput;
use crate::rpc;
use crate::runtime::{CallError, RpcValue, Runtime};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, StatusCode};
use std::sync::Arc;

pub(super) fn known_class<'r>(
    runtime: &'r Runtime,
    class: &str,
) -> Result<&'r Arc<LoadedClass>, HttpResponse> {
    runtime.class(class).ok_or_else(|| {
        error_response(
            StatusCode::NOT_FOUND,
            format!(
                "unknown class {class:?}; known classes: {}",
                runtime.class_names().join(", ")
            ),
        )
    })
}

/// The `Sec-WebSocket-Key` of a valid WebSocket upgrade request, `None` for an
/// ordinary request, or a 400 for a broken handshake.
pub(super) fn websocket_key(
    req: &hyper::Request<Incoming>,
) -> Result<Option<String>, HttpResponse> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let wants = header("upgrade").is_some_and(|v| {
        v.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
    });
    if !wants {
        return Ok(None);
    }
    let bad = |why: &str| {
        Err(error_response(
            StatusCode::BAD_REQUEST,
            format!("invalid WebSocket handshake: {why}"),
        ))
    };
    if req.method() != Method::GET {
        return bad("the method must be GET");
    }
    if !header("connection").is_some_and(|v| {
        v.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    }) {
        return bad("the Connection header must contain Upgrade");
    }
    if header("sec-websocket-version") != Some("13") {
        return bad("Sec-WebSocket-Version must be 13");
    }
    match header("sec-websocket-key") {
        Some(key) if !key.is_empty() => Ok(Some(key.to_string())),
        _ => bad("Sec-WebSocket-Key is missing"),
    }
}

pub(super) async fn object_route(
    front: &Front,
    mut req: hyper::Request<Incoming>,
    class: &Arc<LoadedClass>,
    target: ObjectAddress,
    object_path: String,
    connection: ConnectionPermit,
) -> HttpResponse {
    let runtime = &front.runtime;
    let (id, name) = target.resolve(&class.name);
    let ws_key = match websocket_key(&req) {
        Ok(key) => key,
        Err(res) => return res,
    };
    let url = match req.uri().query() {
        Some(q) => format!("{object_path}?{q}"),
        None => object_path,
    };
    let method = req.method().clone();
    let headers = header_pairs(req.headers());
    let on_upgrade = ws_key.as_ref().map(|_| hyper::upgrade::on(&mut req));
    let limit = runtime.config.limits.max_body_bytes;
    let (body, _held) =
        match read_body(front, req.into_body(), limit, "limits.max_body_bytes").await {
            Ok(body) => body,
            Err(res) => return res,
        };
    let request = Request {
        method: method.as_str().to_string(),
        url,
        headers,
        body: body.to_vec(),
    };
    let (Some(ws_key), Some(on_upgrade)) = (ws_key, on_upgrade) else {
        return match runtime
            .fetch(class, id, name, request, Default::default())
            .await
        {
            Ok(response) => guest_response(response, &method),
            Err(e) => event_error_response(&e, runtime.config.dev),
        };
    };
    // The object serves the connection once its accept commits, even if
    // this request goes away first; the socket then holds the connection's
    // place among `max_connections`.
    let offer = UpgradeOffer::new(PendingConnection::new(on_upgrade, Box::new(connection)));
    match runtime
        .fetch_upgrade(class, id, name, request, offer, Default::default())
        .await
    {
        Ok(EventOutput::Upgrade { response, .. }) => {
            switching_protocols(guest_response(response, &method), &ws_key)
        }
        Ok(EventOutput::Response(response)) => guest_response(response, &method),
        Ok(other) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("unexpected answer {other:?}"),
        ),
        Err(e) => event_error_response(&e, runtime.config.dev),
    }
}

/// The request's headers as (name, value) pairs for the guest.
pub(super) fn header_pairs(headers: &hyper::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// The guest's 101 with the WebSocket handshake headers for `ws_key`.
pub(super) fn switching_protocols(mut res: HttpResponse, ws_key: &str) -> HttpResponse {
    let headers = res.headers_mut();
    headers.insert(
        hyper::header::UPGRADE,
        HeaderValue::from_static("websocket"),
    );
    headers.insert(
        hyper::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(ws_key.as_bytes());
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(hyper::header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    res
}

/// Reads a request body of at most `limit` bytes (named by `key` in the
/// error), holding its bytes against `limits.max_inflight_bytes` until the
/// returned permit drops. A declared length over the limit is refused before
/// anything is read.
pub(super) async fn read_body(
    front: &Front,
    body: Incoming,
    limit: usize,
    key: &str,
) -> Result<(Bytes, BodyPermit), HttpResponse> {
    let too_large = || {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {limit} bytes ({key})"),
        )
    };
    // The declared length (or none at all); a chunked body may be as large
    // as the limit.
    let declared = hyper::body::Body::size_hint(&body).exact();
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    // Hold what the body will take.
    let held = front
        .admission
        .body(declared.map_or(limit, |n| n as usize))?;
    let timeout = front
        .runtime
        .config
        .limits
        .request_read_timeout
        .unwrap_or(REQUEST_READ_TIMEOUT);
    let collected = tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await;
    let Ok(collected) = collected else {
        return Err(error_response(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request body did not arrive within {timeout:?}"),
        ));
    };
    match collected {
        Ok(body) => Ok((body.to_bytes(), held)),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Err(e) => Err(error_response(
            StatusCode::BAD_REQUEST,
            format!("reading the request body failed: {e}"),
        )),
    }
}

/// `POST /rpc/<class>/<name>|id/<hex>/<method>`.
pub(super) async fn rpc_route(
    front: &Front,
    req: hyper::Request<Incoming>,
    class_name: &str,
    target: ObjectAddress,
    method: &str,
) -> HttpResponse {
    let runtime = &front.runtime;
    let (id, name) = target.resolve(class_name);
    if req.method() != Method::POST {
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "call RPC methods with POST and a JSON array (or object) of arguments",
        );
    }
    let limit = MAX_RPC_ARGS_BYTES.min(runtime.config.limits.max_body_bytes);
    let (body, _held) =
        match read_body(front, req.into_body(), limit, "the RPC argument limit").await {
            Ok(body) => body,
            Err(res) => return res,
        };
    let args: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Array(Vec::new())
    } else {
        match rpc::json::parse_strict(&body) {
            Ok(args) => args,
            Err(e) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not valid JSON: {e}"),
                )
            }
        }
    };
    match runtime
        .call(class_name, id, name, method, &args, Default::default())
        .await
    {
        Ok(RpcValue::Typed(value)) => rpc_result(&value),
        Ok(RpcValue::Json(json)) => json_response(StatusCode::OK, &json),
        Err(e @ CallError::UnknownClass { .. }) => {
            error_response(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(e @ (CallError::UnknownMethod { .. } | CallError::NoPublicMethod(_))) => {
            error_response(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(e @ CallError::BadArguments(_)) => {
            error_response(StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(CallError::Event(e)) => event_error_response(&e, runtime.config.dev),
    }
}

/// The HTTP form of a method's result: a WIT `result` is unwrapped (ok →
/// 200 with the value, err → 422 `{"error": value}`); anything else is 200.
fn rpc_result(value: &Option<wasmtime::component::Val>) -> HttpResponse {
    use wasmtime::component::Val;
    let status = StatusCode::from_u16(rpc::result_status(value)).unwrap_or(StatusCode::OK);
    let encode = |v: &Option<Box<Val>>| match v {
        Some(v) => rpc::json::encode_bounded(v, MAX_RPC_RESULT_BYTES),
        None => Ok(serde_json::Value::Null),
    };
    let json = match value {
        Some(Val::Result(Ok(v))) => encode(v),
        Some(Val::Result(Err(e))) => encode(e).map(|e| serde_json::json!({ "error": e })),
        Some(v) => rpc::json::encode_bounded(v, MAX_RPC_RESULT_BYTES),
        None => Ok(serde_json::Value::Null),
    };
    match json {
        Ok(json) => json_response(status, &json),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}
