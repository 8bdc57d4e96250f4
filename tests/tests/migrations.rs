//! Applied migrations are recorded per data dir and are append-only: the
//! next start applies pending tags, and a manifest that rewrites, reorders or
//! drops an applied tag is refused (serve, check and `dohost migrations`)
//! with the tag at fault.

use dohost_tests::{dohost_bin, guest, manifest, Launch, TestHost};
use std::path::{Path, PathBuf};
use std::process::Command;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `dohost <command> --config manifest --data-dir data [args]`.
fn run(command: &str, manifest: &Path, data: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(dohost_bin())
        .args([command, "--config"])
        .arg(manifest)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn states(manifest: &Path, data: &Path) -> Vec<(String, String)> {
    let (ok, stdout, stderr) = run("migrations", manifest, data, &["--json"]);
    assert!(ok, "{stderr}");
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["tag"].as_str().unwrap().into(),
                r["state"].as_str().unwrap().into(),
            )
        })
        .collect()
}

fn pair(tag: &str, state: &str) -> (String, String) {
    (tag.into(), state.into())
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_tags_are_applied_at_start_and_applied_tags_cannot_be_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let v1 = manifest(&[("Counter", guest("counter"))], "");
    let m1 = write(dir.path(), "v1.toml", &v1);
    assert_eq!(states(&m1, &data), [pair("v1", "pending")]);

    let launch = |path: &Path| Launch {
        manifest: Some(path.to_path_buf()),
        data_dir: Some(data.clone()),
        ..Launch::default()
    };
    let host = TestHost::launch_with(launch(&m1)).await;
    assert_eq!(host.post("/obj/Counter/a/increment", "").await.status, 200);
    drop(host);
    assert_eq!(states(&m1, &data), [pair("v1", "applied")]);

    // A new migration is pending until the next start applies it.
    let v2 = format!(
        "{v1}[[migrations]]\ntag = \"v2\"\nnew_sqlite_classes = [\"Batcher\"]\n[classes.Batcher]\ncomponent = {:?}\n",
        guest("batcher")
    );
    let m2 = write(dir.path(), "v2.toml", &v2);
    assert_eq!(
        states(&m2, &data),
        [pair("v1", "applied"), pair("v2", "pending")]
    );
    let host = TestHost::launch_with(launch(&m2)).await;
    assert_eq!(host.get("/obj/Counter/a/").await.status, 200);
    drop(host);
    assert_eq!(
        states(&m2, &data),
        [pair("v1", "applied"), pair("v2", "applied")]
    );

    // Rewriting an applied tag, or dropping one, is refused everywhere, naming it.
    let rewritten = write(
        dir.path(),
        "bad.toml",
        &v2.replace("tag = \"v1\"", "tag = \"v0\""),
    );
    let dropped = write(dir.path(), "old.toml", &v1);
    let cases = [
        (&rewritten, "migrations[0].tag: is \"v0\", but this data dir applied \"v1\" at that place; applied tags are append-only"),
        (&dropped, "the tag \"v2\" applied to this data dir (migrations[1]) is missing from the manifest"),
    ];
    for (manifest, message) in cases {
        for command in ["migrations", "check"] {
            let (ok, _, stderr) = run(command, manifest, &data, &[]);
            assert!(!ok && stderr.contains(message), "{command}: {stderr}");
        }
        let (ok, _, stderr) = run("serve", manifest, &data, &["--listen", "127.0.0.1:0"]);
        assert!(!ok && stderr.contains(message), "serve: {stderr}");
    }
    // Nothing was recorded by the refused starts.
    assert_eq!(
        states(&m2, &data),
        [pair("v1", "applied"), pair("v2", "applied")]
    );
}

