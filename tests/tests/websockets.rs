//! Hibernatable WebSockets with real clients: broadcast, hibernation and wake,
//! attachments and tags, auto-response, close/error handlers, limits.

use dohost_tests::{eventually, TestHost};
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// Lets an in-process host's objects idle past `hibernate_after` (10 s, on
/// virtual time) and waits until `done` says the hibernation happened.
async fn idle_until<F, Fut>(host: &TestHost, what: &str, done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    host.advance_ms(10_000);
    eventually(Duration::from_secs(10), what, done).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_is_broadcast_to_every_socket_of_the_room() {
    let host = TestHost::start("").await;
    let mut clients = Vec::new();
    for u in ["ann", "bob", "cid", "dee", "eve"] {
        clients.push(host.ws(&format!("/obj/ChatRoom/lobby/ws?user={u}")).await);
    }
    clients[1].send("hello all").await;
    for c in &mut clients {
        assert_eq!(
            c.next_json().await,
            json!({"from": "bob", "text": "hello all"})
        );
    }
    let users = host.get("/obj/ChatRoom/lobby/users").await.json();
    assert_eq!(users, json!(["ann", "bob", "cid", "dee", "eve"]));
    let history = host.get("/obj/ChatRoom/lobby/history").await.json();
    assert_eq!(history, json!([{"from": "bob", "text": "hello all"}]));
    // Another room hears nothing and holds nobody.
    assert_eq!(
        host.get("/obj/ChatRoom/other/users").await.json(),
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sockets_stay_open_while_the_room_hibernates_and_a_message_wakes_it() {
    let host = TestHost::in_process("").await;
    let mut a = host.ws("/obj/ChatRoom/sleepy/ws?user=ann").await;
    let mut b = host.ws("/obj/ChatRoom/sleepy/ws?user=bob").await;
    idle_until(&host, "the room hibernates", || async {
        let m = host.metrics().await;
        m.get("dohost_instances_active") == 0.0
            && m.get("dohost_objects_hibernated_with_sockets") == 1.0
    })
    .await;
    let m = host.metrics().await;
    assert_eq!(m.get("dohost_websockets_active"), 2.0);
    let before = m.get(r#"dohost_instantiations_total{class="ChatRoom"}"#);
    a.send("still there?").await;
    assert_eq!(
        a.next_json().await,
        json!({"from": "ann", "text": "still there?"})
    );
    assert_eq!(
        b.next_json().await,
        json!({"from": "ann", "text": "still there?"})
    );
    let m = host.metrics().await;
    assert_eq!(
        m.get(r#"dohost_instantiations_total{class="ChatRoom"}"#),
        before + 1.0
    );
    assert!(m.get("dohost_websocket_wakeups_total") >= 1.0);
    // Tags and attachments come back after hibernation.
    assert_eq!(
        host.get("/obj/ChatRoom/sleepy/users").await.json(),
        json!(["ann", "bob"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_and_attachments_survive_hibernation() {
    let host = TestHost::in_process("").await;
    let mut ws = host.ws("/obj/Hostile/tagged/ws?tags=red,blue").await;
    assert_eq!(ws.next_text().await, "welcome");
    ws.send("attach hello-attachment").await;
    assert_eq!(ws.next_text().await, "attached");
    let mut other = host.ws("/obj/Hostile/tagged/ws?tags=green").await;
    assert_eq!(other.next_text().await, "welcome");
    idle_until(&host, "the object hibernates", || async {
        host.metrics().await.get("dohost_instances_active") == 0.0
    })
    .await;
    ws.send("tags").await;
    assert_eq!(ws.next_text().await, "red,blue");
    ws.send("attachment").await;
    assert_eq!(ws.next_text().await, "hello-attachment");
    assert_eq!(
        host.get("/obj/Hostile/tagged/sockets?tag=blue").await.body,
        "red+blue:hello-attachment"
    );
    assert_eq!(
        host.get("/obj/Hostile/tagged/sockets?tag=green").await.body,
        "green:"
    );
    assert_eq!(
        host.get("/obj/Hostile/tagged/sockets?tag=none").await.body,
        ""
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ping_is_answered_with_pong_without_waking_the_room() {
    let host = TestHost::in_process("").await;
    let mut ws = host.ws("/obj/ChatRoom/pinger/ws?user=ann").await;
    idle_until(&host, "the room hibernates", || async {
        host.metrics().await.get("dohost_instances_active") == 0.0
    })
    .await;
    let before = host.metrics().await;
    for _ in 0..3 {
        ws.send("ping").await;
        assert_eq!(ws.next_text().await, "pong");
    }
    let after = host.metrics().await;
    assert_eq!(
        after.get(r#"dohost_instantiations_total{class="ChatRoom"}"#),
        before.get(r#"dohost_instantiations_total{class="ChatRoom"}"#),
        "no wake-up"
    );
    assert_eq!(after.get("dohost_instances_active"), 0.0);
    assert_eq!(
        after.get("dohost_websocket_auto_responses_total"),
        before.get("dohost_websocket_auto_responses_total") + 3.0
    );
    assert!(
        host.get("/obj/ChatRoom/pinger/history")
            .await
            .json()
            .as_array()
            .unwrap()
            .is_empty(),
        "pings are not chat messages"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_auto_response_timestamp_updates() {
    use dohost::clock::Clock;
    let host = TestHost::in_process("").await;
    let mut ws = host.ws("/obj/Hostile/stamps/ws").await;
    assert_eq!(ws.next_text().await, "welcome");
    ws.send("stamp").await;
    assert_eq!(ws.next_text().await, "None");
    ws.send("auto marco=polo").await;
    assert_eq!(ws.next_text().await, "auto set");
    ws.send("marco").await;
    assert_eq!(ws.next_text().await, "polo");
    ws.send("stamp").await;
    let first: i64 = ws
        .next_text()
        .await
        .trim_start_matches("Some(")
        .trim_end_matches(')')
        .parse()
        .unwrap();
    assert_eq!(first, host.clock().now_ms(), "the time it was answered");
    host.advance_ms(20);
    ws.send("marco").await;
    assert_eq!(ws.next_text().await, "polo");
    ws.send("stamp").await;
    let second: i64 = ws
        .next_text()
        .await
        .trim_start_matches("Some(")
        .trim_end_matches(')')
        .parse()
        .unwrap();
    assert_eq!(second, first + 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn closing_a_socket_runs_the_close_handler() {
    let host = TestHost::start("").await;
    let mut ann = host.ws("/obj/ChatRoom/bye/ws?user=ann").await;
    let bob = host.ws("/obj/ChatRoom/bye/ws?user=bob").await;
    bob.close(1000, "gone").await;
    assert_eq!(
        ann.next_json().await,
        json!({"from": "system", "text": "bob left"})
    );
    assert_eq!(
        host.get("/obj/ChatRoom/bye/users").await.json(),
        json!(["ann"])
    );

    let ws = host.ws("/obj/Hostile/closer/ws?tags=t1").await;
    ws.close(4321, "client says bye").await;
    eventually(Duration::from_secs(10), "the close handler ran", || async {
        host.get("/obj/Hostile/closer/get?key=last_close")
            .await
            .body
            != "none"
    })
    .await;
    assert_eq!(
        host.get("/obj/Hostile/closer/get?key=last_close")
            .await
            .body,
        "4321:client says bye:true:t1:"
    );

    // A dropped connection (no close frame) is an unclean close.
    let ws = host.ws("/obj/Hostile/dropper/ws").await;
    ws.abort();
    eventually(Duration::from_secs(10), "the close handler ran", || async {
        host.get("/obj/Hostile/dropper/get?key=last_close")
            .await
            .body
            != "none"
    })
    .await;
    assert!(host
        .get("/obj/Hostile/dropper/get?key=last_close")
        .await
        .body
        .starts_with("1006::false"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_guest_can_close_a_socket_and_sending_afterwards_is_an_error() {
    let host = TestHost::start("").await;
    let mut ws = host.ws("/obj/Hostile/gc/ws").await;
    assert_eq!(ws.next_text().await, "welcome");
    ws.send("close-then-send").await;
    assert_eq!(ws.closed().await, (4001, "closing".to_string()));
    eventually(
        Duration::from_secs(10),
        "the error was recorded",
        || async { host.get("/obj/Hostile/gc/get?key=send_error").await.body != "none" },
    )
    .await;
    assert!(host
        .get("/obj/Hostile/gc/get?key=send_error")
        .await
        .body
        .contains("is closed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_message_runs_the_error_handler_and_closes_with_1009() {
    let host = TestHost::start("[limits]\nmax_ws_message_bytes = 1000").await;
    let mut ws = host.ws("/obj/Hostile/big/ws?tags=large").await;
    assert_eq!(ws.next_text().await, "welcome");
    ws.send("big").await; // the guest tries to send 2 MiB
    assert!(ws.next_text().await.contains("message too large"));
    // At the limit, both ways: 1000 bytes in, the same 1000 bytes echoed out.
    let at_limit = Message::binary(vec![7u8; 1000]);
    ws.send_message(at_limit.clone()).await;
    assert_eq!(ws.next_message().await, at_limit);
    ws.send(&"x".repeat(1001)).await;
    let (code, _) = ws.closed().await;
    assert_eq!(code, 1009);
    eventually(Duration::from_secs(10), "the error handler ran", || async {
        host.get("/obj/Hostile/big/get?key=last_error").await.body != "none"
    })
    .await;
    // The error handler still sees the socket's tags (recorded as
    // "<tags>:<error>").
    let last_error = host.get("/obj/Hostile/big/get?key=last_error").await.body;
    assert!(
        last_error.starts_with("large:") && last_error.contains("message too large"),
        "{last_error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_on_tags_attachments_and_sockets_are_clear_errors() {
    let host = TestHost::start("[limits]\nmax_sockets_per_object = 2").await;
    let eleven = (0..11)
        .map(|i| format!("t{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let err = host
        .try_ws(&format!("/obj/Hostile/lim/ws?tags={eleven}"))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("400"), "{err}");
    let reply = host
        .get(&format!("/obj/Hostile/lim/ws?tags={eleven}"))
        .await;
    assert_eq!(reply.status, 400, "a plain GET is not an upgrade");
    let long = "x".repeat(257);
    let err = host
        .try_ws(&format!("/obj/Hostile/lim2/ws?tags={long}"))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("400"), "{err}");

    // At the limits: 10 tags, a tag of 256 chars, an attachment of 2,048
    // bytes (the JSON string of 2,046 chars).
    let ten = (0..10)
        .map(|i| format!("t{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut a = host.ws(&format!("/obj/Hostile/lim/ws?tags={ten}")).await;
    assert_eq!(a.next_text().await, "welcome");
    a.send("tags").await;
    assert_eq!(a.next_text().await, ten);
    a.send(&format!("attach {}", "y".repeat(2046))).await;
    assert_eq!(a.next_text().await, "attached");
    a.send(&format!("attach {}", "y".repeat(2047))).await;
    assert!(a.next_text().await.contains("attachment too large"));
    a.send("attachment").await;
    assert_eq!(
        a.next_text().await,
        "y".repeat(2046),
        "the refused one changed nothing"
    );
    let long = "x".repeat(256);
    let mut b = host.ws(&format!("/obj/Hostile/lim/ws?tags={long}")).await;
    assert_eq!(b.next_text().await, "welcome");
    b.send("tags").await;
    assert_eq!(b.next_text().await, long);
    // max_sockets_per_object = 2: a third socket is refused, until one closes.
    let third = host.try_ws("/obj/Hostile/lim/ws").await;
    assert!(third.is_err(), "a third socket is refused");
    b.close(1000, "make room").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut again = loop {
        // The host forgets the closed socket just after the close handshake.
        if let Ok(ws) = host.try_ws("/obj/Hostile/lim/ws").await {
            break ws;
        }
        assert!(std::time::Instant::now() < deadline, "no slot was freed");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(again.next_text().await, "welcome");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_in_the_message_handler_does_not_close_other_sockets_and_sends_nothing() {
    let host = TestHost::start("").await;
    let mut a = host.ws("/obj/Hostile/trap/ws").await;
    let mut b = host.ws("/obj/Hostile/trap/ws").await;
    assert_eq!(a.next_text().await, "welcome");
    assert_eq!(b.next_text().await, "welcome");
    a.send("send-then-panic").await;
    a.send("panic").await;
    b.send("broadcast still here").await;
    assert_eq!(
        a.next_text().await,
        "still here",
        "the rolled-back send never went out"
    );
    assert_eq!(b.next_text().await, "still here");
    assert_eq!(
        host.get("/obj/Hostile/trap/get?key=written").await.body,
        "none"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handshake_must_be_accepted_to_upgrade() {
    let host = TestHost::start("").await;
    let reply = host.get("/obj/Hostile/h/fake-101").await;
    assert_eq!(reply.status, 500);
    assert!(reply.body.contains("without accepting"), "{}", reply.body);
    let err = host
        .try_ws("/obj/Hostile/h/ws?refuse=1")
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("200"), "{err}");
    assert_eq!(
        host.get("/obj/Hostile/h/sockets").await.body,
        "",
        "the refused socket was dropped"
    );
    assert_eq!(host.get("/obj/ChatRoom/h/ws?user=x").await.status, 426);
    let m = host.metrics().await;
    assert_eq!(m.get("dohost_websockets_active"), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn history_keeps_the_last_hundred_messages() {
    let host = TestHost::start("").await;
    let mut ws = host.ws("/obj/ChatRoom/long/ws?user=ann").await;
    for i in 0..105 {
        ws.send(&format!("m{i}")).await;
    }
    for _ in 0..105 {
        ws.next_json().await;
    }
    let history = host.get("/obj/ChatRoom/long/history").await.json();
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), 100);
    assert_eq!(history[0]["text"], "m5");
    assert_eq!(history[99]["text"], "m104");
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_messages_reach_the_handler() {
    let host = TestHost::start("").await;
    let mut ws = host.ws("/obj/Hostile/bin/ws").await;
    assert_eq!(ws.next_text().await, "welcome");
    ws.send_message(Message::binary(vec![1u8, 2, 3])).await;
    assert_eq!(ws.next_message().await, Message::binary(vec![1u8, 2, 3]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_sockets_share_one_room() {
    let host = TestHost::start("").await;
    let mut clients = Vec::with_capacity(1000);
    for i in 0..1000 {
        clients.push(host.ws(&format!("/obj/ChatRoom/crowd/ws?user=u{i}")).await);
    }
    assert_eq!(host.metrics().await.get("dohost_websockets_active"), 1000.0);
    clients[0].send("hi everyone").await;
    for c in &mut clients {
        assert_eq!(
            c.next_json().await,
            json!({"from": "u0", "text": "hi everyone"})
        );
    }
    assert_eq!(
        host.get("/obj/ChatRoom/crowd/users")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1000
    );
}
