//! Crash points: every named failpoint × {crash, error} × the traffic that
//! reaches it (HTTP, RPC, a WebSocket accept with a send), then a restart on
//! the normal binary and the invariants: what the client was told matches
//! what is durable (the output gate), nothing is half-applied, alarms still
//! fire, and sockets are consistent on the live host as well as after it.

use dohost_tests::TestHost;
use futures_util::StreamExt;
use std::time::Duration;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const WAIT: Duration = Duration::from_secs(30);

/// The request that reaches a failpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Traffic {
    /// `POST /obj/Counter/fp/increment?by=10` (the counter is 5 before).
    Http,
    /// `POST /rpc/Counter/fp/increment [10]`.
    Rpc,
    /// A WebSocket to `Hostile/fp/join?token=t1`: one event that writes
    /// `join:t1`, accepts the socket and sends `joined t1`.
    Accept,
    /// `POST /obj/Batcher/fp/add?flush_ms=100` (stores an item, sets an alarm).
    Alarm,
}

/// What the client saw.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// An HTTP or RPC reply with this status (and body).
    Reply(u16, String),
    /// The connection broke before any reply.
    NoReply,
    /// The WebSocket handshake was refused with this status.
    Refused(u16),
    /// 101, then these text messages until the socket ended (or `WAIT` passed
    /// with the socket still open: `open`).
    Accepted { messages: Vec<String>, open: bool },
}

async fn trigger(host: &TestHost, traffic: Traffic) -> Seen {
    let reply = |r: Result<reqwest::Response, reqwest::Error>| async move {
        match r {
            Ok(r) => {
                let status = r.status().as_u16();
                match r.text().await {
                    Ok(body) => Seen::Reply(status, body),
                    Err(_) => Seen::NoReply,
                }
            }
            Err(_) => Seen::NoReply,
        }
    };
    match traffic {
        Traffic::Http => {
            let url = format!("{}/obj/Counter/fp/increment?by=10", host.url);
            reply(host.client.post(url).send().await).await
        }
        Traffic::Rpc => {
            let url = format!("{}/rpc/Counter/fp/increment", host.url);
            reply(host.client.post(url).body("[10]").send().await).await
        }
        Traffic::Alarm => {
            let url = format!("{}/obj/Batcher/fp/add?flush_ms=100", host.url);
            reply(host.client.post(url).body("x").send().await).await
        }
        Traffic::Accept => {
            let url = format!(
                "{}/obj/Hostile/fp/join?token=t1",
                host.url.replacen("http://", "ws://", 1)
            );
            match tokio_tungstenite::connect_async(url).await {
                Ok((mut ws, _)) => {
                    // Everything the socket delivers until it ends; an event
                    // sends one message, so a socket still open after 5 s is
                    // a live one.
                    let mut messages = Vec::new();
                    let ended = tokio::time::timeout(Duration::from_secs(5), async {
                        while let Some(Ok(m)) = ws.next().await {
                            match m {
                                Message::Text(t) => messages.push(t.to_string()),
                                Message::Close(_) => break,
                                _ => {}
                            }
                        }
                    })
                    .await;
                    Seen::Accepted {
                        messages,
                        open: ended.is_err(),
                    }
                }
                Err(WsError::Http(res)) => Seen::Refused(res.status().as_u16()),
                Err(_) => Seen::NoReply,
            }
        }
    }
}

async fn counter(host: &TestHost) -> String {
    host.get("/obj/Counter/fp/").await.body
}

async fn joined(host: &TestHost) -> String {
    host.get("/obj/Hostile/fp/joined").await.body
}

/// Checks on the failpoint host while it still runs (`error` only: after a
/// crash there is nothing to ask). Storage is read only where no commit
/// reaches the armed point.
async fn check_live(host: &TestHost, point: &str, traffic: Traffic, seen: &Seen) {
    let sockets = host.metrics().await.get("dohost_websockets_active");
    assert_eq!(sockets, 0.0, "{point}/{traffic:?}: no phantom socket");
    if point == "after-accept" {
        // Committed (the join is recorded), but the accept and its send were
        // dropped: the client got its 101, nothing else, and the socket ended.
        assert_eq!(
            *seen,
            Seen::Accepted {
                messages: vec![],
                open: false
            },
            "{point}: the dropped socket delivers nothing and ends"
        );
        assert_eq!(
            joined(host).await,
            "t1",
            "{point}: the accept's write committed"
        );
        assert_eq!(
            host.get("/obj/Hostile/fp/sockets").await.body,
            "",
            "{point}: the object holds no socket"
        );
    }
}

