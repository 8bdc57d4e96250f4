//! JavaScript timers (`setTimeout`, `setInterval`) left pending when an event
//! ends fire later as events of their own (`timer-events.fire`), never inside
//! another event, and keep the object awake until they have. Each test waits
//! for the timer's own WebSocket message, never for time.

use dohost_tests::{
    eventually, js_probe_hibernating_host, js_probe_kv, polyglot, TestHost, WsClient,
};
use std::time::Duration;

/// A socket to probe `name` that hears its broadcasts.
async fn listen(host: &TestHost, name: &str) -> WsClient {
    let mut ws = host.ws(&format!("/obj/JsSdkProbe/{name}/ws?tags=t")).await;
    assert_eq!(ws.next_text().await, "welcome");
    ws
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pending_timeout_fires_as_its_own_committed_event() {
    let host = js_probe_hibernating_host().await;
    let mut ws = listen(&host, "t").await;
    let set = host.post("/obj/JsSdkProbe/t/timer?ms=50&label=a", "").await;
    assert_eq!((set.status, set.body.as_str()), (200, "set"));
    // Nothing awaits it, and the object would hibernate right after the
    // request: the timer keeps it awake and fires on its own.
    assert_eq!(ws.next_text().await, "timer a 1");
    assert_eq!(js_probe_kv(&host, "t", "timer_fired").await, "1");
    let m = host.metrics().await;
    let timer_events = r#"dohost_events_total{class="JsSdkProbe",kind="timer",outcome="ok"}"#;
    assert_eq!(m.get(timer_events), 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interval_ticks_until_cleared_then_the_object_hibernates() {
    let host = js_probe_hibernating_host().await;
    let mut ws = listen(&host, "i").await;
    host.post("/obj/JsSdkProbe/i/interval?ms=10&times=3", "")
        .await;
    assert_eq!(ws.next_text().await, "tick 1");
    // Still ticking: awake although `hibernate_after` is 0.
    let hibernated = "dohost_objects_hibernated";
    assert_eq!(host.metrics().await.get(hibernated), 0.0);
    for n in 2..=3 {
        assert_eq!(ws.next_text().await, format!("tick {n}"));
    }
    // The interval cleared itself: nothing keeps the object awake any more.
    eventually(Duration::from_secs(10), "the object hibernates", || async {
        host.metrics().await.get(hibernated) == 1.0
    })
    .await;
    assert_eq!(js_probe_kv(&host, "i", "ticks").await, "3");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_cleared_by_a_later_event_never_fires() {
    let host = js_probe_hibernating_host().await;
    let mut ws = listen(&host, "c").await;
    host.post("/obj/JsSdkProbe/c/timer?ms=100&label=a", "")
        .await;
    assert_eq!(
        host.post("/obj/JsSdkProbe/c/timer-clear?label=a", "")
            .await
            .body,
        "cleared"
    );
    // `b` is due after `a` would have been: `a` would be heard first.
    host.post("/obj/JsSdkProbe/c/timer?ms=150&label=b", "")
        .await;
    assert_eq!(ws.next_text().await, "timer b 1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throwing_timer_is_logged_and_the_others_and_its_writes_stand() {
    let host = js_probe_hibernating_host().await;
    let mut ws = listen(&host, "x").await;
    host.post("/obj/JsSdkProbe/x/timer-throw", "").await;
    assert_eq!(ws.next_text().await, "after throw");
    let line = host.log_containing("timer handler returned an error").await;
    assert!(line.contains("timer failed on purpose"), "{line}");
    assert_eq!(js_probe_kv(&host, "x", "before_throw").await, "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timer_left_pending_never_fires_inside_a_later_event() {
    let classes = vec![("JsSdkProbe", polyglot("js_sdk_probe"))];
    let host = TestHost::start_with(&classes, "").await;
    assert_eq!(
        host.post("/obj/JsSdkProbe/t/timer-arm", "").await.body,
        "armed"
    );
    let r = host.get("/obj/JsSdkProbe/t/timer-wait").await;
    assert_eq!(r.status, 200);
    assert_ne!(r.body, "\"inside\"", "a stale timer ran inside the event");
    // They still fire, each in an event of its own.
    eventually(Duration::from_secs(10), "the stale timers fire", || async {
        js_probe_kv(&host, "t", "stale").await == "own"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timer_set_after_its_event_settled_still_fires_on_its_own() {
    let host = js_probe_hibernating_host().await;
    let mut ws = listen(&host, "b").await;
    assert_eq!(
        host.post("/obj/JsSdkProbe/b/bg-chain", "").await.body,
        "started"
    );
    // No later event comes: the timer is heard only if it fires by itself.
    assert_eq!(ws.next_text().await, "bg start,text none,timer");
}
