//! Start-up: invalid manifests are refused with the key at fault and exit ≠ 0.

use dohost_tests::{dohost_bin, guest, manifest};
use std::process::Command;

fn serve_with(manifest_text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dohost.toml");
    std::fs::write(&path, manifest_text).unwrap();
    let out = Command::new(dohost_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_class_without_a_migration_is_refused_by_name() {
    let text = format!("[classes.Counter]\ncomponent = {:?}\n", guest("counter"));
    let (code, err) = serve_with(&text);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("migrations required") && err.contains("Counter"),
        "{err}"
    );
}

#[test]
fn invalid_manifests_name_the_key_and_exit_nonzero() {
    let good = manifest(&[("Counter", guest("counter"))], "");
    for (text, key) in [
        (format!("{good}\nbogus = 1\n"), "bogus"),
        (
            good.replace(
                "[[migrations]]",
                "[limits]\nhibernate_after = \"never\"\n[[migrations]]",
            ),
            "limits.hibernate_after",
        ),
        (
            good.replace("counter.wasm", "missing.wasm"),
            "classes.Counter.component",
        ),
        ("this is not toml".to_string(), "invalid manifest"),
        // A value of the wrong type names its key too.
        (
            good.replace(
                "[[migrations]]",
                "[limits]\nmax_active = -1\n[[migrations]]",
            ),
            "limits.max_active: invalid value: integer `-1`, expected usize",
        ),
        (
            good.replace(
                "[[migrations]]",
                "[limits]\nrequest_read_timeout = \"soon\"\n[[migrations]]",
            ),
            "limits.request_read_timeout",
        ),
        (
            good.replace(
                "[[migrations]]",
                "[alarms]\nretry_base = \"0s\"\n[[migrations]]",
            ),
            "alarms.retry_base: must be greater than zero",
        ),
        (
            good.replace(
                "[[migrations]]",
                "[alarms]\nmax_retries = -1\n[[migrations]]",
            ),
            "alarms.max_retries: invalid value: integer `-1`, expected u32",
        ),
    ] {
        let (code, err) = serve_with(&text);
        assert_ne!(code, Some(0), "{text}");
        assert!(err.contains(key), "expected {key:?} in {err}");
    }
}

#[test]
fn a_component_that_is_not_an_object_class_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, b"\0asm\x01\0\0\0").unwrap();
    let (code, err) = serve_with(&manifest(&[("Bogus", bogus)], ""));
    assert_ne!(code, Some(0));
    assert!(
        err.contains("class Bogus") && err.contains("not a valid WebAssembly component"),
        "{err}"
    );
}

#[test]
fn a_missing_manifest_is_reported() {
    let out = Command::new(dohost_bin())
        .args(["serve", "--config", "/nonexistent/dohost.toml"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read manifest"));
}
