//! `Request` and `Response`: the HTTP values of the `fetch` handler.

use crate::bindings::dohost::object::types as wit;
use crate::{Error, Result};
use serde::{de::DeserializeOwned, Serialize};

/// An HTTP method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`.
    Head,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
    /// `OPTIONS`.
    Options,
    /// Any other method, as sent.
    Other(String),
}

impl Method {
    fn parse(method: &str) -> Method {
        match method {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_string()),
        }
    }
}

/// An HTTP request addressed to this object. The URL is relative to the object:
/// `/obj/Counter/demo/increment?by=2` arrives as `/increment?by=2`.
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    pub(crate) fn from_wit(req: wit::Request) -> Self {
        Request {
            method: Method::parse(&req.method),
            url: req.url,
            headers: req.headers,
            body: req.body,
        }
    }

    /// A request built by hand, e.g. for [`crate::State::fetch_object`] or tests.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub(crate) fn into_wit(self) -> wit::Request {
        let method = match self.method {
            Method::Get => "GET".to_string(),
            Method::Head => "HEAD".to_string(),
            Method::Post => "POST".to_string(),
            Method::Put => "PUT".to_string(),
            Method::Patch => "PATCH".to_string(),
            Method::Delete => "DELETE".to_string(),
            Method::Options => "OPTIONS".to_string(),
            Method::Other(m) => m,
        };
        wit::Request {
            method,
            url: self.url,
            headers: self.headers,
            body: self.body,
        }
    }

    /// The HTTP method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Path and query, e.g. `/increment?by=2`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The path without the query, e.g. `/increment`.
    pub fn path(&self) -> &str {
        self.url.split_once('?').map_or(&self.url, |(p, _)| p)
    }

    /// Decoded query parameters in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        let Some((_, query)) = self.url.split_once('?') else {
            return Vec::new();
        };
        query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect()
    }

    /// The first value of a query parameter.
    pub fn query(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The first value of a query parameter parsed as `T`: `None` when it is
    /// absent, a 400 [`Error`] that names the parameter when it does not parse
    /// (`let by = req.query_as::<i64>("by")?.unwrap_or(1);`).
    pub fn query_as<T>(&self, name: &str) -> Result<Option<T>>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        let Some(raw) = self.query(name) else {
            return Ok(None);
        };
        raw.parse().map(Some).map_err(|e| {
            Error::bad_request(format!(
                "?{name} must be {}, got {raw:?} ({e})",
                describe_type::<T>()
            ))
        })
    }

    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All headers, in order, names as sent.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// True if this request asks for a WebSocket upgrade.
    pub fn is_web_socket_upgrade(&self) -> bool {
        self.header("upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
    }

    /// The raw body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Consumes the request and returns its raw body.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<String> {
        String::from_utf8(self.body.clone())
            .map_err(|_| Error::bad_request("request body is not valid UTF-8"))
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::bad_request(format!("request body is not the expected JSON: {e}")))
    }
}

/// How a query parameter of type `T` is described to a client.
fn describe_type<T>() -> String {
    let name = std::any::type_name::<T>();
    match name {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => format!("an integer ({name})"),
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => {
            format!("a non-negative integer ({name})")
        }
        "f32" | "f64" => "a number".to_string(),
        "bool" => "true or false".to_string(),
        _ => format!("a valid {}", name.rsplit("::").next().unwrap_or(name)),
    }
}

/// Decodes `%XX` escapes and `+` (as space) of a URL query component.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// 200 with a `text/plain` body.
    pub fn text(body: impl Into<String>) -> Self {
        Response {
            status: 200,
            headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
            body: body.into().into_bytes(),
        }
    }

    /// 200 with a JSON body.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        Ok(Response {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(value)?,
        })
    }

    /// 200 with raw bytes.
    pub fn bytes(body: impl Into<Vec<u8>>) -> Self {
        Response {
            status: 200,
            headers: vec![("content-type".into(), "application/octet-stream".into())],
            body: body.into(),
        }
    }

    /// A response with exactly these parts (e.g. what [`crate::outbound::fetch`] received).
    pub fn from_parts(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Self {
        Response {
            status,
            headers,
            body,
        }
    }

    /// An empty response with this status.
    pub fn empty(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// An error response with a plain-text message.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Response::text(message).with_status(status)
    }

    /// The 101 reply that completes a WebSocket upgrade accepted with
    /// [`crate::State::accept_web_socket`].
    pub fn web_socket_accepted() -> Self {
        Response::empty(101)
    }

    /// Sets the status code.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Adds a header (replacing `content-type` if that is the one given).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        if name.eq_ignore_ascii_case("content-type") {
            self.headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
        }
        self.headers.push((name, value.into()));
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// All headers, in order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The raw body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as UTF-8 text (lossy).
    pub fn text_body(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn into_wit(self) -> wit::Response {
        wit::Response {
            status: self.status,
            headers: self.headers,
            body: self.body,
        }
    }

    pub(crate) fn from_wit(res: wit::Response) -> Self {
        Response {
            status: res.status,
            headers: res.headers,
            body: res.body,
        }
    }
}
