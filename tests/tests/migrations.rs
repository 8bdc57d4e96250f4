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
