//! Requests for the entry worker: the body read under the same limits as an
//! object's, the client's address added (`CF-Connecting-IP`,
//! `X-Forwarded-For`), and every failure mapped to its status.

use super::admission::ConnectionPermit;
use super::objects::{header_pairs, read_body, switching_protocols, websocket_key};
use super::responses::guest_response;
use super::{error_response, Front, HttpResponse};
use crate::bindings::dohost::object::types::Response;
use crate::capabilities::namespaces::EntryUpgrade;
use crate::capabilities::sockets::{PendingConnection, UpgradeOffer};
use crate::entry::{Entry, EntryBody};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::StatusCode;
use std::net::SocketAddr;

const CF_CONNECTING_IP: HeaderName = HeaderName::from_static("cf-connecting-ip");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Serves `req` from the entry. A WebSocket upgrade request's connection is
/// offered to the objects the entry forwards it to (`stub.fetch(request)`);
/// once one accepts, the client gets its 101 and the object the socket.
pub(super) async fn entry_route(
    front: &Front,
    entry: &Entry,
    mut req: hyper::Request<Incoming>,
    peer: SocketAddr,
    connection: ConnectionPermit,
) -> HttpResponse {
    let ws_key = match websocket_key(&req) {
        Ok(key) => key,
        Err(res) => return res,
    };
    let upgrade = ws_key.as_ref().map(|_| EntryUpgrade {
        handshake: handshake_headers(req.headers()),
        offer: UpgradeOffer::new(PendingConnection::new(
            hyper::upgrade::on(&mut req),
            Box::new(connection),
        )),
    });
    let offer = upgrade.as_ref().map(|u| u.offer.clone());
    let response = entry_response(front, entry, req, peer, upgrade).await;
    let Some((offer, ws_key)) = offer.zip(ws_key) else {
        return response;
    };
    // An object took the connection: the client gets the 101 (with the
    // object's headers), whatever the entry made of the stub's answer.
    match offer.accepted() {
        Some(headers) => switching_protocols(
            guest_response(
                Response {
                    status: 101,
                    headers,
                    body: Vec::new(),
                },
                &hyper::Method::GET,
            ),
            &ws_key,
        ),
        None => {
            offer.withdraw();
            response
        }
    }
}

/// The headers of a WebSocket handshake, to restore on forwarded requests.
fn handshake_headers(headers: &hyper::HeaderMap) -> Vec<(String, String)> {
    header_pairs(headers)
        .into_iter()
        .filter(|(name, _)| {
            name == "upgrade" || name == "connection" || name.starts_with("sec-websocket-")
        })
        .collect()
}

async fn entry_response(
    front: &Front,
    entry: &Entry,
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
    upgrade: Option<EntryUpgrade>,
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
    match entry
        .handle(hyper::Request::from_parts(parts, body), upgrade)
        .await
    {
        Ok(response) => response,
        Err(e) => {
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error_response(status, e.to_string())
        }
    }
}
