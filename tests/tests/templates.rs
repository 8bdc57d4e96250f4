//! Public Cloudflare projects, copied unchanged into examples/js/ (their
//! licence and source in each SOURCE.md): `dohost build` builds them as they
//! are and they behave over HTTP and WebSockets as on Cloudflare.

use dohost_tests::{build_and_serve, copy_project, root, TestHost, WsClient};
use serde_json::{json, Value};
use std::path::Path;

/// Builds a copy of `examples/js/<name>` and serves it.
async fn serve(name: &str) -> (tempfile::TempDir, TestHost) {
    let project = copy_project(&root().join("examples/js").join(name));
    let (_, host) = build_and_serve(project.path()).await;
    (project, host)
}

/// `tsc --noEmit` in `dir` with the pinned TypeScript (the project's tsconfig).
fn type_check(dir: &Path) -> std::process::Output {
    std::process::Command::new(root().join("node_modules/.bin/tsc"))
        .args(["--noEmit", "-p"])
        .arg(dir)
        .output()
        .expect("run tsc (installed by make build-polyglot)")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hello_world_do_template_type_checks_builds_and_greets() {
    let pristine = copy_project(&root().join("examples/js/hello-world-do"));
    let checked = type_check(pristine.path());
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );
    let (_project, host) = serve("hello-world-do").await;
    // The Worker calls the RPC method `sayHello` of the object named by the path.
    for path in ["/", "/a/b"] {
        let reply = host.get(path).await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "Hello, World!"));
    }
}

/// Runs `dohost types --project dir`.
fn dohost_types(dir: &Path) -> std::process::Output {
    std::process::Command::new(dohost_tests::dohost_bin())
        .args(["types", "--project"])
        .arg(dir)
        .output()
        .expect("run dohost types")
}

#[test]
fn dohost_types_lets_tsc_check_a_project_against_what_dohost_provides() {
    let project = copy_project(&root().join("examples/js/cf-hello"));
    let written = dohost_types(project.path());
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    let checked = type_check(project.path());
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );
    // An API dohost lacks is a type error, not a surprise at run time.
    let index = project.path().join("src/index.ts");
    let source = std::fs::read_to_string(&index).unwrap();
    let uses_pitr = source.replace(
        "return `${this.env.GREETING}",
        "this.ctx.storage.getCurrentBookmark();\n    return `${this.env.GREETING}",
    );
    assert_ne!(source, uses_pitr);
    std::fs::write(&index, uses_pitr).unwrap();
    let refused = type_check(project.path());
    let out = String::from_utf8_lossy(&refused.stdout);
    assert!(
        !refused.status.success() && out.contains("getCurrentBookmark"),
        "{out}"
    );
    // wrangler's own generated file is not overwritten.
    let template = copy_project(&root().join("examples/js/hello-world-do"));
    let kept = dohost_types(template.path());
    let stderr = String::from_utf8_lossy(&kept.stderr);
    assert!(
        !kept.status.success() && stderr.contains("was not written by `dohost types`"),
        "{stderr}"
    );
}

/// Joins the chat room as `name`; returns the socket after `{"ready":true}`
/// and what it heard before (who is there, the backlog).
async fn join(host: &TestHost, room: &str, name: &str) -> (WsClient, Vec<Value>) {
    let mut ws = host.ws(&format!("/api/room/{room}/websocket")).await;
    ws.send(&json!({ "name": name }).to_string()).await;
    let mut heard = Vec::new();
    loop {
        let message = ws.next_json().await;
        if message == json!({ "ready": true }) {
            return (ws, heard);
        }
        heard.push(message);
    }
}

/// Sends a chat message until the rate limiter lets it through (its cooldown
/// is reset by a `setTimeout` that no event awaits); returns the broadcast.
async fn say(ws: &mut WsClient, text: &str) -> Value {
    let limited = json!({ "error": "Your IP is being rate-limited, please try again later." });
    for _ in 0..1000 {
        ws.send(&json!({ "message": text }).to_string()).await;
        let reply = ws.next_json().await;
        if reply != limited {
            return reply;
        }
    }
    panic!("still rate-limited: the limiter's setTimeout never fired");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_workers_chat_demo_serves_its_page_rooms_and_chat() {
    let (_project, host) = serve("workers-chat-demo").await;
    // The page: an .html module under the project's own rule (Data: an ArrayBuffer).
    let page = host.get("/").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["content-type"], "text/html;charset=UTF-8");
    assert!(page.body.contains("<form id=\"chatroom\""), "{}", page.body);
    // A private room: newUniqueId, 64 hex characters.
    let private = host.post("/api/room", "").await;
    assert_eq!(private.status, 200);
    assert!(private.body.len() == 64 && private.body.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(host.get("/api/room").await.status, 405);
    assert_eq!(
        host.get(&format!("/api/room/{}", "n".repeat(33)))
            .await
            .status,
        404
    );

    let (mut ann, heard) = join(&host, "lobby", "ann").await;
    assert_eq!(heard, [json!({ "joined": "ann" })]);
    let (mut bo, heard) = join(&host, "lobby", "bo").await;
    assert_eq!(
        heard,
        [json!({ "joined": "ann" }), json!({ "joined": "bo" })]
    );
    assert_eq!(ann.next_json().await, json!({ "joined": "bo" }));

    // Every message after the first gets through once the cooldown timer fired.
    for text in ["hi", "again"] {
        let said = say(&mut ann, text).await;
        assert_eq!(
            (&said["name"], &said["message"]),
            (&json!("ann"), &json!(text))
        );
        assert_eq!(bo.next_json().await, said);
    }
    // A newcomer gets the backlog from storage (list, reverse, limit), oldest first.
    let (_cy, heard) = join(&host, "lobby", "cy").await;
    let messages: Vec<&Value> = heard.iter().filter_map(|m| m.get("message")).collect();
    assert_eq!(messages, [&json!("hi"), &json!("again")]);
    assert_eq!(
        heard[..2],
        [json!({ "joined": "ann" }), json!({ "joined": "bo" })]
    );
    assert_eq!(heard.last(), Some(&json!({ "joined": "cy" })));
    assert_eq!(bo.next_json().await, json!({ "joined": "cy" }));
    // Leaving is announced to the others.
    ann.close(1000, "bye").await;
    assert_eq!(bo.next_json().await, json!({ "quit": "ann" }));
    // Close codes Cloudflare allows, 1009 among them (another room: the
    // refused name would be announced as quitting).
    let mut long = host.ws("/api/room/other/websocket").await;
    long.send(&json!({ "name": "x".repeat(33) }).to_string())
        .await;
    assert_eq!(long.next_json().await, json!({ "error": "Name too long." }));
    assert_eq!(long.closed().await, (1009, "Name too long.".to_string()));
}
