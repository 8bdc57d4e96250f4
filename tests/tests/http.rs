//! Routing and HTTP-level errors.

use dohost_tests::TestHost;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn malformed_ids_are_400_and_say_what_a_valid_id_looks_like() {
    let host = TestHost::start("").await;
    for bad in ["zz", &"A".repeat(64), &"g".repeat(64), &"0".repeat(65)] {
        let reply = host.get(&format!("/obj/Counter/id/{bad}/")).await;
        assert_eq!(reply.status, 400, "{bad}");
        assert!(
            reply.json()["error"]
                .as_str()
                .unwrap()
                .contains("64 lowercase hex characters"),
            "{}",
            reply.body
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_is_the_same_by_name_and_by_id() {
    let host = TestHost::start("").await;
    // The Counter's id for "named", from a guest's namespaces.id-from-name.
    let id = host
        .get("/obj/Hostile/x/id-of?class=Counter&name=named")
        .await
        .body;
    assert_eq!(id.len(), 64, "{id}");
    assert_eq!(
        host.post("/obj/Counter/named/increment?by=9", "")
            .await
            .body,
        "9"
    );
    // By id over /obj and /rpc: the same object.
    assert_eq!(
        host.post(&format!("/obj/Counter/id/{id}/increment"), "")
            .await
            .body,
        "10"
    );
    assert_eq!(
        host.post_json(&format!("/rpc/Counter/id/{id}/increment"), json!([5]))
            .await,
        (200, json!(15))
    );
    assert_eq!(host.get("/obj/Counter/named/").await.body, "15");
    assert_eq!(
        host.rpc("Counter", "named", "get", json!([])).await,
        (200, json!(15))
    );
    // Ids are class-scoped: Hostile's id for "named" is another id, and as a
    // Counter id it names another (new) Counter.
    let hostile_id = host
        .get("/obj/Hostile/x/id-of?class=Hostile&name=named")
        .await
        .body;
    assert_ne!(hostile_id, id);
    let identity = host.get("/obj/Hostile/named/identity").await.body;
    assert_eq!(identity.split(' ').nth(1), Some(hostile_id.as_str()));
    assert_eq!(
        host.get(&format!("/obj/Counter/id/{hostile_id}/"))
            .await
            .body,
        "0"
    );
    // A malformed id is refused on /rpc as on /obj.
    let reply = host.post("/rpc/Counter/id/zz/get", "[]").await;
    assert_eq!(reply.status, 400, "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_classes_and_routes_are_404_with_guidance() {
    let host = TestHost::start("").await;
    let reply = host.get("/obj/Nope/x/").await;
    assert_eq!(reply.status, 404);
    let err = reply.json()["error"].as_str().unwrap().to_string();
    assert!(
        err.contains("unknown class \"Nope\"")
            && err.contains("Counter, Hostile, Leaderboard, Player, TenantDb, Types"),
        "{err}"
    );
    let reply = host.get("/elsewhere").await;
    assert_eq!(reply.status, 404);
    assert!(
        reply.body.contains("/obj/<class>/<name>/<path>"),
        "{}",
        reply.body
    );
    let reply = host.get("/obj/Counter/").await;
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("empty object name"), "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_metrics_are_served() {
    let host = TestHost::start("").await;
    let health = host.get("/_dohost/health").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    host.post("/obj/Counter/m/increment", "").await;
    let m = host.metrics().await;
    for key in [
        "dohost_instances_active",
        "dohost_objects_hibernated",
        "dohost_mailbox_depth",
        r#"dohost_instantiations_total{class="Counter"}"#,
        r#"dohost_events_total{class="Counter",kind="fetch",outcome="ok"}"#,
    ] {
        assert!(m.0.contains_key(key), "missing {key}: {:?}", m.0.keys());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_body_is_413() {
    let host = TestHost::start("[limits]\nmax_body_bytes = 1000").await;
    let at_limit = host.post("/obj/Hostile/b/put", "x".repeat(1000)).await;
    assert_eq!((at_limit.status, at_limit.body.as_str()), (200, "ok"));
    let reply = host.post("/obj/Hostile/b/put", "x".repeat(1001)).await;
    assert_eq!(reply.status, 413);
    assert!(
        reply.json()["error"]
            .as_str()
            .unwrap()
            .contains("request body larger than 1000 bytes (limits.max_body_bytes)"),
        "{}",
        reply.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_mailbox_is_503_with_retry_after() {
    let host = std::sync::Arc::new(TestHost::start("[limits]\nmailbox = 4").await);
    // The object is busy; four events fill its mailbox; the fifth is refused
    // at once, without waiting.
    let busy = host.occupy("flood", 500).await;
    let mut queued = Vec::new();
    for n in 1..=4 {
        queued.push(
            host.send_queued(reqwest::Method::GET, "/obj/Hostile/flood/get", "", n)
                .await,
        );
    }
    let started = std::time::Instant::now();
    let reply = host.get("/obj/Hostile/flood/get").await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(started.elapsed() < std::time::Duration::from_millis(400));
    assert_eq!(reply.headers.get("retry-after").unwrap(), "1");
    assert!(
        reply.json()["error"]
            .as_str()
            .unwrap()
            .contains("already has 4 events queued (limits.mailbox)"),
        "{}",
        reply.body
    );
    assert_eq!(busy.await.unwrap().status, 200);
    for q in queued {
        assert_eq!(q.await.unwrap().status, 200, "a queued event was served");
    }
    assert_eq!(host.get("/obj/Hostile/flood/get").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_are_cut_off_and_too_many_headers_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = TestHost::start("[limits]\nrequest_read_timeout = \"500ms\"").await;
    let addr = host.url.trim_start_matches("http://").to_string();
    // Slowloris: half a request line, then nothing.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /_dohost/health HT").await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        slow.read_to_end(&mut buf),
    )
    .await;
    assert!(read.is_ok(), "the server closed the slow connection");
    // A body that never arrives.
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stalled
        .write_all(
            b"POST /obj/Counter/x/increment HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc",
        )
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), stalled.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    // A body that arrives in parts within the timeout is read.
    let mut late = tokio::net::TcpStream::connect(&addr).await.unwrap();
    late.write_all(
        b"POST /obj/Hostile/late/put HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\nconnection: close\r\n\r\nab",
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await; // a slow client, on purpose
    late.write_all(b"cd").await.unwrap();
    let mut reply = String::new();
    late.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(host.get("/obj/Hostile/late/get").await.body, "abcd");
    // Exactly 100 headers are fine; 101 are refused with the JSON error.
    for (headers, status) in [(100, "200"), (101, "431"), (400, "431")] {
        let mut req =
            String::from("GET /_dohost/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n");
        for i in 2..headers {
            req.push_str(&format!("x-h{i}: v\r\n"));
        }
        req.push_str("\r\n");
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        conn.write_all(req.as_bytes()).await.unwrap();
        let mut reply = String::new();
        conn.read_to_string(&mut reply).await.unwrap();
        assert!(
            reply.starts_with(&format!("HTTP/1.1 {status}")),
            "{headers} headers: {reply}"
        );
        if status == "431" {
            let body = reply.split("\r\n\r\n").nth(1).unwrap_or_default();
            let json: serde_json::Value = serde_json::from_str(body)
                .unwrap_or_else(|e| panic!("{headers} headers: not JSON ({e}): {reply}"));
            assert_eq!(
                json["error"],
                format!("{headers} request headers: at most 100 are accepted")
            );
        }
    }
    // The server is fine.
    assert_eq!(host.get("/_dohost/health").await.status, 200);
}
