//! Static assets (`[assets] directory = "public"`), as wrangler's `assets`:
//! GET and HEAD of a file under the directory are answered by the host,
//! before the entry (which gets every other request), with a content type
//! from the extension, a strong ETag (size and modification time) and
//! `Last-Modified`, 304 for a matching `If-None-Match`, one byte range
//! (206, or 416 when it cannot be satisfied), and `index.html` for a
//! directory. The entry reaches the same files through its `ASSETS`
//! binding (`env.ASSETS.fetch(request)`), served without the network.
//!
//! A path never leaves the directory: `..`, backslashes and NUL are refused,
//! and a file reached through a symlink must still lie inside it.

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, StatusCode};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// The largest file served (as Cloudflare's per-asset limit).
pub const MAX_ASSET_BYTES: u64 = 25 * 1024 * 1024;

/// The host name under which an entry's `ASSETS` binding fetches.
pub const ASSETS_HOST: &str = "assets.dohost.internal";

/// The asset directory, resolved once.
#[derive(Debug)]
pub struct Assets {
    root: PathBuf,
}

impl Assets {
    pub fn open(dir: &Path) -> std::io::Result<Assets> {
        Ok(Assets {
            root: dir.canonicalize()?,
        })
    }

    /// The answer to `method path` if a file matches, else `None` (the
    /// request goes on to the entry, or gets the host's 404). The file is
    /// read on this worker (`blocking`), as object storage is.
    pub async fn serve(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<hyper::Response<Bytes>> {
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        crate::blocking::blocking(|| self.answer(method, path, headers))
    }

    fn answer(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<hyper::Response<Bytes>> {
        let file = self.resolve(path)?;
        let meta = std::fs::metadata(&file).ok()?;
        if meta.len() > MAX_ASSET_BYTES {
            return Some(plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("asset {path} is larger than {MAX_ASSET_BYTES} bytes"),
            ));
        }
        let modified = meta.modified().unwrap_or(UNIX_EPOCH);
        let nanos = modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let etag = format!("\"{:x}-{nanos:x}\"", meta.len());
        let mut res = hyper::Response::new(Bytes::new());
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(&file)),
        );
        h.insert(
            header::ETAG,
            HeaderValue::from_str(&etag).expect("hex is a header value"),
        );
        let date = httpdate::fmt_http_date(modified);
        h.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_str(&date).expect("a date"),
        );
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=0, must-revalidate"),
        );
        if matches_etag(headers, &etag) {
            *res.status_mut() = StatusCode::NOT_MODIFIED;
            return Some(res);
        }
        let body = Bytes::from(std::fs::read(&file).ok()?);
        let len = body.len() as u64;
        let body = match requested_range(headers, len) {
            Range::Whole => body,
            Range::Part(start, end) => {
                *res.status_mut() = StatusCode::PARTIAL_CONTENT;
                let range = format!("bytes {start}-{end}/{len}");
                res.headers_mut().insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&range).expect("digits"),
                );
                body.slice(start as usize..=end as usize)
            }
            Range::Unsatisfiable => {
                let mut res = plain(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    format!("the range is outside the {len} bytes of {path}"),
                );
                let range = format!("bytes */{len}");
                res.headers_mut().insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&range).expect("digits"),
                );
                return Some(res);
            }
        };
        res.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        if method == Method::GET {
            *res.body_mut() = body;
        }
        Some(res)
    }

    /// The answer to a request of the `ASSETS` binding: the file, or 404
    /// (405 for a method other than GET and HEAD).
    pub async fn fetch(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> hyper::Response<Bytes> {
        if method != Method::GET && method != Method::HEAD {
            return plain(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("assets answer GET and HEAD, not {method}"),
            );
        }
        match self.serve(method, path, headers).await {
            Some(res) => res,
            None => plain(StatusCode::NOT_FOUND, format!("no asset {path}")),
        }
    }

    /// The file `path` names under the root (`index.html` for a directory),
    /// if it exists and lies inside the root.
    fn resolve(&self, path: &str) -> Option<PathBuf> {
        let decoded = percent_decode(path)?;
        let mut file = self.root.clone();
        for segment in decoded.split('/').filter(|s| !s.is_empty()) {
            if segment == "." || segment == ".." || segment.contains(['\\', '\0']) {
                return None;
            }
            file.push(segment);
        }
        if std::fs::metadata(&file).ok()?.is_dir() {
            file.push("index.html");
        }
        let real = std::fs::canonicalize(&file).ok()?;
        let inside = real.starts_with(&self.root);
        (inside && std::fs::metadata(&real).ok()?.is_file()).then_some(real)
    }
}