/// A data dir where Counter "keep" holds 5 and Batcher "b" has data and an alarm.
async fn counter_and_batcher(data: &Path, v1: &Path) {
    let host = TestHost::launch_with(Launch {
        manifest: Some(v1.to_path_buf()),
        data_dir: Some(data.to_path_buf()),
        ..Launch::default()
    })
    .await;
    assert_eq!(
        host.post("/obj/Counter/keep/increment?by=5", "").await.body,
        "5"
    );
    let (status, _) = host
        .post_json("/obj/Batcher/b/add?flush_ms=600000", serde_json::json!("x"))
        .await;
    assert_eq!(status, 200);
    let alarms = host.get("/_dohost/alarms").await.json();
    assert_eq!(alarms[0]["class"], "Batcher", "{alarms}");
}

fn serve_failing(bin: &Path, manifest: &Path, data: &Path, failpoints: &str) -> String {
    let out = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(manifest)
        .arg("--data-dir")
        .arg(data)
        .env("DOHOST_FAILPOINTS", failpoints)
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_class_loses_its_objects_and_alarms_even_after_a_crash_at_any_step() {
    let counter = manifest(&[("Counter", guest("counter"))], "");
    let v1_text = format!(
        "{}[classes.Batcher]\ncomponent = {:?}\n",
        counter.replace("[\"Counter\"]", "[\"Counter\", \"Batcher\"]"),
        guest("batcher")
    );
    let v2_text = format!(
        "{}[[migrations]]\ntag = \"v2\"\ndeleted_classes = [\"Batcher\"]\n",
        counter.replace("[\"Counter\"]", "[\"Counter\", \"Batcher\"]")
    );
    let failpoints_bin = dohost_tests::root().join("target/release/dohost-failpoints");
    for crash_at in [
        None,
        Some("migration-moved-data"),
        Some("migration-removed-data"),
        Some("migration-before-record"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let v1 = write(dir.path(), "v1.toml", &v1_text);
        let v2 = write(dir.path(), "v2.toml", &v2_text);
        counter_and_batcher(&data, &v1).await;
        assert!(data.join("Batcher").is_dir());
        if let Some(point) = crash_at {
            let stderr = serve_failing(&failpoints_bin, &v2, &data, &format!("{point}=crash"));
            assert!(
                stderr.contains(&format!("failpoint {point}: crashing")),
                "{stderr}"
            );
            assert_eq!(
                states(&v2, &data),
                [pair("v1", "applied"), pair("v2", "pending")],
                "{point}"
            );
        }
        // The (next) start finishes the migration.
        let host = TestHost::launch_with(Launch {
            manifest: Some(v2.clone()),
            data_dir: Some(data.clone()),
            ..Launch::default()
        })
        .await;
        let label = crash_at.unwrap_or("no crash");
        assert_eq!(host.get("/obj/Counter/keep/").await.body, "5", "{label}");
        assert_eq!(
            host.get("/_dohost/alarms").await.json(),
            serde_json::json!([]),
            "{label}"
        );
        assert_eq!(host.get("/obj/Batcher/b/").await.status, 404, "{label}");
        drop(host);
        assert!(!data.join("Batcher").exists(), "{label}");
        assert!(!data.join("_dohost/deleting-Batcher").exists(), "{label}");
        assert_eq!(
            states(&v2, &data),
            [pair("v1", "applied"), pair("v2", "applied")],
            "{label}"
        );
    }
}

#[test]
fn a_deletion_is_refused_while_the_class_is_configured_or_was_never_created() {
    let dir = tempfile::tempdir().unwrap();
    let both = manifest(
        &[("Counter", guest("counter")), ("Batcher", guest("batcher"))],
        "",
    );
    let configured =
        format!("{both}[[migrations]]\ntag = \"v2\"\ndeleted_classes = [\"Batcher\"]\n");
    let never = format!("{both}[[migrations]]\ntag = \"v2\"\ndeleted_classes = [\"Ghost\"]\n");
    for (text, message) in [
        (configured, "migrations[1].deleted_classes: class \"Batcher\" is still configured: remove [classes.Batcher] to delete its objects"),
        (never, "migrations[1].deleted_classes: class \"Ghost\" was not created by an earlier migration"),
    ] {
        let path = write(dir.path(), "m.toml", &text);
        let (ok, _, stderr) = run("check", &path, &dir.path().join("data"), &[]);
        assert!(!ok && stderr.contains(message), "{stderr}");
    }
}
