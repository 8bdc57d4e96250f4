//! Outbound HTTP from objects, with a real service on loopback: the class's
//! egress policy, the output gate (the writes before a request are durable
//! when it arrives: the host is killed while the service holds the request),
//! and the Batcher pattern of examples/js/batcher (an alarm POSTs its batch
//! with a secret bearer token and is retried with backoff while the service
//! fails).

use dohost_tests::{eventually, id_of, polyglot, Launch, TestHost};
use serde_json::json;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request the service received.
#[derive(Debug, Clone)]
struct Seen {
    head: String,
    body: String,
}

/// How the service answers a request.
#[derive(Clone, Copy)]
enum Answer {
    /// Never: the connection stays open (the sender waits).
    Hold,
    Status(u16),
}

/// A batch service: answers with `script` in turn, then 200; every request
/// also goes to the returned channel.
struct Service {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Service {
    async fn start(script: Vec<Answer>) -> (Service, tokio::sync::mpsc::UnboundedReceiver<Seen>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut script = script.into_iter();
        let seen2 = seen.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut conn, _)) = listener.accept().await {
                let (head, body) = read_request(&mut conn).await;
                let request = Seen { head, body };
                seen2.lock().unwrap().push(request.clone());
                let _ = tx.send(request);
                let status = match script.next().unwrap_or(Answer::Status(200)) {
                    Answer::Hold => {
                        held.push(conn);
                        continue;
                    }
                    Answer::Status(status) => status,
                };
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            }
        });
        (Service { port, seen }, rx)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn next_request(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("no request reached the service")
        .expect("the service stopped")
}

async fn read_request(conn: &mut tokio::net::TcpStream) -> (String, String) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&data[end + 4..end + 4 + length]);
                return (head, body.into_owned());
            }
        }
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return (String::from_utf8_lossy(&data).into_owned(), String::new()),
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

/// A KV value as another connection sees it: only what is committed.
fn committed_kv(db: &std::path::Path, key: &str) -> Option<String> {
    let read = || -> rusqlite::Result<String> {
        let conn = rusqlite::Connection::open(db)?;
        conn.query_row(
            "SELECT CAST(value AS TEXT) FROM _dohost_kv WHERE key = ?1",
            [key],
            |r| r.get(0),
        )
    };
    match read() {
        Ok(value) => Some(value),
        Err(rusqlite::Error::QueryReturnedNoRows) => None,
        Err(e) => Some(format!("cannot read {}: {e}", db.display())),
    }
}

/// A manifest with `JsBatcher` allowed to reach the service and `Mute`
/// (the same class) allowed nowhere.
fn batcher_manifest(service: &Service, token_file: &std::path::Path) -> String {
    let component = polyglot("js_batcher");
    format!(
        "[vars]\nBATCH_URL = \"http://127.0.0.1:{}/batches\"\nFLUSH_AFTER_MS = \"100\"\n\
         [secrets]\nBATCH_TOKEN = {{ file = {token_file:?} }}\n\
         [classes.JsBatcher]\ncomponent = {component:?}\nallow = [\"127.0.0.1\"]\n\
         [classes.Mute]\ncomponent = {component:?}\n\
         [[migrations]]\ntag = \"v0\"\nnew_sqlite_classes = [\"JsBatcher\", \"Mute\"]\n",
        service.port
    )
}

