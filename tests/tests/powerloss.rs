//! Power loss and I/O errors below SQLite, through the failpoint VFS of the
//! `dohost-failpoints` build: a power cut loses (or tears) every write that no
//! real flush of the group-sync layer covered; the crash point sweeps over the
//! Nth sync and write of a short workload. A failed write must fail its
//! request, never succeed, and leave exactly the last committed state; a
//! failed sync stops the host (fail-stop), and what it had acknowledged is
//! there after a restart.

use dohost_tests::{wait_for_line, TestHost};
use serde_json::json;
use std::collections::BTreeSet;

/// What the workload saw acknowledged (and refused, and never learned).
#[derive(Default, Debug)]
struct Acked {
    counter: u64,
    failed_increments: u64,
    rows: BTreeSet<String>,
    failed_rows: BTreeSet<String>,
    /// A request whose answer never came (the host went away): it may or
    /// may not have committed.
    unknown: bool,
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
                Ok(_) => acked.failed_increments += 1,
                Err(_) => {
                    acked.unknown = true;
                    break;
                }
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
                Err(_) => {
                    acked.unknown = true;
                    break;
                }
            }
        }
    }
    acked
}

/// The state must hold every acknowledged write and no failed one; only a
/// request whose answer never came may be there or not.
async fn verify(host: &TestHost, acked: &Acked, what: &str) {
    let value: u64 = host.get("/obj/Counter/pl/").await.body.parse().unwrap();
    let in_flight = u64::from(acked.unknown);
    assert!(
        value >= acked.counter,
        "{what}: counter {value} < {} acknowledged",
        acked.counter
    );
    assert!(
        value <= acked.counter + in_flight,
        "{what}: counter {value} > {} acknowledged + {in_flight} in flight ({} refused)",
        acked.counter,
        acked.failed_increments
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
    // Every point is within the workload: each cut must happen.
    for n in [1, 2, 3, 5, 8, 13, 21, 34] {
        for spec in [format!("write:{n}"), format!("write:{n}:torn")] {
            assert!(
                power_cut_at(&spec).await,
                "the power cut at {spec} never happened"
            );
        }
    }
    for n in [2, 4, 7, 11] {
        let spec = format!("sync:{n}:torn");
        assert!(
            power_cut_at(&spec).await,
            "the power cut at {spec} never happened"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_write_fails_its_request_and_keeps_exactly_the_committed_state() {
    for spec in ["write:4", "write:10", "write:25", "full:5", "full:15"] {
        let mut host = TestHost::start_failpoints("", &[("DOHOST_IOERROR", spec)]).await;
        let mut lines = host.log_lines();
        let acked = workload(&host).await;
        let n = spec.split(':').nth(1).unwrap();
        wait_for_line(&mut lines, &format!("write {n} fails")).await;
        assert!(
            !acked.unknown,
            "{spec}: the host stays up after a failed write"
        );
        assert!(
            acked.failed_increments + acked.failed_rows.len() as u64 > 0,
            "{spec}: the failed write failed no request"
        );
        // The object was reset and serves exactly the committed state.
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

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_sync_stops_the_host_and_nothing_acknowledged_is_lost() {
    for spec in ["sync:3", "sync:6", "sync:9"] {
        let mut host = TestHost::start_failpoints("", &[("DOHOST_IOERROR", spec)]).await;
        let mut lines = host.log_lines();
        let acked = workload(&host).await;
        let n = spec.split(':').nth(1).unwrap();
        wait_for_line(&mut lines, &format!("sync {n} fails")).await;
        wait_for_line(&mut lines, "fail-stop").await;
        let status = host.wait_for_exit(std::time::Duration::from_secs(30)).await;
        assert!(
            !status.success(),
            "{spec}: the host must stop, not serve on"
        );
        assert!(
            acked.unknown,
            "{spec}: the request under the failed sync got no answer"
        );
        host.restart_clean().await;
        verify(
            &host,
            &acked,
            &format!("sync error at {spec}, after a restart"),
        )
        .await;
    }
}
