//! The entry worker: what the hop through a JavaScript entry costs next to
//! the direct route to the same object, and an outbound fetch's round trip
//! to a loopback server.

use crate::load::run_load;
use crate::{header, row};
use dohost_tests::{guest, polyglot, Launch, TestHost};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub async fn run(duration: Duration) -> anyhow::Result<()> {
    header("Entry worker (32 keep-alive connections; JavaScript entry and class)");
    let upstream = upstream().await?;
    let extra = format!(
        "[entry]\ncomponent = {:?}\nexpose_objects = true\nallow = [\"127.0.0.1:{upstream}\"]\n\
         [bindings]\nJS = \"JsCounter\"\nCOUNTER = \"HelloCounter\"\n",
        polyglot("js_test_entry")
    );
    let host = TestHost::launch_with(Launch {
        classes: vec![
            ("Counter", guest("counter")),
            ("JsCounter", polyglot("js_counter")),
            ("HelloCounter", polyglot("js_hello_counter")),
        ],
        extra,
        ..Launch::default()
    })
    .await;
    let addr = host.url.trim_start_matches("http://").to_string();
    let s = run_load(&addr, 32, duration, |_, _| {
        (
            "POST",
            "/rpc/HelloCounter/global/increment".into(),
            Some("[]"),
        )
    })
    .await;
    row("direct: RPC increment of a JS Counter (1 object)", &s);
    let s = run_load(&addr, 32, duration, |_, _| ("GET", "/".into(), None)).await;
    row("entry → object RPC: GET / → increment (1 object)", &s);
    let s = run_load(&addr, 32, duration, |_, _| ("GET", "/whoami".into(), None)).await;
    row("entry alone (no object call)", &s);
    let path = format!("/egress?url=http://127.0.0.1:{upstream}/x");
    let s = run_load(&addr, 32, duration, move |_, _| ("GET", path.clone(), None)).await;
    row("entry → outbound fetch to a loopback server", &s);
    Ok(())
}

/// A loopback HTTP/1.1 server answering `ok` (keep-alive); returns its port.
async fn upstream() -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if conn.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    Ok(port)
}
