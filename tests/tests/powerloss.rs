//! Power loss and I/O errors below SQLite, through the failpoint VFS of the
//! `dohost-failpoints` build: a power cut loses (or tears) every write not yet
//! synced; the crash point sweeps over the Nth sync and write of a short
//! workload. I/O errors at the Nth call must fail the request, never succeed,
//! and leave exactly the last committed state.

use dohost_tests::TestHost;
use serde_json::json;
use std::collections::BTreeSet;

/// What the workload saw acknowledged.
#[derive(Default, Debug)]
struct Acked {
    counter: u64,
    rows: BTreeSet<String>,
    failed_rows: BTreeSet<String>,
}

/// Sequential writes until the host goes away (or the workload ends).
async fn workload(host: &TestHost) -> Acked {
    let mut acked = Acked::default();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    for i in 0..12 {
        if i % 2 == 0 {
            match client
                .post(format!("{}/obj/Counter/pl/increment", host.url))
                .send()
                .await
            {
                Ok(r) if r.status() == 200 => acked.counter += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        } else {
            let value = format!("row{i}");
            let body = json!({"query": "CREATE TABLE IF NOT EXISTS t (v TEXT PRIMARY KEY); INSERT INTO t VALUES (?)", "params": [value]});
            match client
                .post(format!("{}/obj/TenantDb/pl/sql", host.url))
                .body(body.to_string())
                .send()
                .await
            {
                Ok(r) if r.status() == 200 => {
                    acked.rows.insert(value);
                }
                Ok(_) => {
                    acked.failed_rows.insert(value);
                }
                Err(_) => break,
            }
        }
    }
    acked
}

/// The state after a clean restart must hold every acknowledged write and no
/// failed one.
async fn verify(host: &TestHost, acked: &Acked, what: &str) {
    let value: u64 = host.get("/obj/Counter/pl/").await.body.parse().unwrap();
    assert!(
        value >= acked.counter,
        "{what}: counter {value} < {} acknowledged",
        acked.counter
    );
    assert!(
        value <= acked.counter + 1,
        "{what}: counter {value} > {} acknowledged + 1 in flight",
        acked.counter
    );
    let (s, r) = host
        .post_json(
            "/obj/TenantDb/pl/sql",
            json!({"query": "CREATE TABLE IF NOT EXISTS t (v TEXT PRIMARY KEY); SELECT v FROM t"}),
        )
        .await;
    assert_eq!(s, 200, "{what}: {r}");
    let present: BTreeSet<String> = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[0].as_str().unwrap().to_string())
        .collect();
    for row in &acked.rows {
        assert!(
            present.contains(row),
            "{what}: acknowledged {row} lost (present: {present:?})"
        );
    }
    for row in &acked.failed_rows {
        assert!(!present.contains(row), "{what}: failed {row} is present");
    }
}

async fn power_cut_at(spec: &str) -> bool {
    let mut host = TestHost::start_failpoints("", &[("DOHOST_POWERLOSS", spec)]).await;
    let acked = workload(&host).await;
    // Did the cut happen? Then the process is gone.
    let cut = host
        .client
        .get(format!("{}/_dohost/health", host.url))
        .send()
        .await
        .is_err();
    host.restart_clean().await;
    verify(&host, &acked, &format!("power cut at {spec}")).await;
    cut
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_a_power_cut_at_every_sync() {
    let mut cuts = 0;
    for n in 1.. {
        if !power_cut_at(&format!("sync:{n}")).await {
            assert!(n > 5, "the workload syncs more than a few times");
            break;
        }
        cuts += 1;
    }
    println!("power cut swept over {cuts} sync points");
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_lost_and_torn_writes() {
    for n in [1, 2, 3, 5, 8, 13, 21, 34, 55] {
        power_cut_at(&format!("write:{n}")).await;
        power_cut_at(&format!("write:{n}:torn")).await;
    }
    for n in [2, 4, 7, 11] {
        power_cut_at(&format!("sync:{n}:torn")).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn io_errors_fail_the_request_and_keep_the_last_committed_state() {
    for spec in [
        "sync:3", "sync:6", "sync:9", "write:4", "write:10", "write:25", "full:5", "full:15",
    ] {
        let mut host = TestHost::start_failpoints("", &[("DOHOST_IOERROR", spec)]).await;
        let acked = workload(&host).await;
        // The host stays up; the object was reset and serves the committed state.
        verify(&host, &acked, &format!("I/O error at {spec}")).await;
        host.restart_clean().await;
        verify(
            &host,
            &acked,
            &format!("I/O error at {spec}, after a restart"),
        )
        .await;
    }
}
