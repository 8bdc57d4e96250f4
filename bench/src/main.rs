//! `make bench`: performance numbers of dohost, printed as tables.
//!
//! Starts the real `dohost` binary (release) on loopback with the bundled
//! examples and drives it with keep-alive HTTP/1.1 connections and real
//! WebSocket clients; measures instantiation in-process with the same engine
//! configuration. Numbers vary ±30 % run to run on a shared 2-core VM: compare
//! within one run. `BENCH_SECS` sets the length of each HTTP scenario (5 s);
//! `bench [http|entry|ws|alarms|languages|instantiate|open|wake]…` runs a subset.

mod alarms;
mod compare;
mod entry;
mod languages;
mod load;
mod soak;
mod ws;

use dohost_tests::TestHost;
use load::{run_load, Summary};
use std::time::{Duration, Instant};

pub fn header(title: &str) {
    println!();
    println!(
        "| {title:<52} | {:>10} | {:>8} | {:>8} | {:>6} |",
        "per second", "p50 ms", "p99 ms", "errors"
    );
    println!(
        "|{:-<54}|{:->12}|{:->10}|{:->10}|{:->8}|",
        "", "", "", "", ""
    );
}

pub fn row(name: &str, s: &Summary) {
    println!(
        "| {name:<52} | {:>10.0} | {:>8.3} | {:>8.3} | {:>6} |",
        s.per_second(),
        s.percentile(50.0).as_secs_f64() * 1e3,
        s.percentile(99.0).as_secs_f64() * 1e3,
        s.errors
    );
}

/// The commit the bench runs on, and whether the work tree has uncommitted
/// changes to tracked files (then the numbers are not those of that commit).
pub fn source_revision() -> anyhow::Result<(String, bool)> {
    let git = |args: &[&str]| -> anyhow::Result<String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dohost_tests::root())
            .args(args)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "HEAD"])?;
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"])?.is_empty();
    Ok((commit, dirty))
}

