//! SQL and KV storage through the `TenantDb` example.

use dohost_tests::TestHost;
use serde_json::{json, Value};

async fn sql(host: &TestHost, tenant: &str, query: &str, params: Value) -> (u16, Value) {
    host.post_json(
        &format!("/obj/TenantDb/{tenant}/sql"),
        json!({"query": query, "params": params}),
    )
    .await
}

async fn kv(host: &TestHost, tenant: &str, body: Value) -> (u16, Value) {
    host.post_json(&format!("/obj/TenantDb/{tenant}/kv"), body)
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_results_carry_columns_rows_and_counters() {
    let host = TestHost::start("").await;
    let (s, r) = sql(
        &host,
        "t",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, score REAL, avatar BLOB)",
        json!([]),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = sql(
        &host,
        "t",
        "INSERT INTO users (name, score, avatar) VALUES (?, ?, ?), (?, ?, ?), (?, ?, ?)",
        json!(["ann", 1.5, {"base64": "AAEC"}, "bob", 2, null, "cid", null, null]),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["rowsRead"].clone(), r["rowsWritten"].clone()),
        (json!(0), json!(3))
    );
    assert!(r["databaseSize"].as_u64().unwrap() > 0);

    let (_, r) = sql(
        &host,
        "t",
        "SELECT id, name, score, avatar FROM users ORDER BY id",
        json!([]),
    )
    .await;
    assert_eq!(r["columns"], json!(["id", "name", "score", "avatar"]));
    assert_eq!(r["rows"][0], json!([1, "ann", 1.5, {"base64": "AAEC"}]));
    assert_eq!(r["rows"][1], json!([2, "bob", 2.0, null]));
    assert_eq!(
        (r["rowsRead"].clone(), r["rowsWritten"].clone()),
        (json!(3), json!(0))
    );

    let (_, r) = sql(
        &host,
        "t",
        "SELECT name FROM users WHERE id = ?",
        json!([2]),
    )
    .await;
    assert_eq!(r["rows"], json!([["bob"]]));
    assert_eq!(r["rowsRead"], 1);
    let (_, r) = sql(
        &host,
        "t",
        "UPDATE users SET score = 0 WHERE score IS NULL",
        json!([]),
    )
    .await;
    assert_eq!(r["rowsWritten"], 1);
    let (_, r) = sql(&host, "t", "DELETE FROM users", json!([])).await;
    assert_eq!(r["rowsWritten"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn several_statements_run_in_order_and_return_the_last_result() {
    let host = TestHost::start("").await;
    let (s, r) = sql(
        &host,
        "multi",
        "CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (?); INSERT INTO t VALUES (?); SELECT sum(v) AS total FROM t",
        json!([40, 2]),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["columns"], json!(["total"]));
    assert_eq!(r["rows"], json!([[42]]));
    assert_eq!(r["rowsWritten"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn forbidden_statements_are_refused_with_a_clear_error() {
    let host = TestHost::start("").await;
    sql(&host, "guard", "CREATE TABLE t (v)", json!([])).await;
    for (query, expected) in [
        ("BEGIN", "BEGIN is not allowed"),
        ("COMMIT", "COMMIT is not allowed"),
        ("ROLLBACK", "ROLLBACK is not allowed"),
        ("SAVEPOINT s", "SAVEPOINT"),
        ("RELEASE s", "SAVEPOINT"),
        ("ATTACH DATABASE '/tmp/x.db' AS x", "ATTACH is not allowed"),
        ("DETACH DATABASE x", "DETACH is not allowed"),
        ("SELECT * FROM _dohost_kv", "_dohost_kv is not allowed"),
        ("DROP TABLE _dohost_meta", "_dohost_meta is not allowed"),
        (
            "PRAGMA journal_mode = OFF",
            "PRAGMA journal_mode is not allowed",
        ),
        (
            "PRAGMA synchronous = OFF",
            "PRAGMA synchronous is not allowed",
        ),
        (
            "PRAGMA writable_schema = ON",
            "PRAGMA writable_schema is not allowed",
        ),
        (
            "SELECT load_extension('/tmp/evil.so')",
            "load_extension() is not allowed",
        ),
        ("INSERT INTO t VALUES (1); BEGIN", "BEGIN is not allowed"),
    ] {
        let (s, r) = sql(&host, "guard", query, json!([])).await;
        assert_eq!(s, 400, "{query}: {r}");
        let err = r["error"].as_str().unwrap_or_default();
        assert!(err.contains(expected), "{query}: {err}");
    }
    // The refused multi-statement exec left nothing behind.
    let (_, r) = sql(&host, "guard", "SELECT count(*) FROM t", json!([])).await;
    assert_eq!(r["rows"], json!([[0]]));
    // Introspection is fine.
    let (s, _) = sql(&host, "guard", "PRAGMA table_info(t)", json!([])).await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_errors_are_400_with_the_sqlite_message() {
    let host = TestHost::start("").await;
    let (s, r) = sql(&host, "e", "SELEKT 1", json!([])).await;
    assert_eq!(s, 400);
    assert!(r["error"].as_str().unwrap().contains("syntax error"), "{r}");
    let (s, r) = sql(&host, "e", "SELECT ?", json!([])).await;
    assert_eq!(s, 400);
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("1 parameter(s) but 0 were given"),
        "{r}"
    );
    let (s, r) = sql(&host, "e", "SELECT * FROM missing", json!([])).await;
    assert_eq!(s, 400);
    assert!(
        r["error"].as_str().unwrap().contains("no such table"),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kv_batches_are_limited_to_128_keys() {
    let host = TestHost::start("").await;
    let entries: serde_json::Map<String, Value> =
        (0..129).map(|i| (format!("k{i:03}"), json!(i))).collect();
    let (s, r) = kv(&host, "batch", json!({"op": "put", "entries": entries})).await;
    assert_eq!(s, 400);
    assert!(
        r["error"].as_str().unwrap().contains("too many keys: 129"),
        "{r}"
    );
    let keys: Vec<String> = (0..129).map(|i| format!("k{i:03}")).collect();
    let (s, _) = kv(&host, "batch", json!({"op": "get", "keys": keys})).await;
    assert_eq!(s, 400);
    let (s, _) = kv(&host, "batch", json!({"op": "delete", "keys": keys})).await;
    assert_eq!(s, 400);
    // Nothing of the refused batch was written; 128 is fine.
    let (_, r) = kv(&host, "batch", json!({"op": "list"})).await;
    assert_eq!(r["entries"], json!([]));
    let entries: serde_json::Map<String, Value> =
        (0..128).map(|i| (format!("k{i:03}"), json!(i))).collect();
    let (s, _) = kv(&host, "batch", json!({"op": "put", "entries": entries})).await;
    assert_eq!(s, 200);
    let (_, r) = kv(
        &host,
        "batch",
        json!({"op": "get", "keys": ["k000", "k127", "nope"]}),
    )
    .await;
    assert_eq!(r["entries"], json!({"k000": 0, "k127": 127}));
}

#[tokio::test(flavor = "multi_thread")]
async fn kv_list_honours_prefix_start_end_reverse_and_limit() {
    let host = TestHost::start("").await;
    let entries =
        json!({"a": 1, "user:1": "x", "user:2": "y", "user:3": "z", "users": 0, "zed": true});
    kv(&host, "list", json!({"op": "put", "entries": entries})).await;
    let keys = |r: Value| -> Vec<String> {
        r["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[0].as_str().unwrap().to_string())
            .collect()
    };
    let (_, r) = kv(&host, "list", json!({"op": "list"})).await;
    assert_eq!(keys(r), ["a", "user:1", "user:2", "user:3", "users", "zed"]);
    let (_, r) = kv(&host, "list", json!({"op": "list", "prefix": "user:"})).await;
    assert_eq!(
        r["entries"],
        json!([["user:1", "x"], ["user:2", "y"], ["user:3", "z"]])
    );
    let (_, r) = kv(
        &host,
        "list",
        json!({"op": "list", "prefix": "user:", "reverse": true, "limit": 2}),
    )
    .await;
    assert_eq!(keys(r), ["user:3", "user:2"]);
    let (_, r) = kv(
        &host,
        "list",
        json!({"op": "list", "start": "user:2", "end": "zed"}),
    )
    .await;
    assert_eq!(keys(r), ["user:2", "user:3", "users"]);
    let (_, r) = kv(
        &host,
        "list",
        json!({"op": "list", "limit": 1, "reverse": true}),
    )
    .await;
    assert_eq!(keys(r), ["zed"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn kv_values_and_keys_have_size_limits() {
    let host = TestHost::start("").await;
    const KEY: usize = 2 * 1024;
    const VALUE: usize = 2 * 1024 * 1024;
    // At the limits: a 2,048-byte key, a value of 2 MiB (TenantDb stores
    // the JSON, so a string of VALUE - 2 chars and its quotes).
    let (s, r) = kv(
        &host,
        "big",
        json!({"op": "put", "key": "k".repeat(KEY), "value": 1}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = kv(
        &host,
        "big",
        json!({"op": "put", "key": "v", "value": "x".repeat(VALUE - 2)}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    // One byte past them.
    let (s, r) = kv(
        &host,
        "big",
        json!({"op": "put", "key": "k".repeat(KEY + 1), "value": 1}),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("key too long: 2049 bytes (keys are at most 2048 bytes)"),
        "{r}"
    );
    let (s, r) = kv(
        &host,
        "big",
        json!({"op": "put", "key": "w", "value": "x".repeat(VALUE - 1)}),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("too large: 2097153 bytes (values are at most 2097152 bytes)"),
        "{r}"
    );
    let (_, r) = kv(&host, "big", json!({"op": "get", "key": "v"})).await;
    assert_eq!(r["value"].as_str().map(str::len), Some(VALUE - 2));
    let (_, r) = kv(&host, "big", json!({"op": "get", "key": "w"})).await;
    assert_eq!(r["value"], Value::Null, "the refused put wrote nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_all_removes_sql_tables_and_kv_entries() {
    let host = TestHost::start("").await;
    sql(
        &host,
        "wipe",
        "CREATE TABLE a (v); INSERT INTO a VALUES (1); CREATE VIEW va AS SELECT * FROM a",
        json!([]),
    )
    .await;
    kv(
        &host,
        "wipe",
        json!({"op": "put", "key": "k", "value": "v"}),
    )
    .await;
    let (s, _) = kv(&host, "wipe", json!({"op": "deleteAll"})).await;
    assert_eq!(s, 200);
    let (_, r) = sql(
        &host,
        "wipe",
        "SELECT name FROM sqlite_schema WHERE name NOT LIKE '\\_dohost\\_%' ESCAPE '\\'",
        json!([]),
    )
    .await;
    assert_eq!(r["rows"], json!([]));
    let (_, r) = kv(&host, "wipe", json!({"op": "get", "key": "k"})).await;
    assert_eq!(r["value"], Value::Null);
    // The object is usable afterwards.
    let (s, _) = sql(&host, "wipe", "CREATE TABLE a (v)", json!([])).await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_db_reports_bad_requests_as_json_errors() {
    let host = TestHost::start("").await;
    let reply = host.post("/obj/TenantDb/x/sql", "not json").await;
    assert_eq!(reply.status, 400);
    assert!(reply.json()["error"].as_str().unwrap().contains("JSON"));
    let (s, r) = kv(&host, "x", json!({"op": "frobnicate"})).await;
    assert_eq!(s, 400);
    assert!(r["error"].as_str().unwrap().contains("unknown op"), "{r}");
}