fn plain(status: StatusCode, message: String) -> hyper::Response<Bytes> {
    let mut res = hyper::Response::new(Bytes::from(message));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// `%XX` decoded; `None` for a broken escape or bytes that are not UTF-8.
fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

#[derive(Debug, PartialEq)]
enum Range {
    Whole,
    /// First and last byte, inclusive.
    Part(u64, u64),
    Unsatisfiable,
}

/// The one `bytes=` range asked for; several ranges, or a header that is
/// not a byte range, get the whole file (as RFC 9110 allows).
fn requested_range(headers: &HeaderMap, len: u64) -> Range {
    let Some(spec) = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Range::Whole;
    };
    if spec.contains(',') {
        return Range::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Range::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = match (first.parse::<u64>(), last.parse::<u64>()) {
        // `-n`: the last n bytes.
        (Err(_), Ok(n)) if first.is_empty() && n > 0 => {
            Some((len.saturating_sub(n), len.checked_sub(1)))
        }
        (Ok(a), Err(_)) if last.is_empty() => Some((a, len.checked_sub(1))),
        (Ok(a), Ok(b)) if a <= b => Some((a, Some(b.min(len.saturating_sub(1))))),
        _ => None,
    };
    match parsed {
        None => Range::Whole,
        Some((a, Some(b))) if a < len && a <= b => Range::Part(a, b),
        Some(_) => Range::Unsatisfiable,
    }
}

/// The content type of a file, by its extension.
fn content_type(file: &Path) -> &'static str {
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("md") => "text/markdown; charset=utf-8",
        Some("csv") => "text/csv; charset=utf-8",
        Some("xml") => "application/xml",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("avif") => "image/avif",
        Some("ico") => "image/x-icon",
        Some("woff") => "font/woff",
        Some("woff2") => "font/woff2",
        Some("ttf") => "font/ttf",
        Some("otf") => "font/otf",
        Some("wasm") => "application/wasm",
        Some("pdf") => "application/pdf",
        Some("mp4") => "video/mp4",
        Some("webm") => "video/webm",
        Some("mp3") => "audio/mpeg",
        Some("wav") => "audio/wav",
        Some("webmanifest") => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str, len: u64) -> Range {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_str(value).unwrap());
        requested_range(&headers, len)
    }

    #[test]
    fn byte_ranges_at_and_past_the_end() {
        assert_eq!(range("bytes=0-3", 10), Range::Part(0, 3));
        assert_eq!(range("bytes=9-", 10), Range::Part(9, 9));
        assert_eq!(range("bytes=-4", 10), Range::Part(6, 9));
        assert_eq!(range("bytes=5-100", 10), Range::Part(5, 9));
        assert_eq!(range("bytes=10-", 10), Range::Unsatisfiable);
        assert_eq!(range("bytes=10-12", 10), Range::Unsatisfiable);
        assert_eq!(range("bytes=0-", 0), Range::Unsatisfiable);
        assert_eq!(range("bytes=3-1", 10), Range::Whole);
        assert_eq!(range("bytes=0-1,4-5", 10), Range::Whole);
        assert_eq!(range("items=0-1", 10), Range::Whole);
    }

    #[test]
    fn escapes_are_decoded_and_broken_ones_refused() {
        assert_eq!(percent_decode("/a%20b.txt").as_deref(), Some("/a b.txt"));
        assert_eq!(percent_decode("/%2e%2e/x").as_deref(), Some("/../x"));
        assert_eq!(percent_decode("/%zz"), None);
        assert_eq!(percent_decode("/%ff"), None);
    }

    #[test]
    fn paths_never_leave_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let public = dir.path().join("public");
        std::fs::create_dir_all(public.join("docs")).unwrap();
        std::fs::write(public.join("index.html"), "home").unwrap();
        std::fs::write(public.join("docs/index.html"), "docs").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "no").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), public.join("link.txt")).unwrap();
        let assets = Assets::open(&public).unwrap();
        assert!(assets.resolve("/").unwrap().ends_with("public/index.html"));
        assert!(assets
            .resolve("/docs")
            .unwrap()
            .ends_with("docs/index.html"));
        for bad in [
            "/../secret.txt",
            "/%2e%2e/secret.txt",
            "/link.txt",
            "/docs/..%2f..%2fsecret.txt",
            "/nope",
        ] {
            assert_eq!(assets.resolve(bad), None, "{bad}");
        }
    }
}
