//! Outbound HTTP from an entry (`wasi:http/outgoing-handler`, `fetch()` in
//! JavaScript): only to the hosts of the policy (`[entry] allow`; default:
//! nowhere), with timeouts and a cap on the response body, over rustls with
//! the webpki roots for HTTPS (wasmtime-wasi-http's client).

use http_body_util::BodyExt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::{
    default_send_request, Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks,
};

/// Where an entry may send requests, and how long and how much it may take.
#[derive(Debug, Clone)]
pub struct EgressPolicy {
    /// `host:port` or `host` (any port), lowercase; `*` allows everything.
    pub allow: Vec<String>,
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub between_bytes_timeout: Duration,
    pub max_response_bytes: usize,
}

impl EgressPolicy {
    /// Nowhere: the default.
    pub fn deny_all() -> EgressPolicy {
        EgressPolicy::allowing(Vec::new())
    }

    pub fn allowing(allow: Vec<String>) -> EgressPolicy {
        EgressPolicy {
            allow: allow.into_iter().map(|a| a.to_ascii_lowercase()).collect(),
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(30),
            between_bytes_timeout: Duration::from_secs(30),
            max_response_bytes: 16 * 1024 * 1024,
        }
    }

    /// True if a request to `host:port` may leave.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        let with_port = format!("{host}:{port}");
        self.allow
            .iter()
            .any(|a| a == "*" || *a == host || *a == with_port)
    }
}

/// The hooks of one entry instance.
pub struct EgressHooks {
    pub policy: Arc<EgressPolicy>,
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
        let policy = self.policy.clone();
        Box::new(async move {
            let uri = request.uri();
            let host = uri.host().ok_or(HttpError::HttpRequestUriInvalid)?;
            let https = uri.scheme_str() == Some("https");
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            if !policy.allows(host, port) {
                tracing::warn!(
                    "egress denied: the entry sent a request to {host}:{port}, which is not in \
                     [entry] allow ({})",
                    if policy.allow.is_empty() {
                        "empty: nothing may leave".to_string()
                    } else {
                        policy.allow.join(", ")
                    }
                );
                return Err(HttpError::HttpRequestDenied);
            }
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
            let (response, io) = default_send_request(request, Some(options)).await?;
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
        let p = EgressPolicy::allowing(vec!["API.example.com:443".into(), "127.0.0.1".into()]);
        assert!(p.allows("api.example.com", 443));
        assert!(!p.allows("api.example.com", 80));
        assert!(p.allows("127.0.0.1", 8080));
        assert!(!p.allows("example.com", 443));
        assert!(!EgressPolicy::deny_all().allows("127.0.0.1", 80));
        assert!(EgressPolicy::allowing(vec!["*".into()]).allows("anything", 1));
    }
}