/// `commit <sha>`, or `commit <sha>-dirty (…)` for a tree with changes.
pub fn revision_label() -> anyhow::Result<String> {
    let (commit, dirty) = source_revision()?;
    Ok(if dirty {
        format!("commit {commit}-dirty (uncommitted changes: not the numbers of that commit)")
    } else {
        format!("commit {commit}")
    })
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let duration = Duration::from_secs(secs);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let wants = |what: &str| {
        (args.is_empty() && what != "soak" && what != "compare") || args.iter().any(|a| a == what)
    };
    println!(
        "dohost bench: {}; {} cores, {secs} s per HTTP scenario",
        revision_label()?,
        std::thread::available_parallelism()?
    );
    if wants("http") {
        http(duration).await?;
    }
    if wants("entry") {
        entry::run(duration).await?;
    }
    if wants("ws") {
        ws::run().await?;
    }
    if wants("alarms") {
        alarms::run().await?;
    }
    if wants("languages") {
        languages::run(duration).await?;
    }
    if wants("compare") {
        compare::run().await?;
    }
    if wants("soak") {
        soak::run().await?;
    }
    if wants("open") {
        // How long opening an existing object database takes (the wake path).
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("C").join("x.sqlite");
        {
            let mut db = dohost::capabilities::storage::ObjectDb::open(&path)?;
            db.begin()?;
            db.kv_put("k", b"v")?;
            db.commit()?;
        }
        let mut times = Vec::new();
        let idle = std::env::var("OPEN_IDLE_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0u64);
        for _ in 0..200 {
            if idle > 0 {
                std::thread::sleep(Duration::from_millis(idle));
            }
            let t = Instant::now();
            let mut db = dohost::capabilities::storage::ObjectDb::open(&path)?;
            let opened = t.elapsed();
            db.begin()?;
            db.kv_get("k")?;
            db.commit()?;
            drop(db);
            times.push((opened, t.elapsed()));
        }
        times.sort();
        println!(
            "open existing object db: median {:?} (open + read txn + close {:?})",
            times[100].0, times[100].1
        );
    }
    if wants("roundrobin") {
        // Only the many-objects scenario (for profiling it): BENCH_SECS long.
        header("HTTP scenario (32 keep-alive connections)");
        let host = TestHost::start("[limits]\nmax_active = 1000").await;
        let addr = host.url.trim_start_matches("http://").to_string();
        row(
            "10,000 Counters round robin (max_active 1000)",
            &round_robin(&addr, duration).await,
        );
    }
    if wants("wake") {
        wake().await?;
    }
    if wants("instantiate") {
        let (median, p99) = instantiate_times(&dohost_tests::guest("counter"), 2_000).await?;
        println!();
        println!(
            "instantiate + init (pooling allocator, Counter, in-process): median {:.1} µs, p99 {:.1} µs",
            median * 1e6,
            p99 * 1e6
        );
    }
    Ok(())
}

async fn http(duration: Duration) -> anyhow::Result<()> {
    header("HTTP scenario (32 keep-alive connections)");
    let host = TestHost::start("[limits]\nmax_active = 1000").await;
    let addr = host.url.trim_start_matches("http://").to_string();
    let post = |path: String| ("POST", path, None);

    let s = run_load(&addr, 32, duration, move |_, _| {
        post("/obj/Counter/hot/increment".into())
    })
    .await;
    row("hot Counter increment (1 object, durable SQL write)", &s);
    let s = run_load(&addr, 32, duration, |_, _| {
        ("GET", "/obj/Counter/hot/".to_string(), None)
    })
    .await;
    row("hot Counter read (1 object)", &s);
    let s = run_load(&addr, 32, duration, |_, _| {
        (
            "POST",
            "/rpc/Counter/hot/increment".to_string(),
            Some("[1]"),
        )
    })
    .await;
    row("hot Counter RPC increment over HTTP (1 object)", &s);
    let s = run_load(&addr, 32, duration, |conn, _| {
        (
            "POST",
            format!("/rpc/Player/p{conn}/add-score"),
            Some("[1]"),
        )
    })
    .await;
    row("object→object: Player.add-score → Leaderboard.report", &s);
    row(
        "10,000 Counters round robin (max_active 1000)",
        &round_robin(&addr, duration).await,
    );
    let (rss, peak) = host.rss();
    println!(
        "host RSS after the HTTP scenarios: {:.1} MiB (peak {:.1} MiB)",
        mib(rss),
        mib(peak)
    );
    Ok(())
}

/// Instantiates a Counter class (any language) repeatedly in-process, running
/// its constructor each time, and returns (median, p99) in seconds.
pub async fn instantiate_times(
    component: &std::path::Path,
    n: usize,
) -> anyhow::Result<(f64, f64)> {
    use dohost::capabilities::storage::ObjectDb;
    use dohost::config::{ClassConfig, Limits};
    use dohost::guest::engine::Engine;
    use dohost::guest::instance::{CallLimits, Identity, InstanceLinks, ObjectInstance};
    use dohost::id::ObjectId;

    let dir = tempfile::tempdir()?;
    let limits = Limits::default();
    let config = ClassConfig {
        name: "Counter".into(),
        component: component.to_path_buf(),
        allow: Vec::new(),
    };
    let engine = Engine::new(
        &limits,
        &dir.path().join("cache"),
        std::slice::from_ref(&config),
        0,
    )?;
    let class = engine.load_class(&config)?;
    let id = ObjectId::from_name("Counter", "bench");
    let mut db = ObjectDb::open(&dir.path().join("bench.sqlite"))?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let mut instance = ObjectInstance::instantiate(
            &class,
            Identity { id, name: None },
            db,
            CallLimits::from(&limits),
            InstanceLinks::standalone(),
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!(e))?;
        instance.db().begin()?;
        instance.db().begin_event()?;
        instance.init().await?;
        instance.db().finish_event()?;
        instance.db().commit()?;
        times.push(started.elapsed().as_secs_f64());
        db = instance.into_db();
    }
    times.sort_by(f64::total_cmp);
    Ok((times[n / 2], times[n * 99 / 100]))
}

