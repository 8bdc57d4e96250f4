//! The HTTP front end (hyper, HTTP/1.1 with keep-alive): routing, body limits,
//! and the mapping of every error to one status and a message a user can act on.
//!
//! Routes:
//! - `ANY /obj/<class>/<name>/<path…>`     → `fetch` of the object named `<name>`
//! - `ANY /obj/<class>/id/<hex>/<path…>`   → `fetch` of the object with that id
//! - `GET  /rpc/<class>`                    → the class's RPC methods
//! - `POST /rpc/<class>/<name>/<method>`     → call (body: JSON array or object of arguments)
//! - `POST /rpc/<class>/id/<hex>/<method>`
//! - `GET /_dohost/health`, `GET /_dohost/metrics`

// A route step that fails has an HTTP response ready: that is its natural error.
#![allow(clippy::result_large_err)]

use crate::bindings::dohost::object::types::{Request, Response};
use crate::id::ObjectId;
use crate::limits::RETRY_AFTER_SECS;
use crate::object::{EventError, EventOutput};
use crate::registry::ObjectKey;
use crate::rpc;
use crate::runtime::{CallError, Runtime};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

type HttpResponse = hyper::Response<Full<Bytes>>;

/// A client that sends no complete header within this time is disconnected.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves HTTP on `listener` until `shutdown` completes, then lets in-flight
/// requests finish.
pub async fn serve(
    runtime: Arc<Runtime>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    // Connections watch `stop` to finish gracefully; each holds a `done`
    // sender, so `done_rx` ends when the last one has.
    let (stop, _) = tokio::sync::watch::channel(false);
    let (done, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let runtime = runtime.clone();
        let service = hyper::service::service_fn(move |req| {
            let runtime = runtime.clone();
            async move { Ok::<_, std::convert::Infallible>(route(&runtime, req).await) }
        });
        let conn = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut stopping = stop.subscribe();
        let done = done.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = stopping.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!("connection ended: {e}");
            }
            drop(done);
        });
    }
    let _ = stop.send(true);
    drop(done);
    // In-flight requests finish (each is bounded by limits.cpu_per_event).
    let _ = done_rx.recv().await;
}

