//! Typed RPC: discovery, JSON ⇄ WIT for every type, errors, calls between
//! objects (cycles, traps, overload) and `dohost call`.

use dohost_tests::{dohost_bin, urlencode, TestHost};
use serde_json::{json, Value};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread")]
async fn classes_describe_their_methods_and_types() {
    let host = TestHost::start("").await;
    let counter = host.get("/rpc/Counter").await.json();
    assert_eq!(counter["class"], "Counter");
    let methods = counter["methods"].as_array().unwrap();
    let increment = methods.iter().find(|m| m["name"] == "increment").unwrap();
    assert_eq!(increment["params"], json!([{"name": "by", "type": "s64"}]));
    assert_eq!(increment["result"], "s64");
    assert_eq!(increment["interface"], "dohost:examples/counter@0.1.0");
    let board = host.get("/rpc/Leaderboard").await.json();
    let top = board["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "top")
        .unwrap();
    assert_eq!(top["result"], "list<record { player: string, total: u64 }>");
    let types = host.get("/rpc/Types").await.json();
    assert_eq!(types["methods"].as_array().unwrap().len(), 27);
    assert_eq!(host.get("/rpc/TenantDb").await.json()["methods"], json!([]));
    let unknown = host.get("/rpc/Nope").await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.body.contains("known classes"), "{}", unknown.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_wit_type_round_trips_through_json() {
    let host = TestHost::start("").await;
    let cases: Vec<(&str, Value)> = vec![
        ("echo-bool", json!(true)),
        ("echo-s8", json!(-128)),
        ("echo-u8", json!(255)),
        ("echo-s16", json!(-32768)),
        ("echo-u16", json!(65535)),
        ("echo-s32", json!(-2147483648i64)),
        ("echo-u32", json!(4294967295u64)),
        ("echo-s64", json!(i64::MIN)),
        ("echo-u64", json!(u64::MAX)),
        ("echo-f32", json!(1.5)),
        ("echo-f64", json!(-1e300)),
        ("echo-f64", json!("NaN")),
        ("echo-char", json!("ß")),
        ("echo-string", json!("hello, 世界")),
        ("echo-list", json!([1, 2, 3])),
        ("echo-record", json!({"x": 1, "y": -2, "label": "p"})),
        ("echo-record", json!({"x": 1, "y": -2, "label": null})),
        ("echo-tuple", json!(["a", false])),
        ("echo-variant", json!({"circle": 2.5})),
        (
            "echo-variant",
            json!({"square": {"x": 0, "y": 0, "label": null}}),
        ),
        ("echo-variant", json!({"empty": null})),
        ("echo-enum", json!("blue")),
        ("echo-option", json!(null)),
        ("echo-option", json!(7)),
        ("echo-flags", json!(["read", "exec"])),
        (
            "echo-nested",
            json!([[{"x": 1, "y": 2, "label": null}, "red"], [{"x": 3, "y": 4, "label": "q"}, null]]),
        ),
    ];
    for (method, value) in cases {
        let (status, got) = host.rpc("Types", "t", method, json!([value.clone()])).await;
        assert_eq!((status, &got), (200, &value), "{method}");
    }
    // A result is unwrapped: ok → 200 with the value, err → 422 {"error": …}.
    assert_eq!(
        host.rpc("Types", "t", "echo-result", json!([{"ok": 5}]))
            .await,
        (200, json!(5))
    );
    assert_eq!(
        host.rpc("Types", "t", "echo-result", json!([{"err": "no"}]))
            .await,
        (422, json!({"error": "no"}))
    );
    // Shorthands: a payload-less case by name, an absent option field.
    assert_eq!(
        host.rpc("Types", "t", "echo-variant", json!(["empty"]))
            .await
            .1,
        json!({"empty": null})
    );
    assert_eq!(
        host.rpc("Types", "t", "echo-record", json!([{"x": 1, "y": 2}]))
            .await
            .1,
        json!({"x": 1, "y": 2, "label": null})
    );
    // Arguments by name, and no arguments at all.
    assert_eq!(
        host.rpc("Types", "t", "greet", json!({"name": "bo", "times": 2}))
            .await
            .1,
        json!("hello bo, hello bo")
    );
    assert_eq!(
        host.rpc("Types", "t", "nothing", json!([])).await,
        (200, Value::Null)
    );
    assert_eq!(host.post("/rpc/Types/t/nothing", "").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_arguments_are_400_naming_the_parameter_and_the_expected_type() {
    let host = TestHost::start("").await;
    let err = |v: Value| v["error"].as_str().unwrap_or_default().to_string();
    let cases = [
        (
            "echo-u8",
            json!([256]),
            "parameter v: expected u8 (an integer from 0 to 255), got 256",
        ),
        ("echo-s64", json!(["1"]), "parameter v: expected s64"),
        ("echo-char", json!(["ab"]), "one-character string"),
        (
            "echo-record",
            json!([{"x": 1}]),
            "parameter v.y: expected s32 (the field is required)",
        ),
        (
            "echo-record",
            json!([{"x": 1, "y": 1, "z": 0}]),
            "parameter v.z: expected no such field",
        ),
        (
            "echo-enum",
            json!(["pink"]),
            "expected one of \"red\", \"green\", \"blue\"",
        ),
        (
            "echo-variant",
            json!([{"hexagon": 1}]),
            "one of the cases {circle, square, empty}",
        ),
        (
            "echo-flags",
            json!([["fly"]]),
            "parameter v[0]: expected one of the flags read, write, exec",
        ),
        (
            "echo-nested",
            json!([[[{"x": 1, "y": 2}, "mauve"]]]),
            "parameter v[0][1]",
        ),
        (
            "echo-result",
            json!([{"maybe": 1}]),
            "{\"ok\": value} or {\"err\": value}",
        ),
        (
            "greet",
            json!(["only one"]),
            "greet takes 2 argument(s), got 1: greet(name: string, times: u32) -> string",
        ),
        ("greet", json!({"name": "x"}), "missing argument times"),
        (
            "greet",
            json!({"name": "x", "times": 1, "extra": 1}),
            "has no parameter \"extra\"",
        ),
        ("greet", json!("x"), "must be a JSON array"),
    ];
    for (method, args, expected) in cases {
        let (status, body) = host.rpc("Types", "t", method, args.clone()).await;
        assert_eq!(status, 400, "{method} {args}: {body}");
        assert!(
            err(body.clone()).contains(expected),
            "{method} {args}: {body}"
        );
    }
    let reply = host.post("/rpc/Types/t/greet", "{not json").await;
    assert_eq!(reply.status, 400);
    let (status, body) = host.rpc("Types", "t", "no-such", json!([])).await;
    assert_eq!(status, 404);
    assert!(
        err(body.clone()).contains("its methods: echo-bool"),
        "{body}"
    );
    assert_eq!(host.get("/rpc/Types/t/greet").await.status, 405);
    let (status, body) = host.rpc("Types", "t", "explode", json!(["kaboom"])).await;
    assert_eq!(status, 500);
    assert!(err(body.clone()).contains("kaboom"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn counter_rpc_shares_state_with_its_fetch_routes() {
    let host = TestHost::start("").await;
    assert_eq!(
        host.rpc("Counter", "shared", "increment", json!([5])).await,
        (200, json!(5))
    );
    assert_eq!(
        host.post("/obj/Counter/shared/increment", "").await.body,
        "6"
    );
    assert_eq!(
        host.rpc("Counter", "shared", "get", json!([])).await,
        (200, json!(6))
    );
    let id = host.get("/obj/Hostile/x/identity").await; // any id works by id too
    assert_eq!(id.status, 200);
    let counter_id = {
        // The Counter's id for "shared", via a guest's namespaces.id-from-name.
        let r = host
            .post(
                "/obj/Hostile/x/call?class=Counter&name=shared&method=get",
                "[]",
            )
            .await;
        assert_eq!(r.body, "ok: 6");
        r
    };
    assert_eq!(counter_id.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn players_report_to_the_leaderboard_and_totals_are_exact_under_concurrency() {
    let host = Arc::new(TestHost::start("").await);
    let mut tasks = Vec::new();
    for p in 0..20 {
        for round in 0..5 {
            let host = host.clone();
            tasks.push(tokio::spawn(async move {
                let (status, body) = host
                    .rpc(
                        "Player",
                        &format!("p{p:02}"),
                        "add-score",
                        json!([p + round]),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let expected = |p: u64| 5 * p + 10; // sum over rounds 0..5 of (p + round)
    for p in 0..20u64 {
        let total = host.get(&format!("/obj/Player/p{p:02}/")).await.body;
        assert_eq!(total, expected(p).to_string(), "player {p}");
    }
    let (status, top) = host.rpc("Leaderboard", "global", "top", json!([3])).await;
    assert_eq!(status, 200);
    assert_eq!(
        top,
        json!([
            {"player": "p19", "total": expected(19)},
            {"player": "p18", "total": expected(18)},
            {"player": "p17", "total": expected(17)},
        ])
    );
    let all: Vec<Value> = host
        .get("/obj/Leaderboard/global/")
        .await
        .json()
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(all.len(), 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_cycle_fails_fast_and_names_the_chain() {
    let host = TestHost::start("").await;
    let inner = "/relay?to=a&then=/get";
    let path = format!("/obj/Hostile/a/relay?to=b&then={}", urlencode(inner));
    let started = std::time::Instant::now();
    let reply = host.post(&path, "").await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .body
            .contains("call cycle: Hostile:a → Hostile:b → Hostile:a would deadlock"),
        "{}",
        reply.body
    );
    // A call to itself is a cycle too.
    let reply = host.post("/obj/Hostile/solo/relay?to=solo", "").await;
    assert!(
        reply
            .body
            .contains("call cycle: Hostile:solo → Hostile:solo"),
        "{}",
        reply.body
    );
    assert_eq!(reply.error_kind(), "Cycle");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_callee_trap_is_an_error_for_the_caller_whose_own_writes_stand() {
    let host = TestHost::start("").await;
    let reply = host
        .post("/obj/Hostile/caller/relay?to=victim&then=/panic", "")
        .await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.body.starts_with("error: ") && reply.body.contains("hostile panic on purpose"),
        "{}",
        reply.body
    );
    assert_eq!(reply.error_kind(), "CallFailed");
    assert_eq!(
        host.get("/obj/Hostile/caller/get?key=relayed").await.body,
        "yes"
    );
    assert_eq!(
        host.get("/obj/Hostile/victim/get?key=written").await.body,
        "none"
    );
    // Through RPC as well.
    let reply = host
        .post(
            "/obj/Hostile/caller2/call?class=Types&name=t&method=explode",
            "[\"deep\"]",
        )
        .await;
    assert!(
        reply.body.starts_with("error: ") && reply.body.contains("deep"),
        "{}",
        reply.body
    );
    assert_eq!(reply.error_kind(), "CallFailed");
    assert_eq!(
        host.get("/obj/Hostile/caller2/get?key=called").await.body,
        "yes"
    );
    // A result err reaches the caller as a value it can inspect.
    let reply = host
        .post(
            "/obj/Hostile/caller3/call?class=Types&name=t&method=refuse",
            "[\"nope\"]",
        )
        .await;
    assert_eq!(reply.body, "ok: {\"err\":\"nope\"}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overloaded_callee_is_an_error_the_caller_can_handle() {
    let host = Arc::new(TestHost::start("[limits]\nmailbox = 1").await);
    // Keep the callee busy, and (once it is) its one-slot mailbox full: the
    // call then finds it full, with no race between the two.
    let busy = host.occupy("busy", 3_000).await;
    let queued = host
        .send_queued(reqwest::Method::GET, "/obj/Hostile/busy/get", "", 1)
        .await;
    let reply = host
        .post("/obj/Hostile/caller/relay?to=busy&then=/get", "")
        .await;
    assert_eq!(reply.error_kind(), "Overloaded", "{}", reply.body);
    assert!(
        reply.body.starts_with("error: overloaded: object Hostile/"),
        "{}",
        reply.body
    );
    assert_eq!(busy.await.unwrap().status, 200);
    assert_eq!(queued.await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn dohost_call_prints_the_result_and_fails_with_the_error() {
    let host = TestHost::start("").await;
    let run = |args: &[&str], url: &str| {
        let mut cmd = tokio::process::Command::new(dohost_bin());
        cmd.arg("call").args(args).args(["--url", url]);
        async move {
            let out = cmd.output().await.unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).trim().to_string(),
                String::from_utf8_lossy(&out.stderr).to_string(),
            )
        }
    };
    let (code, out, _) = run(&["Counter", "cli", "increment", "4"], &host.url).await;
    assert_eq!((code, out.as_str()), (Some(0), "4"));
    let (code, out, _) = run(&["Types", "t", "greet", "ann", "1"], &host.url).await;
    assert_eq!((code, out.as_str()), (Some(0), "\"hello ann\""));
    let (code, _, err) = run(&["Counter", "cli", "increment", "lots"], &host.url).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("400") && err.contains("parameter by"), "{err}");
    let (code, _, err) = run(&["Counter", "x", "get"], "http://127.0.0.1:1").await;
    assert_eq!(code, Some(1));
    assert!(err.contains("cannot connect"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn call_errors_are_typed_for_the_caller() {
    let host = TestHost::start("").await;
    let call = |class: &str, method: &str, args: &str| {
        let path = format!("/obj/Hostile/typed/call?class={class}&name=t&method={method}");
        let host = &host;
        let args = args.to_string();
        async move { host.post(&path, args).await }
    };
    let unknown = call("Nope", "get", "[]").await;
    assert_eq!(unknown.error_kind(), "UnknownClass", "{}", unknown.body);
    assert!(unknown.body.contains("Nope"), "{}", unknown.body);
    let missing = call("Counter", "nope", "[]").await;
    assert_eq!(missing.error_kind(), "NotFound", "{}", missing.body);
    assert!(missing.body.contains("increment"), "{}", missing.body);
    let bad = call("Counter", "increment", "[\"x\"]").await;
    assert_eq!(bad.error_kind(), "Invalid", "{}", bad.body);
    let fine = call("Counter", "increment", "[2]").await;
    assert_eq!((fine.body.as_str(), fine.error_kind()), ("ok: 2", ""));
}
