//! Guest stdout/stderr: forwarded line by line to the host log, and the tail of
//! the current event kept so a trap can be explained ("panicked at …").

use crate::config::limits::GUEST_LOG_TAIL_BYTES;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

#[derive(Default)]
struct LogBuffer {
    /// Bytes of the current line not yet forwarded.
    line: Vec<u8>,
    /// The last bytes written during the current event.
    tail: Vec<u8>,
}

/// The output of one instance; cheap to clone.
#[derive(Clone)]
pub struct GuestLog {
    buffer: Arc<Mutex<LogBuffer>>,
    label: Arc<str>,
}

impl GuestLog {
    /// A log whose lines are tagged with `label` (class/id).
    pub fn new(label: String) -> Self {
        GuestLog {
            buffer: Arc::default(),
            label: label.into(),
        }
    }

    /// Forgets the previous event's output.
    pub fn start_event(&self) {
        if let Ok(mut b) = self.buffer.lock() {
            b.tail.clear();
        }
    }

    /// What the guest wrote during the current event, trimmed of Rust's
    /// backtrace hint.
    pub fn tail(&self) -> String {
        let Ok(b) = self.buffer.lock() else {
            return String::new();
        };
        let text = String::from_utf8_lossy(&b.tail);
        text.lines()
            .filter(|l| !l.starts_with("note: run with `RUST_BACKTRACE=1`"))
            .collect::<Vec<_>>()
            .join("\n")
            .trim()
            .to_string()
    }

    fn write(&self, data: &[u8]) {
        let Ok(mut b) = self.buffer.lock() else {
            return;
        };
        b.tail.extend_from_slice(data);
        if b.tail.len() > GUEST_LOG_TAIL_BYTES {
            let cut = b.tail.len() - GUEST_LOG_TAIL_BYTES;
            b.tail.drain(..cut);
        }
        b.line.extend_from_slice(data);
        while let Some(pos) = b.line.iter().position(|&c| c == b'\n') {
            let line: Vec<u8> = b.line.drain(..=pos).collect();
            tracing::info!(target: "guest", object = %self.label, "{}", String::from_utf8_lossy(&line).trim_end());
        }
        if b.line.len() > GUEST_LOG_TAIL_BYTES {
            let line = std::mem::take(&mut b.line);
            tracing::info!(target: "guest", object = %self.label, "{}", String::from_utf8_lossy(&line));
        }
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for GuestLog {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
