//! Rows of the README's Limits table without a natural home elsewhere, each
//! at the limit and one past it: SQL statement text, SQL string or blob, SQL
//! result per `exec`, nested transactions, resource handles, and the timeout
//! of a call between objects. (Storage per object: `group_commit.rs`; KV,
//! batches: `storage.rs`; WebSockets: `websockets.rs`; mailbox, headers,
//! request timeouts: `http.rs`; CPU and memory: `guests.rs`.)

use dohost_tests::{urlencode, TestHost};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn sql(host: &TestHost, tenant: &str, query: &str, params: Value) -> (u16, Value) {
    host.post_json(
        &format!("/obj/TenantDb/{tenant}/sql"),
        json!({"query": query, "params": params}),
    )
    .await
}

fn error(v: &Value) -> &str {
    v["error"].as_str().unwrap_or_default()
}

/// A single statement of exactly `len` bytes (a `SELECT` padded with a comment).
fn statement(len: usize) -> String {
    let mut q = String::from("SELECT 1 --");
    q.push_str(&"x".repeat(len - q.len()));
    q
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_statement_text_is_limited_to_1_mib() {
    let host = TestHost::start("").await;
    const MIB: usize = 1024 * 1024;
    // Several statements of exactly 1 MiB in all run; one byte more is refused.
    let mut batch = String::from("SELECT 1; SELECT 2 --");
    batch.push_str(&"x".repeat(MIB - batch.len()));
    let (s, r) = sql(&host, "text", &batch, json!([])).await;
    assert_eq!((s, r["rows"].clone()), (200, json!([[2]])), "{}", error(&r));
    let (s, r) = sql(&host, "text", &format!("{batch}x"), json!([])).await;
    assert_eq!(s, 400);
    assert!(
        error(&r).contains("query too long: 1048577 bytes (at most 1048576)"),
        "{}",
        error(&r)
    );
    let (s, r) = sql(&host, "text", &statement(MIB + 1), json!([])).await;
    assert_eq!(s, 400);
    assert!(
        error(&r).contains("query too long: 1048577 bytes"),
        "{}",
        error(&r)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_single_statement_of_exactly_1_mib_runs() {
    let host = TestHost::start("").await;
    let (s, r) = sql(&host, "text", &statement(1024 * 1024), json!([])).await;
    assert_eq!((s, r["rows"].clone()), (200, json!([[1]])), "{}", error(&r));
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_values_and_rows_are_limited_to_2_mib_and_3_kib() {
    let host = TestHost::start("").await;
    // SQLite's length limit is sized for a KV row: a 2 MiB value, a 2 KiB key
    // and 1 KiB to spare. It bounds every value, and every stored row (its
    // record: the values and a header of a few bytes).
    const LIMIT: usize = 2 * 1024 * 1024 + 3 * 1024;
    let (s, r) = sql(&host, "blob", "SELECT length(zeroblob(?))", json!([LIMIT])).await;
    assert_eq!(
        (s, r["rows"].clone()),
        (200, json!([[LIMIT]])),
        "{}",
        error(&r)
    );
    let (s, r) = sql(
        &host,
        "blob",
        "SELECT length(zeroblob(?))",
        json!([LIMIT + 1]),
    )
    .await;
    assert_eq!(s, 400, "{r}");
    assert!(error(&r).contains("value too large"), "{}", error(&r));
    // A string parameter is held to the same limit.
    let text = "y".repeat(LIMIT);
    let (s, r) = sql(&host, "blob", "SELECT length(?)", json!([text])).await;
    assert_eq!(
        (s, r["rows"].clone()),
        (200, json!([[LIMIT]])),
        "{}",
        error(&r)
    );
    let (s, r) = sql(
        &host,
        "blob",
        "SELECT length(?)",
        json!([format!("{text}y")]),
    )
    .await;
    assert_eq!(s, 400, "{r}");
    assert!(error(&r).contains("value too large"), "{}", error(&r));
    // A row of one blob: 5 bytes of record header.
    let (s, r) = sql(&host, "blob", "CREATE TABLE t (b)", json!([])).await;
    assert_eq!(s, 200, "{r}");
    let insert = "INSERT INTO t VALUES (zeroblob(?))";
    let (s, r) = sql(&host, "blob", insert, json!([LIMIT - 5])).await;
    assert_eq!(s, 200, "{}", error(&r));
    let (s, r) = sql(&host, "blob", insert, json!([LIMIT - 4])).await;
    assert_eq!(s, 400, "{r}");
    assert!(error(&r).contains("value too large"), "{}", error(&r));
    let (_, r) = sql(&host, "blob", "SELECT length(b) FROM t", json!([])).await;
    assert_eq!(
        r["rows"],
        json!([[LIMIT - 5]]),
        "the refused insert left nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sql_result_is_limited_to_32_mib() {
    let host = TestHost::start("").await;
    const LIMIT: usize = 32 * 1024 * 1024;
    // The host counts each value as its bytes plus 16.
    const ROW: usize = 2_000_000;
    let last = LIMIT - 16 * (ROW + 16) - 16;
    let setup = format!(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 16)
         INSERT INTO t (b) SELECT zeroblob({ROW}) FROM n;
         INSERT INTO t (b) VALUES (zeroblob({last}))"
    );
    let reply = host.post("/obj/Hostile/result/sql-size", setup).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let at_limit = host
        .post(
            "/obj/Hostile/result/sql-size",
            "SELECT b FROM t ORDER BY id",
        )
        .await;
    assert_eq!(
        (at_limit.status, at_limit.body.as_str()),
        (200, format!("rows 17 bytes {}", LIMIT - 17 * 16).as_str())
    );
    let reply = host
        .post(
            "/obj/Hostile/result/sql-size",
            "UPDATE t SET b = zeroblob(length(b) + 1) WHERE id = 17",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let past = host
        .post(
            "/obj/Hostile/result/sql-size",
            "SELECT b FROM t ORDER BY id",
        )
        .await;
    assert_eq!(past.status, 400);
    assert!(
        past.body
            .contains("result too large: more than 33554432 bytes"),
        "{}",
        past.body
    );
}

/// Every storage error reaches the guest as its WIT case: the guest (here the
/// Hostile fixture, through the Rust SDK) can tell them apart.
#[tokio::test(flavor = "multi_thread")]
async fn storage_errors_are_typed_for_the_guest() {
    let host = TestHost::start("[limits]\nmax_storage_bytes = 2000000").await;
    let sql = |query: &'static str| {
        let host = &host;
        async move { host.post("/obj/Hostile/typed/sql-size", query).await }
    };
    let cases = [
        ("ATTACH DATABASE 'x.db' AS x", "Refused"),
        ("SELECT * FROM _dohost_meta", "Refused"),
        ("SELEC 1", "Sql"),
        (
            "CREATE TABLE t (a PRIMARY KEY); INSERT INTO t VALUES (1), (1)",
            "Sql",
        ),
        ("SELECT ?1", "Invalid"),
        ("", "Invalid"),
    ];
    for (query, kind) in cases {
        let reply = sql(query).await;
        assert_eq!(
            (reply.status, reply.error_kind()),
            (400, kind),
            "{query}: {}",
            reply.body
        );
    }
    // A syntax error quotes the guest's own statement and offset.
    let reply = sql("SELEC 1").await;
    assert!(
        reply.body.contains("syntax error in SELEC 1 at offset 0"),
        "{}",
        reply.body
    );
    // Near the quota, the write that crosses it fails alone, as a `quota` case.
    assert_eq!(sql("CREATE TABLE big (b BLOB)").await.status, 200);
    let mut refused = None;
    for _ in 0..200 {
        let reply = sql("INSERT INTO big VALUES (zeroblob(20000))").await;
        if reply.status != 200 {
            refused = Some(reply);
            break;
        }
    }
    let reply = refused.expect("the quota never stopped the inserts");
    assert_eq!(
        (reply.status, reply.error_kind()),
        (400, "Quota"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("storage quota exceeded"),
        "{}",
        reply.body
    );
    // The object goes on.
    assert_eq!(sql("SELECT 1").await.body, "rows 1 bytes 8");
}

#[tokio::test(flavor = "multi_thread")]
async fn transactions_nest_64_deep() {
    let host = TestHost::start("").await;
    assert_eq!(
        host.post("/obj/Hostile/nest/nest?depth=64", "").await.body,
        "ok"
    );
    for level in [1, 64] {
        let got = host
            .get(&format!("/obj/Hostile/nest/get?key=nest:{level}"))
            .await;
        assert_eq!(got.body, "yes", "level {level} committed");
    }
    let reply = host.post("/obj/Hostile/deeper/nest?depth=65", "").await;
    assert_eq!(reply.status, 200, "the guest gets an error, not a trap");
    assert!(
        reply
            .body
            .contains("too many nested transactions (at most 64)"),
        "{}",
        reply.body
    );
    // Every level rolled back with the failure at the 65th.
    for level in [1, 64] {
        let got = host
            .get(&format!("/obj/Hostile/deeper/get?key=nest:{level}"))
            .await;
        assert_eq!(got.body, "none", "level {level}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_may_hold_100_000_resource_handles() {
    let host = TestHost::start("").await;
    let mut log = host.log_lines();
    let mut ws = host.ws("/obj/Hostile/handles/ws").await;
    assert_eq!(ws.next_text().await, "welcome");
    // Held while the answer is sent: the hoard, the event's own socket and
    // the one lent to `send`.
    ws.send("hoard-n 99998").await;
    assert_eq!(ws.next_text().await, "held 99998");
    ws.send("hoard-n 99999").await;
    dohost_tests::wait_for_line(&mut log, "store handle limit exceeded").await;
    ws.send("echo still here").await;
    assert_eq!(
        ws.next_text().await,
        "still here",
        "the trap reset only the instance"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_between_objects_times_out_after_call_timeout() {
    let host =
        Arc::new(TestHost::start("[limits]\ncall_timeout = \"600ms\"\nmax_active = 2").await);
    // Within the limit: the answer.
    let path = format!(
        "/obj/Hostile/caller/relay?to=quick&then={}",
        urlencode("/slow?ms=100")
    );
    assert_eq!(host.post(&path, "").await.body, "200 slow done");
    // Past it: the caller gets the timeout as an error it can handle, at the
    // timeout, not when the callee is done.
    let path = format!(
        "/obj/Hostile/caller/relay?to=sluggish&then={}",
        urlencode("/slow?ms=2000")
    );
    let started = Instant::now();
    let reply = host.post(&path, "").await;
    let took = started.elapsed();
    assert!(
        reply.body.starts_with("error: timeout: Hostile/")
            && reply
                .body
                .ends_with("did not answer a fetch within 600ms (limits.call_timeout)"),
        "{}",
        reply.body
    );
    assert_eq!(reply.error_kind(), "Timeout");
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_millis(1800),
        "answered after {took:?}"
    );
    assert_eq!(
        host.get("/obj/Hostile/caller/get?key=relayed").await.body,
        "yes"
    );
    // The callee ran on and committed (queued behind it, this waits for it).
    assert_eq!(
        host.get("/obj/Hostile/sluggish/get?key=slow").await.body,
        "done"
    );

    // RPC calls too: with both active slots taken (the caller, and an object
    // busy for 1.5 s), the callee cannot even start within the timeout.
    let busy = host.occupy("busy", 1500).await;
    let started = Instant::now();
    let reply = host
        .post(
            "/obj/Hostile/caller/call?class=Types&name=t&method=nothing",
            "[]",
        )
        .await;
    let took = started.elapsed();
    assert!(
        reply.body.starts_with("error: timeout: Types/")
            && reply
                .body
                .ends_with("did not answer nothing within 600ms (limits.call_timeout)"),
        "{}",
        reply.body
    );
    assert_eq!(reply.error_kind(), "Timeout");
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_millis(1400),
        "answered after {took:?}"
    );
    assert_eq!(busy.await.unwrap().status, 200);
    // Once a slot is free, the same call answers.
    let reply = host
        .post(
            "/obj/Hostile/caller/call?class=Types&name=t&method=nothing",
            "[]",
        )
        .await;
    assert_eq!(reply.body, "ok: null");
}
