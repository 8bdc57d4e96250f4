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

mod responses;
pub mod routes;

pub use responses::{error_response, event_error_response};

use crate::bindings::dohost::object::types::Request;
use crate::engine::ClassRuntime;
use crate::object::EventOutput;
use crate::registry::ObjectKey;
use crate::rpc;
use crate::runtime::{CallError, Runtime};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use responses::{guest_response, json_response, text_response};
use routes::{Route, Target};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

type HttpResponse = hyper::Response<Full<Bytes>>;

/// A client that sends no complete header within this time is disconnected,
/// and a body must arrive within it too (slowloris).
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Headers per request (more → 431 with the JSON error).
const MAX_HEADERS: usize = 100;
/// Header lines the HTTP parser takes before it refuses a request itself (a
/// bare 431 without a body): room to answer up to here with the JSON error.
const PARSER_MAX_HEADERS: usize = 1_000;

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
        .header_read_timeout(
            runtime
                .config
                .limits
                .request_read_timeout
                .unwrap_or(REQUEST_READ_TIMEOUT),
        )
        .max_headers(PARSER_MAX_HEADERS)
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

async fn route(runtime: &Arc<Runtime>, req: hyper::Request<Incoming>) -> HttpResponse {
    if req.headers().len() > MAX_HEADERS {
        return error_response(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "{} request headers: at most {MAX_HEADERS} are accepted",
                req.headers().len()
            ),
        );
    }
    let route = match routes::parse(req.uri().path()) {
        Ok(route) => route,
        Err(e) => {
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::NOT_FOUND);
            return error_response(status, e.message);
        }
    };
    match route {
        Route::Health => text_response(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into()),
        Route::Metrics => text_response(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            runtime.render_metrics(),
        ),
        Route::Alarms => {
            let list: Vec<serde_json::Value> = runtime
                .alarms
                .list()
                .into_iter()
                .map(|(key, at)| serde_json::json!({"class": &*key.class, "id": key.id.to_string(), "at": at}))
                .collect();
            json_response(StatusCode::OK, &serde_json::Value::Array(list))
        }
        Route::Object {
            class,
            target,
            path,
        } => match known_class(runtime, &class) {
            Ok(class) => object_route(runtime, req, class, target, path).await,
            Err(res) => res,
        },
        Route::RpcDescribe { class } => match known_class(runtime, &class) {
            Ok(c) => json_response(StatusCode::OK, &c.rpc.describe(&class)),
            Err(res) => res,
        },
        Route::RpcCall {
            class,
            target,
            method,
        } => match known_class(runtime, &class) {
            Ok(_) => rpc_route(runtime, req, &class, target, &method).await,
            Err(res) => res,
        },
    }
}

fn known_class<'r>(
    runtime: &'r Runtime,
    class: &str,
) -> Result<&'r Arc<ClassRuntime>, HttpResponse> {
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
    class: &Arc<ClassRuntime>,
    target: Target,
    object_path: String,
) -> HttpResponse {
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
    let timeout = runtime
        .config
        .limits
        .request_read_timeout
        .unwrap_or(REQUEST_READ_TIMEOUT);
    let collected =
        tokio::time::timeout(timeout, Limited::new(req.into_body(), limit).collect()).await;
    let Ok(collected) = collected else {
        return Err(error_response(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request body did not arrive within {timeout:?}"),
        ));
    };
    match collected {
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

/// `POST /rpc/<class>/<name>|id/<hex>/<method>`.
async fn rpc_route(
    runtime: &Arc<Runtime>,
    req: hyper::Request<Incoming>,
    class_name: &str,
    target: Target,
    method: &str,
) -> HttpResponse {
    let (id, name) = target.resolve(class_name);
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
        Err(e @ CallError::UnknownClass { .. }) => {
            error_response(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(e @ CallError::UnknownMethod { .. }) => {
            error_response(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(e @ CallError::BadArguments(_)) => {
            error_response(StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(CallError::Event(e)) => event_error_response(&e),
    }
}
