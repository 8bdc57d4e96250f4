//! Crash points: every named failpoint × {crash, error}, then a restart on the
//! normal binary and the invariants: acknowledged writes are there, failed ones
//! are not, nothing is half-applied, alarms still fire, sockets are consistent.

use dohost_tests::{eventually, TestHost};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Performs the operation that reaches `point`; returns whether the client
/// was told it succeeded.
async fn trigger(host: &TestHost, point: &str) -> bool {
    match point {
        "before-commit" | "after-commit" => {
            let r = host
                .client
                .post(format!("{}/obj/Counter/fp/increment?by=10", host.url))
                .send()
                .await;
            matches!(r, Ok(r) if r.status() == 200)
        }
        "persist-alarm" => {
            let r = host
                .client
                .post(format!("{}/obj/Batcher/fp/add?flush_ms=100", host.url))
                .body("x")
                .send()
                .await;
            matches!(r, Ok(r) if r.status() == 200)
        }
        "mid-eviction" => {
            // The write commits; the crash comes when the idle object is evicted.
            let r = host
                .client
                .post(format!("{}/obj/Counter/fp/increment?by=10", host.url))
                .send()
                .await;
            matches!(r, Ok(r) if r.status() == 200)
        }
        "after-accept" => {
            let url = format!(
                "{}/obj/ChatRoom/fp/ws?user=ann",
                host.url.replacen("http://", "ws://", 1)
            );
            match tokio_tungstenite::connect_async(url).await {
                Ok((mut ws, _)) => {
                    use futures_util::{SinkExt, StreamExt};
                    // An accepted socket must work; a dropped one must be gone.
                    let _ = ws
                        .send(tokio_tungstenite::tungstenite::Message::text("hi"))
                        .await;
                    matches!(
                        tokio::time::timeout(Duration::from_secs(5), ws.next()).await,
                        Ok(Some(Ok(_)))
                    )
                }
                Err(_) => false,
            }
        }
        other => panic!("unknown failpoint {other}"),
    }
}

/// Checks the invariants after a clean restart.
async fn check(host: &TestHost, point: &str, acknowledged: bool) {
    match point {
        "before-commit" => {
            assert!(
                !acknowledged,
                "{point}: a failed commit was reported as success"
            );
            assert_eq!(
                host.get("/obj/Counter/fp/").await.body,
                "5",
                "{point}: nothing half-applied"
            );
        }
        "after-commit" | "mid-eviction" => {
            let value = host.get("/obj/Counter/fp/").await.body;
            if acknowledged {
                assert_eq!(value, "15", "{point}: an acknowledged write survives");
            } else {
                assert!(value == "5" || value == "15", "{point}: {value}");
            }
        }
        "persist-alarm" => {
            let state = host.get("/obj/Batcher/fp/").await.json();
            if acknowledged {
                // The item is stored, so its alarm must fire and flush it.
                eventually(WAIT, "the alarm fires after the restart", || async {
                    host.get("/obj/Batcher/fp/").await.json()["flushed"] == 1
                })
                .await;
            } else {
                assert_eq!(
                    state["pending"], 0,
                    "{point}: a failed add left an item: {state}"
                );
                assert!(state["alarm"].is_null(), "{point}: {state}");
            }
            assert!(
                host.get("/_dohost/alarms")
                    .await
                    .json()
                    .as_array()
                    .unwrap()
                    .len()
                    <= 1
            );
        }
        "after-accept" => {
            assert_eq!(host.metrics().await.get("dohost_websockets_active"), 0.0);
            let users = host.get("/obj/ChatRoom/fp/users").await.json();
            assert_eq!(
                users,
                serde_json::json!([]),
                "{point}: no phantom socket after the restart"
            );
            let mut ws = host.ws("/obj/ChatRoom/fp/ws?user=bob").await;
            ws.send("works").await;
            assert_eq!(ws.next_json().await["text"], "works");
        }
        _ => unreachable!(),
    }
}

async fn run_point(point: &str, action: &str) {
    let extra = if point == "mid-eviction" {
        "[limits]\nhibernate_after = \"200ms\""
    } else {
        ""
    };
    let mut host = TestHost::start(extra).await;
    assert_eq!(
        host.post("/obj/Counter/fp/increment?by=5", "").await.body,
        "5"
    );
    host.restart_with_failpoints(&format!("{point}={action}"))
        .await;
    let acknowledged = trigger(&host, point).await;
    if action == "crash" {
        let status = host.wait_for_exit(WAIT).await;
        assert!(!status.success(), "{point}: the failpoint crashed the host");
    }
    host.restart_clean().await;
    check(&host, point, acknowledged).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_failpoint_crashing_keeps_the_invariants() {
    for point in dohost::failpoints::POINTS {
        run_point(point, "crash").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_failpoint_failing_keeps_the_invariants() {
    for point in dohost::failpoints::POINTS {
        if *point == "mid-eviction" {
            continue; // eviction has nothing to fail: only a crash applies
        }
        run_point(point, "error").await;
    }
}
