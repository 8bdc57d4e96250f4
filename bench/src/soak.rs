//! `make soak`: mixed load for a while (HTTP, RPC between objects, WebSockets,
//! alarms), printing per-interval throughput, errors, p99 and host RSS, so a
//! leak or a slowdown shows as a trend.

use crate::mib;
use dohost_tests::ledger::Rng;
use dohost_tests::TestHost;
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

#[derive(Default)]
struct Window {
    latencies: Vec<Duration>,
    errors: u64,
    messages: u64,
}

pub async fn run() -> anyhow::Result<()> {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let report: u64 = std::env::var("SOAK_REPORT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let host = Arc::new(
        TestHost::start("[limits]\nhibernate_after = \"5s\"\nmax_active = 200\n[alarms]\nretry_base = \"200ms\"").await,
    );
    let window = Arc::new(Mutex::new(Window::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let record = |w: &Mutex<Window>, started: Instant, ok: bool| {
        let mut w = w.lock().unwrap();
        if ok {
            w.latencies.push(started.elapsed());
        } else {
            w.errors += 1;
        }
    };
    let mut tasks = Vec::new();
    // HTTP: counters and KV over many objects.
    for worker in 0..8u64 {
        let (host, window, stop) = (host.clone(), window.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(worker + 1);
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let ok = if rng.below(2) == 0 {
                    host.post(&format!("/obj/Counter/c{}/increment", rng.below(200)), "").await.status == 200
                } else {
                    let body = serde_json::json!({"op": "put", "key": format!("k{}", rng.below(100)), "value": rng.below(1000)});
                    host.post_json(&format!("/obj/TenantDb/t{}/kv", rng.below(50)), body).await.0 == 200
                };
                record(&window, started, ok);
            }
        }));
    }
    // RPC between objects.
    for worker in 0..2u64 {
        let (host, window, stop) = (host.clone(), window.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(100 + worker);
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let (status, _) = host
                    .rpc(
                        "Player",
                        &format!("p{}", rng.below(50)),
                        "add-score",
                        serde_json::json!([1]),
                    )
                    .await;
                record(&window, started, status == 200);
            }
        }));
    }
    // Alarms.
    {
        let (host, window, stop) = (host.clone(), window.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(7);
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let ok = host
                    .post(
                        &format!("/obj/Batcher/b{}/add?flush_ms=300", rng.below(20)),
                        "item",
                    )
                    .await
                    .status
                    == 200;
                record(&window, started, ok);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    // WebSockets: 5 rooms of 10; one sender per room.
    for room in 0..5 {
        let mut sockets = Vec::new();
        for u in 0..10 {
            let url = format!(
                "{}/obj/ChatRoom/soak{room}/ws?user=u{u}",
                host.url.replacen("http://", "ws://", 1)
            );
            sockets.push(tokio_tungstenite::connect_async(url).await?.0);
        }
        let mut sender = sockets.pop().expect("a socket");
        for mut ws in sockets {
            let (window, stop) = (window.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match tokio::time::timeout(Duration::from_secs(1), ws.next()).await {
                        Ok(Some(Ok(_))) => window.lock().unwrap().messages += 1,
                        Ok(_) => {
                            window.lock().unwrap().errors += 1;
                            return;
                        }
                        Err(_) => {}
                    }
                }
            }));
        }
        let (window, stop) = (window.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                if sender.send(Message::text(format!("m{i}"))).await.is_err() {
                    window.lock().unwrap().errors += 1;
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }

    let (rss_start, _) = host.rss();
    println!();
    println!("soak: {secs} s of mixed load (8 HTTP, 2 RPC, 1 alarm client, 50 sockets in 5 rooms); host RSS {:.1} MiB at start", mib(rss_start));
    println!(
        "| {:>6} | {:>10} | {:>8} | {:>10} | {:>8} | {:>9} |",
        "t (s)", "requests", "errors", "ws msgs", "p99 ms", "RSS MiB"
    );
    let started = Instant::now();
    let (mut total_requests, mut total_errors) = (0u64, 0u64);
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(report.min(secs))).await;
        let mut w = std::mem::take(&mut *window.lock().unwrap());
        w.latencies.sort();
        let p99 = w
            .latencies
            .get((w.latencies.len().saturating_sub(1)) * 99 / 100)
            .copied()
            .unwrap_or_default();
        total_requests += w.latencies.len() as u64;
        total_errors += w.errors;
        println!(
            "| {:>6} | {:>10} | {:>8} | {:>10} | {:>8.2} | {:>9.1} |",
            started.elapsed().as_secs(),
            w.latencies.len(),
            w.errors,
            w.messages,
            p99.as_secs_f64() * 1e3,
            mib(host.rss().0)
        );
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let (rss_end, peak) = host.rss();
    println!(
        "soak done: {total_requests} requests, {total_errors} errors; host RSS {:.1} MiB at start, {:.1} MiB at end (peak {:.1} MiB)",
        mib(rss_start),
        mib(rss_end),
        mib(peak)
    );
    Ok(())
}
