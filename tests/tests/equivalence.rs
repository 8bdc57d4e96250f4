//! Hibernation equivalence: the same seeded workload on a host that evicts
//! every object after every batch ("0s") and on one that never evicts must give
//! identical observable results — replies, storage, socket messages and alarm
//! runs. This catches state kept in guest memory, or in the host's instance.

use dohost_tests::ledger::Rng;
use dohost_tests::{eventually, TestHost};
use serde_json::{json, Value};
use std::time::Duration;

const COMMON: &str = "[alarms]\nretry_base = \"50ms\"\nmax_retries = 2";

/// Drops fields that depend on wall-clock time.
fn normalize(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        if o.contains_key("alarm") {
            o.insert("alarm".into(), json!(o["alarm"].is_number()));
        }
    }
    v
}

async fn workload(host: &TestHost, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let mut a = host.ws("/obj/ChatRoom/eq/ws?user=a").await;
    let mut b = host.ws("/obj/ChatRoom/eq/ws?user=b").await;
    for step in 0..150 {
        let line = match rng.below(9) {
            0 => {
                let r = host
                    .post(
                        &format!(
                            "/obj/Counter/c{}/increment?by={}",
                            rng.below(3),
                            rng.below(10)
                        ),
                        "",
                    )
                    .await;
                format!("inc {} {}", r.status, r.body)
            }
            1 => {
                let r = host.get(&format!("/obj/Counter/c{}/", rng.below(3))).await;
                format!("get {} {}", r.status, r.body)
            }
            2 => {
                let body = json!({"op": "put", "key": format!("k{}", rng.below(5)), "value": step});
                let (s, v) = host
                    .post_json(&format!("/obj/TenantDb/t{}/kv", rng.below(2)), body)
                    .await;
                format!("put {s} {v}")
            }
            3 => {
                let body =
                    json!({"op": "list", "reverse": rng.below(2) == 1, "limit": rng.below(4)});
                let (s, v) = host
                    .post_json(&format!("/obj/TenantDb/t{}/kv", rng.below(2)), body)
                    .await;
                format!("list {s} {v}")
            }
            4 => {
                let body = json!({"query": "CREATE TABLE IF NOT EXISTS t (v); INSERT INTO t VALUES (?); SELECT count(*), sum(v) FROM t", "params": [step]});
                let (s, v) = host
                    .post_json(&format!("/obj/TenantDb/t{}/sql", rng.below(2)), body)
                    .await;
                format!("sql {s} {}", v["rows"])
            }
            5 => {
                let (sender, other) = if rng.below(2) == 0 {
                    (&mut a, &mut b)
                } else {
                    (&mut b, &mut a)
                };
                sender.send(&format!("hello {step}")).await;
                let (x, y) = (sender.next_text().await, other.next_text().await);
                format!("chat {x} {y}")
            }
            6 => {
                // Wait for the alarm (and its retries) each time, so that the
                // runs do not depend on how fast either host is.
                let b = rng.below(2);
                let r = host
                    .post(
                        &format!("/obj/Batcher/b{b}/add?flush_ms={}", rng.below(40)),
                        format!("item {step}"),
                    )
                    .await;
                eventually(Duration::from_secs(30), "the batcher flushes", || async {
                    host.get(&format!("/obj/Batcher/b{b}/")).await.json()["alarm"].is_null()
                })
                .await;
                format!("add {} {}", r.status, normalize(r.json()))
            }
            7 => {
                let r = host
                    .post(&format!("/obj/Batcher/b{}/fail?times=1", rng.below(2)), "")
                    .await;
                format!("fail {} {}", r.status, r.body)
            }
            _ => {
                let r = host
                    .post(&format!("/obj/Hostile/h{}/nested", rng.below(2)), "")
                    .await;
                let g = host
                    .get(&format!("/obj/Hostile/h{}/get?key=inner", rng.below(2)))
                    .await;
                format!("nested {} {} {}", r.status, r.body, g.body)
            }
        };
        out.push(line);
    }
    // Let the alarms settle, then dump everything observable.
    for b in 0..2 {
        out.push(format!(
            "batcher {}",
            normalize(host.get(&format!("/obj/Batcher/b{b}/")).await.json())
        ));
    }
    out.push(format!(
        "history {}",
        host.get("/obj/ChatRoom/eq/history").await.body
    ));
    out.push(format!(
        "users {}",
        host.get("/obj/ChatRoom/eq/users").await.body
    ));
    for t in 0..2 {
        let (_, v) = host
            .post_json(&format!("/obj/TenantDb/t{t}/kv"), json!({"op": "list"}))
            .await;
        out.push(format!("kv {v}"));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn evicting_after_every_event_changes_nothing_observable() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("equivalence seed {seed}");
    let always = TestHost::start(&format!("{COMMON}\n[limits]\nhibernate_after = \"0s\"")).await;
    let never = TestHost::start(&format!("{COMMON}\n[limits]\nhibernate_after = \"1h\"")).await;
    let (evicted, kept) = tokio::join!(workload(&always, seed), workload(&never, seed));
    for (i, (x, y)) in evicted.iter().zip(&kept).enumerate() {
        assert_eq!(x, y, "seed {seed}: step {i} differs");
    }
    assert_eq!(evicted.len(), kept.len());
    // And the evicting host really did evict, many times.
    let m = always.metrics().await;
    assert!(
        m.sum("dohost_instantiations_total") > 100.0,
        "{}",
        m.sum("dohost_instantiations_total")
    );
    assert!(never.metrics().await.sum("dohost_instantiations_total") < 20.0);
}
