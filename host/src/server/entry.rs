//! Requests for the entry worker: the body read under the same limits as an
//! object's, the client's address added (`CF-Connecting-IP`,
//! `X-Forwarded-For`), and every failure mapped to its status.

use super::objects::read_body;
use super::{error_response, Front, HttpResponse};
use crate::entry::{Entry, EntryBody};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::StatusCode;
use std::net::SocketAddr;

const CF_CONNECTING_IP: HeaderName = HeaderName::from_static("cf-connecting-ip");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Serves `req` from the entry.
pub(super) async fn entry_route(
    front: &Front,
    entry: &Entry,
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
) -> HttpResponse {
    let limit = front.runtime.config.limits.max_body_bytes;
    let (mut parts, body) = req.into_parts();
    let (body, _held) = match read_body(front, body, limit, "limits.max_body_bytes").await {
        Ok(body) => body,
        Err(res) => return res,
    };
    let ip = HeaderValue::from_str(&peer.ip().to_string()).expect("an IP is a header value");
    // The client's address as the host saw it: a client cannot forge it.
    parts.headers.insert(CF_CONNECTING_IP, ip.clone());
    let forwarded = match parts.headers.get(X_FORWARDED_FOR).map(HeaderValue::to_str) {
        Some(Ok(chain)) => HeaderValue::from_str(&format!("{chain}, {}", peer.ip())).unwrap_or(ip),
        _ => ip,
    };
    parts.headers.insert(X_FORWARDED_FOR, forwarded);
    if !parts.headers.contains_key(hyper::header::HOST) {
        let host = front.runtime.config.listen.to_string();
        parts.headers.insert(
            hyper::header::HOST,
            HeaderValue::from_str(&host).expect("an address is a header value"),
        );
    }
    let body: EntryBody = Full::new(body)
        .map_err(|never: std::convert::Infallible| match never {})
        .boxed_unsync();
    match entry.handle(hyper::Request::from_parts(parts, body)).await {
        Ok(response) => response,
        Err(e) => {
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error_response(status, e.to_string())
        }
    }
}
