//! The entry worker: an application's front door (`[entry]`), with bindings
//! to objects (`[bindings]`), untyped RPC into JavaScript classes, the
//! client's address, egress only where the policy allows, and failures that
//! are precise and stay with their request.

use dohost_tests::{eventually, guest, polyglot, Launch, TestHost};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn classes() -> Vec<(&'static str, PathBuf)> {
    vec![
        ("Counter", guest("counter")),
        ("JsCounter", polyglot("js_counter")),
        ("HelloCounter", polyglot("js_hello_counter")),
        ("PyCounter", polyglot("py_counter")),
    ]
}

fn entry_manifest(entry: &str, rest: &str) -> String {
    format!(
        "[entry]\ncomponent = {:?}\n{rest}\n\
         [bindings]\nJS = \"JsCounter\"\nCOUNTER = \"HelloCounter\"\n",
        polyglot(entry)
    )
}

async fn start(entry: &str, rest: &str, extra: &str) -> TestHost {
    TestHost::launch_with(Launch {
        classes: classes(),
        extra: format!("{extra}\n{}", entry_manifest(entry, rest)),
        ..Launch::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hello_app_counts_across_requests_and_restarts() {
    let mut host = start("js_hello_entry", "", "").await;
    for n in 1..=3 {
        let reply = host.get("/").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, &*format!("Count: {n}"))
        );
    }
    // Without expose_objects the direct routes are the entry's to answer.
    for path in ["/obj/HelloCounter/global/", "/rpc/HelloCounter"] {
        let reply = host.get(path).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (404, "not found"),
            "{path}"
        );
    }
    assert_eq!(host.get("/_dohost/health").await.body, "ok\n");
    host.restart().await;
    assert_eq!(host.get("/").await.body, "Count: 4");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_entry_calls_objects_by_binding_and_sees_the_client() {
    let host = start("js_test_entry", "", "[vars]\nGREETING = \"hi\"").await;
    assert_eq!(host.get("/env").await.body, "COUNTER,GREETING,JS");
    assert_eq!(host.get("/").await.body, "Count: 1");
    // The client's address, as the host saw it; a forwarded chain is extended.
    assert_eq!(host.get("/whoami").await.body, "127.0.0.1|127.0.0.1");
    let forwarded = host
        .client
        .get(format!("{}/whoami", host.url))
        .header("cf-connecting-ip", "6.6.6.6")
        .header("x-forwarded-for", "10.0.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        forwarded.text().await.unwrap(),
        "127.0.0.1|10.0.0.1, 127.0.0.1"
    );
    // The entry's requests meet the host's header limit (431), like an object's.
    let mut many = host.client.get(format!("{}/whoami", host.url));
    for i in 0..101 {
        many = many.header(format!("x-h{i}"), "v");
    }
    assert_eq!(many.send().await.unwrap().status().as_u16(), 431);
    // Method, query, body, status and headers pass both ways.
    let echo = host.post("/echo?x=1", "payload").await;
    assert_eq!(
        (echo.status, echo.body.as_str()),
        (201, "POST /echo?x=1 payload")
    );
    assert_eq!(echo.headers["x-entry"], "yes");
    // Untyped RPC into a JavaScript class (its public method `add`).
    assert_eq!(host.get("/add?name=a&by=5").await.body, "5");
    assert_eq!(host.get("/add?name=a&by=7").await.body, "12");
    // A callee's exception reaches the caller with its name and message...
    let thrown = host.get("/add?name=a&by=%22x%22").await;
    assert_eq!(thrown.status, 409, "{}", thrown.body);
    assert!(
        thrown.body.starts_with("SyntaxError|thrown|"),
        "{}",
        thrown.body
    );
    // ...and its event is rolled back: the overflow's write is undone.
    let overflow = host.get("/add?name=a&by=9223372036854775807").await;
    assert!(
        overflow
            .body
            .starts_with("RangeError|thrown|counter overflow"),
        "{}",
        overflow.body
    );
    assert_eq!(host.get("/add?name=a&by=0").await.body, "12");
    // A stub's fetch reaches the object's fetch handler.
    assert_eq!(
        host.get("/object-fetch?name=a").await.body,
        "object said 200 12"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn entry_failures_are_precise_and_stay_with_their_request() {
    let limits = "[limits]\ncpu_per_event = \"1s\"\nmemory_per_instance_mib = 96";
    let host = start("js_test_entry", "", limits).await;
    let thrown = host.get("/throw").await;
    assert_eq!(thrown.status, 500);
    assert!(
        thrown
            .body
            .contains("the entry threw RangeError: thrown on purpose"),
        "{}",
        thrown.body
    );
    // A runaway entry is stopped at the CPU limit; the others go on meanwhile.
    let looping = host.get("/loop");
    let others = async {
        for _ in 0..3 {
            assert_eq!(host.get("/whoami").await.status, 200);
        }
    };
    let (looped, ()) = tokio::join!(looping, others);
    assert_eq!(looped.status, 504, "{}", looped.body);
    assert!(looped.body.contains("CPU limit of 1s"), "{}", looped.body);
    let memory = host.get("/memory").await;
    assert_eq!(memory.status, 500, "{}", memory.body);
    assert!(
        memory.body.contains("memory limit of 96 MiB"),
        "{}",
        memory.body
    );
    assert_eq!(host.get("/").await.body, "Count: 1");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sdk_entry_keeps_its_instance_until_it_fails() {
    let limits = "[limits]\ncpu_per_event = \"1s\"\nmemory_per_instance_mib = 96";
    let host = start("js_test_entry", "", limits).await;
    // One request after another: one warm instance, its module state kept,
    // and a timer a request left pending never fires in a later one.
    assert_eq!(host.get("/instance").await.body, "served 1 leaked false");
    assert_eq!(host.get("/leave-timer").await.body, "timer left");
    assert_eq!(host.get("/instance").await.body, "served 3 leaked false");
    // An exception the SDK answers with a 500 leaves the instance fine...
    assert_eq!(host.get("/throw").await.status, 500);
    assert_eq!(host.get("/instance").await.body, "served 5 leaked false");
    // ...but an instance stopped at the CPU or memory limit is discarded.
    assert_eq!(host.get("/loop").await.status, 504);
    assert_eq!(host.get("/instance").await.body, "served 1 leaked false");
    assert_eq!(host.get("/memory").await.status, 500);
    assert_eq!(host.get("/instance").await.body, "served 1 leaked false");
    // Requests at once get instances of their own.
    let (a, b) = tokio::join!(host.get("/slow?ms=300"), host.get("/slow?ms=300"));
    assert_eq!((a.body.as_str(), b.body.as_str()), ("slept", "slept"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_wasi_http_entry_gets_a_fresh_instance_per_request() {
    // componentize-js's FetchEvent answers one request per instance (a second
    // one on the same instance would hang): it does not export `reuse`.
    let host = start("js_proxy_entry", "", "[limits]\ncpu_per_event = \"5s\"").await;
    for path in ["/a", "/b", "/c"] {
        let reply = host.get(path).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, &*format!("fetch-event 1 {path}"))
        );
    }
}

/// A loopback HTTP server answering every request with `body`; returns its port.
async fn upstream(body: &'static str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn egress_goes_only_where_the_policy_allows() {
    let allowed = upstream("hello from upstream").await;
    let denied = upstream("must not be reached").await;
    let policy = format!("allow = [\"127.0.0.1:{allowed}\"]\nexpose_objects = true");
    let host = start("js_test_entry", &policy, "").await;
    let ok = host
        .get(&format!("/egress?url=http://127.0.0.1:{allowed}/x"))
        .await;
    assert_eq!(
        (ok.status, ok.body.as_str()),
        (200, "upstream 200 hello from upstream")
    );
    let refused = host
        .get(&format!("/egress?url=http://127.0.0.1:{denied}/x"))
        .await;
    assert_eq!(refused.status, 502, "{}", refused.body);
    assert!(
        refused.body.starts_with("fetch failed: TypeError"),
        "{}",
        refused.body
    );
    let logged = host.log_containing("egress denied").await;
    assert!(
        logged.contains(&format!("127.0.0.1:{denied}")) && logged.contains("[entry] allow"),
        "{logged}"
    );
    // expose_objects: the direct routes stay beside the entry.
    let (status, value) = host
        .rpc("JsCounter", "e", "add", serde_json::json!([3]))
        .await;
    assert_eq!((status, value), (200, serde_json::json!(3)));
    assert_eq!(host.get("/obj/JsCounter/e/").await.body, "3");
}

/// The rules of untyped RPC that JavaScript and Python classes share: a
/// method that throws (`failing_args` to `add`) answers 500 saying what it
/// threw and is rolled back (`value` stays `kept`); an unknown method is a
/// 404 listing the public ones.
async fn untyped_rpc_rules(
    host: &TestHost,
    class: &str,
    failing_args: serde_json::Value,
    threw: &str,
    kept: i64,
) {
    let (status, value) = host.rpc(class, "d", "add", failing_args).await;
    assert_eq!(status, 500, "{value}");
    let message = value["error"].as_str().unwrap();
    assert!(message.contains(threw), "{class}: {message}");
    let (_, value) = host.rpc(class, "d", "value", serde_json::json!([])).await;
    assert_eq!(value, serde_json::json!(kept), "{class}");
    let (status, value) = host.rpc(class, "d", "nope", serde_json::json!([])).await;
    assert_eq!(status, 404, "{value}");
    let message = value["error"].as_str().unwrap();
    assert!(
        message.contains("add, get, increment, value"),
        "{class}: {message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn javascript_and_python_public_methods_are_rpc_methods() {
    let host = TestHost::start_with(&classes(), "").await;
    // Untyped: any public method, JSON arguments.
    for class in ["JsCounter", "PyCounter"] {
        let (status, value) = host.rpc(class, "d", "add", serde_json::json!([5])).await;
        assert_eq!((status, value), (200, serde_json::json!(5)), "{class}");
        let (status, value) = host.rpc(class, "d", "value", serde_json::json!([])).await;
        assert_eq!((status, value), (200, serde_json::json!(5)), "{class}");
    }
    // Typed methods (the WIT interface) still take precedence.
    let (status, value) = host
        .rpc("JsCounter", "d", "increment", serde_json::json!({"by": 2}))
        .await;
    assert_eq!((status, value), (200, serde_json::json!(7)));
    untyped_rpc_rules(
        &host,
        "JsCounter",
        serde_json::json!(["x"]),
        "threw SyntaxError",
        7,
    )
    .await;
    // Python: `Dynamic = export_dynamic(PyCounter)`.
    let overflow = serde_json::json!([i64::MAX]);
    let threw = "threw OverflowError: counter overflow";
    untyped_rpc_rules(&host, "PyCounter", overflow, threw, 5).await;
    // Arguments of an untyped method are an array.
    let (status, _) = host
        .rpc("JsCounter", "d", "add", serde_json::json!({"by": 1}))
        .await;
    assert_eq!(status, 400);
    let described = host.get("/rpc/JsCounter").await.json();
    assert_eq!(described["dynamic"], true);
    // The hello Counter: `increment()` with no arguments, as on Cloudflare.
    let (_, value) = host
        .rpc("HelloCounter", "h", "increment", serde_json::json!([]))
        .await;
    assert_eq!(value, serde_json::json!(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_entry_or_binding_stops_start_up_with_its_key() {
    let cases = [
        (
            entry_manifest("js_test_entry", "").replace("\"JsCounter\"", "\"Nope\""),
            "bindings.JS: no class \"Nope\" to bind; the classes are Counter, HelloCounter, JsCounter, PyCounter",
        ),
        (
            "[entry]\ncomponent = \"missing.wasm\"\n".to_string(),
            "entry.component: component file",
        ),
        (
            "[vars]\nJS = \"x\"\n[bindings]\nJS = \"JsCounter\"\n".to_string(),
            "bindings.JS: JS is also a var or secret",
        ),
        (
            entry_manifest("js_test_entry", "allow = [\"http://x/\"]"),
            "entry.allow[0]: \"http://x/\" is not a host or host:port",
        ),
        (
            "[assets]\ndirectory = \"no-such-dir\"\n".to_string(),
            "assets.directory:",
        ),
        (
            format!(
                "[assets]\ndirectory = \".\"\nbinding = \"JS\"\n{}",
                entry_manifest("js_test_entry", "")
            ),
            "assets.binding: JS is also a var, secret or binding",
        ),
    ];
    for (extra, expected) in cases {
        let (code, stderr) = TestHost::launch_failing(Launch {
            classes: classes(),
            extra,
            ..Launch::default()
        })
        .await;
        assert_ne!(code, Some(0));
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in:\n{stderr}"
        );
    }
    // A component that is not an entry says what it must export.
    let (_, stderr) = TestHost::launch_failing(Launch {
        classes: classes(),
        extra: format!("[entry]\ncomponent = {:?}\n", guest("counter")),
        ..Launch::default()
    })
    .await;
    assert!(
        stderr.contains("entry:") && stderr.contains("wasi:http"),
        "{stderr}"
    );
}

/// The chat app of examples/js/chat-app (its entry, `ChatRoom` and
/// `RateLimiter`), in process on virtual time, 3 connections a minute per IP.
async fn chat_app() -> TestHost {
    let classes = [
        ("ChatRoom", polyglot("js_chat")),
        ("RateLimiter", polyglot("js_rate_limiter")),
    ];
    let extra = format!(
        "[vars]\nRATE_LIMIT = \"3\"\n[entry]\ncomponent = {:?}\n\
         [bindings]\nROOMS = \"ChatRoom\"\nLIMITERS = \"RateLimiter\"\n",
        polyglot("js_chat_app_entry")
    );
    TestHost::in_process_with(&classes, &extra).await
}

fn refused_status(err: tokio_tungstenite::tungstenite::Error) -> (u16, String) {
    match err {
        tokio_tungstenite::tungstenite::Error::Http(res) => {
            let retry = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            (res.status().as_u16(), retry)
        }
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chat_app_forwards_websockets_to_its_rooms_and_limits_each_client() {
    use serde_json::json;
    let host = chat_app().await;
    // The entry forwards the upgrade (`new Request(url, request)`): the
    // socket is the room's, as if the client had reached it directly.
    let mut ann = host.ws("/api/room/lobby/websocket?user=ann").await;
    let mut bob = host.ws("/api/room/lobby/websocket?user=bob").await;
    bob.send("hi").await;
    for client in [&mut ann, &mut bob] {
        assert_eq!(
            client.next_json().await,
            json!({"from": "bob", "text": "hi"})
        );
    }
    let users = host.get("/api/room/lobby/users").await;
    assert_eq!((users.status, users.json()), (200, json!(["ann", "bob"])));
    // The third connection of the minute is allowed, the fourth is not.
    let mut cid = host.ws("/api/room/other/websocket?user=cid").await;
    let refused = host.try_ws("/api/room/lobby/websocket?user=dee").await;
    let (status, retry) = refused_status(refused.err().expect("over the rate limit"));
    assert_eq!(status, 429);
    assert!(retry.parse::<u64>().is_ok_and(|s| s > 0), "{retry}");
    // The rooms hibernate with their sockets open; a message wakes one.
    host.advance_ms(10_000);
    eventually(Duration::from_secs(10), "the rooms hibernate", || async {
        let m = host.metrics().await;
        m.get("dohost_instances_active") == 0.0
            && m.get("dohost_objects_hibernated_with_sockets") == 2.0
    })
    .await;
    ann.send("still there?").await;
    for client in [&mut ann, &mut bob] {
        let text = json!({"from": "ann", "text": "still there?"});
        assert_eq!(client.next_json().await, text);
    }
    cid.send("alone").await;
    assert_eq!(
        cid.next_json().await,
        json!({"from": "cid", "text": "alone"})
    );
    // A minute later the client may connect again.
    host.advance_ms(60_000);
    let mut dee = host.ws("/api/room/lobby/websocket?user=dee").await;
    dee.send("late").await;
    assert_eq!(
        ann.next_json().await,
        json!({"from": "dee", "text": "late"})
    );
    // Not an upgrade: the room's own 426, through the entry.
    let plain = host.get("/api/room/lobby/websocket?user=eve").await;
    assert_eq!(plain.status, 426, "{}", plain.body);
    let history = host.get("/api/room/lobby/history").await.json();
    assert_eq!(history.as_array().map(Vec::len), Some(3), "{history}");
    assert_eq!(host.get("/api/nope").await.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn static_assets_are_served_before_the_entry_and_through_its_binding() {
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("public");
    std::fs::create_dir_all(public.join("docs")).unwrap();
    std::fs::write(public.join("index.html"), "<h1>hi</h1>").unwrap();
    std::fs::write(public.join("app.js"), "console.log('app');").unwrap();
    std::fs::write(public.join("docs/index.html"), "docs").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "s3cret").unwrap();
    let assets = format!("[assets]\ndirectory = {public:?}\nbinding = \"ASSETS\"");
    let host = start("js_test_entry", "", &assets).await;
    let get = |path: &str, headers: &[(&str, &str)]| {
        let mut req = host.client.get(format!("{}{path}", host.url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send()
    };
    let home = get("/", &[]).await.unwrap();
    assert_eq!(home.status(), 200);
    let header = |res: &reqwest::Response, name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(header(&home, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&home, "accept-ranges"), "bytes");
    assert!(!header(&home, "last-modified").is_empty());
    let etag = header(&home, "etag");
    assert!(etag.starts_with('"'), "{etag}");
    assert_eq!(home.text().await.unwrap(), "<h1>hi</h1>");
    // Revalidation, ranges, HEAD, a directory's index.html.
    let cached = get("/", &[("if-none-match", &etag)]).await.unwrap();
    assert_eq!(cached.status(), 304);
    assert_eq!(cached.text().await.unwrap(), "");
    let part = get("/app.js", &[("range", "bytes=0-6")]).await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(header(&part, "content-range"), "bytes 0-6/19");
    assert_eq!(
        header(&part, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(part.text().await.unwrap(), "console");
    let past = get("/app.js", &[("range", "bytes=19-")]).await.unwrap();
    assert_eq!(past.status(), 416);
    assert_eq!(header(&past, "content-range"), "bytes */19");
    let head = host
        .client
        .head(format!("{}/app.js", host.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (head.status().as_u16(), header(&head, "content-length")),
        (200, "19".into())
    );
    assert_eq!(
        get("/docs", &[]).await.unwrap().text().await.unwrap(),
        "docs"
    );
    // What is not a file goes to the entry: other paths, other methods, and
    // paths that would leave the directory.
    assert_eq!(host.get("/env").await.body, "ASSETS,COUNTER,JS");
    assert_eq!(host.post("/", "").await.body, "Count: 1");
    for escape in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/docs/..%2f..%2fsecret.txt",
    ] {
        let reply = host.get(escape).await;
        assert_eq!(reply.status, 404, "{escape}");
        assert!(!reply.body.contains("s3cret"), "{escape}: {}", reply.body);
    }
    // The entry's binding: the same files, without the network.
    assert_eq!(
        host.get("/asset?path=/app.js").await.body,
        "asset 200 text/javascript; charset=utf-8 console.log('app');"
    );
    assert_eq!(
        host.get("/asset?path=/nope.txt").await.body,
        "asset 404 text/plain; charset=utf-8 no asset /nope.txt"
    );
}
