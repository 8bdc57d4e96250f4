//! Alarm scenario: 10,000 objects with alarms due at the same instant.

use crate::mib;
use dohost_tests::{eventually, TestHost};
use std::time::{Duration, Instant};

pub async fn run() -> anyhow::Result<()> {
    let n = 10_000usize;
    let host = TestHost::start("[limits]\nmax_active = 1000\nhibernate_after = \"1s\"").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    // All due at the same instant, far enough ahead to schedule them all first.
    let due_in = 20_000i64;
    let due_at = now + due_in;
    let addr = host.url.clone();
    let client = host.client.clone();
    let scheduling = Instant::now();
    let mut tasks = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(n / 32) {
        let (client, addr, chunk) = (client.clone(), addr.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            for i in chunk {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as i64;
                let url = format!("{addr}/obj/Hostile/a{i}/alarm?in={}&mode=ok", due_at - now);
                let _ = client.post(url).send().await;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let scheduled_in = scheduling.elapsed();
    let listed = host
        .get("/_dohost/alarms")
        .await
        .json()
        .as_array()
        .map_or(0, Vec::len);
    let wait = Duration::from_millis((due_at - now_ms()).max(0) as u64);
    tokio::time::sleep(wait).await;
    let fired_from = Instant::now();
    eventually(Duration::from_secs(600), "every alarm ran", || async {
        host.metrics()
            .await
            .get_or_zero(r#"dohost_alarms_total{class="Hostile",outcome="fired"}"#)
            >= n as f64
    })
    .await;
    let took = fired_from.elapsed();
    let (rss, peak) = host.rss();
    println!();
    println!(
        "Alarms: {n} objects due at the same instant (scheduled in {:.1} s, {listed} indexed): all ran {:.2} s after the due time = {:.0} alarms/s; host RSS {:.1} MiB, peak {:.1} MiB",
        scheduled_in.as_secs_f64(),
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        mib(rss),
        mib(peak)
    );
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
