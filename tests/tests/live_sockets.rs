//! Cloudflare's non-hibernatable WebSockets in a JavaScript class: the server
//! side of a `WebSocketPair` accepted with `ws.accept()`, whose events go to
//! `addEventListener` listeners living in the instance. Such a socket keeps its
//! object awake; if the object is reset anyway, the socket is closed (1001) at
//! its next event instead of talking to listeners that are gone.

use dohost_tests::{eventually, js_probe_hibernating_host, js_probe_kv, TestHost, WsClient};
use std::time::Duration;

async fn accept(host: &TestHost, name: &str, room: &str) -> WsClient {
    let mut ws = host
        .ws(&format!("/obj/JsSdkProbe/{name}/ws-accept?room={room}"))
        .await;
    assert_eq!(ws.next_text().await, "live welcome");
    ws
}

#[tokio::test(flavor = "multi_thread")]
async fn an_accepted_socket_hears_its_listeners_and_keeps_the_object_awake() {
    let host = js_probe_hibernating_host().await;
    let mut ws = accept(&host, "l", "r1").await;
    // The id and property the app gave the socket, and the listener's own
    // count, all live in the one instance; getWebSockets() does not list it.
    ws.send("a").await;
    assert_eq!(
        ws.next_text().await,
        "live conn-1 r1 1 a open=true listed=0"
    );
    ws.send("b").await;
    assert_eq!(
        ws.next_text().await,
        "live conn-1 r1 2 b open=true listed=0"
    );
    let hibernated = "dohost_objects_hibernated";
    assert_eq!(host.metrics().await.get(hibernated), 0.0);
    ws.close(1000, "bye").await;
    eventually(
        Duration::from_secs(10),
        "the close listener ran",
        || async { js_probe_kv(&host, "l", "live_close").await == "conn-1:1000:bye" },
    )
    .await;
    // Nothing keeps it awake any more.
    eventually(Duration::from_secs(10), "the object hibernates", || async {
        host.metrics().await.get(hibernated) == 1.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throwing_listener_is_logged_and_the_socket_stays_open() {
    let host = js_probe_hibernating_host().await;
    let mut ws = accept(&host, "t", "lobby").await;
    ws.send("boom").await;
    host.log_containing("listener failed on purpose").await;
    ws.send("c").await;
    assert_eq!(
        ws.next_text().await,
        "live conn-1 lobby 2 c open=true listed=0"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_object_closes_its_accepted_sockets_with_1001() {
    let host = js_probe_hibernating_host().await;
    let mut ws = accept(&host, "r", "lobby").await;
    // A trap resets the object: the listeners are gone with the instance.
    assert_eq!(
        host.post("/obj/JsSdkProbe/r/kv-then-fail", "").await.status,
        500
    );
    ws.send("anyone?").await;
    assert_eq!(
        ws.closed().await,
        (1001, "the Durable Object was reset: reconnect".to_string())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_class_sees_cloudflares_websocket_globals() {
    let host = js_probe_hibernating_host().await;
    let reply = host.get("/obj/JsSdkProbe/g/globals-ws").await;
    assert_eq!(
        reply.json(),
        serde_json::json!({
            "response": true,
            "pair": "function",
            "states": ["READY_STATE_CONNECTING", "READY_STATE_OPEN", "READY_STATE_CLOSING", "READY_STATE_CLOSED"],
            "outbound": "TypeError: new WebSocket(\"wss://example.com/\"): outbound WebSocket clients are not supported on dohost",
        })
    );
}
