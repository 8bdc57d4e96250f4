//! A small closed-loop HTTP load driver: N keep-alive connections, each sending
//! its next request as soon as the previous reply arrives.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Latencies and errors of one scenario.
pub struct Summary {
    pub latencies: Vec<Duration>,
    pub errors: u64,
    pub elapsed: Duration,
}

impl Summary {
    pub fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p / 100.0).round() as usize;
        self.latencies[i]
    }
}

/// Runs `connections` loops for `duration`; `request(conn, i)` gives the method,
/// path and body of the i-th request of connection `conn`.
pub async fn run_load<F>(addr: &str, connections: usize, duration: Duration, request: F) -> Summary
where
    F: Fn(usize, usize) -> (&'static str, String, Option<&'static str>)
        + Send
        + Sync
        + Clone
        + 'static,
{
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for conn in 0..connections {
        let addr = addr.to_string();
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let stream = TcpStream::connect(&addr).await.expect("connect");
            stream.set_nodelay(true).ok();
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .expect("handshake");
            tokio::spawn(connection);
            let mut i = 0;
            while Instant::now() < deadline {
                let (method, path, body) = request(conn, i);
                i += 1;
                let req = hyper::Request::builder()
                    .method(method)
                    .uri(path)
                    .header("host", &addr)
                    .body(Full::new(Bytes::from_static(body.unwrap_or("").as_bytes())))
                    .expect("request");
                let sent = Instant::now();
                match sender.send_request(req).await {
                    Ok(res) => {
                        let ok = res.status().is_success();
                        let _ = res.into_body().collect().await;
                        if ok {
                            latencies.push(sent.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut summary = Summary {
        latencies: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        let (l, e) = t.await.expect("load task");
        summary.latencies.extend(l);
        summary.errors += e;
    }
    summary.elapsed = started.elapsed();
    summary.latencies.sort();
    summary
}
