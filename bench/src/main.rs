//! `make bench`: performance numbers of dohost, printed as a table.
//!
//! Starts the real `dohost` binary (release) on loopback with the bundled
//! examples and drives it with keep-alive HTTP/1.1 connections; measures
//! instantiation in-process with the same engine configuration. Numbers vary
//! ±30 % run to run on a shared 2-core VM: compare within one run.

mod load;

use dohost_tests::TestHost;
use load::{run_load, Summary};
use std::time::{Duration, Instant};

fn row(name: &str, s: &Summary) {
    println!(
        "| {name:<44} | {:>9.0} | {:>8.3} | {:>8.3} | {:>7} |",
        s.per_second(),
        s.percentile(50.0).as_secs_f64() * 1e3,
        s.percentile(99.0).as_secs_f64() * 1e3,
        s.errors
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let duration = Duration::from_secs(secs);
    println!(
        "dohost bench: {} cores, {secs} s per scenario",
        std::thread::available_parallelism()?
    );
    println!();
    println!(
        "| {:<44} | {:>9} | {:>8} | {:>8} | {:>7} |",
        "scenario (HTTP, 32 connections)", "req/s", "p50 ms", "p99 ms", "errors"
    );
    println!(
        "|{:-<46}|{:->11}|{:->10}|{:->10}|{:->9}|",
        "", "", "", "", ""
    );

    let host = TestHost::start("[limits]\nmax_active = 1000").await;
    let addr = host.url.trim_start_matches("http://").to_string();

    // Hot single object: every request is a durable SQL increment.
    let s = run_load(&addr, 32, duration, |_, _| {
        ("POST", "/obj/Counter/hot/increment".to_string())
    })
    .await;
    row("hot Counter increment (1 object, durable)", &s);

    // A read on the hot object (no write, still one event and one transaction).
    let s = run_load(&addr, 32, duration, |_, _| {
        ("GET", "/obj/Counter/hot/".to_string())
    })
    .await;
    row("hot Counter read (1 object)", &s);

    // 10,000 distinct objects round robin (LRU cap 1,000 active).
    let s = run_load(&addr, 32, duration, |conn, i| {
        let n = (i * 32 + conn) % 10_000;
        ("POST", format!("/obj/Counter/rr-{n}/increment"))
    })
    .await;
    row("10,000 Counters round robin (max_active 1000)", &s);
    drop(host);

    println!();
    let (median, p99) = instantiate_times(2_000).await?;
    println!(
        "instantiate + init (pooling allocator, Counter): median {:.1} µs, p99 {:.1} µs",
        median * 1e6,
        p99 * 1e6
    );
    Ok(())
}

/// Instantiates the Counter class repeatedly in-process, running its
/// constructor each time, and returns (median, p99) in seconds.
async fn instantiate_times(n: usize) -> anyhow::Result<(f64, f64)> {
    use dohost::config::{ClassConfig, Limits};
    use dohost::engine::Engine;
    use dohost::id::ObjectId;
    use dohost::instance::{CallLimits, ObjectInstance};
    use dohost::storage::ObjectDb;

    let dir = tempfile::tempdir()?;
    let limits = Limits::default();
    let engine = Engine::new(&limits, &dir.path().join("cache"))?;
    let class = engine.load_class(&ClassConfig {
        name: "Counter".into(),
        component: dohost_tests::guest("counter"),
    })?;
    let call_limits = CallLimits::from(&limits);
    let id = ObjectId::from_name("Counter", "bench");
    let mut db = ObjectDb::open(&dir.path().join("bench.sqlite"))?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let mut instance = ObjectInstance::instantiate(
            &class,
            id,
            None,
            db,
            call_limits,
            dohost::instance::InstanceLinks::standalone(),
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!(e))?;
        db_event(&mut instance).await?;
        times.push(started.elapsed().as_secs_f64());
        db = instance.into_db();
    }
    times.sort_by(f64::total_cmp);
    Ok((times[n / 2], times[n * 99 / 100]))
}

async fn db_event(instance: &mut dohost::instance::ObjectInstance) -> anyhow::Result<()> {
    instance.db().begin()?;
    instance.db().begin_event()?;
    instance.init().await?;
    instance.db().finish_event()?;
    instance.db().commit()?;
    Ok(())
}
