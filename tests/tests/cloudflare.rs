//! Cloudflare-style projects: `dohost build` turns a wrangler config with
//! TypeScript sources into components and a manifest (bundled with esbuild,
//! `cloudflare:workers` resolved to the SDK), and the result serves as the
//! project would on Cloudflare. Projects are copied out of the repo first:
//! the build must work outside this checkout.

use dohost_tests::{build_and_serve, copy_project, dohost_build as build, root};

#[tokio::test(flavor = "multi_thread")]
async fn a_typescript_wrangler_project_builds_and_serves_unchanged() {
    let project = copy_project(&root().join("examples/js/cf-hello"));
    let (stderr, host) = build_and_serve(project.path()).await;
    // Keys dohost does not use are named, not silently dropped.
    assert!(stderr.contains("ignoring observability"), "{stderr}");
    // The Worker calls the class's RPC method through its binding; SQL and
    // vars (a number in wrangler's config) work as on Cloudflare.
    assert_eq!(host.get("/?name=ann").await.body, "Hello, ann! (visit 1)");
    assert_eq!(host.get("/?name=ann").await.body, "Hello, ann! (visit 2)");
    assert_eq!(host.get("/?name=bo").await.body, "Hello, bo! (visit 1)");
    let long = host.get(&format!("/?name={}", "x".repeat(33))).await;
    assert_eq!(
        (long.status, long.body.as_str()),
        (400, "name longer than 32")
    );
    // A text module (wrangler's default rule for .txt).
    assert_eq!(host.get("/banner").await.body, "cf-hello on dohost\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_globals_a_worker_reaches_for_are_there_in_the_entry_and_in_classes() {
    let project = copy_project(&root().join("tests/fixtures/cf-globals"));
    // Math.random() and crypto.getRandomValues() at the top level: no build trap.
    let (_, host) = build_and_serve(project.path()).await;
    let expected = serde_json::json!({
        "userAgent": "dohost",
        "stack": "RangeError: boom src/index.js:31:13",
        "intl": "$1,234.50 | 1,234,567.891 | December 3, 2026 | 3:04 PM | UTC | one",
        "intlZone": "RangeError: Intl.DateTimeFormat: time zone Europe/Paris is not supported on dohost (its Intl knows UTC only)",
        "topLevel": true,
        "random": true,
        "digest": "45,113",
        "queueMicrotask": "ran",
        "structuredClone": 2,
        "textDecoderStream": "héllo",
        "textEncoderStream": 3,
    });
    for path in ["/", "/class"] {
        let reply = host.get(path).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.json(), expected, "{path}");
    }
    // The module's top level runs in each new instance, not once at build time.
    let first = host.get("/top").await.body;
    assert_eq!(first, host.get("/top").await.body, "the same instance");
    host.get("/reset").await;
    let second = host.get("/top").await.body;
    assert_ne!(first, second, "a new instance ran the top level again");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nodejs_compat_project_gets_the_node_modules_packages_reach_for() {
    let project = copy_project(&root().join("tests/fixtures/cf-node"));
    let (stderr, host) = build_and_serve(project.path()).await;
    // The flag is understood, not reported as ignored.
    assert!(!stderr.contains("nodejs_compat"), "{stderr}");
    let expected = serde_json::json!({
        "buffer": "aMOpbGxv hi",
        "globalBuffer": true,
        "events": "1 2 true",
        "als": "req-1 undefined",
        "hash": "ba7816bf8f01cfea",
        "hmac": "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9",
        "random": true,
        "timingSafeEqual": true,
        "unsupportedCrypto": "node:crypto: createCipheriv is not supported on dohost: use crypto.subtle",
        "diagnostics": "7 true",
        "processEnv": "hello true function",
        "util": "n=42 {\"a\":1} 42",
        "immediate": "ran",
    });
    for path in ["/", "/class"] {
        let reply = host.get(path).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.json(), expected, "{path}");
    }
}

fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

const CONFIG: &str = r#"{ "main": "src/index.ts",
  "migrations": [{ "tag": "v1", "new_sqlite_classes": ["Room"] }] }"#;

#[test]
fn a_broken_project_fails_to_build_with_what_to_fix() {
    let cases: [(&[(&str, &str)], &str); 6] = [
        (
            &[],
            "no wrangler config (one of wrangler.jsonc, wrangler.json, wrangler.toml)",
        ),
        (
            &[
                ("wrangler.json", CONFIG),
                ("src/index.ts", "export class Room {\n  oops( {\n}\n"),
            ],
            "src/index.ts:4:0:",
        ),
        (
            &[
                ("wrangler.json", CONFIG),
                ("src/index.ts", "export class Other {}\n"),
            ],
            "src/index.ts does not export the class Room",
        ),
        (
            &[
                ("wrangler.json", CONFIG),
                (
                    "src/index.ts",
                    "import { Buffer } from 'node:buffer';\nexport class Room { b = Buffer; }\n",
                ),
            ],
            "node:buffer needs the nodejs_compat compatibility flag",
        ),
        (
            &[
                (
                    "wrangler.json",
                    r#"{ "main": "src/index.ts", "compatibility_flags": ["nodejs_compat"],
                      "migrations": [{ "tag": "v1", "new_sqlite_classes": ["Room"] }] }"#,
                ),
                (
                    "src/index.ts",
                    "import { readFileSync } from 'node:fs';\nexport class Room { r = readFileSync; }\n",
                ),
            ],
            "node:fs is not supported on dohost (its nodejs_compat has node:buffer, node:events",
        ),
        (
            &[(
                "wrangler.toml",
                "main = \"src/index.ts\"\n[[migrations]]\ntag = \"v1\"\nnew_classes = [\"Room\"]\n",
            )],
            "migrations[0].new_classes: not supported",
        ),
    ];
    for (files, message) in cases {
        let dir = project(files);
        let built = build(dir.path());
        let output = format!(
            "{}{}",
            String::from_utf8_lossy(&built.stdout),
            String::from_utf8_lossy(&built.stderr)
        );
        assert!(!built.status.success(), "{output}");
        assert!(
            output.contains(message),
            "expected {message:?} in:\n{output}"
        );
    }
}

#[test]
fn serving_a_wrangler_project_unbuilt_says_how_to_build_it() {
    let project = copy_project(&root().join("examples/js/cf-hello"));
    for config in ["wrangler.jsonc", "dohost.toml"] {
        let out = std::process::Command::new(dohost_tests::dohost_bin())
            .args(["serve", "--config"])
            .arg(project.path().join(config))
            .output()
            .expect("run dohost serve");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains("is a Cloudflare project's config, not a dohost manifest: build the project with `dohost build --project"),
            "{config}: {stderr}"
        );
    }
}