/// Checks the invariants after a clean restart.
async fn check_after_restart(host: &TestHost, point: &str, traffic: Traffic, seen: &Seen) {
    let what = format!("{point}/{traffic:?}");
    match (point, traffic) {
        ("before-commit", Traffic::Http | Traffic::Rpc) => {
            assert!(
                !matches!(seen, Seen::Reply(200, _)),
                "{what}: a failed commit was reported as success: {seen:?}"
            );
            assert_eq!(counter(host).await, "5", "{what}: nothing half-applied");
        }
        ("before-commit", Traffic::Accept) => {
            assert!(
                matches!(seen, Seen::NoReply | Seen::Refused(500)),
                "{what}: no 101 and no message before the commit: {seen:?}"
            );
            assert_eq!(joined(host).await, "", "{what}: the join was rolled back");
        }
        ("after-commit", Traffic::Http | Traffic::Rpc) => {
            // The commit returned before the crash (or the injected error):
            // the write is durable, whatever the client was told.
            assert!(
                !matches!(seen, Seen::Reply(200, _)),
                "{what}: the reply left after the point: {seen:?}"
            );
            assert_eq!(
                counter(host).await,
                "15",
                "{what}: the committed write is durable"
            );
        }
        ("mid-eviction", Traffic::Http) => {
            // The reply left after the commit; the crash came with the eviction.
            assert_eq!(*seen, Seen::Reply(200, "15".into()), "{what}");
            assert_eq!(
                counter(host).await,
                "15",
                "{what}: an acknowledged write survives"
            );
        }
        ("persist-alarm", Traffic::Alarm) => {
            assert!(
                !matches!(seen, Seen::Reply(200, _)),
                "{what}: an add whose alarm was not indexed was acknowledged: {seen:?}"
            );
            let state = host.get("/obj/Batcher/fp/").await.json();
            assert_eq!(
                state["pending"], 0,
                "{what}: a failed add left an item: {state}"
            );
            assert!(state["alarm"].is_null(), "{what}: {state}");
            assert_eq!(
                host.get("/_dohost/alarms").await.json(),
                serde_json::json!([]),
                "{what}: nothing indexed"
            );
        }
        ("after-accept", Traffic::Accept) => {
            // Crash: the 101 never left (checked before the restart); error:
            // the socket was dropped (checked on the live host). Either way
            // the accept's event had committed.
            assert_eq!(
                joined(host).await,
                "t1",
                "{what}: the accept's write committed"
            );
            assert_eq!(host.metrics().await.get("dohost_websockets_active"), 0.0);
            let mut ws = host.ws("/obj/Hostile/fp/join?token=t2").await;
            assert_eq!(
                ws.next_text().await,
                "joined t2",
                "{what}: sockets work again"
            );
        }
        _ => unreachable!("{what} is not a case"),
    }
}

async fn run_case(point: &str, action: &str, traffic: Traffic) {
    let extra = if point == "mid-eviction" {
        "[limits]\nhibernate_after = \"200ms\""
    } else {
        ""
    };
    let mut host = TestHost::start(extra).await;
    assert_eq!(
        host.post("/obj/Counter/fp/increment?by=5", "").await.body,
        "5"
    );
    host.restart_with_failpoints(&format!("{point}={action}"))
        .await;
    let mut log = host.log_lines();
    let seen = trigger(&host, traffic).await;
    eprintln!("{point}={action} {traffic:?}: {seen:?}");
    if action == "crash" {
        dohost_tests::wait_for_line(&mut log, &format!("failpoint {point}: crashing")).await;
        let status = host.wait_for_exit(WAIT).await;
        assert!(!status.success(), "{point}: the failpoint crashed the host");
        if point == "after-accept" {
            assert_eq!(seen, Seen::NoReply, "{point}: the 101 waits for the point");
        }
    } else {
        check_live(&host, point, traffic, &seen).await;
    }
    host.restart_clean().await;
    check_after_restart(&host, point, traffic, &seen).await;
}

/// Every (point, traffic) pair that reaches the point.
fn cases() -> Vec<(&'static str, Traffic)> {
    let mut cases = Vec::new();
    for point in dohost::failpoints::POINTS {
        let traffic: &[Traffic] = match *point {
            "before-commit" => &[Traffic::Http, Traffic::Rpc, Traffic::Accept],
            "after-commit" => &[Traffic::Http, Traffic::Rpc],
            "persist-alarm" => &[Traffic::Alarm],
            "mid-eviction" => &[Traffic::Http],
            "after-accept" => &[Traffic::Accept],
            // Start-up points, covered by tests/migrations.rs.
            p if p.starts_with("migration-") => continue,
            other => panic!("failpoint {other} has no case here: add one"),
        };
        cases.extend(traffic.iter().map(|t| (*point, *t)));
    }
    cases
}

#[tokio::test(flavor = "multi_thread")]
async fn every_failpoint_crashing_keeps_the_invariants() {
    for (point, traffic) in cases() {
        run_case(point, "crash", traffic).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_failpoint_failing_keeps_the_invariants() {
    for (point, traffic) in cases() {
        if point == "mid-eviction" {
            continue; // eviction has nothing to fail: only a crash applies
        }
        run_case(point, "error", traffic).await;
    }
}
