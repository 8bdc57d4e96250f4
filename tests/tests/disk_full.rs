//! A real disk-full run: the data dir is a small tmpfs (mounted by the test,
//! which needs root; elsewhere it says so and checks nothing). Writes that do
//! not fit fail with a clear error — never a success — and committed data stays
//! readable.

use dohost_tests::TestHost;
use serde_json::json;

struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_fails_writes_clearly_and_keeps_committed_data() {
    let mut host = TestHost::start("").await;
    host.kill().await;
    let data = host.data_dir();
    std::fs::create_dir_all(&data).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&data)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here (needs root); the disk-full check did not run"
        );
        return;
    }
    let _unmount = Tmpfs(data.clone());
    host.restart().await;
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
