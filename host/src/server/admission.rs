//! What the front end lets in: client connections (each holds a permit for
//! its life — a WebSocket's too, handed to the socket), request bodies (bytes
//! in flight in the whole host), and the admin surface (a bearer token when
//! `DOHOST_ADMIN_TOKEN` is set). Everything refused gets a precise answer
//! with `Retry-After` where waiting helps.

use super::{error_response, HttpResponse};
use crate::config::limits::RETRY_AFTER_SECS;
use crate::runtime::Runtime;
use hyper::header::HeaderValue;
use hyper::StatusCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Request bodies are counted in units of this many bytes.
const UNIT: usize = 1024;

/// A client connection's place; cloned into its requests and its WebSocket.
pub type ConnectionPermit = Arc<OwnedSemaphorePermit>;

/// Bytes of one request held in memory.
pub struct BodyPermit(#[allow(dead_code)] OwnedSemaphorePermit);

pub struct Admission {
    connections: Arc<Semaphore>,
    inflight: Arc<Semaphore>,
    inflight_limit: usize,
}

impl Admission {
    pub fn new(max_connections: usize, max_inflight_bytes: usize) -> Admission {
        let units = (max_inflight_bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS);
        Admission {
            connections: Arc::new(Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS))),
            inflight: Arc::new(Semaphore::new(units)),
            inflight_limit: max_inflight_bytes,
        }
    }

    /// A place for a new connection, if one is free.
    pub fn connection(&self) -> Option<ConnectionPermit> {
        self.connections
            .clone()
            .try_acquire_owned()
            .ok()
            .map(Arc::new)
    }

    /// Room for a body of `bytes`, or the 503 to answer.
    pub fn body(&self, bytes: usize) -> Result<BodyPermit, HttpResponse> {
        let units = u32::try_from(bytes.div_ceil(UNIT).max(1)).unwrap_or(u32::MAX);
        match self.inflight.clone().try_acquire_many_owned(units) {
            Ok(permit) => Ok(BodyPermit(permit)),
            Err(_) => Err(overloaded(format!(
                "overloaded: the host already holds {} bytes of requests in flight \
                 (limits.max_inflight_bytes); retry later",
                self.inflight_limit
            ))),
        }
    }
}

/// A 503 (with `Retry-After`, as every 503 of `error_response`).
pub fn overloaded(message: String) -> HttpResponse {
    error_response(StatusCode::SERVICE_UNAVAILABLE, message)
}

/// Answers a connection beyond `max_connections` with a 503 and closes it
/// (within a second: a refused client gets no more of the host's time).
pub async fn refuse(mut stream: tokio::net::TcpStream) {
    let body = serde_json::json!({
        "error": "overloaded: too many open connections (limits.max_connections); retry later"
    })
    .to_string();
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: {RETRY_AFTER_SECS}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(reply.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// The admin surface needs `Authorization: Bearer <token>` when a token is
/// configured (the health check stays open). A wrong or missing token gets
/// a 401 without detail.
pub fn check_admin<B>(runtime: &Runtime, req: &hyper::Request<B>) -> Result<(), HttpResponse> {
    let Some(token) = &runtime.config.admin_token else {
        return Ok(());
    };
    if req.uri().path() == "/_dohost/health" {
        return Ok(());
    }
    let given = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Compare in constant time: the token is a secret.
    let matches = given.is_some_and(|g| {
        g.len() == token.len()
            && g.bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if matches {
        Ok(())
    } else {
        let mut res = error_response(StatusCode::UNAUTHORIZED, "unauthorized");
        res.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        );
        Err(res)
    }
}
