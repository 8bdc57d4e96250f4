//! Ordering: an object runs its events in the order its mailbox received
//! them; the messages of one WebSocket reach the object in the order they were
//! sent; the sends of one event go out in the order the guest made them.

use dohost_tests::TestHost;
use reqwest::Method;
use serde_json::json;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread")]
async fn the_mailbox_is_first_in_first_out() {
    let host = Arc::new(TestHost::start("").await);
    // Ten events queue behind a slow one, each sent once the previous one is
    // queued; they run in that order, each seeing exactly its predecessors.
    let slow = host.occupy("fifo", 300).await;
    let mut appends = Vec::new();
    for i in 0..10 {
        let path = format!("/obj/Hostile/fifo/append?v={i}");
        appends.push(host.send_queued(Method::POST, &path, "", i + 1).await);
    }
    assert_eq!(slow.await.unwrap().status, 200);
    for (i, append) in appends.into_iter().enumerate() {
        let seen: Vec<String> = serde_json::from_str(&append.await.unwrap().body).unwrap();
        let expected: Vec<String> = (0..=i).map(|v| v.to_string()).collect();
        assert_eq!(
            seen, expected,
            "event {i} ran after exactly its predecessors"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_of_one_socket_reach_the_object_in_order() {
    let host = TestHost::start("").await;
    let mut ws = host.ws("/obj/ChatRoom/order/ws?user=ann").await;
    // Sent back to back: many queue up and run in batches.
    for i in 0..100 {
        ws.send(&format!("m{i}")).await;
    }
    for i in 0..100 {
        assert_eq!(
            ws.next_json().await,
            json!({"from": "ann", "text": format!("m{i}")})
        );
    }
    let history = host.get("/obj/ChatRoom/order/history").await.json();
    let texts: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected, "stored in the order sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sends_of_one_event_go_out_in_order() {
    let host = TestHost::start("").await;
    let mut ws = host.ws("/obj/Hostile/burst/ws").await;
    assert_eq!(ws.next_text().await, "welcome");
    ws.send("burst 50").await;
    ws.send("echo end").await;
    for i in 0..50 {
        assert_eq!(ws.next_text().await, format!("b{i}"));
    }
    assert_eq!(ws.next_text().await, "end", "then the next event's send");
}
