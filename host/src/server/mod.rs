//! The HTTP front end (hyper, HTTP/1.1 with keep-alive): admission, routing,
//! body limits, and the mapping of every error to one status and a message a
//! user can act on.
//!
//! Routes:
//! - `ANY /obj/<class>/<name>/<path…>`     → `fetch` of the object named `<name>`
//! - `ANY /obj/<class>/id/<hex>/<path…>`   → `fetch` of the object with that id
//! - `GET  /rpc/<class>`                    → the class's RPC methods
//! - `POST /rpc/<class>/<name>/<method>`     → call (body: JSON array or object of arguments)
//! - `POST /rpc/<class>/id/<hex>/<method>`
//! - `GET /_dohost/health`, `/_dohost/metrics`, `/_dohost/alarms` (admin: a
//!   bearer token when one is configured)
//!
//! Admission: at most `max_connections` client connections (beyond, a quick
//! 503 from the descriptor reserve); at most `limits.max_inflight_bytes` of
//! request bodies held at once (beyond, 503). Both come with `Retry-After`.

// A route step that fails has an HTTP response ready: that is its natural error.
#![allow(clippy::result_large_err)]

mod admission;
mod entry;
mod objects;
mod responses;
pub mod routes;

pub use admission::Admission;
pub use responses::{error_response, event_error_response};

use crate::runtime::Runtime;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use responses::{json_response, text_response};
use routes::Route;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

type HttpResponse = hyper::Response<Full<Bytes>>;

/// A client that sends no complete header within this time is disconnected,
/// and a body must arrive within it too (slowloris).
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(30);
use crate::config::limits::MAX_HEADERS;
/// Header lines the HTTP parser takes before it refuses a request itself (a
/// bare 431 without a body): room to answer up to here with the JSON error.
const PARSER_MAX_HEADERS: usize = 1_000;

/// What every request handler shares.
struct Front {
    runtime: Arc<Runtime>,
    admission: Admission,
    surface: Surface,
}

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Objects and the admin surface (no `admin_listen`).
    All,
    /// Objects only; the admin surface is on the other listener.
    Objects { admin: SocketAddr },
    /// The admin surface only (`admin_listen`); objects are on the other.
    Admin { objects: SocketAddr },
}

impl Surface {
    /// The answer to a route this listener does not serve, if it is one.
    fn refuse(&self, admin_route: bool) -> Option<HttpResponse> {
        match (self, admin_route) {
            (Surface::Objects { admin }, true) => Some(error_response(
                StatusCode::NOT_FOUND,
                format!("the admin surface is served on {admin} (admin_listen), not here"),
            )),
            (Surface::Admin { objects }, false) => Some(error_response(
                StatusCode::NOT_FOUND,
                format!(
                    "this is the admin listener (admin_listen): objects are served on {objects}"
                ),
            )),
            _ => None,
        }
    }
}

/// Serves HTTP on `listener` until `shutdown` completes, then lets in-flight
/// requests finish. `max_connections` caps open client connections; `surface`
/// says which routes this listener serves.
pub async fn serve(
    runtime: Arc<Runtime>,
    listener: TcpListener,
    max_connections: usize,
    surface: Surface,
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
    let front = Arc::new(Front {
        admission: Admission::new(max_connections, runtime.config.limits.max_inflight_bytes),
        runtime,
        surface,
    });
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
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
        let Some(permit) = front.admission.connection() else {
            tokio::spawn(admission::refuse(stream));
            continue;
        };
        let front = front.clone();
        let service = hyper::service::service_fn(move |req| {
            let (front, permit) = (front.clone(), permit.clone());
            async move { Ok::<_, std::convert::Infallible>(route(&front, req, permit, peer).await) }
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
    // Refuse new connections at once (the kernel would otherwise queue them
    // on the listener while the drain runs).
    drop(listener);
    let _ = stop.send(true);
    drop(done);
    // In-flight requests finish (each is bounded by limits.cpu_per_event).
    let _ = done_rx.recv().await;
}

async fn route(
    front: &Front,
    req: hyper::Request<Incoming>,
    connection: admission::ConnectionPermit,
    peer: SocketAddr,
) -> HttpResponse {
    let runtime = &front.runtime;
    if req.headers().len() > MAX_HEADERS {
        return error_response(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "{} request headers: at most {MAX_HEADERS} are accepted",
                req.headers().len()
            ),
        );
    }
    let parsed = routes::parse(req.uri().path());
    let expose = runtime
        .config
        .entry
        .as_ref()
        .is_some_and(|e| e.expose_objects);
    // The host's own routes: the admin surface always, the object routes
    // unless an entry takes them. Everything else is the application's.
    let host_route = match &parsed {
        Ok(route) => route.is_admin() || runtime.entry.is_none() || expose,
        Err(_) => req.uri().path().starts_with("/_dohost/"),
    };
    // Static assets answer first, but never in place of a host route.
    if let Some(assets) = &runtime.assets {
        if !host_route && front.surface.refuse(false).is_none() {
            let (method, path) = (req.method(), req.uri().path());
            if let Some(res) = assets.serve(method, path, req.headers()).await {
                return res.map(Full::new);
            }
        }
    }
    // With an entry, it answers everything but the admin surface (and, with
    // `expose_objects`, the object routes).
    if let Some(entry) = &runtime.entry {
        if !host_route {
            if let Some(refused) = front.surface.refuse(false) {
                return refused;
            }
            return entry::entry_route(front, entry, req, peer, connection).await;
        }
    }
    let route = match parsed {
        Ok(route) => route,
        Err(e) => {
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::NOT_FOUND);
            return error_response(status, e.message);
        }
    };
    if let Some(refused) = front.surface.refuse(route.is_admin()) {
        return refused;
    }
    if route.is_admin() {
        if let Err(res) = admission::check_admin(runtime, &req) {
            return res;
        }
    }
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
        } => match objects::known_class(runtime, &class) {
            Ok(class) => objects::object_route(front, req, class, target, path, connection).await,
            Err(res) => res,
        },
        Route::RpcDescribe { class } => match objects::known_class(runtime, &class) {
            Ok(c) => json_response(StatusCode::OK, &c.rpc.describe(&class)),
            Err(res) => res,
        },
        Route::RpcCall {
            class,
            target,
            method,
        } => match objects::known_class(runtime, &class) {
            Ok(_) => objects::rpc_route(front, req, &class, target, &method).await,
            Err(res) => res,
        },
    }
}