/// A JSON error body `{"error": message}` with `status`.
pub fn error_response(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    let body = serde_json::json!({ "error": message.into() }).to_string();
    let mut res = hyper::Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

fn text_response(status: StatusCode, content_type: &'static str, body: String) -> HttpResponse {
    let mut res = hyper::Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    res
}

/// The HTTP form of an event error.
pub fn event_error_response(err: &EventError) -> HttpResponse {
    let status = match err {
        EventError::Overloaded { .. } | EventError::NoCapacity { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        EventError::Guest { .. }
        | EventError::Storage { .. }
        | EventError::Instantiate { .. }
        | EventError::Dropped { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut res = error_response(status, err.to_string());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        res.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            HeaderValue::from(RETRY_AFTER_SECS),
        );
    }
    res
}

async fn route(runtime: &Arc<Runtime>, req: hyper::Request<Incoming>) -> HttpResponse {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').splitn(4, '/').collect();
    match segments.as_slice() {
        ["_dohost", "health"] => text_response(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into()),
                ["_dohost", "alarms"] => {
            let list: Vec<serde_json::Value> = runtime
                .alarms
                .list()
                .into_iter()
                .map(|(key, at)| serde_json::json!({"class": &*key.class, "id": key.id.to_string(), "at": at}))
                .collect();
            json_response(StatusCode::OK, &serde_json::Value::Array(list))
        }
        ["_dohost", "metrics"] => text_response(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
                        runtime.render_metrics(),
        ),
        ["obj", rest @ ..] => object_route(runtime, req, rest).await,
        ["rpc", ..] => rpc_route(runtime, req).await,
        _ => error_response(
            StatusCode::NOT_FOUND,
            format!(
                "no route for {path}; use /obj/<class>/<name>/<path>, /obj/<class>/id/<hex>/<path>, /rpc/<class>[/<name>/<method>], /_dohost/health or /_dohost/metrics"
            ),
        ),
    }
}

/// Decodes `%XX` escapes of a path segment.
fn percent_decode(segment: &str) -> Result<String, String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid percent-escape in {segment:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{segment:?} is not UTF-8 once decoded"))
}

/// The `Sec-WebSocket-Key` of a valid WebSocket upgrade request, `None` for an
/// ordinary request, or a 400 for a broken handshake.
fn websocket_key(req: &hyper::Request<Incoming>) -> Result<Option<String>, HttpResponse> {
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

async fn object_route(
    runtime: &Arc<Runtime>,
    mut req: hyper::Request<Incoming>,
    rest: &[&str],
) -> HttpResponse {
    // rest = [class, name, path…] or [class, "id", hex/path…] (split at most 3 times).
    let (class_name, target, tail) =
        match rest {
            [class, target, tail] => (*class, *target, Some(*tail)),
            [class, target] => (*class, *target, None),
            _ => return error_response(
                StatusCode::NOT_FOUND,
                "missing object: use /obj/<class>/<name>/<path> or /obj/<class>/id/<hex>/<path>",
            ),
        };
    let Some(class) = runtime.class(class_name) else {
        return error_response(
            StatusCode::NOT_FOUND,
            format!(
                "unknown class {class_name:?}; known classes: {}",
                runtime.class_names().join(", ")
            ),
        );
    };
    let (id, name, object_path) = if target == "id" {
        let tail = tail.unwrap_or("");
        let (hex, path) = tail.split_once('/').unwrap_or((tail, ""));
        match ObjectId::parse(hex) {
            Ok(id) => (id, None, path.to_string()),
            Err(e) => return error_response(StatusCode::BAD_REQUEST, e.to_string()),
        }
    } else {
        let name = match percent_decode(target) {
            Ok(name) if !name.is_empty() => name,
            Ok(_) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "empty object name: use /obj/<class>/<name>/<path>",
                )
            }
            Err(e) => {
                return error_response(StatusCode::BAD_REQUEST, format!("bad object name: {e}"))
            }
        };
        (
            ObjectId::from_name(class_name, &name),
            Some(name),
            tail.unwrap_or("").to_string(),
        )
    };
    let ws_key = match websocket_key(&req) {
        Ok(key) => key,
        Err(res) => return res,
    };
    let url = match req.uri().query() {
        Some(q) => format!("/{object_path}?{q}"),
        None => format!("/{object_path}"),
    };
    let method = req.method().clone();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let on_upgrade = ws_key.as_ref().map(|_| hyper::upgrade::on(&mut req));
    let body = match read_body(runtime, req).await {
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
            Err(e) => event_error_response(&e),
        };
    };
    match runtime
        .fetch_upgrade(class, id, name.clone(), request)
        .await
    {
        Ok(EventOutput::Upgrade { response, socket }) => {
            let mut res = guest_response(response, &method);
            let headers = res.headers_mut();
            headers.insert(
                hyper::header::UPGRADE,
                HeaderValue::from_static("websocket"),
            );
            headers.insert(
                hyper::header::CONNECTION,
                HeaderValue::from_static("Upgrade"),
            );
            let accept =
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(ws_key.as_bytes());
            if let Ok(accept) = HeaderValue::from_str(&accept) {
                headers.insert(hyper::header::SEC_WEBSOCKET_ACCEPT, accept);
            }
            let key = ObjectKey {
                class: class.name.clone(),
                id,
            };
            tokio::spawn(crate::sockets::serve_socket(
                runtime.clone(),
                class.clone(),
                key,
                name,
                socket,
                on_upgrade,
            ));
            res
        }
        Ok(EventOutput::Response(response)) => guest_response(response, &method),
        Ok(other) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("unexpected answer {other:?}"),
        ),
        Err(e) => event_error_response(&e),
    }
}

/// Reads a request body up to `limits.max_body_bytes`.
async fn read_body(
    runtime: &Runtime,
    req: hyper::Request<Incoming>,
) -> Result<Bytes, HttpResponse> {
    let limit = runtime.config.limits.max_body_bytes;
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body larger than {limit} bytes (limits.max_body_bytes)"),
            ))
        }
        Err(e) => Err(error_response(
            StatusCode::BAD_REQUEST,
            format!("reading the request body failed: {e}"),
        )),
    }
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> HttpResponse {
    text_response(status, "application/json", value.to_string())
}

