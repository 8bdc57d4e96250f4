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
//! Everything else is forwarded to the default VFS unchanged. The data dir must
//! be on one filesystem (it is the `syncfs` target).

use rusqlite::ffi;
use std::ffi::{c_char, c_int, c_void};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Condvar, Mutex, OnceLock};

/// The group-sync state: tickets handed to arriving syncs, and the highest
/// ticket a completed flush covers.
#[derive(Default)]
struct Flushes {
    next_ticket: u64,
    done: u64,
    running: bool,
    /// Error of the last flush (errno), reported to the syncs it covered.
    last_error: Option<(u64, i32)>,
}

struct Group {
    fd: std::fs::File,
    state: Mutex<Flushes>,
    finished: Condvar,
}

static GROUP: OnceLock<Group> = OnceLock::new();
static REAL_VFS: OnceLock<usize> = OnceLock::new();
static mut VFS: Option<ffi::sqlite3_vfs> = None;
static mut METHODS: Option<ffi::sqlite3_io_methods> = None;

#[repr(C)]
struct GroupFile {
    base: ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
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
            return match s.last_error {
                Some((covered, _)) if covered >= ticket => ffi::SQLITE_IOERR_FSYNC,
                _ => ffi::SQLITE_OK,
            };
        }
        if !s.running {
            // Lead a flush covering every ticket issued so far.
            s.running = true;
            let covers = s.next_ticket;
            drop(s);
            // SAFETY: a valid open descriptor of the data dir.
            let rc = unsafe { libc::syncfs(group.fd.as_raw_fd()) };
            let errno = if rc == 0 {
                0
            } else {
                std::io::Error::last_os_error().raw_os_error().unwrap_or(5)
            };
            s = group.state.lock().unwrap_or_else(|p| p.into_inner());
            s.running = false;
            s.done = covers;
            if errno != 0 {
                s.last_error = Some((covers, errno));
            }
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
    let _ = GROUP.set(Group {
        fd,
        state: Mutex::new(Flushes::default()),
        finished: Condvar::new(),
    });
    // SAFETY: runs once before any connection exists; the statics live for
    // the whole process.
    unsafe {
        let real = ffi::sqlite3_vfs_find(std::ptr::null());
        if real.is_null() {
            return Err(std::io::Error::other("no default SQLite VFS"));
        }
        let _ = REAL_VFS.set(real as usize);
        let mut vfs = *real;
        vfs.zName = c"dohost-group-sync".as_ptr();
        vfs.szOsFile = (std::mem::size_of::<GroupFile>() as c_int) + (*real).szOsFile;
        vfs.xOpen = Some(open);
        vfs.pNext = std::ptr::null_mut();
        VFS = Some(vfs);
        #[allow(static_mut_refs)]
        let ptr = VFS.as_mut().expect("just set") as *mut ffi::sqlite3_vfs;
        if ffi::sqlite3_vfs_register(ptr, 1) != ffi::SQLITE_OK {
            return Err(std::io::Error::other(
                "registering the group-sync VFS failed",
            ));
        }
    }
    Ok(())
}

fn real_vfs() -> *mut ffi::sqlite3_vfs {
    *REAL_VFS.get().expect("installed") as *mut ffi::sqlite3_vfs
}

unsafe fn real(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    (*(file as *mut GroupFile)).real
}

unsafe fn methods(file: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    &*(*real(file)).pMethods
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let this = file as *mut GroupFile;
    let real_file =
        (file as *mut u8).add(std::mem::size_of::<GroupFile>()) as *mut ffi::sqlite3_file;
    (*this).real = real_file;
    (*this).base.pMethods = std::ptr::null();
    let rv = (*real_vfs()).xOpen.expect("xOpen")(real_vfs(), name, real_file, flags, out_flags);
    if rv != ffi::SQLITE_OK || (*real_file).pMethods.is_null() {
        return rv;
    }
    #[allow(static_mut_refs)]
    if METHODS.is_none() {
        let mut m = *(*real_file).pMethods;
        m.iVersion = m.iVersion.min(3);
        m.xClose = Some(close);
        m.xRead = Some(read);
        m.xWrite = Some(write);
        m.xTruncate = Some(truncate);
        m.xSync = Some(sync);
        m.xFileSize = Some(file_size);
        m.xLock = Some(lock);
        m.xUnlock = Some(unlock);
        m.xCheckReservedLock = Some(check_reserved);
        m.xFileControl = Some(file_control);
        m.xSectorSize = Some(sector_size);
        m.xDeviceCharacteristics = Some(device_characteristics);
        m.xShmMap = Some(shm_map);
        m.xShmLock = Some(shm_lock);
        m.xShmBarrier = Some(shm_barrier);
        m.xShmUnmap = Some(shm_unmap);
        m.xFetch = Some(fetch);
        m.xUnfetch = Some(unfetch);
        METHODS = Some(m);
    }
    #[allow(static_mut_refs)]
    let m = METHODS.as_ref().expect("just set") as *const ffi::sqlite3_io_methods;
    (*this).base.pMethods = m;
    rv
}

unsafe extern "C" fn sync(_file: *mut ffi::sqlite3_file, _flags: c_int) -> c_int {
    group_sync()
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    (methods(file).xClose.expect("xClose"))(real(file))
}
unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amt: c_int,
    off: ffi::sqlite3_int64,
) -> c_int {
    (methods(file).xRead.expect("xRead"))(real(file), buf, amt, off)
}
unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amt: c_int,
    off: ffi::sqlite3_int64,
) -> c_int {
    (methods(file).xWrite.expect("xWrite"))(real(file), buf, amt, off)
}
unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    (methods(file).xTruncate.expect("xTruncate"))(real(file), size)
}
unsafe extern "C" fn file_size(
    file: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    (methods(file).xFileSize.expect("xFileSize"))(real(file), size)
}
unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, l: c_int) -> c_int {
    (methods(file).xLock.expect("xLock"))(real(file), l)
}
unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, l: c_int) -> c_int {
    (methods(file).xUnlock.expect("xUnlock"))(real(file), l)
}
unsafe extern "C" fn check_reserved(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    (methods(file)
        .xCheckReservedLock
        .expect("xCheckReservedLock"))(real(file), out)
}
unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    (methods(file).xFileControl.expect("xFileControl"))(real(file), op, arg)
}
unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    (methods(file).xSectorSize.expect("xSectorSize"))(real(file))
}
unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    (methods(file)
        .xDeviceCharacteristics
        .expect("xDeviceCharacteristics"))(real(file))
}
unsafe extern "C" fn shm_map(
    file: *mut ffi::sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    (methods(file).xShmMap.expect("xShmMap"))(real(file), region, size, extend, out)
}
unsafe extern "C" fn shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    (methods(file).xShmLock.expect("xShmLock"))(real(file), offset, n, flags)
}
unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    (methods(file).xShmBarrier.expect("xShmBarrier"))(real(file))
}
unsafe extern "C" fn shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    (methods(file).xShmUnmap.expect("xShmUnmap"))(real(file), delete)
}
unsafe extern "C" fn fetch(
    file: *mut ffi::sqlite3_file,
    off: ffi::sqlite3_int64,
    amt: c_int,
    out: *mut *mut c_void,
) -> c_int {
    (methods(file).xFetch.expect("xFetch"))(real(file), off, amt, out)
}
unsafe extern "C" fn unfetch(
    file: *mut ffi::sqlite3_file,
    off: ffi::sqlite3_int64,
    p: *mut c_void,
) -> c_int {
    (methods(file).xUnfetch.expect("xUnfetch"))(real(file), off, p)
}
