//! The client side of the CLI: `dohost call` against a running server.

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Parses one command-line argument: JSON if it is valid JSON, else a string.
pub fn parse_arg(arg: &str) -> Value {
    serde_json::from_str(arg).unwrap_or_else(|_| Value::String(arg.to_string()))
}

/// Percent-encodes a path segment.
fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GETs `url` + `path`; returns (status, body).
pub async fn get(url: &str, path: &str) -> anyhow::Result<(u16, String)> {
    request(hyper::Method::GET, url, path, String::new()).await
}

/// POSTs `body` to `url` + `path`; returns (status, body).
pub async fn post(url: &str, path: &str, body: String) -> anyhow::Result<(u16, String)> {
    request(hyper::Method::POST, url, path, body).await
}

async fn request(
    method: hyper::Method,
    url: &str,
    path: &str,
    body: String,
) -> anyhow::Result<(u16, String)> {
    let uri: hyper::Uri = format!("{}{path}", url.trim_end_matches('/'))
        .parse()
        .context("invalid --url")?;
    let host = uri.host().ok_or_else(|| anyhow!("--url has no host"))?;
    if uri.scheme_str() != Some("http") {
        bail!("--url must be http://host:port");
    }
    let addr = format!("{host}:{}", uri.port_u16().unwrap_or(80));
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .with_context(|| format!("cannot connect to {addr} (is `dohost serve` running?)"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header("host", &addr)
        .header("content-type", "application/json");
    // The admin surface's token, for a host that requires one (and only
    // there: an object or the entry must never see it), read as `serve`
    // reads it.
    let token = path
        .starts_with("/_dohost/")
        .then(super::admin_token)
        .flatten();
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let req = req.body(Full::new(Bytes::from(body)))?;
    let res = sender.send_request(req).await?;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// `dohost alarms`: prints one line per scheduled alarm.
pub async fn alarms(url: &str) -> anyhow::Result<()> {
    let (status, body) = get(url, "/_dohost/alarms").await?;
    if status != 200 {
        bail!("{status}: {body}");
    }
    let list: Vec<Value> =
        serde_json::from_str(&body).context("the server's answer is not a JSON list")?;
    println!("{:<25} {:<16} {:<64} NAME", "AT (UTC)", "CLASS", "ID");
    for a in list {
        let at = a["at"].as_i64().unwrap_or(0);
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_millis(at.max(0) as u64);
        println!(
            "{:<25} {:<16} {:<64} {}",
            humantime::format_rfc3339_millis(when).to_string(),
            a["class"].as_str().unwrap_or(""),
            a["id"].as_str().unwrap_or(""),
            a["name"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// `dohost call`: prints the JSON result, or fails with the server's error.
pub async fn call(
    url: &str,
    class: &str,
    name: &str,
    by_id: bool,
    method: &str,
    args: &[String],
) -> anyhow::Result<()> {
    let args = Value::Array(args.iter().map(|a| parse_arg(a)).collect());
    let object = if by_id {
        format!("id/{}", encode_segment(name))
    } else {
        encode_segment(name)
    };
    let path = format!(
        "/rpc/{}/{object}/{}",
        encode_segment(class),
        encode_segment(method)
    );
    let (status, body) = post(url, &path, args.to_string()).await?;
    if status == 200 {
        println!("{body}");
        return Ok(());
    }
    let message = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.get("error").cloned())
        .map(|e| match e {
            Value::String(s) => s,
            other => other.to_string(),
        })
        .unwrap_or(body);
    bail!("{status}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_json_or_else_strings() {
        assert_eq!(parse_arg("3"), Value::from(3));
        assert_eq!(parse_arg("[1,2]"), serde_json::json!([1, 2]));
        assert_eq!(parse_arg("\"quoted\""), Value::from("quoted"));
        assert_eq!(parse_arg("alice"), Value::from("alice"));
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
    }
}
