//! `make bench-compare`: dohost against workerd (Cloudflare's open-source
//! runtime) on the same machine, in the same run, with the same load driver
//! and the same contracts (bench/workerd/ implements Counter, ChatRoom and
//! Batcher for workerd). Prints one table: workerd, dohost, ratio.

use crate::load::{run_load, Summary};
use crate::mib;
use futures_util::{SinkExt, StreamExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

/// A running server under test.
struct Server {
    child: Child,
    url: String,
    pid: u32,
}

impl Server {
    fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }

    fn rss(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    async fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Spawns `cmd` and waits for a stdout line starting with `ready` followed by the URL.
async fn spawn(mut cmd: Command, ready: &str) -> anyhow::Result<(Server, Instant)> {
    let started = Instant::now();
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let pid = child.id().unwrap_or(0);
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = tokio::time::timeout(Duration::from_secs(120), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix(ready) {
                return Some(url.trim().to_string());
            }
        }
        None
    })
    .await?
    .ok_or_else(|| anyhow::anyhow!("the server did not start"))?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((Server { child, url, pid }, started))
}

fn root() -> PathBuf {
    dohost_tests::root()
}

async fn start_dohost(data: &Path, limits: &str) -> anyhow::Result<(Server, Instant)> {
    std::fs::create_dir_all(data)?;
    let manifest = dohost_tests::manifest(
        &[
            ("Counter", dohost_tests::guest("counter")),
            ("ChatRoom", dohost_tests::guest("chat")),
            ("Batcher", dohost_tests::guest("batcher")),
        ],
        limits,
    );
    let path = data.join("dohost.toml");
    std::fs::write(&path, manifest)?;
    let mut cmd = Command::new(dohost_tests::dohost_bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .arg("--data-dir")
        .arg(data.join("data"))
        .env("DOHOST_LOG", "error");
    spawn(cmd, "listening on ").await
}

async fn start_workerd(data: &Path) -> anyhow::Result<(Server, Instant)> {
    std::fs::create_dir_all(data)?;
    let mut cmd = Command::new(root().join("bench/workerd/start.sh"));
    cmd.arg("0").arg(data);
    spawn(cmd, "workerd ready on ").await
}

/// One row: a metric, its value on each host, and whether higher is better.
struct Row {
    scenario: String,
    workerd: Option<f64>,
    dohost: Option<f64>,
    higher_is_better: bool,
    note: String,
}

fn print(rows: &[Row]) {
    println!();
    println!(
        "| {:<58} | {:>12} | {:>12} | {:>9} |",
        "scenario", "workerd", "dohost", "ratio"
    );
    println!("|{:-<60}|{:->14}|{:->14}|{:->11}|", "", "", "", "");
    for r in rows {
        let fmt = |v: Option<f64>| match v {
            Some(v) if v >= 100.0 => format!("{v:.0}"),
            Some(v) => format!("{v:.3}"),
            None => "failed".to_string(),
        };
        let ratio = match (r.workerd, r.dohost) {
            (Some(w), Some(d)) if w > 0.0 && d > 0.0 => {
                if r.higher_is_better {
                    format!("{:.1}×", d / w)
                } else {
                    format!("{:.2}×", d / w)
                }
            }
            (None, Some(_)) => "∞".to_string(),
            _ => "-".to_string(),
        };
        println!(
            "| {:<58} | {:>12} | {:>12} | {:>9} |",
            r.scenario,
            fmt(r.workerd),
            fmt(r.dohost),
            ratio
        );
        if !r.note.is_empty() {
            println!("|   {:<56} | {:>12} | {:>12} | {:>9} |", r.note, "", "", "");
        }
    }
}

fn rps_rows(rows: &mut Vec<Row>, name: &str, w: Option<&Summary>, d: &Summary) {
    let w_ok = w.filter(|s| s.errors == 0 || !s.latencies.is_empty());
    rows.push(Row {
        scenario: format!("{name}: req/s"),
        workerd: w_ok.map(Summary::per_second),
        dohost: Some(d.per_second()),
        higher_is_better: true,
        note: match w {
            Some(s) if s.errors > 0 => format!("workerd errors: {}", s.errors),
            _ => String::new(),
        },
    });
    for (label, p) in [("p50 ms", 50.0), ("p99 ms", 99.0)] {
        rows.push(Row {
            scenario: format!("{name}: {label}"),
            workerd: w_ok.map(|s| s.percentile(p).as_secs_f64() * 1e3),
            dohost: Some(d.percentile(p).as_secs_f64() * 1e3),
            higher_is_better: false,
            note: String::new(),
        });
    }
}

async fn http_scenarios(
    rows: &mut Vec<Row>,
    storage: &str,
    dir: &Path,
    secs: Duration,
) -> anyhow::Result<()> {
    let (mut w, _) = start_workerd(&dir.join("workerd")).await?;
    let (d, _) = start_dohost(&dir.join("dohost"), "[limits]\nmax_active = 1000").await?;
    let hot = |_: usize, _: usize| ("POST", "/obj/Counter/hot/increment".to_string(), None);
    let ws = run_load(&w.addr(), 32, secs, hot).await;
    let ds = run_load(&d.addr(), 32, secs, hot).await;
    rps_rows(
        rows,
        &format!("(a) hot object, durable SQL increment, 32 conns, {storage}"),
        Some(&ws),
        &ds,
    );
    let many = |_: usize, _: usize| ("POST", "/obj/Counter/group/increment".to_string(), None);
    let ws = run_load(&w.addr(), 256, secs, many).await;
    let ds = run_load(&d.addr(), 256, secs, many).await;
    rps_rows(
        rows,
        &format!("(g) durable writes, one object, 256 writers, {storage}"),
        Some(&ws),
        &ds,
    );
    if storage == "disk" {
        let rpc = |_: usize, _: usize| {
            (
                "POST",
                "/rpc/Counter/hot/increment".to_string(),
                Some("[1]"),
            )
        };
        let ws = run_load(&w.addr(), 32, secs, rpc).await;
        let ds = run_load(&d.addr(), 32, secs, rpc).await;
        rps_rows(
            rows,
            "(c) RPC increment on a hot object, 32 conns",
            Some(&ws),
            &ds,
        );
        let rr = |conn: usize, i: usize| {
            (
                "POST",
                format!("/obj/Counter/rr-{}/increment", (i * 32 + conn) % 10_000),
                None,
            )
        };
        let ws = run_load(&w.addr(), 32, secs, rr).await;
        let w_alive = w.alive();
        let ds = run_load(&d.addr(), 32, secs, rr).await;
        rps_rows(
            rows,
            "(b) 10,000 objects round robin, 32 conns",
            if w_alive { Some(&ws) } else { None },
            &ds,
        );
        if !w_alive {
            rows.last_mut().expect("row").note = "workerd crashed (out of file descriptors)".into();
        }
    }
    w.stop().await;
    d.stop().await;
    Ok(())
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str, path: impl AsRef<str>) -> anyhow::Result<Ws> {
    let url = format!("{}{}", url.replacen("http://", "ws://", 1), path.as_ref());
    Ok(tokio_tungstenite::connect_async(url).await?.0)
}

/// (d): one sender, `receivers` sockets, `messages` broadcasts → (deliveries/s, p99 ms).
async fn broadcast(url: &str, receivers: usize, messages: usize) -> anyhow::Result<(f64, f64)> {
    let mut sockets = Vec::new();
    for i in 0..receivers {
        sockets.push(connect(url, &format!("/obj/ChatRoom/fan/ws?user=u{i}")).await?);
    }
    let start = Instant::now();
    let mut readers = Vec::new();
    for mut ws in sockets {
        readers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while got.len() < messages {
                match tokio::time::timeout(Duration::from_secs(60), ws.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) if t.contains("\"from\":\"sender\"") => {
                        got.push(start.elapsed())
                    }
                    Ok(Some(Ok(_))) => {}
                    _ => break,
                }
            }
            got
        }));
    }
    let mut sender = connect(url, "/obj/ChatRoom/fan/ws?user=sender").await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    let mut sent_at = Vec::new();
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
    let elapsed = t0.elapsed().as_secs_f64();
    latencies.sort();
    let p99 = latencies
        .get(latencies.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or_default();
    Ok((latencies.len() as f64 / elapsed, p99.as_secs_f64() * 1e3))
}

