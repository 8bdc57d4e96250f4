//! Misbehaving guests (the `Hostile` fixture): each failure is precise, rolls
//! back its event, resets only that object and leaves the host serving.

use dohost_tests::TestHost;
use std::sync::Arc;

const LIMITS: &str = "[limits]\ncpu_per_event = \"1s\"\nmemory_per_instance_mib = 32";

async fn assert_rolled_back_and_alive(host: &TestHost, object: &str) {
    assert_eq!(
        host.get(&format!("/obj/Hostile/{object}/get?key=written"))
            .await
            .body,
        "none",
        "the failed event was rolled back"
    );
    assert_eq!(
        host.post(&format!("/obj/Hostile/{object}/put?key=after"), "fine")
            .await
            .body,
        "ok"
    );
    assert_eq!(
        host.get(&format!("/obj/Hostile/{object}/get?key=after"))
            .await
            .body,
        "fine"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_infinite_loop_is_stopped_by_the_cpu_limit_without_hurting_other_objects() {
    let host = TestHost::start(LIMITS).await;
    // Within the limit, guest code runs to the end.
    let within = host.post("/obj/Hostile/spin/slow?ms=500", "").await;
    assert_eq!((within.status, within.body.as_str()), (200, "slow done"));
    let started = std::time::Instant::now();
    let reply = host.post("/obj/Hostile/spin/loop", "").await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "stopped at the limit: {:?}",
        started.elapsed()
    );
    assert_eq!(reply.status, 500);
    assert!(
        reply.body.contains("exceeded the CPU limit of 1s"),
        "{}",
        reply.body
    );
    assert_rolled_back_and_alive(&host, "spin").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn guests_yield_so_busy_objects_do_not_stall_the_others() {
    let host = Arc::new(TestHost::start("").await);
    host.post("/obj/Counter/bystander/increment", "").await;
    // As many spinning guests as the host has worker threads (it runs one per
    // core, as does this machine's count): without yielding, none would be
    // left for the bystander.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut spinning = Vec::new();
    for i in 0..workers {
        spinning.push(host.occupy(&format!("spinner{i}"), 2000).await);
    }
    let started = std::time::Instant::now();
    assert_eq!(
        host.post("/obj/Counter/bystander/increment", "").await.body,
        "2"
    );
    let waited = started.elapsed();
    for s in spinning {
        assert_eq!(s.await.unwrap().body, "slow done");
    }
    assert!(
        waited < std::time::Duration::from_millis(1000),
        "the bystander waited {waited:?} behind {workers} spinning guests"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unbounded_memory_growth_hits_the_memory_limit() {
    let host = TestHost::start(LIMITS).await;
    let reply = host.post("/obj/Hostile/hog/alloc", "").await;
    assert_eq!(reply.status, 500);
    assert!(
        reply.body.contains("exceeded the memory limit of 32 MiB"),
        "{}",
        reply.body
    );
    assert_rolled_back_and_alive(&host, "hog").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deep_recursion_traps_cleanly() {
    let host = TestHost::start(LIMITS).await;
    let reply = host.post("/obj/Hostile/deep/recurse", "").await;
    assert_eq!(reply.status, 500);
    assert!(
        reply.body.contains("call stack exhausted"),
        "{}",
        reply.body
    );
    assert_rolled_back_and_alive(&host, "deep").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_and_an_abort_roll_back_and_say_why() {
    let host = TestHost::start(LIMITS).await;
    let reply = host.post("/obj/Hostile/p/panic", "").await;
    assert_eq!(reply.status, 500);
    assert!(
        reply.body.contains("hostile panic on purpose"),
        "{}",
        reply.body
    );
    assert_rolled_back_and_alive(&host, "p").await;
    let reply = host.post("/obj/Hostile/a/abort", "").await;
    assert_eq!(reply.status, 500);
    assert!(
        reply.body.contains("aborted: hostile abort on purpose"),
        "{}",
        reply.body
    );
    assert_rolled_back_and_alive(&host, "a").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_returned_error_is_not_a_crash_and_commits() {
    let host = TestHost::start(LIMITS).await;
    let reply = host.post("/obj/Hostile/e/error", "").await;
    assert_eq!(reply.status, 500);
    assert!(
        reply.body.contains("hostile error on purpose"),
        "{}",
        reply.body
    );
    assert_eq!(host.get("/obj/Hostile/e/get?key=written").await.body, "yes");
    let m = host.metrics().await;
    assert_eq!(
        m.get(r#"dohost_instantiations_total{class="Hostile"}"#),
        1.0,
        "the instance was kept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_knows_its_class_id_and_name() {
    let host = TestHost::start("").await;
    let id_reply = host.get("/obj/Hostile/who/identity").await.body;
    let parts: Vec<&str> = id_reply.splitn(3, ' ').collect();
    assert_eq!(parts[0], "Hostile");
    assert_eq!(parts[1].len(), 64);
    assert_eq!(parts[2], "Some(\"who\")");
    // Addressed by id, the object still knows the name it was created with.
    let by_id = host
        .get(&format!("/obj/Hostile/id/{}/identity", parts[1]))
        .await
        .body;
    assert_eq!(by_id, id_reply);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_nested_transaction_rolls_back_only_its_part() {
    let host = TestHost::start("").await;
    let reply = host.post("/obj/Hostile/tx/nested", "").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.starts_with("Err(") && reply.body.contains("inner failure"),
        "{}",
        reply.body
    );
    assert!(reply.body.ends_with("Ok(())"), "{}", reply.body);
    assert_eq!(host.get("/obj/Hostile/tx/get?key=outer").await.body, "yes");
    assert_eq!(host.get("/obj/Hostile/tx/get?key=inner").await.body, "none");
    assert_eq!(host.get("/obj/Hostile/tx/get?key=kept").await.body, "yes");
}

#[tokio::test(flavor = "multi_thread")]
async fn huge_responses_are_bounded_by_the_memory_limit() {
    // Within (8 MiB) and past (64 MiB) the 32 MiB limit rather than at it: the
    // instance's own stack, data and allocator share the limit, so the largest
    // response that fits is not a number a test can pin.
    let host = TestHost::start(LIMITS).await;
    let ok = host.post("/obj/Hostile/big/big?mib=8", "").await;
    assert_eq!((ok.status, ok.body.len()), (200, 8 << 20));
    let reply = host.post("/obj/Hostile/big/big?mib=64", "").await;
    assert_eq!(reply.status, 500);
    assert!(
        reply.body.contains("exceeded the memory limit of 32 MiB"),
        "{}",
        &reply.body[..reply.body.len().min(300)]
    );
    assert_eq!(
        host.post("/obj/Hostile/big/put?key=after", "fine")
            .await
            .body,
        "ok"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_sql_result_is_refused_without_harm() {
    let host = TestHost::start("").await;
    let (s, r) = host
        .post_json(
            "/obj/TenantDb/huge/sql",
            serde_json::json!({"query": "CREATE TABLE t (b BLOB); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20) INSERT INTO t SELECT zeroblob(2000000) FROM n"}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = host
        .post_json(
            "/obj/TenantDb/huge/sql",
            serde_json::json!({"query": "SELECT b FROM t"}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        r["error"].as_str().unwrap().contains("result too large"),
        "{r}"
    );
    let (s, r) = host
        .post_json(
            "/obj/TenantDb/huge/sql",
            serde_json::json!({"query": "SELECT count(*) FROM t"}),
        )
        .await;
    assert_eq!((s, r["rows"].clone()), (200, serde_json::json!([[20]])));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_hoarding_resource_handles_is_stopped() {
    let host = TestHost::start("").await;
    let mut log = host.log_lines();
    let mut ws = host.ws("/obj/Hostile/hoarder/ws").await;
    assert_eq!(ws.next_text().await, "welcome");
    ws.send("hoard").await;
    dohost_tests::wait_for_line(&mut log, "cannot hand out another socket handle").await;
    // The socket and the object still work.
    ws.send("echo still here").await;
    assert_eq!(ws.next_text().await, "still here");
}
