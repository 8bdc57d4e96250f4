//! Graceful shutdown: SIGTERM stops accepting (new connections are refused),
//! lets in-flight and queued events finish and commit, closes WebSockets with
//! 1001, loses no alarm that falls due meanwhile, and exits 0 within a bound.

use dohost_tests::{wait_for_line, TestHost};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_in_flight_work_closes_sockets_and_exits_zero() {
    let mut host = TestHost::start("").await;
    assert_eq!(
        host.post("/obj/Counter/kept/increment?by=3", "").await.body,
        "3"
    );
    let mut ws = host.ws("/obj/ChatRoom/closing/ws?user=ann").await;
    let mut log = host.log_lines();
    let slow = {
        let client = host.client.clone();
        let url = format!("{}/obj/Hostile/busy/slow?ms=800", host.url);
        tokio::spawn(async move { client.post(url).send().await.unwrap().text().await.unwrap() })
    };
    wait_for_line(&mut log, "hostile slow request started").await;
    let started = std::time::Instant::now();
    let code = host.terminate(Duration::from_secs(20)).await;
    assert_eq!(code, Some(0), "a graceful shutdown exits 0");
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        slow.await.unwrap(),
        "slow done",
        "the in-flight request completed"
    );
    assert_eq!(
        ws.closed().await.0,
        1001,
        "sockets are closed with 1001 (going away)"
    );

    host.restart().await;
    assert_eq!(host.get("/obj/Counter/kept/").await.body, "3");
    assert_eq!(
        host.get("/obj/Hostile/busy/get?key=slow").await.body,
        "done",
        "its write was committed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_queued_events() {
    let host = Arc::new(TestHost::start("").await);
    let busy = host.occupy("busy", 1000).await;
    let mut queued = Vec::new();
    for n in 1..=3 {
        let path = format!("/obj/Hostile/busy/put?key=q{n}");
        queued.push(
            host.send_queued(reqwest::Method::POST, &path, format!("v{n}"), n)
                .await,
        );
    }
    host.sigterm().await;
    // Everything already queued is served and committed.
    assert_eq!(busy.await.unwrap().body, "slow done");
    for q in queued {
        assert_eq!(q.await.unwrap().body, "ok", "a queued event was served");
    }
    let mut host = Arc::into_inner(host).expect("no other user");
    let status = host.wait_for_exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0));
    host.restart().await;
    for n in 1..=3 {
        let got = host.get(&format!("/obj/Hostile/busy/get?key=q{n}")).await;
        assert_eq!(got.body, format!("v{n}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_refuses_new_connections_during_the_drain() {
    let host = Arc::new(TestHost::start("").await);
    let addr = host.url.trim_start_matches("http://").to_string();
    let busy = host.occupy("busy", 1500).await;
    host.sigterm().await;
    // While the drain runs (the busy event has more than a second to go), a
    // new connection is refused.
    let deadline = std::time::Instant::now() + Duration::from_millis(800);
    loop {
        match tokio::net::TcpStream::connect(&addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            _ => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "a new connection was still accepted during the drain"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert!(!busy.is_finished(), "refused while the drain still ran");
    assert_eq!(busy.await.unwrap().body, "slow done");
}

#[tokio::test(flavor = "multi_thread")]
async fn alarms_due_during_the_drain_or_after_it_run_exactly_once() {
    let host = Arc::new(TestHost::start("[alarms]\nretry_base = \"100ms\"").await);
    // One alarm falls due while the drain runs, one after the host is gone.
    for (name, at) in [("during", 300), ("after", 2500)] {
        let set = host
            .post(&format!("/obj/Hostile/{name}/alarm?in={at}&mode=ok"), "")
            .await;
        assert_eq!(set.status, 200, "{}", set.body);
    }
    let busy = host.occupy("busy", 1200).await;
    host.sigterm().await;
    assert_eq!(busy.await.unwrap().body, "slow done");
    let mut host = Arc::into_inner(host).expect("no other user");
    let status = host.wait_for_exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0));
    // Each ran during the drain or runs after the restart, but once: not
    // lost, not repeated.
    host.restart().await;
    for name in ["during", "after"] {
        // `GET /alarm` answers "<alarm> <mode> <runs>".
        dohost_tests::eventually(Duration::from_secs(30), "the alarm ran", || async {
            host.get(&format!("/obj/Hostile/{name}/alarm")).await.body == "None ok 1"
        })
        .await;
    }
    dohost_tests::eventually(Duration::from_secs(30), "the index is empty", || async {
        host.get("/_dohost/alarms").await.json() == serde_json::json!([])
    })
    .await;
    for name in ["during", "after"] {
        let log = host
            .get(&format!("/obj/Hostile/{name}/get?key=alarm_log"))
            .await
            .body;
        let runs: Vec<String> = serde_json::from_str(&log).unwrap();
        assert_eq!(runs.len(), 1, "{name}: {runs:?}");
    }
}
