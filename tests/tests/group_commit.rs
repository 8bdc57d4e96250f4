//! Group commit: events that queue behind a running event form one batch —
//! one transaction, one savepoint per event, one commit. A trap rolls back
//! only its own event, and so does a write over the storage quota. (A
//! storage failure — a failed commit — fails every event of the batch:
//! `disk_full.rs`, `powerloss.rs`.)
//!
//! Batches are built exactly: a slow event occupies the object, the next
//! events are sent one by one, each once the previous one is queued.

use dohost_tests::TestHost;
use reqwest::Method;
use std::sync::Arc;

/// (commits, events committed) so far.
async fn commit_counters(host: &TestHost) -> (f64, f64) {
    let m = host.metrics().await;
    (
        m.get("dohost_commits_total"),
        m.get("dohost_events_committed_total"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn queued_events_share_one_commit() {
    let host = Arc::new(TestHost::start("").await);
    host.post("/obj/Hostile/g/put?key=warm", "up").await;
    let (commits, committed) = commit_counters(&host).await;
    let slow = host.occupy("g", 400).await;
    let mut puts = Vec::new();
    for (i, key) in ["a", "b", "c"].into_iter().enumerate() {
        let path = format!("/obj/Hostile/g/put?key={key}");
        puts.push(host.send_queued(Method::POST, &path, key, i + 1).await);
    }
    assert_eq!(slow.await.unwrap().body, "slow done");
    for put in puts {
        assert_eq!(put.await.unwrap().body, "ok");
    }
    // The slow event's batch, then one batch for the three queued events.
    let (commits_after, committed_after) = commit_counters(&host).await;
    assert_eq!(commits_after - commits, 2.0, "two commits");
    assert_eq!(committed_after - committed, 4.0, "for four events");
    for key in ["a", "b", "c"] {
        let got = host.get(&format!("/obj/Hostile/g/get?key={key}")).await;
        assert_eq!(got.body, key);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_in_a_batch_rolls_back_only_that_event() {
    let host = Arc::new(TestHost::start("").await);
    host.post("/obj/Hostile/t/put?key=warm", "up").await;
    let (commits, _) = commit_counters(&host).await;
    let slow = host.occupy("t", 400).await;
    let before = host
        .send_queued(Method::POST, "/obj/Hostile/t/put?key=before", "1", 1)
        .await;
    let trap = host
        .send_queued(Method::POST, "/obj/Hostile/t/panic", "", 2)
        .await;
    let after = host
        .send_queued(Method::POST, "/obj/Hostile/t/put?key=after", "2", 3)
        .await;
    assert_eq!(slow.await.unwrap().status, 200);
    assert_eq!(before.await.unwrap().body, "ok");
    let trapped = trap.await.unwrap();
    assert_eq!(trapped.status, 500);
    assert!(
        trapped.body.contains("hostile panic on purpose"),
        "{}",
        trapped.body
    );
    assert_eq!(after.await.unwrap().body, "ok");
    let (commits_after, _) = commit_counters(&host).await;
    assert_eq!(
        commits_after - commits,
        2.0,
        "the batch still committed once"
    );
    for (key, value) in [("before", "1"), ("after", "2"), ("written", "none")] {
        let got = host.get(&format!("/obj/Hostile/t/get?key={key}")).await;
        assert_eq!(got.body, value, "{key}");
    }
    // The event after the trap ran on a fresh instance, in the same batch.
    assert_eq!(
        host.metrics()
            .await
            .get(r#"dohost_instantiations_total{class="Hostile"}"#),
        2.0
    );
}

/// Bytes of an object database's page.
const PAGE: u64 = 4096;

/// Turns the (checkpointed) SQLite file at `path` into one exactly at the
/// 10 GB cap of an object (`limits::MAX_DATABASE_BYTES`): the header says it
/// has that many pages and the file is that long — sparse, so it costs no
/// disk. Writes that fit in its pages still work; one more page is refused.
fn grow_to_the_cap(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    conn.close().unwrap();
    let pages = dohost::config::limits::MAX_DATABASE_BYTES / PAGE;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &(pages as u32).to_be_bytes(), 28).unwrap();
    file.set_len(pages * PAGE).unwrap();
    file.sync_all().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn at_the_quota_the_write_that_crosses_it_fails_alone_and_its_batch_commits() {
    let mut host = TestHost::start("").await;
    assert_eq!(
        host.post("/obj/Hostile/full/put?key=kept", "yes")
            .await
            .body,
        "ok"
    );
    let identity = host.get("/obj/Hostile/full/identity").await.body;
    let id = identity.split(' ').nth(1).unwrap().to_string();
    host.kill().await;
    grow_to_the_cap(&host.data_dir().join(format!("Hostile/{id}.sqlite")));
    host.restart().await;
    let host = Arc::new(host);

    // At the quota, writes that fit in the existing pages work; a value that
    // needs new pages is refused to the guest, with the limit in the message
    // (the Hostile guest turns the error into its 500 reply).
    let mut ws = host.ws("/obj/Hostile/full/ws").await;
    assert_eq!(ws.next_text().await, "welcome");
    assert_eq!(
        host.post("/obj/Hostile/full/put?key=small", "fits")
            .await
            .body,
        "ok"
    );
    let big = "x".repeat(256 * 1024);
    let refused = host
        .post("/obj/Hostile/full/put?key=big", big.clone())
        .await;
    assert_eq!(refused.status, 500, "{}", refused.body);
    assert!(
        refused.body.contains(
            "storage quota exceeded: this object's database is limited to 10000000000 bytes \
             (limits.max_storage_bytes)"
        ),
        "{}",
        refused.body
    );

    // A batch of a socket message (a write and a send), a small write and the
    // write over the quota: only the last one fails, the batch commits once.
    let (commits, _) = commit_counters(&host).await;
    let slow = host.occupy("full", 400).await;
    ws.send("put-send one").await;
    host.wait_queued(1).await;
    let small = host
        .send_queued(Method::POST, "/obj/Hostile/full/put?key=batched", "2", 2)
        .await;
    let failing = host
        .send_queued(Method::POST, "/obj/Hostile/full/put?key=big", big, 3)
        .await;
    assert_eq!(slow.await.unwrap().status, 200);
    assert_eq!(small.await.unwrap().body, "ok");
    let failing = failing.await.unwrap();
    assert_eq!(failing.status, 500, "{}", failing.body);
    assert!(
        failing.body.contains("storage quota exceeded"),
        "{}",
        failing.body
    );
    assert_eq!(ws.next_text().await, "sent one");
    let (commits_after, _) = commit_counters(&host).await;
    assert_eq!(
        commits_after - commits,
        2.0,
        "the slow event's batch and the batch of the three"
    );
    for (key, value) in [
        ("batched", "2"),
        ("put_send", "one"),
        ("big", "none"),
        ("kept", "yes"),
    ] {
        let got = host.get(&format!("/obj/Hostile/full/get?key={key}")).await;
        assert_eq!(got.body, value, "{key}");
    }
}
