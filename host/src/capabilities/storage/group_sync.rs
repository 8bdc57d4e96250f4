//! Group sync across objects: a SQLite VFS below every object database whose
//! `xSync` joins one `syncfs(2)` with every other sync waiting at that moment.
//!
//! Each object's commit needs its WAL on stable storage before its reply goes
//! out; with one fsync per commit, many objects committing at once queue one
//! device flush each. Linux's `syncfs` gives the same guarantee as an fsync of
//! every file of the filesystem ("syncfs() ... provide[s] the same guarantees
//! as fsync() called on every file", man 2 sync), so one flush can cover every
//! commit that is waiting when it starts. A caller waits for a flush that
//! *started after* it arrived; the first waiter with no flush running leads.
//!
//! Everything else is forwarded to the default VFS unchanged (see
//! [`vfs_layer`]). The data dir must be on one filesystem (it is the `syncfs`
//! target).

use super::vfs_layer::{self, File, Layer};
use rusqlite::ffi;
use std::ffi::c_int;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

/// The group-sync state: tickets handed to arriving syncs, and the highest
/// ticket a completed flush covers.
#[derive(Default)]
struct Flushes {
    next_ticket: u64,
    done: u64,
    running: bool,
}

struct Group {
    fd: std::fs::File,
    state: Mutex<Flushes>,
    finished: Condvar,
}

static GROUP: OnceLock<Group> = OnceLock::new();
/// Flushes started, and the number of the last one that completed (flushes
/// never overlap). A write is durable once a flush that started after it has
/// completed: the failpoint VFS (tests) judges what a power cut keeps by these.
static FLUSHES_STARTED: AtomicU64 = AtomicU64::new(0);
static FLUSHES_DONE: AtomicU64 = AtomicU64::new(0);

/// Flushes started so far.
pub fn flushes_started() -> u64 {
    FLUSHES_STARTED.load(Ordering::SeqCst)
}

/// The number of the last flush that completed.
pub fn flushes_done() -> u64 {
    FLUSHES_DONE.load(Ordering::SeqCst)
}

/// One real flush of the data dir's filesystem, counted.
fn flush_filesystem(fd: &std::fs::File) -> std::io::Result<()> {
    let n = FLUSHES_STARTED.fetch_add(1, Ordering::SeqCst) + 1;
    // SAFETY: a valid open descriptor of the data dir.
    if unsafe { libc::syncfs(fd.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    FLUSHES_DONE.store(n, Ordering::SeqCst);
    Ok(())
}

/// The VFS layer: every sync joins the group flush instead of an fsync.
struct GroupSync;

impl Layer for GroupSync {
    fn sync(&self, file: &File<'_>, _flags: c_int) -> Option<c_int> {
        if is_fresh_wal_header(file) {
            return Some(ffi::SQLITE_OK);
        }
        Some(group_sync())
    }
}

/// True for the sync SQLite issues after writing the header of a WAL that
/// holds nothing else (a new object's first commit, or a WAL emptied by a
/// checkpoint): the file has no frames, old or new, that an unsynced header
/// could make valid or invalid. The header exists only to validate frames,
/// and the commit's own sync follows the frames and makes the header durable
/// with them. Skipping it saves one flush on every new object's first write.
/// (A restarted WAL that still holds old frames is longer than its header,
/// so its header sync is kept.)
pub fn is_fresh_wal_header(file: &File<'_>) -> bool {
    const WAL_HEADER_BYTES: i64 = 32;
    file.path.ends_with("-wal") && file.size() <= WAL_HEADER_BYTES
}

/// Stops the process after a failed sync (fail-stop, as PostgreSQL does):
/// Linux may have dropped the pages that did not reach the disk, and the
/// error is reported once, so a later sync could "succeed" over the hole.
/// Nothing may be acknowledged from here on; a restart recovers from what
/// is on disk.
pub fn fail_stop(reason: &str) -> ! {
    tracing::error!(
        "fail-stop: {reason}; stopping so that nothing is acknowledged that may not be durable"
    );
    eprintln!("dohost: fail-stop: {reason}");
    std::process::abort()
}

/// Waits until a `syncfs` that started after this call has completed.
fn group_sync() -> c_int {
    let Some(group) = GROUP.get() else {
        return ffi::SQLITE_IOERR_FSYNC;
    };
    let mut s = group.state.lock().unwrap_or_else(|p| p.into_inner());
    s.next_ticket += 1;
    let ticket = s.next_ticket;
    loop {
        if s.done >= ticket {
            return ffi::SQLITE_OK;
        }
        if !s.running {
            // Lead a flush covering every ticket issued so far.
            s.running = true;
            let covers = s.next_ticket;
            drop(s);
            if let Err(e) = flush_filesystem(&group.fd) {
                fail_stop(&format!("syncfs of the data dir failed: {e}"));
            }
            s = group.state.lock().unwrap_or_else(|p| p.into_inner());
            s.running = false;
            s.done = covers;
            group.finished.notify_all();
            continue;
        }
        s = group.finished.wait(s).unwrap_or_else(|p| p.into_inner());
    }
}

/// Joins a group flush now (for files written outside SQLite). False if the
/// group-sync VFS is not installed or the flush failed.
pub fn flush() -> bool {
    GROUP.get().is_some() && group_sync() == ffi::SQLITE_OK
}

/// Registers the group-sync VFS as the default, syncing the filesystem of
/// `data_dir`. Idempotent; call before opening any database.
pub fn install(data_dir: &Path) -> std::io::Result<()> {
    if GROUP.get().is_some() {
        return Ok(());
    }
    std::fs::create_dir_all(data_dir)?;
    let fd = std::fs::File::open(data_dir)?;
    if GROUP
        .set(Group {
            fd,
            state: Mutex::new(Flushes::default()),
            finished: Condvar::new(),
        })
        .is_err()
    {
        return Ok(()); // another thread installed it first
    }
    vfs_layer::register(c"dohost-group-sync", &GroupSync)
}
