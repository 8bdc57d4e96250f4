//! A test-only SQLite VFS below every database of the process: it can simulate
//! a power cut (unsynced writes are lost, or torn) at the Nth write or sync,
//! and return I/O errors (write, fsync, disk full) at the Nth call.
//!
//! It is a [`Layer`] over the default VFS. Every write remembers the bytes it overwrote until
//! the file's next successful sync; a simulated power cut writes those bytes
//! back (all of them, or every other one for a torn write), truncates files to
//! their last synced size, and aborts the process.
//!
//! `DOHOST_POWERLOSS=sync:N[:torn]` or `write:N[:torn]`;
//! `DOHOST_IOERROR=write:N`, `sync:N` or `full:N` (the Nth write reports a full disk).

use crate::capabilities::storage::vfs_layer::{File, Layer};
use rusqlite::ffi;
use std::collections::HashMap;
use std::ffi::c_int;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Write,
    Sync,
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    PowerLoss { at: Call, n: u64, torn: bool },
    IoError { at: Call, n: u64, full: bool },
}

/// A write (or truncation) no real flush has covered yet.
struct Change {
    offset: u64,
    /// The bytes it overwrote (empty for an append).
    old: Vec<u8>,
    /// The file's size before it.
    size_before: u64,
    /// Flushes started before it: it is durable once a later one completed.
    flushes_started: u64,
}

#[derive(Default)]
struct FileUndo {
    /// The uncovered changes, in order.
    undo: Vec<Change>,
}

static MODE: OnceLock<Mode> = OnceLock::new();
static WRITES: AtomicU64 = AtomicU64::new(0);
static SYNCS: AtomicU64 = AtomicU64::new(0);
static UNDO: Mutex<Option<HashMap<String, FileUndo>>> = Mutex::new(None);

fn parse(spec: &str, power: bool) -> Option<Mode> {
    let mut parts = spec.split(':');
    let kind = parts.next()?;
    let n: u64 = parts.next()?.parse().ok()?;
    let flag = parts.next();
    Some(match (power, kind) {
        (true, "sync") => Mode::PowerLoss {
            at: Call::Sync,
            n,
            torn: flag == Some("torn"),
        },
        (true, "write") => Mode::PowerLoss {
            at: Call::Write,
            n,
            torn: flag == Some("torn"),
        },
        (false, "write") => Mode::IoError {
            at: Call::Write,
            n,
            full: false,
        },
        (false, "full") => Mode::IoError {
            at: Call::Write,
            n,
            full: true,
        },
        (false, "sync") => Mode::IoError {
            at: Call::Sync,
            n,
            full: false,
        },
        _ => return None,
    })
}

/// Registers the shim as the default VFS if `DOHOST_POWERLOSS` or
/// `DOHOST_IOERROR` is set.
pub fn install_from_env() {
    let mode = std::env::var("DOHOST_POWERLOSS")
        .ok()
        .and_then(|s| parse(&s, true))
        .or_else(|| {
            std::env::var("DOHOST_IOERROR")
                .ok()
                .and_then(|s| parse(&s, false))
        });
    let Some(mode) = mode else {
        return;
    };
    let _ = MODE.set(mode);
    *UNDO.lock().unwrap() = Some(HashMap::new());
    crate::capabilities::storage::vfs_layer::register(c"dohost-failpoints", &Failpoints)
        .expect("registering the failpoint VFS");
    eprintln!("failpoint VFS installed: {mode:?}");
}

