//! HTTP responses: the JSON error body, the status of every event error, and
//! the checked conversion of a guest's response.

use super::HttpResponse;
use crate::bindings::dohost::object::types::Response;
use crate::config::limits::{MAX_RESPONSE_HEADERS, RETRY_AFTER_SECS};
use crate::object::EventError;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, StatusCode};

/// A JSON error body `{"error": message}` with `status`; a 503 (overloaded:
/// retrying later may succeed) says when, with `Retry-After`.
pub fn error_response(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    let body = serde_json::json!({ "error": message.into() }).to_string();
    let mut res = hyper::Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        res.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            HeaderValue::from(RETRY_AFTER_SECS),
        );
    }
    res
}

pub fn text_response(status: StatusCode, content_type: &'static str, body: String) -> HttpResponse {
    let mut res = hyper::Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    res
}

/// The HTTP form of an event error (`dev`: with the guest's output).
pub fn event_error_response(err: &EventError, dev: bool) -> HttpResponse {
    let status = match err {
        EventError::Overloaded { .. }
        | EventError::OverloadedBytes { .. }
        | EventError::NoCapacity { .. }
        | EventError::BatchRolledBack { .. } => StatusCode::SERVICE_UNAVAILABLE,
        EventError::Quota { .. } => StatusCode::INSUFFICIENT_STORAGE,
        EventError::Guest { .. }
        | EventError::Storage { .. }
        | EventError::Refused { .. }
        | EventError::Instantiate { .. }
        | EventError::Dropped { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error_response(status, err.public_message(dev))
}

pub fn json_response(status: StatusCode, value: &serde_json::Value) -> HttpResponse {
    text_response(status, "application/json", value.to_string())
}

/// Converts the guest's response, refusing what HTTP cannot carry.
pub fn guest_response(res: Response, method: &Method) -> HttpResponse {
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
    if res.headers.len() > MAX_RESPONSE_HEADERS {
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "the object returned {} headers (at most {MAX_RESPONSE_HEADERS})",
                res.headers.len()
            ),
        );
    }
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
