//! `[vars]` and `[secrets]`: every object's `env`. Secrets come from the host's
//! environment or an owner-only file, a missing one stops start-up with its
//! name, and no value of a secret ever leaves through the host's log, errors
//! or admin surface.

use dohost_tests::{guest, Launch, TestHost};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const TOKEN: &str = "tok-8c1f-very-secret";
const FILE_TOKEN: &str = "file-secret-41d2";

fn env_manifest(secret_file: &std::path::Path) -> String {
    format!(
        "[vars]\nGREETING = \"hello\"\nAPI_URL = \"http://127.0.0.1:9/batch\"\n\
         [secrets]\nTOKEN = {{ env = \"DOHOST_TEST_TOKEN\" }}\n\
         FILE_TOKEN = {{ file = \"{}\" }}\n",
        secret_file.display()
    )
}

fn secret_file(dir: &std::path::Path, mode: u32) -> std::path::PathBuf {
    let path = dir.join("token");
    std::fs::write(&path, format!("{FILE_TOKEN}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn vars_and_secrets_reach_every_object_and_secrets_never_leave() {
    let dir = tempfile::tempdir().unwrap();
    let file = secret_file(dir.path(), 0o600);
    let host = TestHost::launch_with(Launch {
        extra: env_manifest(&file),
        env: vec![("DOHOST_TEST_TOKEN".into(), TOKEN.into())],
        ..Launch::default()
    })
    .await;
    let mut log = host.log_lines();
    let get = |q: &str| format!("/obj/Hostile/e/env{q}");
    assert_eq!(host.get(&get("?name=GREETING")).await.body, "hello");
    assert_eq!(host.get(&get("?name=TOKEN")).await.body, TOKEN);
    // The file's trailing newline is not part of the value.
    assert_eq!(host.get(&get("?name=FILE_TOKEN")).await.body, FILE_TOKEN);
    assert_eq!(
        host.get(&get("")).await.body,
        "API_URL,FILE_TOKEN,GREETING,TOKEN"
    );
    let unknown = host.get(&get("?name=NOPE")).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    // Another object, another class's instance: the same env.
    assert_eq!(
        host.get("/obj/Hostile/other/env?name=TOKEN").await.body,
        TOKEN
    );
    // Nothing of a secret in the admin surface, errors or the log.
    for path in [
        "/_dohost/metrics",
        "/_dohost/health",
        "/obj/Hostile/e/panic",
    ] {
        let reply = host.get(path).await;
        assert!(
            !reply.body.contains(TOKEN) && !reply.body.contains(FILE_TOKEN),
            "{path}: {}",
            reply.body
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // let the log catch up
    let mut lines = 0;
    while let Ok(line) = log.try_recv() {
        lines += 1;
        assert!(
            !line.contains(TOKEN) && !line.contains(FILE_TOKEN),
            "{line}"
        );
    }
    assert!(lines > 0, "the panic was logged");
}

async fn refused(extra: String, env: Vec<(String, String)>) -> String {
    let (code, stderr) = TestHost::launch_failing(Launch {
        classes: vec![("Counter", guest("counter"))],
        extra,
        env,
        ..Launch::default()
    })
    .await;
    assert_ne!(code, Some(0), "{stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_unsafe_secret_stops_start_up_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = refused(
        "[secrets]\nTOKEN = { env = \"DOHOST_TEST_UNSET_VAR\" }\n".into(),
        Vec::new(),
    )
    .await;
    assert!(
        stderr.contains("secrets.TOKEN")
            && stderr.contains("environment variable DOHOST_TEST_UNSET_VAR is not set"),
        "{stderr}"
    );
    // A file others can read is refused, and its value is not printed.
    let file = secret_file(dir.path(), 0o644);
    let stderr = refused(
        format!(
            "[secrets]\nFILE_TOKEN = {{ file = \"{}\" }}\n",
            file.display()
        ),
        Vec::new(),
    )
    .await;
    assert!(
        stderr.contains("secrets.FILE_TOKEN") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    assert!(!stderr.contains(FILE_TOKEN), "{stderr}");
    let stderr = refused(
        "[secrets]\nTOKEN = { env = \"A\", file = \"b\" }\n".into(),
        Vec::new(),
    )
    .await;
    assert!(stderr.contains("exactly one of"), "{stderr}");
    // A name is a var or a secret, not both; names are identifiers.
    let stderr = refused(
        "[vars]\nTOKEN = \"x\"\n[secrets]\nTOKEN = { env = \"DOHOST_TEST_TOKEN\" }\n".into(),
        vec![("DOHOST_TEST_TOKEN".into(), TOKEN.into())],
    )
    .await;
    assert!(stderr.contains("is also a var"), "{stderr}");
    assert!(!stderr.contains(TOKEN), "{stderr}");
    let stderr = refused("[vars]\n\"not-a-name\" = \"x\"\n".into(), Vec::new()).await;
    assert!(stderr.contains("vars.not-a-name"), "{stderr}");
}