/// Resolves `<name>` or `id/<hex>` of a URL into an id (and the name).
fn resolve_object(
    class: &str,
    segments: &[&str],
) -> Result<(ObjectId, Option<String>), HttpResponse> {
    match segments {
        ["id", hex] => ObjectId::parse(hex)
            .map(|id| (id, None))
            .map_err(|e| error_response(StatusCode::BAD_REQUEST, e.to_string())),
        [name] => match percent_decode(name) {
            Ok(name) if !name.is_empty() => Ok((ObjectId::from_name(class, &name), Some(name))),
            Ok(_) => Err(error_response(StatusCode::BAD_REQUEST, "empty object name")),
            Err(e) => Err(error_response(
                StatusCode::BAD_REQUEST,
                format!("bad object name: {e}"),
            )),
        },
        _ => Err(error_response(
            StatusCode::NOT_FOUND,
            "use /rpc/<class>/<name>/<method> or /rpc/<class>/id/<hex>/<method>",
        )),
    }
}

/// `/rpc/<class>` (describe) and `/rpc/<class>/<name>|id/<hex>/<method>` (call).
async fn rpc_route(runtime: &Arc<Runtime>, req: hyper::Request<Incoming>) -> HttpResponse {
    let path = req.uri().path().trim_start_matches("/rpc/").to_string();
    let segments: Vec<&str> = path.split('/').collect();
    let class_name = segments[0];
    let Some(class) = runtime.class(class_name) else {
        return error_response(
            StatusCode::NOT_FOUND,
            format!(
                "unknown class {class_name:?}; known classes: {}",
                runtime.class_names().join(", ")
            ),
        );
    };
    if segments.len() == 1 || (segments.len() == 2 && segments[1].is_empty()) {
        return json_response(StatusCode::OK, &class.rpc.describe(class_name));
    }
    let Some((method, object)) = segments[1..].split_last() else {
        return error_response(StatusCode::NOT_FOUND, "missing method");
    };
    let (id, name) = match resolve_object(class_name, object) {
        Ok(found) => found,
        Err(res) => return res,
    };
    if req.method() != Method::POST {
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "call RPC methods with POST and a JSON array (or object) of arguments",
        );
    }
    let body = match read_body(runtime, req).await {
        Ok(body) => body,
        Err(res) => return res,
    };
    let args: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Array(Vec::new())
    } else {
        match serde_json::from_slice(&body) {
            Ok(args) => args,
            Err(e) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not JSON: {e}"),
                )
            }
        }
    };
    match runtime
        .call(class_name, id, name, method, &args, Default::default())
        .await
    {
        Ok((_, value)) => {
            let status = StatusCode::from_u16(rpc::result_status(&value)).unwrap_or(StatusCode::OK);
            let json = match &value {
                // A result is unwrapped: ok → 200 with the value, err → 422 {"error": value}.
                Some(wasmtime::component::Val::Result(Ok(v))) => v
                    .as_ref()
                    .map_or(serde_json::Value::Null, |v| rpc::json::encode(v)),
                Some(wasmtime::component::Val::Result(Err(e))) => {
                    serde_json::json!({ "error": e.as_ref().map_or(serde_json::Value::Null, |v| rpc::json::encode(v)) })
                }
                Some(v) => rpc::json::encode(v),
                None => serde_json::Value::Null,
            };
            json_response(status, &json)
        }
        Err(CallError::UnknownClass { .. }) => unreachable!("the class was found above"),
        Err(e @ CallError::UnknownMethod { .. }) => {
            error_response(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(e @ CallError::BadArguments(_)) => {
            error_response(StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(CallError::Event(e)) => event_error_response(&e),
    }
}

/// Converts the guest's response, refusing what HTTP cannot carry.
fn guest_response(res: Response, method: &Method) -> HttpResponse {
    let Ok(status) = StatusCode::from_u16(res.status) else {
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the object returned an invalid HTTP status {}", res.status),
        );
    };
    let body = if method == Method::HEAD || status == StatusCode::SWITCHING_PROTOCOLS {
        Vec::new()
    } else {
        res.body
    };
    let mut out = hyper::Response::new(Full::new(Bytes::from(body)));
    *out.status_mut() = status;
    for (name, value) in res.headers {
        match (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            (Ok(n), Ok(v)) => {
                out.headers_mut().append(n, v);
            }
            _ => {
                return error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the object returned an invalid header {name:?}"),
                )
            }
        }
    }
    out
}
