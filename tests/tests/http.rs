//! Routing and HTTP-level errors.

use dohost_tests::TestHost;

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
    host.post("/obj/Counter/named/increment?by=9", "").await;
    let id = host.get("/obj/Hostile/named/identity").await.body;
    assert!(!id.is_empty());
    // Counter's id for "named", from the Hostile fixture's view of the id function.
    let hostile_id = id.split(' ').nth(1).unwrap().to_string();
    assert_eq!(
        host.get(&format!("/obj/Hostile/id/{hostile_id}/get?key=x"))
            .await
            .status,
        200
    );
    // Ids are class-scoped: the Counter's id for "named" differs from Hostile's.
    let counter_by_hostile_id = host
        .get(&format!("/obj/Counter/id/{hostile_id}/"))
        .await
        .body;
    assert_eq!(counter_by_hostile_id, "0");
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
    let reply = host.post("/obj/TenantDb/x/kv", "x".repeat(1001)).await;
    assert_eq!(reply.status, 413);
    assert!(
        reply.body.contains("limits.max_body_bytes"),
        "{}",
        reply.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_mailbox_is_503_with_retry_after() {
    let host =
        std::sync::Arc::new(TestHost::start("[limits]\nmailbox = 1\ncpu_per_event = \"2s\"").await);
    // One event spins in the guest; the next fills the mailbox; the rest bounce.
    let spinning = {
        let host = host.clone();
        tokio::spawn(async move { host.post("/obj/Hostile/flood/loop", "").await })
    };
    let mut overloaded = None;
    for _ in 0..200 {
        let h = host.clone();
        let reply = tokio::spawn(async move { h.get("/obj/Hostile/flood/get").await });
        // Fire a burst without waiting for each.
        tokio::task::yield_now().await;
        let reply = match tokio::time::timeout(std::time::Duration::from_millis(50), reply).await {
            Ok(r) => r.unwrap(),
            Err(_) => continue,
        };
        if reply.status == 503 {
            overloaded = Some(reply);
            break;
        }
    }
    let reply = overloaded.expect("some request was refused while the mailbox was full");
    assert_eq!(reply.headers.get("retry-after").unwrap(), "1");
    assert!(reply.body.contains("overloaded"), "{}", reply.body);
    assert_eq!(spinning.await.unwrap().status, 500);
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
    // Too many headers.
    let mut req = host.client.get(format!("{}/_dohost/health", host.url));
    for i in 0..120 {
        req = req.header(format!("x-h{i}"), "v");
    }
    assert_eq!(req.send().await.unwrap().status(), 431);
    // The server is fine.
    assert_eq!(host.get("/_dohost/health").await.status, 200);
}
