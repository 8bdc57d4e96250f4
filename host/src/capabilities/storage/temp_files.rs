//! Temporary files of guest queries (large sorts, spilled statement
//! journals, transient tables) in a bounded place: `<data_dir>/_dohost/tmp`,
//! at most `limits.max_temp_bytes` for all objects together. A query that
//! needs more fails with "disk full" instead of filling the disk outside the
//! data dir's quotas.
//!
//! A [`Layer`] below every object database: SQLite opens temporary files
//! without a name (the layer sees an empty path), so those are the ones
//! counted. Nothing else is intercepted.

use super::vfs_layer::{self, File, Layer};
use rusqlite::ffi;
use std::ffi::c_int;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Bytes of all open temporary files.
static USED: AtomicU64 = AtomicU64::new(0);
static CAP: OnceLock<u64> = OnceLock::new();

struct TempCap;

impl Layer for TempCap {
    fn write(&self, file: &File<'_>, data: &[u8], offset: i64) -> Option<c_int> {
        if !file.path.is_empty() {
            return None;
        }
        let end = offset.max(0) as u64 + data.len() as u64;
        let size = file.size().max(0) as u64;
        let growth = end.saturating_sub(size);
        if growth == 0 {
            return None;
        }
        let cap = *CAP.get()?;
        let used = USED.fetch_add(growth, Ordering::SeqCst) + growth;
        if used > cap {
            USED.fetch_sub(growth, Ordering::SeqCst);
            tracing::warn!(
                "temporary files of guest queries reached {cap} bytes (limits.max_temp_bytes)"
            );
            return Some(ffi::SQLITE_FULL);
        }
        None
    }

    fn truncate(&self, file: &File<'_>, size: i64) -> Option<c_int> {
        if file.path.is_empty() {
            let shrink = (file.size().max(0) as u64).saturating_sub(size.max(0) as u64);
            USED.fetch_sub(shrink.min(USED.load(Ordering::SeqCst)), Ordering::SeqCst);
        }
        None
    }

    fn closing(&self, file: &File<'_>) {
        if file.path.is_empty() {
            let size = file.size().max(0) as u64;
            USED.fetch_sub(size.min(USED.load(Ordering::SeqCst)), Ordering::SeqCst);
        }
    }
}

/// Bytes held by temporary files right now.
pub fn used() -> u64 {
    USED.load(Ordering::SeqCst)
}

/// Puts SQLite's temporary files under `data_dir/_dohost/tmp` (emptied of
/// what a previous run left) and caps them at `cap` bytes. Idempotent; call
/// before opening any database.
pub fn install(data_dir: &Path, cap: u64) -> std::io::Result<()> {
    if CAP.get().is_some() {
        return Ok(());
    }
    let dir = data_dir.join("_dohost").join("tmp");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    let conn = rusqlite::Connection::open_in_memory().map_err(std::io::Error::other)?;
    let quoted = dir.display().to_string().replace('\'', "''");
    conn.execute_batch(&format!("PRAGMA temp_store_directory = '{quoted}'"))
        .map_err(std::io::Error::other)?;
    if CAP.set(cap).is_err() {
        return Ok(());
    }
    vfs_layer::register(c"dohost-temp-cap", &TempCap)
}