/// One GET on `client`'s keep-alive connection, asserted successful: its
/// end-to-end time.
async fn timed_get(client: &reqwest::Client, base: &str, path: String) -> Duration {
    let t = Instant::now();
    let res = client
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("GET");
    assert!(res.status().is_success(), "GET {path}: {}", res.status());
    res.bytes().await.expect("body");
    t.elapsed()
}

/// What waking costs end to end: a GET to an evicted object next to a GET
/// that wakes nothing (HTTP round trip only) and a GET to an active object, on
/// one keep-alive connection; once after 250 ms of silence (idle vCPUs, cold
/// caches) and once while another connection keeps the host busy.
async fn wake() -> anyhow::Result<()> {
    let host = TestHost::start("[limits]\nhibernate_after = \"100ms\"").await;
    let client = reqwest::Client::new();
    let get = |path: String| timed_get(&client, &host.url, path);
    let median_us = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e6
    };
    let samples = 40;
    let (mut idle_plain, mut idle_woken) = (Vec::new(), Vec::new());
    for i in 0..samples {
        let path = format!("/obj/Counter/wake-{i}/");
        get(path.clone()).await;
        tokio::time::sleep(Duration::from_millis(250)).await; // > hibernate_after
        idle_plain.push(get("/rpc/Counter".into()).await);
        tokio::time::sleep(Duration::from_millis(250)).await;
        idle_woken.push(get(path).await);
    }
    let busy = {
        let (client, url) = (client.clone(), format!("{}/obj/Counter/busy/", host.url));
        tokio::spawn(async move {
            loop {
                if let Ok(res) = client.get(&url).send().await {
                    let _ = res.bytes().await;
                }
            }
        })
    };
    let (mut busy_plain, mut busy_active, mut busy_woken) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..samples {
        let path = format!("/obj/Counter/busy-wake-{i}/");
        get(path.clone()).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        busy_plain.push(get("/rpc/Counter".into()).await);
        busy_active.push(get("/obj/Counter/busy/".into()).await);
        busy_woken.push(get(path).await);
    }
    busy.abort();
    drop(host);
    // A host that wakes objects all the time (its code and caches warm):
    // `hibernate_after = "0s"` evicts after every event, so every GET wakes.
    let host = TestHost::start("[limits]\nhibernate_after = \"0s\"").await;
    let get = |path: String| timed_get(&client, &host.url, path);
    let (mut warm_plain, mut warm_woken) = (Vec::new(), Vec::new());
    get("/obj/Counter/always-woken/".into()).await;
    for _ in 0..500 {
        warm_plain.push(get("/rpc/Counter".into()).await);
        warm_woken.push(get("/obj/Counter/always-woken/".into()).await);
    }
    let evictions = host.metrics().await.sum("dohost_hibernations_total");
    println!();
    println!(
        "| wake from hibernation, GET end to end, median µs | idle host ({samples}) | busy host ({samples}) | waking host (500) |"
    );
    println!("|---|---|---|---|");
    println!(
        "| no object (GET /rpc/Counter: the HTTP round trip) | {:.0} | {:.0} | {:.0} |",
        median_us(idle_plain),
        median_us(busy_plain),
        median_us(warm_plain)
    );
    println!(
        "| active object (GET /obj/Counter/busy/) | – | {:.0} | – |",
        median_us(busy_active)
    );
    println!(
        "| hibernated object (new instance, open database, init, fetch) | {:.0} | {:.0} | {:.0} |",
        median_us(idle_woken),
        median_us(busy_woken),
        median_us(warm_woken)
    );
    println!(
        "idle: 250 ms of silence before each GET; busy: another connection sends GETs in a loop; \
         waking: hibernate_after = 0s, so every GET wakes the object ({evictions:.0} hibernations)"
    );
    Ok(())
}

/// 32 connections incrementing 10,000 distinct Counters in turn.
async fn round_robin(addr: &str, duration: Duration) -> Summary {
    run_load(addr, 32, duration, |conn, i| {
        let n = (i * 32 + conn) % 10_000;
        ("POST", format!("/obj/Counter/rr-{n}/increment"), None)
    })
    .await
}
