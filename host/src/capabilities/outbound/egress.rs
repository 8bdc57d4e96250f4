//! Where an entry or an object may send HTTP requests: only to the hosts of
//! its policy (`[entry] allow`, `[classes.X] allow`; default: nowhere), with
//! timeouts and a cap on the response body, over rustls with the webpki
//! roots for HTTPS (wasmtime-wasi-http's client). Every request is counted
//! by sender and allow-list entry (`dohost_outbound_requests_total`).

use crate::metrics::Metrics;
use http_body_util::BodyExt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::{
    default_send_request, Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks,
};

/// Where an entry or a class may send requests, and how long and how much
/// it may take.
#[derive(Debug, Clone)]
pub struct EgressPolicy {
    /// Who sends: "entry" or the class name (the metrics' `from`).
    pub from: String,
    /// The manifest key of the allow-list, named in denials
    /// (`[classes.Batcher] allow`).
    pub key: String,
    /// `host:port` or `host` (any port), lowercase; `*` allows everything.
    pub allow: Vec<String>,
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub between_bytes_timeout: Duration,
    pub max_response_bytes: usize,
}

impl EgressPolicy {
    /// The entry's policy (`[entry] allow`).
    pub fn for_entry(allow: Vec<String>) -> EgressPolicy {
        EgressPolicy::allowing("entry", "[entry] allow", allow)
    }

    /// A class's policy (`[classes.<class>] allow`).
    pub fn for_class(class: &str, allow: Vec<String>) -> EgressPolicy {
        EgressPolicy::allowing(class, &format!("[classes.{class}] allow"), allow)
    }

    fn allowing(from: &str, key: &str, allow: Vec<String>) -> EgressPolicy {
        EgressPolicy {
            from: from.to_string(),
            key: key.to_string(),
            allow: allow.into_iter().map(|a| a.to_ascii_lowercase()).collect(),
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(30),
            between_bytes_timeout: Duration::from_secs(30),
            max_response_bytes: 16 * 1024 * 1024,
        }
    }

    /// The allow-list entry that lets a request to `host:port` leave.
    pub fn allows(&self, host: &str, port: u16) -> Option<&str> {
        let host = host.to_ascii_lowercase();
        let with_port = format!("{host}:{port}");
        self.allow
            .iter()
            .find(|a| *a == "*" || **a == host || **a == with_port)
            .map(String::as_str)
    }
}

/// The hooks of one entry or object instance.
pub struct EgressHooks {
    pub policy: Arc<EgressPolicy>,
    pub metrics: Arc<Metrics>,
    /// `[assets]`: requests to `ASSETS_HOST` are answered from it, locally.
    pub assets: Option<Arc<crate::assets::Assets>>,
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(hyper::Response<WasiBody>, IoFuture), HttpError>> + Send>;

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: hyper::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> SendFuture {
        let for_assets = request.uri().host() == Some(crate::assets::ASSETS_HOST);
        if let Some(assets) = self.assets.clone().filter(|_| for_assets) {
            return Box::new(async move {
                let (parts, _) = request.into_parts();
                let res = assets
                    .fetch(&parts.method, parts.uri.path(), &parts.headers)
                    .await;
                let res = res.map(|b| {
                    http_body_util::Full::new(b)
                        .map_err(|never: std::convert::Infallible| match never {})
                        .boxed_unsync()
                });
                Ok((res, Box::new(async { Ok(()) }) as IoFuture))
            });
        }
        let policy = self.policy.clone();
        let metrics = self.metrics.clone();
        Box::new(async move {
            let uri = request.uri();
            let host = uri.host().ok_or(HttpError::HttpRequestUriInvalid)?;
            let https = uri.scheme_str() == Some("https");
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let Some(rule) = policy.allows(host, port).map(str::to_string) else {
                metrics.outbound(&policy.from, "", "denied");
                tracing::warn!(
                    "egress denied: {} sent a request to {host}:{port}, which is not in {} ({})",
                    if policy.from == "entry" {
                        "the entry".to_string()
                    } else {
                        format!("an object of class {}", policy.from)
                    },
                    policy.key,
                    if policy.allow.is_empty() {
                        "empty: nothing may leave".to_string()
                    } else {
                        policy.allow.join(", ")
                    }
                );
                return Err(HttpError::HttpRequestDenied);
            };
            let clamp = |asked: Option<Duration>, ours: Duration| {
                Some(asked.map_or(ours, |asked| asked.min(ours)))
            };
            let options = RequestOptions {
                connect_timeout: clamp(
                    options.and_then(|o| o.connect_timeout),
                    policy.connect_timeout,
                ),
                first_byte_timeout: clamp(
                    options.and_then(|o| o.first_byte_timeout),
                    policy.first_byte_timeout,
                ),
                between_bytes_timeout: clamp(
                    options.and_then(|o| o.between_bytes_timeout),
                    policy.between_bytes_timeout,
                ),
            };
            let sent = default_send_request(request, Some(options)).await;
            metrics.outbound(
                &policy.from,
                &rule,
                if sent.is_ok() { "ok" } else { "error" },
            );
            let (response, io) = sent?;
            let cap = policy.max_response_bytes;
            let declared = hyper::body::Body::size_hint(response.body()).exact();
            if declared.is_some_and(|n| n > cap as u64) {
                return Err(HttpError::HttpResponseBodySize(declared));
            }
            let response = response.map(|body| {
                http_body_util::Limited::new(body, cap)
                    .map_err(|e| match e.downcast::<HttpError>() {
                        Ok(inner) => *inner,
                        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                            HttpError::HttpResponseBodySize(None)
                        }
                        Err(e) => HttpError::InternalError(Some(e.to_string())),
                    })
                    .boxed_unsync()
            });
            Ok((response, Box::new(io) as IoFuture))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_matches_host_or_host_and_port() {
        let p = EgressPolicy::for_entry(vec!["API.example.com:443".into(), "127.0.0.1".into()]);
        assert_eq!(
            p.allows("api.example.com", 443),
            Some("api.example.com:443")
        );
        assert_eq!(p.allows("api.example.com", 80), None);
        assert_eq!(p.allows("127.0.0.1", 8080), Some("127.0.0.1"));
        assert_eq!(p.allows("example.com", 443), None);
        let nowhere = EgressPolicy::for_class("Batcher", Vec::new());
        assert_eq!(nowhere.allows("127.0.0.1", 80), None);
        assert_eq!(nowhere.key, "[classes.Batcher] allow");
        let anywhere = EgressPolicy::for_class("Batcher", vec!["*".into()]);
        assert_eq!(anywhere.allows("anything", 1), Some("*"));
    }
}
