//! WebSocket scenarios: memory per idle hibernated socket, broadcast fan-out,
//! and wake-from-hibernation latency.

use crate::mib;
use dohost_tests::{eventually, TestHost};
use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(host: &TestHost, path: impl AsRef<str>) -> Ws {
    let url = format!(
        "{}{}",
        host.url.replacen("http://", "ws://", 1),
        path.as_ref()
    );
    tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connect")
        .0
}

/// Opens `n` sockets to `room`, `parallel` handshakes at a time.
async fn open_many(host: &TestHost, room: &str, n: usize, parallel: usize) -> Vec<Ws> {
    let mut sockets = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(parallel) {
        let opened = futures_util::future::join_all(
            chunk
                .iter()
                .map(|i| connect(host, format!("/obj/ChatRoom/{room}/ws?user=u{i}"))),
        )
        .await;
        sockets.extend(opened);
    }
    sockets
}

async fn hibernated(host: &TestHost) {
    eventually(Duration::from_secs(60), "the room hibernates", || async {
        host.metrics().await.get("dohost_instances_active") == 0.0
    })
    .await;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p / 100.0).round() as usize]
}

pub async fn run() -> anyhow::Result<()> {
    println!();
    println!("WebSockets (ChatRoom):");

    // Memory per idle socket, with the room hibernated.
    let host = TestHost::start("[limits]\nhibernate_after = \"200ms\"").await;
    let warm = connect(&host, "/obj/ChatRoom/idle/ws?user=warm").await;
    hibernated(&host).await;
    let (before, _) = host.rss();
    let n = 10_000;
    let started = Instant::now();
    let sockets = open_many(&host, "idle", n, 64).await;
    let opened_in = started.elapsed();
    hibernated(&host).await;
    let (after, _) = host.rss();
    println!(
        "  {n} idle sockets, room hibernated: host RSS {:.1} → {:.1} MiB = {:.0} bytes per socket (opened in {:.1} s)",
        mib(before),
        mib(after),
        (after.saturating_sub(before)) as f64 / n as f64,
        opened_in.as_secs_f64()
    );
    drop(sockets);
    drop(warm);

    // Wake on message: the room is hibernated before every sample.
    let mut ws = connect(&host, "/obj/ChatRoom/wake/ws?user=w").await;
    let mut samples = Vec::new();
    for i in 0..40 {
        hibernated(&host).await;
        let sent = Instant::now();
        ws.send(Message::text(format!("m{i}"))).await?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(_))) => break,
                Some(Ok(_)) => continue,
                other => anyhow::bail!("socket ended: {other:?}"),
            }
        }
        samples.push(sent.elapsed());
    }
    samples.sort();
    println!(
        "  wake from hibernation on a message (new instance + constructor + SQL write + commit + echo): p50 {:.2} ms, p99 {:.2} ms ({} samples)",
        percentile(&samples, 50.0).as_secs_f64() * 1e3,
        percentile(&samples, 99.0).as_secs_f64() * 1e3,
        samples.len()
    );
    drop(host);

    // Broadcast fan-out to 1,000 sockets.
    let host = TestHost::start("").await;
    let receivers = 1_000;
    let messages = 20;
    let mut sockets = open_many(&host, "fan", receivers, 64).await;
    let mut sender = sockets.pop().expect("a socket");
    let start = Instant::now();
    let mut readers = Vec::new();
    for mut ws in sockets.into_iter().chain(std::iter::once(
        connect(&host, "/obj/ChatRoom/fan/ws?user=last").await,
    )) {
        readers.push(tokio::spawn(async move {
            let mut got = Vec::with_capacity(messages);
            while got.len() < messages {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) if t.contains("\"from\":\"sender\"") => {
                        got.push(start.elapsed())
                    }
                    Some(Ok(_)) => {}
                    _ => break,
                }
            }
            got
        }));
    }
    let _ = sender.close(None).await;
    let mut sender = connect(&host, "/obj/ChatRoom/fan/ws?user=sender").await;
    let mut sent_at = Vec::with_capacity(messages);
    let t0 = Instant::now();
    for i in 0..messages {
        sent_at.push(start.elapsed());
        sender.send(Message::text(format!("broadcast {i}"))).await?;
    }
    let mut latencies = Vec::new();
    for r in readers {
        for (k, at) in r.await?.into_iter().enumerate() {
            latencies.push(at.saturating_sub(sent_at[k]));
        }
    }
    let elapsed = t0.elapsed();
    latencies.sort();
    println!(
        "  broadcast to {} sockets: {} messages delivered in {:.2} s = {:.0} deliveries/s; delivery latency p50 {:.1} ms, p99 {:.1} ms",
        receivers,
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 50.0).as_secs_f64() * 1e3,
        percentile(&latencies, 99.0).as_secs_f64() * 1e3,
    );
    Ok(())
}
