//! The same black-box scenarios against the Rust, JavaScript and Python
//! implementations of each contract (one test body, every language).

use dohost_tests::{eventually, polyglot_classes, TestHost};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const COUNTERS: [&str; 3] = ["Counter", "JsCounter", "PyCounter"];
const ROOMS: [&str; 3] = ["ChatRoom", "JsChatRoom", "PyChatRoom"];

async fn host(extra: &str) -> TestHost {
    TestHost::start_with(&polyglot_classes(), extra).await
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_lose_no_increment_under_concurrency() {
    let host = Arc::new(host("").await);
    for class in COUNTERS {
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let host = host.clone();
            tasks.push(tokio::spawn(async move {
                let mut ok = 0;
                for _ in 0..5 {
                    ok += (host
                        .post(&format!("/obj/{class}/busy/increment"), "")
                        .await
                        .status
                        == 200) as u32;
                }
                ok
            }));
        }
        let mut ok = 0;
        for t in tasks {
            ok += t.await.unwrap();
        }
        assert_eq!(ok, 80, "{class}");
        assert_eq!(
            host.get(&format!("/obj/{class}/busy/")).await.body,
            "80",
            "{class}"
        );
        assert_eq!(
            host.post(&format!("/obj/{class}/busy/increment?by=-30"), "")
                .await
                .body,
            "50",
            "{class}"
        );
        let bad = host
            .post(&format!("/obj/{class}/busy/increment?by=lots"), "")
            .await;
        assert_eq!(
            (bad.status, bad.body.contains("?by must be an integer")),
            (400, true),
            "{class}: {}",
            bad.body
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_persist_over_a_restart_and_roll_back_traps() {
    let mut host = host("").await;
    for class in COUNTERS {
        assert_eq!(
            host.post(&format!("/obj/{class}/keep/increment?by=7"), "")
                .await
                .body,
            "7",
            "{class}"
        );
        let failed = host
            .post(&format!("/obj/{class}/keep/increment-then-fail"), "")
            .await;
        assert_eq!(failed.status, 500, "{class}: {}", failed.body);
        assert_eq!(
            host.get(&format!("/obj/{class}/keep/")).await.body,
            "7",
            "{class}: the trap rolled back"
        );
    }
    host.restart().await;
    for class in COUNTERS {
        assert_eq!(
            host.get(&format!("/obj/{class}/keep/")).await.body,
            "7",
            "{class}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_hibernate_and_wake_with_their_state() {
    // On virtual time: 10 s of idling take none.
    let host = TestHost::in_process_with(&polyglot_classes(), "").await;
    for class in COUNTERS {
        host.post(&format!("/obj/{class}/sleepy/increment?by=2"), "")
            .await;
    }
    host.advance_ms(10_000);
    eventually(Duration::from_secs(20), "all hibernate", || async {
        host.metrics().await.get("dohost_instances_active") == 0.0
    })
    .await;
    for class in COUNTERS {
        let key = format!(r#"dohost_instantiations_total{{class="{class}"}}"#);
        let before = host.metrics().await.get(&key);
        assert_eq!(
            host.post(&format!("/obj/{class}/sleepy/increment"), "")
                .await
                .body,
            "3",
            "{class}"
        );
        assert_eq!(
            host.metrics().await.get(&key),
            before + 1.0,
            "{class} was rebuilt"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_answer_rpc_with_the_same_state() {
    let host = host("").await;
    for class in COUNTERS {
        let methods = host.get(&format!("/rpc/{class}")).await.json();
        let names: Vec<&str> = methods["methods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["get", "increment"], "{class}");
        assert_eq!(
            host.rpc(class, "r", "increment", json!([5])).await,
            (200, json!(5)),
            "{class}"
        );
        assert_eq!(
            host.rpc(class, "r", "increment", json!({"by": -7})).await,
            (200, json!(-2)),
            "{class}"
        );
        assert_eq!(
            host.post(&format!("/obj/{class}/r/increment"), "")
                .await
                .body,
            "-1",
            "{class}"
        );
        assert_eq!(
            host.rpc(class, "r", "get", json!([])).await,
            (200, json!(-1)),
            "{class}"
        );
        assert_eq!(
            host.rpc(class, "r", "increment", json!(["x"])).await.0,
            400,
            "{class}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_rooms_broadcast_remember_and_answer_ping_in_every_language() {
    let host = TestHost::in_process_with(&polyglot_classes(), "").await;
    for class in ROOMS {
        let mut a = host.ws(&format!("/obj/{class}/r/ws?user=ann")).await;
        let mut b = host.ws(&format!("/obj/{class}/r/ws?user=bob")).await;
        a.send("hi").await;
        for c in [&mut a, &mut b] {
            assert_eq!(
                c.next_json().await,
                json!({"from": "ann", "text": "hi"}),
                "{class}"
            );
        }
        assert_eq!(
            host.get(&format!("/obj/{class}/r/users")).await.json(),
            json!(["ann", "bob"]),
            "{class}"
        );
        assert_eq!(
            host.get(&format!("/obj/{class}/r/history")).await.json(),
            json!([{"from": "ann", "text": "hi"}]),
            "{class}"
        );
        assert_eq!(
            host.get(&format!("/obj/{class}/r/ws?user=x")).await.status,
            426,
            "{class}"
        );
        // Hibernate with the sockets open; ping is answered without a wake-up.
        host.advance_ms(10_000);
        eventually(Duration::from_secs(20), "the room hibernates", || async {
            host.metrics().await.get("dohost_instances_active") == 0.0
        })
        .await;
        let key = format!(r#"dohost_instantiations_total{{class="{class}"}}"#);
        let before = host.metrics().await.get(&key);
        a.send("ping").await;
        assert_eq!(a.next_text().await, "pong", "{class}");
        assert_eq!(
            host.metrics().await.get(&key),
            before,
            "{class}: ping did not wake the room"
        );
        // A message wakes it and still reaches everyone; attachments survived.
        b.send("still here").await;
        for c in [&mut a, &mut b] {
            assert_eq!(
                c.next_json().await,
                json!({"from": "bob", "text": "still here"}),
                "{class}"
            );
        }
        assert_eq!(
            host.get(&format!("/obj/{class}/r/users")).await.json(),
            json!(["ann", "bob"]),
            "{class}"
        );
        b.close(1000, "bye").await;
        assert_eq!(
            a.next_json().await,
            json!({"from": "system", "text": "bob left"}),
            "{class}"
        );
    }
}
