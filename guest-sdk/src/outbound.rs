//! Outbound HTTP: [`fetch`] sends a [`Request`] with an absolute URL to an
//! outside service over `wasi:http` and returns its [`Response`].
//!
//! The host lets it out only to the hosts of the class's `allow` list, and
//! only after the writes before it are durable (the output gate: the event
//! is atomic up to the send; see the README). Errors are
//! [`ErrorKind::Other`](crate::ErrorKind) with wasi:http's reason
//! (`HttpRequestDenied` for a host the policy does not allow).

use crate::{Error, Request, Response, Result};

#[allow(missing_docs, clippy::all)]
mod wasi_http {
    wit_bindgen::generate!({
        path: "wit",
        world: "dohost:sdk/http-client",
        generate_all,
    });
}

use wasi_http::wasi::http::outgoing_handler;
use wasi_http::wasi::http::types::{
    Fields, IncomingBody, Method as WasiMethod, OutgoingBody, OutgoingRequest, Scheme,
};
use wasi_http::wasi::io::streams::StreamError;

/// The largest response body [`fetch`] reads (the host caps it at 16 MiB too).
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Sends `request` (its URL absolute: `https://api.example.com/v1/x?y=1`)
/// and waits for the whole response.
pub fn fetch(request: Request) -> Result<Response> {
    let fail = |what: &str, detail: String| Error::new(format!("fetch {what}: {detail}"));
    let (scheme, authority, path) = split_url(request.url())
        .ok_or_else(|| fail("needs an absolute http(s) URL", request.url().to_string()))?;
    let mut pairs: Vec<(String, Vec<u8>)> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    // The body is whole: say its length (no chunked encoding).
    if !request.body().is_empty() && !pairs.iter().any(|(k, _)| k == "content-length") {
        let length = request.body().len().to_string().into_bytes();
        pairs.push(("content-length".into(), length));
    }
    let headers = Fields::from_list(&pairs)
        .map_err(|e| fail("cannot send these headers", format!("{e:?}")))?;
    let outgoing = OutgoingRequest::new(headers);
    let method = wasi_method(request.method());
    let set = outgoing.set_method(&method).is_ok()
        && outgoing.set_scheme(Some(&scheme)).is_ok()
        && outgoing.set_authority(Some(authority)).is_ok()
        && outgoing.set_path_with_query(Some(path)).is_ok();
    if !set {
        return Err(fail(
            "got an invalid method or URL",
            request.url().to_string(),
        ));
    }
    let body = outgoing
        .body()
        .map_err(|()| fail("has no body", String::new()))?;
    write_body(&body, request.body()).map_err(|e| fail("could not send its body", e))?;
    OutgoingBody::finish(body, None)
        .map_err(|e| fail("could not finish its body", format!("{e:?}")))?;
    let pending = outgoing_handler::handle(outgoing, None)
        .map_err(|e| fail("was refused", format!("{e:?}")))?;
    let response = loop {
        match pending.get() {
            Some(Ok(Ok(response))) => break response,
            Some(Ok(Err(code))) => return Err(fail("failed", format!("{code:?}"))),
            Some(Err(())) => return Err(fail("failed", "the response was taken".into())),
            None => pending.subscribe().block(),
        }
    };
    let status = response.status();
    let headers: Vec<(String, String)> = response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let incoming = response
        .consume()
        .map_err(|()| fail("has no response body", String::new()))?;
    let body = read_body(&incoming).map_err(|e| fail("could not read the response", e))?;
    IncomingBody::finish(incoming);
    Ok(Response::from_parts(status, headers, body))
}

/// `scheme://authority/path?query` → its parts (the path defaults to `/`).
fn split_url(url: &str) -> Option<(Scheme, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return None,
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], &rest[i..]),
        Some(_) => return None,
        None => (rest, "/"),
    };
    (!authority.is_empty()).then_some((scheme, authority, path))
}

fn wasi_method(method: &crate::Method) -> WasiMethod {
    use crate::Method;
    match method {
        Method::Get => WasiMethod::Get,
        Method::Head => WasiMethod::Head,
        Method::Post => WasiMethod::Post,
        Method::Put => WasiMethod::Put,
        Method::Patch => WasiMethod::Patch,
        Method::Delete => WasiMethod::Delete,
        Method::Options => WasiMethod::Options,
        Method::Other(m) => WasiMethod::Other(m.clone()),
    }
}

fn write_body(body: &OutgoingBody, bytes: &[u8]) -> std::result::Result<(), String> {
    if bytes.is_empty() {
        return Ok(());
    }
    let stream = body.write().map_err(|()| "no body stream".to_string())?;
    for chunk in bytes.chunks(4096) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|e| format!("{e:?}"))?;
    }
    Ok(())
}

fn read_body(body: &IncomingBody) -> std::result::Result<Vec<u8>, String> {
    let stream = body.stream().map_err(|()| "no body stream".to_string())?;
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                if out.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(format!(
                        "the body is larger than {MAX_RESPONSE_BYTES} bytes"
                    ));
                }
                out.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => return Ok(out),
            Err(e) => return Err(format!("{e:?}")),
        }
    }
}
