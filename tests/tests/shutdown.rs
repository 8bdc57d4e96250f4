//! Graceful shutdown: SIGTERM stops accepting, lets in-flight events finish
//! and commit, closes WebSockets with 1001 and exits 0 within a bound.

use dohost_tests::{wait_for_line, TestHost};
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