/// Reverts every unsynced write (or every other one, torn) and aborts.
fn power_cut(torn: bool) -> ! {
    let files = UNDO
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .unwrap_or_default();
    // What a completed flush that started after a change covered is on
    // disk; nothing else is. (The group-sync layer below answers syncs; only
    // its real flushes count, so a layer that stopped flushing fails here.)
    // Changes are in time order and flushes only complete forward, so the
    // volatile ones are a suffix.
    let done = crate::capabilities::storage::group_sync::flushes_done();
    for (path, fu) in files {
        let Ok(f) = std::fs::OpenOptions::new().write(true).open(&path) else {
            continue;
        };
        let volatile: Vec<&Change> = fu
            .undo
            .iter()
            .filter(|c| c.flushes_started >= done)
            .collect();
        for (i, c) in volatile.iter().enumerate().rev() {
            if torn && i % 2 == 1 {
                continue; // this one made it to the platter
            }
            let _ = f.write_all_at(&c.old, c.offset);
        }
        if let (false, Some(first)) = (torn, volatile.first()) {
            let _ = f.set_len(first.size_before);
        }
    }
    eprintln!("failpoint VFS: simulated power loss");
    std::process::abort()
}

/// Calls are counted (and faults injected) on object databases only, not on
/// the host's own files under `_dohost/`, so that start-up is not a target.
fn counted(file: &File<'_>) -> bool {
    !file.path.contains("/_dohost/")
}

/// Remembers the bytes at `offset..offset + len` of `file` (those that exist)
/// and its size, so that a power cut can put them back.
fn remember(file: &File<'_>, offset: i64, len: i64) {
    let size = file.size().max(0);
    let old = if offset < size {
        file.read(offset, len.min(size - offset) as usize)
    } else {
        Vec::new()
    };
    let change = Change {
        offset: offset.max(0) as u64,
        old,
        size_before: size as u64,
        flushes_started: crate::capabilities::storage::group_sync::flushes_started(),
    };
    if let Some(files) = UNDO.lock().unwrap().as_mut() {
        files
            .entry(file.path.to_string())
            .or_default()
            .undo
            .push(change);
    }
}

struct Failpoints;

impl Layer for Failpoints {
    fn opened(&self, file: &File<'_>) {
        if let Some(files) = UNDO.lock().unwrap().as_mut() {
            files.entry(file.path.to_string()).or_default();
        }
    }

    fn write(&self, file: &File<'_>, data: &[u8], offset: i64) -> Option<c_int> {
        let n = if counted(file) {
            WRITES.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            0
        };
        match MODE.get() {
            Some(Mode::PowerLoss {
                at: Call::Write,
                n: at,
                torn,
            }) if n == *at => power_cut(*torn),
            Some(Mode::IoError {
                at: Call::Write,
                n: at,
                full,
            }) if n == *at => {
                eprintln!("failpoint VFS: write {n} fails ({})", file.path);
                return Some(if *full {
                    ffi::SQLITE_FULL
                } else {
                    ffi::SQLITE_IOERR_WRITE
                });
            }
            _ => {}
        }
        remember(file, offset, data.len() as i64);
        None
    }

    fn truncate(&self, file: &File<'_>, size: i64) -> Option<c_int> {
        let old_size = file.size();
        if size < old_size {
            remember(file, size, old_size - size);
        }
        None
    }

    fn sync(&self, file: &File<'_>, _flags: c_int) -> Option<c_int> {
        let n = if counted(file) {
            SYNCS.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            0
        };
        match MODE.get() {
            Some(Mode::PowerLoss {
                at: Call::Sync,
                n: at,
                torn,
            }) if n == *at => power_cut(*torn),
            Some(Mode::IoError {
                at: Call::Sync,
                n: at,
                ..
            }) if n == *at => {
                eprintln!("failpoint VFS: sync {n} fails ({})", file.path);
                Some(ffi::SQLITE_IOERR_FSYNC)
            }
            _ => None,
        }
    }

    fn synced(&self, file: &File<'_>) {
        // Forget the changes a real flush has covered (the layer below may
        // have answered without flushing: a fresh WAL header).
        let done = crate::capabilities::storage::group_sync::flushes_done();
        if let Some(files) = UNDO.lock().unwrap().as_mut() {
            let fu = files.entry(file.path.to_string()).or_default();
            fu.undo.retain(|c| c.flushes_started >= done);
        }
    }
}
