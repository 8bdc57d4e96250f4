//! Overload: many distinct objects stay within the caps on open databases and
//! instances (so file descriptors and memory stay bounded); a flooded object
//! does not slow its neighbours.

use dohost_tests::TestHost;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[tokio::test(flavor = "multi_thread")]
async fn many_distinct_objects_stay_within_the_caps() {
    let objects: usize = std::env::var("OVERLOAD_OBJECTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3_000);
    let max_active = 50;
    let host = Arc::new(TestHost::start(&format!("[limits]\nmax_active = {max_active}")).await);
    let pid = host.pid().unwrap();
    let baseline_fds = open_fds(pid);
    // A watcher samples the host while the load runs and records the maxima;
    // it is stopped and awaited (its panics and its numbers reach the test).
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let watcher = {
        let host = host.clone();
        tokio::spawn(async move {
            let (mut peak_fds, mut peak_active, mut samples) = (0usize, 0f64, 0u32);
            loop {
                peak_fds = peak_fds.max(open_fds(pid));
                peak_active = peak_active.max(host.metrics().await.get("dohost_instances_active"));
                samples += 1;
                tokio::select! {
                    _ = stopped.changed() => return (peak_fds, peak_active, samples),
                    () = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            }
        })
    };
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            for i in (worker..objects).step_by(16) {
                let reply = host
                    .post(&format!("/obj/Counter/many-{i}/increment"), "")
                    .await;
                assert_eq!(reply.status, 200, "{}", reply.body);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    stop.send(true).unwrap();
    let (peak, peak_active, samples) = watcher.await.unwrap();
    assert!(
        samples >= 10,
        "the watcher sampled the load ({samples} samples)"
    );
    assert!(
        peak_active <= max_active as f64,
        "{peak_active} instances were active at once (max_active {max_active})"
    );
    // Without the cap every object would stay active for hibernate_after (10 s):
    // the watcher saw the cap being used, not an idle host.
    assert!(
        peak_active >= (max_active / 2) as f64,
        "only {peak_active} instances were ever active at once"
    );
    // Each active object holds its database (3 files with WAL); sockets of the
    // 16 test connections and the host's own files come on top.
    assert!(
        peak <= baseline_fds + 3 * max_active + 64,
        "peak {peak} fds, baseline {baseline_fds}"
    );
    let (_, peak_rss) = host.rss();
    assert!(peak_rss < 1024 * 1024 * 1024, "peak RSS {peak_rss}");
    for i in [0, objects / 2, objects - 1] {
        assert_eq!(host.get(&format!("/obj/Counter/many-{i}/")).await.body, "1");
    }
    println!(
        "{objects} objects: peak {peak} fds (baseline {baseline_fds}), peak {peak_active} active, peak RSS {} MiB",
        peak_rss >> 20
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flooded_object_does_not_slow_its_neighbours() {
    let host = Arc::new(TestHost::start("[limits]\nmailbox = 16\ncpu_per_event = \"2s\"").await);
    host.post("/obj/Counter/neighbour/increment", "").await;
    // The flooded object is busy (a slow request) while a flood queues behind it.
    let slow = {
        let host = host.clone();
        tokio::spawn(async move { host.post("/obj/Hostile/flooded/slow?ms=1500", "").await })
    };
    // The flood starts once the slow request runs (it left the mailbox), not
    // before: otherwise the flood may fill the mailbox first and refuse it.
    dohost_tests::eventually(Duration::from_secs(5), "the slow request runs", || async {
        host.metrics().await.get("dohost_instances_active") >= 2.0
    })
    .await;
    let mut flood = Vec::new();
    for _ in 0..200 {
        let host = host.clone();
        flood.push(tokio::spawn(async move {
            host.get("/obj/Hostile/flooded/get").await.status
        }));
    }
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(host.get("/obj/Counter/neighbour/").await.status, 200);
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1000),
        "20 neighbour reads took {took:?}"
    );
    let mut refused = 0;
    for f in flood {
        if f.await.unwrap() == 503 {
            refused += 1;
        }
    }
    assert!(
        refused > 100,
        "the full mailbox refused the flood ({refused} × 503)"
    );
    assert_eq!(slow.await.unwrap().status, 200);
}