fn token_file(dir: &tempfile::TempDir) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.path().join("batch-token");
    std::fs::write(&path, "t0k3n\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

async fn status(host: &TestHost, class: &str) -> serde_json::Value {
    host.get(&format!("/obj/{class}/b/")).await.json()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batcher_posts_behind_the_output_gate_and_retries_with_backoff() {
    let (service, mut requests) = Service::start(vec![Answer::Hold, Answer::Status(500)]).await;
    let secrets = tempfile::tempdir().unwrap();
    let manifest = batcher_manifest(&service, &token_file(&secrets));
    let mut host = TestHost::launch_with(Launch {
        classes: Vec::new(),
        extra: format!("{manifest}[alarms]\nretry_base = \"200ms\"\n"),
        ..Launch::default()
    })
    .await;
    for (item, pending) in [("one", 1), ("two", 2)] {
        let reply = host.post("/obj/JsBatcher/b/add", item).await;
        assert_eq!(
            reply.json(),
            json!({ "pending": pending }),
            "{}",
            reply.body
        );
    }
    // The alarm sends the batch with the secret token...
    let first = next_request(&mut requests).await;
    assert!(first.head.starts_with("post /batches "), "{}", first.head);
    assert!(
        first.head.contains("authorization: bearer t0k3n"),
        "{}",
        first.head
    );
    let sent: serde_json::Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(sent, json!({"batch": "b", "items": ["one", "two"]}));
    // ...and the host dies while the handler waits for the answer. The attempt
    // it counted before sending was committed before the request left (the
    // output gate); the batch is still pending.
    host.kill().await;
    let db = host
        .data_dir()
        .join(format!("JsBatcher/{}.sqlite", id_of("JsBatcher", "b")));
    assert_eq!(committed_kv(&db, "attempts").as_deref(), Some("1"));
    assert_eq!(
        committed_kv(&db, "items").as_deref(),
        Some(r#"["one","two"]"#)
    );
    // The alarm stayed stored across the gate's commit: it fires again after
    // the restart; the service fails it (the handler throws), the backoff
    // retries it, and the third attempt goes through.
    host.restart().await;
    assert_eq!(next_request(&mut requests).await.body, first.body);
    assert_eq!(next_request(&mut requests).await.body, first.body);
    eventually(Duration::from_secs(20), "the batch is sent", || async {
        status(&host, "JsBatcher").await == json!({"pending": 0, "sent": 2, "attempts": 3})
    })
    .await;
    assert!(service
        .seen()
        .iter()
        .all(|r| r.head.contains("bearer t0k3n")));
    let m = host.metrics().await;
    let ok = r#"dohost_outbound_requests_total{from="JsBatcher",host="127.0.0.1",outcome="ok"}"#;
    assert_eq!(m.get(ok), 2.0);
    // A class without `allow` sends nothing: the request fails in the guest
    // and the host names the policy.
    host.post("/obj/Mute/b/add", "x").await;
    let line = host.log_containing("egress denied").await;
    assert!(
        line.contains(&format!(
            "an object of class Mute sent a request to 127.0.0.1:{}, which is not in \
             [classes.Mute] allow (empty: nothing may leave)",
            service.port
        )),
        "{line}"
    );
    eventually(
        Duration::from_secs(10),
        "the denied attempt settles",
        || async { status(&host, "Mute").await == json!({"pending": 1, "sent": 0, "attempts": 1}) },
    )
    .await;
    let denied = r#"dohost_outbound_requests_total{from="Mute",host="",outcome="denied"}"#;
    assert_eq!(host.metrics().await.get(denied), 1.0);
    assert_eq!(service.seen().len(), 3);
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A host serving `component` as class `open`, which may reach `service`,
/// and as class `closed`, which has no allow-list.
async fn open_and_closed(
    component: PathBuf,
    open: &str,
    closed: &str,
    service: &Service,
) -> TestHost {
    let extra = format!(
        "[classes.{open}]\ncomponent = {component:?}\nallow = [\"127.0.0.1:{}\"]\n\
         [classes.{closed}]\ncomponent = {component:?}\n\
         [[migrations]]\ntag = \"v0\"\nnew_sqlite_classes = [\"{open}\", \"{closed}\"]\n",
        service.port
    );
    TestHost::launch_with(Launch {
        classes: Vec::new(),
        extra,
        ..Launch::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rust_sdk_client_sends_only_where_the_class_may() {
    let (service, mut requests) = Service::start(Vec::new()).await;
    let host = open_and_closed(
        dohost_tests::guest("hostile"),
        "Hostile",
        "Closed",
        &service,
    )
    .await;
    let url = encode(&format!("http://127.0.0.1:{}/hook?x=1", service.port));
    let reply = host
        .post(&format!("/obj/Hostile/h/outbound?url={url}"), "payload")
        .await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "200 ok"));
    let seen = next_request(&mut requests).await;
    assert!(seen.head.starts_with("post /hook?x=1 "), "{}", seen.head);
    assert!(seen.head.contains("x-from: hostile"), "{}", seen.head);
    assert_eq!(seen.body, "payload");
    // Another class of the same component has no allow-list.
    let denied = host
        .post(&format!("/obj/Closed/h/outbound?url={url}"), "payload")
        .await;
    assert_eq!(denied.status, 502, "{}", denied.body);
    assert!(denied.body.contains("HttpRequestDenied"), "{}", denied.body);
    let relative = host.post("/obj/Hostile/h/outbound?url=%2Fhook", "").await;
    assert_eq!(relative.status, 502);
    assert!(
        relative.body.contains("needs an absolute http(s) URL"),
        "{}",
        relative.body
    );
    assert_eq!(service.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_fetch_sends_only_where_the_class_may() {
    let (service, mut requests) = Service::start(vec![Answer::Status(201)]).await;
    let host = open_and_closed(polyglot("py_sdk_probe"), "PyOut", "PyClosed", &service).await;
    let url = format!("http://127.0.0.1:{}/hook?x=1", service.port);
    let ask = json!({ "url": url, "method": "POST", "body": "payload" }).to_string();
    let reply = host.post("/obj/PyOut/p/outbound", ask.clone()).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "201 None ok"));
    let seen = next_request(&mut requests).await;
    assert!(seen.head.starts_with("post /hook?x=1 "), "{}", seen.head);
    assert!(seen.head.contains("x-from: py"), "{}", seen.head);
    assert_eq!(seen.body, "payload");
    // Another class of the same component has no allow-list.
    let denied = host.post("/obj/PyClosed/p/outbound", ask.clone()).await;
    assert_eq!(denied.status, 502, "{}", denied.body);
    assert!(
        denied
            .body
            .starts_with("other: fetch failed: HttpRequestDenied"),
        "{}",
        denied.body
    );
    let relative = json!({ "url": "/hook" }).to_string();
    let relative = host.post("/obj/PyOut/p/outbound", relative).await;
    assert_eq!(
        (relative.status, relative.body.as_str()),
        (
            502,
            "invalid: fetch needs an absolute http(s) URL, got '/hook'"
        )
    );
    assert_eq!(service.seen().len(), 1);
}