/// (e): RSS per idle socket, `n` sockets in one room.
async fn idle_sockets(server: &Server, n: usize) -> anyhow::Result<f64> {
    let _warm = connect(&server.url, "/obj/ChatRoom/idle/ws?user=warm").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = server.rss();
    let mut sockets = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        let opened = futures_util::future::join_all(
            chunk
                .iter()
                .map(|i| connect(&server.url, format!("/obj/ChatRoom/idle/ws?user=u{i}"))),
        )
        .await;
        for s in opened {
            sockets.push(s?);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server.rss();
    drop(sockets);
    Ok(after.saturating_sub(before) as f64 / n as f64)
}

async fn get_ok(url: &str, path: &str, client: &reqwest::Client) -> bool {
    matches!(client.get(format!("{url}{path}")).send().await, Ok(r) if r.status().is_success())
}

pub async fn run() -> anyhow::Result<()> {
    // Its table goes into bench/RESULTS.md: it must name a commit that has
    // exactly the code that ran.
    let (_, dirty) = crate::source_revision()?;
    anyhow::ensure!(
        !dirty || std::env::var_os("BENCH_ALLOW_DIRTY").is_some(),
        "the work tree has uncommitted changes: commit them first (or set BENCH_ALLOW_DIRTY=1 \
         for a run marked -dirty)"
    );
    let revision = crate::revision_label()?;
    let secs = Duration::from_secs(
        std::env::var("BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    );
    let sockets: usize = std::env::var("COMPARE_SOCKETS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(9_000);
    let base = root().join("target/bench-compare");
    let _ = std::fs::remove_dir_all(&base);
    let mut rows = Vec::new();
    let fd_limit = std::process::Command::new("sh")
        .args(["-c", "ulimit -n"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("bench-compare: workerd 1.20261117.1 vs dohost {} at {revision}; {} cores; ulimit -n {fd_limit}; {} s per HTTP scenario", env!("CARGO_PKG_VERSION"), std::thread::available_parallelism()?, secs.as_secs());

    http_scenarios(&mut rows, "disk", &base.join("disk"), secs).await?;
    let tmpfs = base.join("tmpfs");
    std::fs::create_dir_all(&tmpfs)?;
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4g", "tmpfs"])
        .arg(&tmpfs)
        .status()
        .is_ok_and(|s| s.success());
    if mounted {
        http_scenarios(&mut rows, "tmpfs", &tmpfs, secs).await?;
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&tmpfs)
            .status();
    } else {
        println!("(tmpfs rows skipped: mounting a tmpfs needs root)");
    }

    // (d) and (e): WebSockets.
    let (w, _) = start_workerd(&base.join("ws-workerd")).await?;
    let (d, _) = start_dohost(&base.join("ws-dohost"), "").await?;
    let wb = broadcast(&w.url, 1_000, 20).await.ok();
    let db = broadcast(&d.url, 1_000, 20).await?;
    rows.push(Row {
        scenario: "(d) broadcast to 1,000 sockets: deliveries/s".into(),
        workerd: wb.map(|b| b.0),
        dohost: Some(db.0),
        higher_is_better: true,
        note: String::new(),
    });
    rows.push(Row {
        scenario: "(d) broadcast to 1,000 sockets: delivery p99 ms".into(),
        workerd: wb.map(|b| b.1),
        dohost: Some(db.1),
        higher_is_better: false,
        note: String::new(),
    });
    let we = idle_sockets(&w, sockets).await.ok();
    let de = idle_sockets(&d, sockets).await?;
    rows.push(Row {
        scenario: format!("(e) {sockets} idle sockets: RSS bytes per socket"),
        workerd: we,
        dohost: Some(de),
        higher_is_better: false,
        note: String::new(),
    });
    w.stop().await;
    d.stop().await;

    // (f) cold start to the first response, and wake from hibernation.
    let client = reqwest::Client::new();
    let (w, w_started) = start_workerd(&base.join("cold-workerd")).await?;
    while !get_ok(&w.url, "/obj/Counter/cold/", &client).await {}
    let w_cold = w_started.elapsed();
    let (d, d_started) = start_dohost(
        &base.join("cold-dohost"),
        "[limits]\nhibernate_after = \"100ms\"",
    )
    .await?;
    while !get_ok(&d.url, "/obj/Counter/cold/", &client).await {}
    let d_cold = d_started.elapsed();
    rows.push(Row {
        scenario: "(f) cold start: process start to first response, ms".into(),
        workerd: Some(w_cold.as_secs_f64() * 1e3),
        dohost: Some(d_cold.as_secs_f64() * 1e3),
        higher_is_better: false,
        note: "dohost loads compiled classes from its cache".into(),
    });
    // Wake: a GET to an object that was evicted. Once on an otherwise idle
    // machine (the vCPUs sleep, caches go cold), once while another object
    // keeps the host busy (as a production host would be).
    for busy in [false, true] {
        // Busy: another object gets a request every 2 ms on each host (a
        // light, steady load; the CPUs stay awake but are mostly free).
        let background = busy.then(|| {
            let (w, d, client) = (w.url.clone(), d.url.clone(), client.clone());
            tokio::spawn(async move {
                loop {
                    let _ = get_ok(&w, "/obj/Counter/busy/", &client).await;
                    let _ = get_ok(&d, "/obj/Counter/busy/", &client).await;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        });
        let mut d_wake = Vec::new();
        for i in 0..30 {
            let path = format!("/obj/Counter/wake-{busy}-{i}/");
            get_ok(&d.url, &path, &client).await;
            tokio::time::sleep(Duration::from_millis(300)).await; // > hibernate_after: evicted
            let t = Instant::now();
            get_ok(&d.url, &path, &client).await;
            d_wake.push(t.elapsed());
        }
        let mut w_wake = Vec::new();
        for i in 0..3 {
            let path = format!("/obj/Counter/wake-{busy}-{i}/");
            get_ok(&w.url, &path, &client).await;
            tokio::time::sleep(Duration::from_secs(12)).await; // workerd evicts after ~10 s idle
            let t = Instant::now();
            get_ok(&w.url, &path, &client).await;
            w_wake.push(t.elapsed());
        }
        if let Some(b) = background {
            b.abort();
        }
        d_wake.sort();
        w_wake.sort();
        rows.push(Row {
            scenario: format!(
                "(f) wake from hibernation, GET end to end, median ms, {}",
                if busy { "busy host" } else { "idle host" }
            ),
            workerd: Some(w_wake[w_wake.len() / 2].as_secs_f64() * 1e3),
            dohost: Some(d_wake[d_wake.len() / 2].as_secs_f64() * 1e3),
            higher_is_better: false,
            note: format!(
                "workerd {} samples (evicts after ~10 s idle), dohost {}",
                w_wake.len(),
                d_wake.len()
            ),
        });
    }
    w.stop().await;
    d.stop().await;
    print(&rows);
    println!();
    println!(
        "memory note: RSS per socket = host RSS growth / sockets ({:.1} MiB for dohost)",
        mib((de * sockets as f64) as u64)
    );
    Ok(())
}
