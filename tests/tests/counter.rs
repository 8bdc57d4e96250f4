//! The `Counter` example against the real host: correctness under concurrency,
//! atomic events, persistence and hibernation.

use dohost_tests::{eventually, TestHost};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn a_new_counter_reads_zero_and_increments_by_one_or_by_n() {
    let host = TestHost::start("").await;
    assert_eq!(host.get("/obj/Counter/fresh/").await.body, "0");
    assert_eq!(
        host.post("/obj/Counter/fresh/increment", "").await.body,
        "1"
    );
    assert_eq!(
        host.post("/obj/Counter/fresh/increment?by=41", "")
            .await
            .body,
        "42"
    );
    assert_eq!(
        host.post("/obj/Counter/fresh/increment?by=-2", "")
            .await
            .body,
        "40"
    );
    let bad = host.post("/obj/Counter/fresh/increment?by=lots", "").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("?by must be an integer"), "{}", bad.body);
    assert_eq!(
        host.get("/obj/Counter/fresh").await.body,
        "40",
        "no trailing slash is the root path"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_clients_lose_no_increment() {
    let host = std::sync::Arc::new(TestHost::start("").await);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..10 {
                if host.post("/obj/Counter/busy/increment", "").await.status == 200 {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    assert!(ok > 0);
    let m = host.metrics().await;
    assert_eq!(host.get("/obj/Counter/busy/").await.body, ok.to_string());
    // Group commit: with 50 clients queued on one object, commits covered
    // several events each (one commit per event would make them equal).
    let (commits, committed) = (
        m.get("dohost_commits_total"),
        m.get("dohost_events_committed_total"),
    );
    assert!(
        committed >= ok as f64,
        "{committed} events committed, {ok} ok"
    );
    assert!(
        commits < committed / 2.0,
        "{commits} commits for {committed} events: no group commit"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_rolls_back_the_event_and_the_next_request_sees_committed_state() {
    let host = TestHost::start("").await;
    assert_eq!(
        host.post("/obj/Counter/atomic/increment?by=5", "")
            .await
            .body,
        "5"
    );
    let failed = host
        .post("/obj/Counter/atomic/increment-then-fail", "")
        .await;
    assert_eq!(failed.status, 500);
    assert!(failed.body.contains("trapped"), "{}", failed.body);
    assert!(
        failed.body.contains("now failing on purpose"),
        "the panic message reaches the client: {}",
        failed.body
    );
    assert_eq!(host.get("/obj/Counter/atomic/").await.body, "5");
    assert_eq!(
        host.post("/obj/Counter/atomic/increment", "").await.body,
        "6"
    );
    let m = host.metrics().await;
    assert_eq!(
        m.get(r#"dohost_instantiations_total{class="Counter"}"#),
        2.0,
        "the trapped instance was replaced"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn values_persist_across_a_host_restart() {
    let mut host = TestHost::start("").await;
    host.post("/obj/Counter/durable/increment?by=7", "").await;
    host.restart().await;
    assert_eq!(host.get("/obj/Counter/durable/").await.body, "7");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_object_hibernates_and_the_next_request_rebuilds_it() {
    // On virtual time: idle for exactly `hibernate_after`.
    let host = TestHost::in_process("[limits]\nhibernate_after = \"10s\"").await;
    assert_eq!(
        host.post("/obj/Counter/sleepy/increment?by=3", "")
            .await
            .body,
        "3"
    );
    let m = host.metrics().await;
    assert_eq!(m.get("dohost_instances_active"), 1.0);
    assert_eq!(
        m.get(r#"dohost_instantiations_total{class="Counter"}"#),
        1.0
    );
    host.advance_ms(9_999);
    assert_eq!(
        host.metrics().await.get("dohost_instances_active"),
        1.0,
        "not idle long enough"
    );
    host.advance_ms(1);
    eventually(Duration::from_secs(10), "the object hibernates", || async {
        let m = host.metrics().await;
        m.get("dohost_instances_active") == 0.0 && m.get("dohost_objects_hibernated") == 1.0
    })
    .await;
    assert_eq!(
        host.post("/obj/Counter/sleepy/increment", "").await.body,
        "4"
    );
    let m = host.metrics().await;
    assert_eq!(
        m.get(r#"dohost_instantiations_total{class="Counter"}"#),
        2.0,
        "woken by a new instance"
    );
    assert_eq!(m.get("dohost_instances_active"), 1.0);
    assert_eq!(m.get("dohost_objects_hibernated"), 0.0);
    assert_eq!(m.get(r#"dohost_hibernations_total{reason="idle"}"#), 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn max_active_evicts_the_least_recently_used_object() {
    // Three slots (and no headroom below 16): every activation beyond them
    // evicts exactly one object, the one used least recently. An event on an
    // active object "touches" it; one on an evicted object builds a new instance.
    let host = TestHost::start("[limits]\nmax_active = 3").await;
    let instantiations = || async {
        host.metrics()
            .await
            .get_or_zero(r#"dohost_instantiations_total{class="Counter"}"#)
    };
    let inc = |name: &'static str| {
        let host = &host;
        async move {
            let reply = host
                .post(&format!("/obj/Counter/{name}/increment"), "")
                .await;
            assert_eq!(reply.status, 200, "{}", reply.body);
        }
    };
    // Increments `name`; returns whether it needed a new instance (was evicted).
    let was_evicted = |name: &'static str| async move {
        let before = instantiations().await;
        inc(name).await;
        instantiations().await > before
    };
    for name in ["a", "b", "c"] {
        assert!(was_evicted(name).await, "{name} is new");
    }
    // Used: a b c, then a again. d evicts b — not a (the first activated, which
    // FIFO would pick) and not c (the last activated).
    assert!(!was_evicted("a").await, "a is still active");
    assert!(was_evicted("d").await);
    assert!(!was_evicted("a").await, "a was touched, so b went, not a");
    assert!(!was_evicted("c").await, "c was used after b");
    // Now d a c: b comes back and evicts d.
    assert!(was_evicted("b").await, "b had been evicted");
    assert!(!was_evicted("a").await);
    assert!(!was_evicted("c").await);
    // Now b a c: d comes back and evicts b.
    assert!(was_evicted("d").await, "d had been evicted");
    assert!(!was_evicted("a").await);
    assert!(!was_evicted("c").await);
    let m = host.metrics().await;
    assert_eq!(m.get(r#"dohost_hibernations_total{reason="lru"}"#), 3.0);
    assert_eq!(m.get("dohost_instances_active"), 3.0);
    // Evicted objects kept every increment.
    for (name, value) in [("a", "5"), ("b", "2"), ("c", "4"), ("d", "2")] {
        assert_eq!(host.get(&format!("/obj/Counter/{name}/")).await.body, value);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_are_isolated_from_each_other() {
    let host = TestHost::start("").await;
    host.post("/obj/Counter/one/increment?by=10", "").await;
    host.post("/obj/Counter/two/increment?by=20", "").await;
    assert_eq!(host.get("/obj/Counter/one/").await.body, "10");
    assert_eq!(host.get("/obj/Counter/two/").await.body, "20");
    let (_, put) = host
        .post_json(
            "/obj/TenantDb/one/kv",
            serde_json::json!({"op": "put", "key": "k", "value": 1}),
        )
        .await;
    assert_eq!(put["ok"], true);
    let (_, got) = host
        .post_json(
            "/obj/TenantDb/two/kv",
            serde_json::json!({"op": "get", "key": "k"}),
        )
        .await;
    assert_eq!(got["value"], serde_json::Value::Null);
    // The same name in another class is another object.
    let (_, tables) = host
        .post_json(
            "/obj/TenantDb/one/sql",
            serde_json::json!({"query": "SELECT name FROM sqlite_schema WHERE name = 'counter'"}),
        )
        .await;
    assert_eq!(tables["rows"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overflow_is_refused_and_the_value_stays() {
    let host = TestHost::start("").await;
    let max = i64::MAX.to_string();
    assert_eq!(
        host.post(&format!("/obj/Counter/big/increment?by={max}"), "")
            .await
            .body,
        max
    );
    let reply = host.post("/obj/Counter/big/increment", "").await;
    assert_eq!(reply.status, 500);
    assert!(reply.body.contains("counter overflow"), "{}", reply.body);
    assert_eq!(host.get("/obj/Counter/big/").await.body, max);
    let (status, _) = host
        .rpc("Counter", "big", "increment", serde_json::json!([1]))
        .await;
    assert_eq!(status, 500);
    assert_eq!(host.get("/obj/Counter/big/").await.body, max);
}
