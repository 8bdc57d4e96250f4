//! A real disk-full run: the data dir is a small tmpfs, mounted by the test,
//! which therefore needs root (it fails without; skip it explicitly with
//! `--skip a_full_disk --skip a_failed_commit`). Writes that do not fit fail
//! with a clear error — never a success — a failed commit fails every event of
//! its batch, and committed data stays readable.

use dohost_tests::TestHost;
use reqwest::Method;
use serde_json::json;
use std::io::Write;
use std::sync::Arc;

struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Restarts `host` with its data dir on a fresh tmpfs of `size` (e.g. "3m").
async fn on_tmpfs(host: &mut TestHost, size: &str) -> Tmpfs {
    host.kill().await;
    let data = host.data_dir();
    std::fs::create_dir_all(&data).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(&data)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        mounted,
        "cannot mount a tmpfs on {} (needs root): run this test as root, or skip it \
         explicitly (--skip a_full_disk --skip a_failed_commit)",
        data.display()
    );
    let unmount = Tmpfs(data);
    host.restart().await;
    unmount
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_fails_writes_clearly_and_keeps_committed_data() {
    let mut host = TestHost::start("").await;
    let _unmount = on_tmpfs(&mut host, "3m").await;
    assert_eq!(
        host.post("/obj/Counter/steady/increment?by=5", "")
            .await
            .body,
        "5"
    );
    let sql = |q: &str, p: serde_json::Value| json!({"query": q, "params": p});
    let (s, _) = host
        .post_json(
            "/obj/TenantDb/filler/sql",
            sql("CREATE TABLE t (b BLOB)", json!([])),
        )
        .await;
    assert_eq!(s, 200);
    let mut acknowledged = 0;
    let mut failure = None;
    for _ in 0..100 {
        let (s, r) = host
            .post_json(
                "/obj/TenantDb/filler/sql",
                sql("INSERT INTO t VALUES (randomblob(200000))", json!([])),
            )
            .await;
        if s == 200 {
            acknowledged += 1;
        } else {
            failure = Some((s, r));
            break;
        }
    }
    let (status, body) = failure.expect("the disk filled up");
    assert_eq!(status, 500, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("disk is full"),
        "{body}"
    );
    // Reads keep working: the filler still has every acknowledged row, the
    // other object its value.
    let (s, r) = host
        .post_json(
            "/obj/TenantDb/filler/sql",
            sql("SELECT count(*) FROM t", json!([])),
        )
        .await;
    assert_eq!(
        (s, r["rows"].clone()),
        (200, json!([[acknowledged]])),
        "{r}"
    );
    assert_eq!(host.get("/obj/Counter/steady/").await.body, "5");
    // After a restart, exactly the acknowledged rows are there.
    host.restart().await;
    let (s, r) = host
        .post_json(
            "/obj/TenantDb/filler/sql",
            sql("SELECT count(*) FROM t", json!([])),
        )
        .await;
    assert_eq!(
        (s, r["rows"].clone()),
        (200, json!([[acknowledged]])),
        "{r}"
    );
    host.kill().await;
}

/// Fills the file system of `dir` with a ballast file, then frees `free`
/// bytes of it.
fn leave_free(dir: &std::path::Path, free: u64) -> std::path::PathBuf {
    let path = dir.join("ballast");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![1u8; 64 * 1024];
    while matches!(file.write(&chunk), Ok(n) if n > 0) {}
    let len = file.metadata().unwrap().len();
    file.set_len(len.saturating_sub(free)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_commit_fails_every_event_of_the_batch() {
    let mut host = TestHost::start("").await;
    let _unmount = on_tmpfs(&mut host, "4m").await;
    let host = Arc::new(host);
    let mut ws = host.ws("/obj/Hostile/full/ws").await;
    assert_eq!(ws.next_text().await, "welcome");
    assert_eq!(
        host.post("/obj/Hostile/full/put?key=kept", "yes")
            .await
            .body,
        "ok"
    );
    // 256 KiB left: small writes fit, the batch's 1 MiB does not — at commit
    // (the pages stay in SQLite's cache until then).
    let ballast = leave_free(&host.data_dir(), 256 * 1024);
    let commits = host.metrics().await.get("dohost_commits_total");
    let slow = host.occupy("full", 400).await;
    ws.send("put-send one").await;
    host.wait_queued(1).await;
    let small = host
        .send_queued(Method::POST, "/obj/Hostile/full/put?key=batched", "2", 2)
        .await;
    let big = host
        .send_queued(
            Method::POST,
            "/obj/Hostile/full/put?key=big",
            "x".repeat(1 << 20),
            3,
        )
        .await;
    assert_eq!(slow.await.unwrap().body, "slow done");
    for reply in [small.await.unwrap(), big.await.unwrap()] {
        assert_eq!(reply.status, 500, "{}", reply.body);
        assert!(
            reply
                .body
                .contains("commit failed: database or disk is full"),
            "every event fails with the commit: {}",
            reply.body
        );
    }
    assert_eq!(
        host.metrics().await.get("dohost_commits_total") - commits,
        1.0,
        "only the slow event's batch committed"
    );
    // None of the batch is visible: its socket send never went out; the
    // socket whose message was lost is closed with 1011, so its client knows
    // to reconnect and resend …
    match ws.next_message().await {
        tokio_tungstenite::tungstenite::Message::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 1011, "{frame:?}");
            assert!(frame.reason.contains("commit failed"), "{frame:?}");
        }
        other => panic!("the failed batch sent {other:?}"),
    }
    // … and with room again, none of its writes is there.
    std::fs::remove_file(ballast).unwrap();
    for key in ["batched", "put_send", "big"] {
        let got = host.get(&format!("/obj/Hostile/full/get?key={key}")).await;
        assert_eq!(got.body, "none", "{key} was rolled back");
    }
    assert_eq!(host.get("/obj/Hostile/full/get?key=kept").await.body, "yes");
    assert_eq!(
        host.get("/obj/Hostile/full/get?key=slow").await.body,
        "done"
    );
    assert_eq!(
        host.post("/obj/Hostile/full/put?key=after", "fine")
            .await
            .body,
        "ok"
    );
}
