//! The safety envelope (issue 13): no guest or client can wedge, starve,
//! exhaust or corrupt the host. Each test names what a hostile guest or
//! client tries and checks the precise answer, that nothing committed is
//! lost, and that the host (and the object) serve on.

use dohost_tests::{eventually, wait_for_line, Launch, TestHost};
use serde_json::json;
use std::time::{Duration, Instant};

const RUNAWAY: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

/// How often a Hostile object's alarm handler has run.
async fn alarm_runs(host: &TestHost, name: &str) -> i64 {
    let body = host.get(&format!("/obj/Hostile/{name}/alarm")).await.body;
    eprintln!("alarm of {name}: {body}");
    body.rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(-1)
}

fn sql(query: &str) -> String {
    json!({ "query": query }).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn runaway_guest_sql_is_stopped_at_the_cpu_limit_and_the_host_shuts_down() {
    let mut host = TestHost::start("[limits]\ncpu_per_event = \"1s\"").await;
    let (s, _) = host
        .post_json(
            "/obj/TenantDb/x/sql",
            json!({"query": "CREATE TABLE t (v); INSERT INTO t VALUES (1)"}),
        )
        .await;
    assert_eq!(s, 200);
    // Eight of them at once, on eight objects and on the one with data.
    let mut runs = Vec::new();
    for i in 0..8 {
        let (client, url) = (host.client.clone(), host.url.clone());
        let name = if i == 0 {
            "x".to_string()
        } else {
            format!("r{i}")
        };
        runs.push(tokio::spawn(async move {
            let res = client
                .post(format!("{url}/obj/TenantDb/{name}/sql"))
                .body(sql(RUNAWAY))
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }));
    }
    for run in runs {
        let (status, body) = run.await.unwrap();
        assert_eq!(status, 500, "{body}");
        assert!(body.contains("exceeded the CPU limit of 1s"), "{body}");
    }
    // The object serves at once, with its committed data.
    let (s, r) = host
        .post_json("/obj/TenantDb/x/sql", json!({"query": "SELECT v FROM t"}))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["rows"], json!([[1]]));
    assert_eq!(host.terminate(Duration::from_secs(20)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_that_sleeps_in_wasi_is_stopped_at_the_deadline_and_rolled_back() {
    let host = TestHost::start("[limits]\ncpu_per_event = \"300ms\"").await;
    let r = host.post("/obj/Hostile/s/sleep?ms=60000", "").await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(r.body.contains("CPU limit"), "{}", r.body);
    assert_eq!(
        host.get("/obj/Hostile/s/get?key=written").await.body,
        "none"
    );
    // Within the deadline it is fine.
    let r = host.post("/obj/Hostile/s/sleep?ms=10", "").await;
    assert_eq!((r.status, r.body.as_str()), (200, "slept"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_set_in_the_constructor_fires() {
    let host = TestHost::start("").await;
    host.post("/obj/Hostile/c/put?key=ctor", "alarm").await;
    // A fresh instance runs the constructor, which sets the alarm.
    host.post("/obj/Hostile/c/abort", "").await;
    let r = host.get("/obj/Hostile/c/alarm").await;
    assert!(
        r.body.starts_with("Some("),
        "the constructor's alarm is set: {}",
        r.body
    );
    eventually(
        Duration::from_secs(10),
        "the constructor's alarm ran",
        || async { alarm_runs(&host, "c").await >= 1 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_auto_response_set_in_the_constructor_answers() {
    let host = TestHost::start("").await;
    host.post("/obj/Hostile/a/put?key=ctor", "auto").await;
    host.post("/obj/Hostile/a/abort", "").await;
    let mut ws = host.ws("/obj/Hostile/a/ws").await;
    assert_eq!(ws.next_text().await, "welcome");
    ws.send("ping-ctor").await;
    assert_eq!(ws.next_text().await, "pong-ctor");
}

#[tokio::test(flavor = "multi_thread")]
async fn alarm_times_near_the_ends_of_i64_are_refused_and_alarms_keep_firing() {
    let host = TestHost::start("").await;
    for at in [i64::MIN, -2, 0, i64::MAX] {
        let r = host
            .post(&format!("/obj/Hostile/bad/alarm-at?at={at}"), "")
            .await;
        assert_eq!(r.status, 400, "{at}: {}", r.body);
        assert!(r.body.contains("out of range"), "{}", r.body);
        assert_eq!(r.error_kind(), "Invalid");
    }
    host.post("/obj/Hostile/good/alarm?in=50", "").await;
    eventually(
        Duration::from_secs(10),
        "another object's alarm fired",
        || async { alarm_runs(&host, "good").await == 1 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_socket_that_never_reads_is_closed_at_its_send_budget_and_the_host_stays_small() {
    let host = TestHost::start(
        "[limits]\nmax_ws_message_bytes = 65536\nmax_ws_send_queue_bytes = 262144\nws_write_timeout = \"1s\"",
    )
    .await;
    let sleeper = host.ws("/obj/Hostile/room/ws?tags=sleeper").await;
    let mut talker = host.ws("/obj/Hostile/room/ws?tags=talker").await;
    assert_eq!(talker.next_text().await, "welcome");
    let (rss_before, _) = host.rss();
    let chunk = "y".repeat(8000);
    // 30,000 broadcasts of 8 KB: 240 MB for a socket that reads nothing.
    for _ in 0..30_000 {
        talker.send(&format!("to sleeper {chunk}")).await;
        if host
            .get("/obj/Hostile/room/get?key=last_close")
            .await
            .body
            .starts_with("1008")
        {
            break;
        }
    }
    host.log_containing("closing it with 1008").await;
    let (rss_after, _) = host.rss();
    let grown = rss_after.saturating_sub(rss_before);
    assert!(
        grown < 64 << 20,
        "the host buffered {} MB for a slow reader",
        grown >> 20
    );
    eventually(
        Duration::from_secs(10),
        "the object saw the close",
        || async {
            host.get("/obj/Hostile/room/get?key=last_close")
                .await
                .body
                .starts_with("1008")
        },
    )
    .await;
    let err = host.get("/obj/Hostile/room/get?key=last_error").await.body;
    assert!(err.contains("send queue over 262144 bytes"), "{err}");
    drop(sleeper);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_leaves_during_the_upgrade_leaves_no_socket_behind() {
    use tokio::io::AsyncWriteExt;
    let host = TestHost::start("").await;
    let addr = host.url.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "GET /obj/Hostile/up/ws-slow?ms=500 HTTP/1.1\r\nhost: {addr}\r\nupgrade: websocket\r\n\
         connection: Upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    let mut lines = host.log_lines();
    tcp.write_all(request.as_bytes()).await.unwrap();
    // The object has the request; the client leaves before it answers.
    wait_for_line(&mut lines, "hostile ws-slow started").await;
    drop(tcp);
    eventually(
        Duration::from_secs(10),
        "the object saw the socket close",
        || async {
            host.get("/obj/Hostile/up/get?key=last_close")
                .await
                .body
                .starts_with("1006")
        },
    )
    .await;
    assert_eq!(host.metrics().await.get("dohost_websockets_active"), 0.0);
    assert_eq!(host.get("/obj/Hostile/up/sockets").await.body, "");
}

#[tokio::test(flavor = "multi_thread")]
async fn statements_that_would_end_the_hosts_transaction_are_refused() {
    let host = TestHost::start("").await;
    let (s, _) = host
        .post_json(
            "/obj/TenantDb/rb/sql",
            json!({"query": "CREATE TABLE t (v UNIQUE)"}),
        )
        .await;
    assert_eq!(s, 200);
    for query in [
        "INSERT OR ROLLBACK INTO t VALUES (1)",
        "CREATE TABLE u (v UNIQUE ON CONFLICT ROLLBACK)",
        "CREATE TRIGGER no AFTER INSERT ON t BEGIN SELECT RAISE(ROLLBACK, 'no'); END",
    ] {
        let (s, r) = host
            .post_json("/obj/TenantDb/rb/sql", json!({ "query": query }))
            .await;
        assert_eq!(s, 400, "{query}: {r}");
        assert!(
            r["error"]
                .as_str()
                .unwrap()
                .contains("would end the host's transaction"),
            "{r}"
        );
    }
    // Many clients writing while one sends them: every write lands.
    let mut writers = Vec::new();
    for i in 0..200 {
        let (client, url) = (host.client.clone(), host.url.clone());
        writers.push(tokio::spawn(async move {
            let q = if i % 10 == 0 {
                "INSERT OR ROLLBACK INTO t VALUES (0)".to_string()
            } else {
                format!("INSERT INTO t VALUES ({i})")
            };
            client
                .post(format!("{url}/obj/TenantDb/rb/sql"))
                .body(sql(&q))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut ok = 0;
    for (i, w) in writers.into_iter().enumerate() {
        let status = w.await.unwrap();
        if i % 10 == 0 {
            assert_eq!(status, 400);
        } else {
            assert_eq!(status, 200, "write {i}");
            ok += 1;
        }
    }
    let (_, r) = host
        .post_json(
            "/obj/TenantDb/rb/sql",
            json!({"query": "SELECT count(*) FROM t"}),
        )
        .await;
    assert_eq!(r["rows"], json!([[ok]]));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_descriptor_limit_is_budgeted_and_new_objects_never_starve() {
    let host = TestHost::launch_with(Launch {
        nofile: Some(512),
        ..Launch::default()
    })
    .await;
    let line = host.log_containing("file descriptors:").await;
    assert!(line.contains("limit 512"), "{line}");
    let lowered = host.log_containing("cannot hold limits.max_active").await;
    assert!(lowered.contains("lowered to"), "{lowered}");
    // Idle sockets up to the connection cap, then more: refused, not hung.
    let mut sockets = Vec::new();
    let mut refused = 0;
    for i in 0..400 {
        match host
            .try_ws(&format!("/obj/ChatRoom/big/ws?user=u{i}"))
            .await
        {
            Ok(ws) => sockets.push(ws),
            Err(e) => {
                assert!(e.to_string().contains("503"), "{e}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "the cap let {} sockets in", sockets.len());
    assert!(sockets.len() > 100, "only {} sockets", sockets.len());
    // Room for requests again, with all those sockets still open: new
    // objects open their databases.
    drop(sockets.split_off(sockets.len() - 20));
    eventually(
        Duration::from_secs(10),
        "the closed sockets gave their places back",
        // At the cap a new connection is answered 503 before its request is
        // even read, which the client reports as an error: not yet.
        || async {
            reqwest::get(format!("{}/_dohost/health", host.url))
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
    for i in 0..150 {
        let r = host
            .post(&format!("/obj/Counter/fd{i}/increment"), "")
            .await;
        assert_eq!(r.status, 200, "object {i}: {}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_constructor_that_fails_during_an_alarm_is_retried_with_backoff_then_given_up() {
    let host = TestHost::start("[alarms]\nretry_base = \"100ms\"\nmax_retries = 2").await;
    // On a live instance: the constructor fails from its next run on, and
    // the alarm comes due soon after the instance is reset.
    host.post("/obj/Hostile/cf/put?key=ctor", "fail").await;
    host.post("/obj/Hostile/cf/alarm?in=300", "").await;
    host.post("/obj/Hostile/cf/abort", "").await;
    let id = dohost_tests::id_of("Hostile", "cf");
    let failed = "dohost_alarms_total{class=\"Hostile\",outcome=\"failed\"}";
    eventually(
        Duration::from_secs(20),
        "the alarm was given up",
        || async {
            host.metrics().await.get_or_zero(failed) == 1.0
                && !host.get("/_dohost/alarms").await.body.contains(&id)
        },
    )
    .await;
    let m = host.metrics().await;
    assert_eq!(
        m.get("dohost_alarms_total{class=\"Hostile\",outcome=\"retried\"}"),
        2.0,
        "two retries with backoff, then given up"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_event_cannot_queue_unbounded_socket_sends() {
    let host = TestHost::start("").await;
    let mut ws = host.ws("/obj/Hostile/fl/ws").await;
    assert_eq!(ws.next_text().await, "welcome");
    ws.send("flood 80").await;
    eventually(
        Duration::from_secs(30),
        "the flood was recorded",
        || async { host.get("/obj/Hostile/fl/get?key=flood").await.body != "none" },
    )
    .await;
    let flood = host.get("/obj/Hostile/fl/get?key=flood").await.body;
    assert!(
        flood.starts_with("64: too much to send in one event"),
        "{flood}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rpc_arguments_and_results_have_byte_caps() {
    let host = TestHost::start("").await;
    // At the argument limit (4 MiB of JSON) and past it.
    let at = 4 * 1024 * 1024;
    let string = json!(["s".repeat(at - 4)]).to_string();
    assert_eq!(string.len(), at);
    let (s, v) = host
        .post_json(
            "/rpc/Types/t/echo-string",
            serde_json::from_str(&string).unwrap(),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v.as_str().unwrap().len(), at - 4);
    let answer = dohost_tests::raw_request(
        &host,
        &format!(
            "POST /rpc/Types/t/echo-string HTTP/1.1\r\ncontent-length: {}\r\n\r\n",
            at + 1
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("the RPC argument limit"), "{answer}");
    let (s, v) = host.rpc("Types", "t", "sequence", json!([1000])).await;
    assert_eq!(s, 200);
    assert_eq!(v.as_array().unwrap().len(), 1000);
    let (s, v) = host.rpc("Types", "t", "sequence", json!([2_000_000])).await;
    assert_eq!(
        s,
        500,
        "{}",
        v.to_string().chars().take(200).collect::<String>()
    );
    assert!(
        v["error"].as_str().unwrap().contains("result is too large"),
        "{v}"
    );
    let r = host
        .post(
            "/rpc/Types/t/greet",
            r#"{"name": "a", "times": 1, "times": 9}"#,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("duplicate key"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deferred_foreign_key_violation_fails_only_its_event() {
    let host = TestHost::start("").await;
    let q = |query: &str| json!({ "query": query });
    let (s, _) = host
        .post_json(
            "/obj/TenantDb/fk/sql",
            q("CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (p REFERENCES p(id))"),
        )
        .await;
    assert_eq!(s, 200);
    let (s, r) = host
        .post_json(
            "/obj/TenantDb/fk/sql",
            q("PRAGMA defer_foreign_keys = ON; INSERT INTO c VALUES (42)"),
        )
        .await;
    assert_eq!(s, 500, "{r}");
    assert!(r["error"].as_str().unwrap().contains("deferred"), "{r}");
    let (s, r) = host
        .post_json(
            "/obj/TenantDb/fk/sql",
            q("INSERT INTO p VALUES (1); INSERT INTO c VALUES (1); SELECT count(*) FROM c"),
        )
        .await;
    assert_eq!(s, 200, "the object serves on: {r}");
    assert_eq!(r["rows"], json!([[1]]));
}

#[tokio::test(flavor = "multi_thread")]
async fn call_chains_are_limited_in_depth() {
    let host = TestHost::start("").await;
    assert_eq!(host.get("/obj/Hostile/chain-5/chain?n=5").await.body, "end");
    let body = host.get("/obj/Hostile/chain-20/chain?n=20").await.body;
    assert!(body.contains("call depth limit"), "{body}");
    assert!(body.contains("at most 16"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_constructor_calling_its_waiting_caller_is_a_cycle_not_a_timeout() {
    let host = TestHost::start("[limits]\ncall_timeout = \"20s\"").await;
    // B's constructor calls A; A calls B (whose constructor then runs).
    host.post("/obj/Hostile/ctor-b/put?key=ctor", "call:ctor-a")
        .await;
    host.post("/obj/Hostile/ctor-b/abort", "").await;
    let started = Instant::now();
    let body = host
        .post("/obj/Hostile/ctor-a/relay?to=ctor-b&then=/get", "")
        .await
        .body;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "waited for the timeout: {body}"
    );
    let seen = host.get("/obj/Hostile/ctor-b/get?key=ctor_call").await.body;
    assert!(seen.contains("call cycle"), "{seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_requests_calling_each_others_objects_fail_fast_instead_of_deadlocking() {
    let host = TestHost::start("[limits]\ncall_timeout = \"20s\"").await;
    let mut lines = host.log_lines();
    // Request 1: B spins, then calls A.
    let (client, url) = (host.client.clone(), host.url.clone());
    let first = tokio::spawn(async move {
        client
            .post(format!(
                "{url}/obj/Hostile/dl-b/relay-later?to=dl-a&ms=2000"
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    wait_for_line(&mut lines, "hostile relay-later started").await;
    // Request 2, meanwhile: A calls B (and waits behind B's event).
    let started = Instant::now();
    let second = host
        .post("/obj/Hostile/dl-a/relay?to=dl-b&then=/get", "")
        .await;
    let first = first.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "one waited for the timeout"
    );
    assert!(
        first.contains("call deadlock"),
        "B's call: {first}; A's: {}",
        second.body
    );
    assert!(
        second.body.starts_with("200"),
        "A's call went through: {}",
        second.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_socket_event_the_host_cannot_run_closes_the_socket_with_1011() {
    let host = TestHost::start("[limits]\nmax_active = 1\nactivation_wait = \"200ms\"").await;
    let mut ws = host.ws("/obj/Hostile/sock/ws").await;
    assert_eq!(ws.next_text().await, "welcome");
    // Another object takes the only active slot for a while.
    let (client, url) = (host.client.clone(), host.url.clone());
    let busy = tokio::spawn(async move {
        client
            .post(format!("{url}/obj/Hostile/busy/slow?ms=3000"))
            .send()
            .await
            .unwrap()
            .status()
    });
    let mut lines = host.log_lines();
    let _ = wait_for_line(&mut lines, "hostile slow request started").await;
    ws.send("echo hi").await;
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 1011, "{reason}");
    assert!(reason.contains("no active slot"), "{reason}");
    assert_eq!(busy.await.unwrap(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn queued_bytes_are_bounded_per_object_and_per_host() {
    let host = TestHost::start(
        "[limits]\nmailbox_bytes = 1048576\nmax_inflight_bytes = 4194304\nmax_body_bytes = 3145728",
    )
    .await;
    let mut lines = host.log_lines();
    let (client, url) = (host.client.clone(), host.url.clone());
    let busy = tokio::spawn(async move {
        client
            .post(format!("{url}/obj/Hostile/mb/slow?ms=1500"))
            .send()
            .await
            .unwrap()
            .status()
    });
    wait_for_line(&mut lines, "hostile slow request started").await;
    // Behind the busy event: two 600 KB bodies fit in no 1 MiB mailbox.
    let body = "z".repeat(600_000);
    let (a, b) = tokio::join!(
        host.post("/obj/Hostile/mb/put?key=a", body.clone()),
        host.post("/obj/Hostile/mb/put?key=b", body.clone())
    );
    let statuses = [a.status, b.status];
    assert!(
        statuses.contains(&200) && statuses.contains(&503),
        "{statuses:?}: {} {}",
        a.body,
        b.body
    );
    let refused = if a.status == 503 { &a } else { &b };
    assert!(refused.body.contains("limits.mailbox"), "{}", refused.body);
    assert!(refused.headers.contains_key("retry-after"));
    assert_eq!(busy.await.unwrap(), 200);
    // The whole host holds at most 4 MiB of bodies: a 3 MB one is in flight,
    // a second one does not fit.
    let mut lines = host.log_lines();
    let (client, url) = (host.client.clone(), host.url.clone());
    let holder = tokio::spawn(async move {
        client
            .post(format!("{url}/obj/Hostile/m1/slow?ms=1500"))
            .body("q".repeat(3_000_000))
            .send()
            .await
            .unwrap()
            .status()
    });
    wait_for_line(&mut lines, "hostile slow request started").await;
    let answer = dohost_tests::raw_request(
        &host,
        "POST /obj/Hostile/m2/put HTTP/1.1\r\ncontent-length: 3000000\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("limits.max_inflight_bytes"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after"),
        "{answer}"
    );
    assert_eq!(holder.await.unwrap(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declared_body_over_the_limit_is_refused_before_it_is_sent() {
    let host = TestHost::start("[limits]\nmax_body_bytes = 1000").await;
    let answer = dohost_tests::raw_request(
        &host,
        "POST /obj/Hostile/cl/put HTTP/1.1\r\ncontent-length: 100000000\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("limits.max_body_bytes"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_cap_get_a_quick_503() {
    let host = TestHost::start("[limits]\nmax_connections = 3").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(host.ws("/obj/ChatRoom/cap/ws?user=x").await);
    }
    let err = host
        .try_ws("/obj/ChatRoom/cap/ws?user=y")
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("503"), "{err}");
    drop(held.pop());
    eventually(Duration::from_secs(10), "a place freed up", || async {
        host.try_ws("/obj/ChatRoom/cap/ws?user=z").await.is_ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn many_active_python_objects_leave_room_for_every_class() {
    let classes = vec![
        ("Counter", dohost_tests::guest("counter")),
        ("PyCounter", dohost_tests::polyglot("py_counter")),
    ];
    let host = TestHost::start_with(
        &classes,
        "[limits]\nmax_active = 40\nhibernate_after = \"1h\"",
    )
    .await;
    for i in 0..40 {
        let r = host
            .post(&format!("/obj/PyCounter/p{i}/increment"), "")
            .await;
        assert_eq!(r.status, 200, "Python object {i}: {}", r.body);
    }
    let r = host.post("/obj/Counter/rust/increment", "").await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_refused_a_slot_leaves_and_socket_entries_go_with_their_sockets() {
    let host = TestHost::start("[limits]\nmax_active = 1\nactivation_wait = \"100ms\"").await;
    let mut lines = host.log_lines();
    let (client, url) = (host.client.clone(), host.url.clone());
    let busy = tokio::spawn(async move {
        client
            .post(format!("{url}/obj/Hostile/hold/slow?ms=1500"))
            .send()
            .await
            .unwrap()
            .status()
    });
    wait_for_line(&mut lines, "hostile slow request started").await;
    let r = host.get("/obj/Hostile/refused/get").await;
    assert_eq!(r.status, 503, "{}", r.body);
    eventually(Duration::from_secs(5), "the refused actor left", || async {
        host.metrics().await.get("dohost_actors") <= 1.0
    })
    .await;
    assert_eq!(busy.await.unwrap(), 200);
    // An auto-response outlives the sockets in storage, not in the hub.
    let mut ws = host.ws("/obj/Hostile/au/ws").await;
    assert_eq!(ws.next_text().await, "welcome");
    ws.send("auto ping=pong").await;
    assert_eq!(ws.next_text().await, "auto set");
    ws.close(1000, "").await;
    eventually(
        Duration::from_secs(5),
        "the hub forgot the object",
        || async { host.metrics().await.get("dohost_websocket_objects") == 0.0 },
    )
    .await;
    let mut ws = host.ws("/obj/Hostile/au/ws").await;
    assert_eq!(ws.next_text().await, "welcome");
    ws.send("ping").await;
    assert_eq!(ws.next_text().await, "pong");
}

#[tokio::test(flavor = "multi_thread")]
async fn names_beyond_the_limit_are_refused_clearly() {
    let host = TestHost::start("").await;
    let long = "n".repeat(2049);
    let r = host.get(&format!("/obj/Counter/{long}/")).await;
    assert_eq!(r.status, 400);
    assert!(
        r.body
            .contains("object name too long: 2049 bytes (at most 2048)"),
        "{}",
        r.body
    );
    let ok = "n".repeat(2048);
    assert_eq!(host.get(&format!("/obj/Counter/{ok}/")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_storage_quota_fails_the_write_with_507_and_keeps_the_object_serving() {
    let host = TestHost::start("[limits]\nmax_storage_bytes = 2000000").await;
    let q = |query: &str| json!({ "query": query });
    host.post_json("/obj/TenantDb/q/sql", q("CREATE TABLE b (v BLOB)"))
        .await;
    let mut refused = None;
    for _ in 0..100 {
        let (s, r) = host
            .post_json(
                "/obj/TenantDb/q/sql",
                q("INSERT INTO b VALUES (zeroblob(100000))"),
            )
            .await;
        if s != 200 {
            refused = Some((s, r));
            break;
        }
    }
    let (s, r) = refused.expect("the quota never stopped the inserts");
    assert!(s == 400 || s == 507, "{s}: {r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("storage quota exceeded"),
        "{r}"
    );
    let (s, r) = host
        .post_json(
            "/obj/TenantDb/q/sql",
            q("DELETE FROM b; SELECT count(*) FROM b"),
        )
        .await;
    assert_eq!(s, 200, "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_host_on_the_same_data_dir_is_refused() {
    let host = TestHost::start("").await;
    let (code, stderr) = TestHost::launch_failing(Launch {
        data_dir: Some(host.data_dir()),
        ..Launch::default()
    })
    .await;
    assert_ne!(code, Some(0));
    assert!(stderr.contains("in use by another dohost"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_torn_compiled_cache_entry_is_recompiled_not_loaded() {
    let cache = tempfile::tempdir().unwrap();
    let extra = format!("cache_dir = {:?}", cache.path());
    let classes = vec![("Counter", dohost_tests::guest("counter"))];
    let mut host = TestHost::start_with(&classes, &extra).await;
    assert_eq!(host.post("/obj/Counter/c/increment", "").await.body, "1");
    let entry = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .expect("a cache entry");
    let mut bytes = std::fs::read(&entry).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&entry, bytes).unwrap();
    host.restart().await;
    host.log_containing("checksum mismatch").await;
    assert_eq!(host.post("/obj/Counter/c/increment", "").await.body, "2");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_returning_too_many_headers_gets_a_500_not_a_dead_connection() {
    let host = TestHost::start("").await;
    let r = host.get("/obj/Hostile/h/headers?n=40000").await;
    assert_eq!(r.status, 500);
    assert!(
        r.body.contains("returned 40001 headers (at most 1000)"),
        "{}",
        r.body
    );
    assert_eq!(host.get("/obj/Hostile/h/headers?n=50").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_close_the_peer_never_answers_is_not_clean() {
    let host = TestHost::start("[limits]\nws_write_timeout = \"500ms\"").await;
    let mut ws = host.ws("/obj/Hostile/cl/ws").await;
    assert_eq!(ws.next_text().await, "welcome");
    // The client never reads again, so it never answers the close frame.
    ws.send("close").await;
    eventually(Duration::from_secs(20), "the close event ran", || async {
        host.get("/obj/Hostile/cl/get?key=last_close").await.body != "none"
    })
    .await;
    let close = host.get("/obj/Hostile/cl/get?key=last_close").await.body;
    assert!(close.starts_with("4000:bye:false"), "{close}");
    drop(ws);
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrades_batched_together_respect_the_socket_limit() {
    let host = TestHost::start("[limits]\nmax_sockets_per_object = 2").await;
    let mut lines = host.log_lines();
    let (client, url) = (host.client.clone(), host.url.clone());
    let busy = tokio::spawn(async move {
        client
            .post(format!("{url}/obj/Hostile/up2/slow?ms=800"))
            .send()
            .await
            .unwrap()
            .status()
    });
    wait_for_line(&mut lines, "hostile slow request started").await;
    let attempts: Vec<_> = (0..5).map(|_| host.try_ws("/obj/Hostile/up2/ws")).collect();
    let results = futures_util::future::join_all(attempts).await;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        accepted,
        2,
        "{:?}",
        results
            .iter()
            .map(|r| r.as_ref().err().map(ToString::to_string))
            .collect::<Vec<_>>()
    );
    assert_eq!(busy.await.unwrap(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_that_was_only_looked_at_leaves_no_file_behind() {
    let host = TestHost::start("[limits]\nhibernate_after = \"0s\"").await;
    assert_eq!(host.get("/obj/Counter/glance/").await.body, "0");
    assert_eq!(host.get("/obj/Counter/glance/nowhere").await.status, 404);
    let path = host.data_dir().join("Counter").join(format!(
        "{}.sqlite",
        dohost_tests::id_of("Counter", "glance")
    ));
    eventually(
        Duration::from_secs(5),
        "the empty database was removed",
        || async { !path.exists() },
    )
    .await;
    assert_eq!(host.post("/obj/Counter/kept/increment", "").await.body, "1");
    let kept = host
        .data_dir()
        .join("Counter")
        .join(format!("{}.sqlite", dohost_tests::id_of("Counter", "kept")));
    eventually(Duration::from_secs(5), "it hibernated", || async {
        host.metrics().await.get("dohost_instances_active") == 0.0
    })
    .await;
    assert!(kept.exists(), "a written object keeps its database");
    assert_eq!(host.get("/obj/Counter/kept/").await.body, "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn outside_dev_mode_errors_do_not_show_the_guests_output() {
    let host = TestHost::start("dev = false").await;
    let mut lines = host.log_lines();
    let r = host.post("/obj/Hostile/p/panic", "").await;
    assert_eq!(r.status, 500);
    assert!(!r.body.contains("hostile panic on purpose"), "{}", r.body);
    assert!(
        r.body.contains("the guest's output is in the host log"),
        "{}",
        r.body
    );
    wait_for_line(&mut lines, "hostile panic on purpose").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::Message;
    let host = TestHost::start("").await;
    let mut ws = host.ws("/obj/Hostile/u8/ws").await;
    assert_eq!(ws.next_text().await, "welcome");
    let frame = Frame::message(vec![0xff, 0xfe, 0x80], OpCode::Data(Data::Text), true);
    ws.send_message(Message::Frame(frame)).await;
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 1007, "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_surface_needs_the_token_and_public_addresses_need_one_or_public() {
    let launch = Launch {
        listen: "0.0.0.0:0".into(),
        ..Launch::default()
    };
    // Without DOHOST_ADMIN_TOKEN, a token is generated into the data dir
    // (0600), required, kept across restarts, and never logged.
    let mut host = TestHost::launch_with(launch.clone()).await;
    let file = host.data_dir().join("_dohost/token");
    let line = host.log_containing("requires the bearer token in").await;
    assert!(line.contains(&*file.to_string_lossy()), "{line}");
    let token = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert_eq!(token.len(), 64);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let url = host.url.replace("0.0.0.0", "127.0.0.1");
    let metrics = |token: Option<String>| {
        let mut req = host.client.get(format!("{url}/_dohost/metrics"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(metrics(None).await.unwrap().status(), 401);
    assert_eq!(metrics(Some(token.clone())).await.unwrap().status(), 200);
    host.restart().await;
    let url = host.url.replace("0.0.0.0", "127.0.0.1");
    let again = host.client.get(format!("{url}/_dohost/metrics"));
    assert_eq!(
        again.bearer_auth(&token).send().await.unwrap().status(),
        200
    );
    let log = host.log_text();
    assert!(log.contains("requires the bearer token") && !log.contains(&token));
    drop(host);
    let host = TestHost::launch_with(Launch {
        env: vec![("DOHOST_ADMIN_TOKEN".into(), "s3cret".into())],
        ..launch
    })
    .await;
    let url = host.url.replace("0.0.0.0", "127.0.0.1");
    let get = |path: &str, token: Option<&str>| {
        let mut req = host.client.get(format!("{url}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(get("/_dohost/metrics", None).await.unwrap().status(), 401);
    let wrong = get("/_dohost/alarms", Some("nope")).await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.text().await.unwrap(), r#"{"error":"unauthorized"}"#);
    assert_eq!(
        get("/_dohost/metrics", Some("s3cret"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(get("/_dohost/health", None).await.unwrap().status(), 200);
    assert_eq!(get("/obj/Counter/pub/", None).await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_surface_can_have_its_own_loopback_listener() {
    // Objects on every address, the admin surface on loopback only: no token needed.
    let host = TestHost::launch_with(Launch {
        listen: "0.0.0.0:0".into(),
        extra: "admin_listen = \"127.0.0.1:0\"\n".into(),
        ..Launch::default()
    })
    .await;
    let warned = host.log_containing("every object's /obj/").await;
    assert!(warned.contains("open to anyone"), "{warned}");
    let line = host
        .log_containing("admin surface (/_dohost/*) on http://")
        .await;
    let admin = line.rsplit("on ").next().unwrap().trim().to_string();
    let objects = host.url.replace("0.0.0.0", "127.0.0.1");
    let get = |url: String| async move {
        let r = reqwest::get(url).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    let (status, body) = get(format!("{objects}/_dohost/metrics")).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("admin surface is served on 127.0.0.1:"),
        "{body}"
    );
    assert_eq!(
        get(format!("{objects}/obj/Counter/a/")).await,
        (200, "0".into())
    );
    let (status, body) = get(format!("{admin}/_dohost/metrics")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("dohost_commits_total"), "{body}");
    let (status, body) = get(format!("{admin}/obj/Counter/a/")).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("objects are served on"), "{body}");
    // A non-loopback admin listener needs a token (generated) or --public.
    let open = TestHost::launch_with(Launch {
        extra: "admin_listen = \"0.0.0.0:0\"\n".into(),
        args: vec!["--public".into()],
        ..Launch::default()
    })
    .await;
    let warned = open
        .log_containing("without an admin token (--public)")
        .await;
    assert!(warned.contains("anyone who reaches it"), "{warned}");
    assert!(!open.data_dir().join("_dohost/token").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn temporary_files_of_guest_queries_are_capped() {
    let host = TestHost::start("[limits]\nmax_temp_bytes = 1048576\ncpu_per_event = \"60s\"").await;
    let q = |query: &str| json!({ "query": query });
    let (s, r) = host
        .post_json(
            "/obj/TenantDb/tmp/sql",
            q("CREATE TABLE big (v); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1500) INSERT INTO big SELECT randomblob(4000) FROM c"),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    // 6 MB to sort, more than SQLite's page cache: the sorter spills to temp files.
    let (s, r) = host
        .post_json(
            "/obj/TenantDb/tmp/sql",
            q("SELECT length(v) FROM big ORDER BY random(), v"),
        )
        .await;
    assert_eq!(
        s,
        500,
        "{}",
        r.to_string().chars().take(300).collect::<String>()
    );
    assert!(r["error"].as_str().unwrap().contains("full"), "{r}");
    assert_eq!(
        host.metrics().await.get("dohost_temp_bytes"),
        0.0,
        "the temp files went away"
    );
    let (s, r) = host
        .post_json("/obj/TenantDb/tmp/sql", q("SELECT count(*) FROM big"))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["rows"], json!([[1500]]));
}
