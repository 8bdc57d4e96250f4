//! A test-only SQLite VFS below every database of the process: it can simulate
//! a power cut (unsynced writes are lost, or torn) at the Nth write or sync,
//! and return I/O errors (write, fsync, disk full) at the Nth call.
//!
//! It wraps the default VFS. Every write remembers the bytes it overwrote until
//! the file's next successful sync; a simulated power cut writes those bytes
//! back (all of them, or every other one for a torn write), truncates files to
//! their last synced size, and aborts the process.
//!
//! `DOHOST_POWERLOSS=sync:N[:torn]` or `write:N[:torn]`;
//! `DOHOST_IOERROR=write:N`, `sync:N` or `full:N` (the Nth write reports a full disk).

use rusqlite::ffi;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
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

#[derive(Default)]
struct FileUndo {
    /// Size at the last successful sync.
    synced_size: u64,
    /// (offset, bytes that were there) for every unsynced write, in order.
    undo: Vec<(u64, Vec<u8>)>,
}

static MODE: OnceLock<Mode> = OnceLock::new();
static WRITES: AtomicU64 = AtomicU64::new(0);
static SYNCS: AtomicU64 = AtomicU64::new(0);
static UNDO: Mutex<Option<HashMap<String, FileUndo>>> = Mutex::new(None);
static REAL_VFS: OnceLock<usize> = OnceLock::new();
static mut SHIM_VFS: Option<ffi::sqlite3_vfs> = None;
static mut SHIM_METHODS: Option<ffi::sqlite3_io_methods> = None;

/// Our file: the header SQLite sees, followed by the real VFS's file.
#[repr(C)]
struct ShimFile {
    base: ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
    path: *mut String,
}

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
    // SAFETY: called once at start-up, before any connection exists; the
    // statics live for the whole process.
    unsafe {
        let real = ffi::sqlite3_vfs_find(std::ptr::null());
        assert!(!real.is_null(), "no default SQLite VFS");
        let _ = REAL_VFS.set(real as usize);
        let mut vfs = *real;
        vfs.zName = c"dohost-failpoints".as_ptr();
        vfs.szOsFile = (std::mem::size_of::<ShimFile>() as c_int) + (*real).szOsFile;
        vfs.xOpen = Some(shim_open);
        vfs.pNext = std::ptr::null_mut();
        SHIM_VFS = Some(vfs);
        #[allow(static_mut_refs)]
        let ptr = SHIM_VFS.as_mut().unwrap() as *mut ffi::sqlite3_vfs;
        assert_eq!(ffi::sqlite3_vfs_register(ptr, 1), ffi::SQLITE_OK);
    }
    eprintln!("failpoint VFS installed: {mode:?}");
}

fn real_vfs() -> *mut ffi::sqlite3_vfs {
    *REAL_VFS.get().expect("installed") as *mut ffi::sqlite3_vfs
}

unsafe fn real(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    (*(file as *mut ShimFile)).real
}

unsafe fn path(file: *mut ffi::sqlite3_file) -> &'static str {
    (*(file as *mut ShimFile))
        .path
        .as_ref()
        .map_or("", |s| s.as_str())
}

unsafe fn methods(file: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    &*(*real(file)).pMethods
}

/// Reverts every unsynced write (or every other one, torn) and aborts.
fn power_cut(torn: bool) -> ! {
    let files = UNDO
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .unwrap_or_default();
    for (path, fu) in files {
        let Ok(f) = std::fs::OpenOptions::new().write(true).open(&path) else {
            continue;
        };
        for (i, (offset, old)) in fu.undo.iter().enumerate().rev() {
            if torn && i % 2 == 1 {
                continue; // this one made it to the platter
            }
            let _ = f.write_all_at(old, *offset);
        }
        if !torn {
            let _ = f.set_len(fu.synced_size);
        }
    }
    eprintln!("failpoint VFS: simulated power loss");
    std::process::abort()
}

unsafe extern "C" fn shim_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let shim = file as *mut ShimFile;
    let real_file =
        (file as *mut u8).add(std::mem::size_of::<ShimFile>()) as *mut ffi::sqlite3_file;
    (*shim).real = real_file;
    (*shim).path = std::ptr::null_mut();
    (*shim).base.pMethods = std::ptr::null();
    let rv = (*real_vfs()).xOpen.unwrap()(real_vfs(), name, real_file, flags, out_flags);
    if rv != ffi::SQLITE_OK || (*real_file).pMethods.is_null() {
        return rv;
    }
    let p = if name.is_null() {
        String::new()
    } else {
        CStr::from_ptr(name).to_string_lossy().into_owned()
    };
    let mut size: ffi::sqlite3_int64 = 0;
    ((*(*real_file).pMethods).xFileSize.unwrap())(real_file, &mut size);
    if let Some(files) = UNDO.lock().unwrap().as_mut() {
        files.entry(p.clone()).or_insert_with(|| FileUndo {
            synced_size: size.max(0) as u64,
            undo: Vec::new(),
        });
    }
    (*shim).path = Box::into_raw(Box::new(p));
    #[allow(static_mut_refs)]
    if SHIM_METHODS.is_none() {
        let mut m = *(*real_file).pMethods;
        m.iVersion = m.iVersion.min(3);
        m.xClose = Some(shim_close);
        m.xRead = Some(shim_read);
        m.xWrite = Some(shim_write);
        m.xTruncate = Some(shim_truncate);
        m.xSync = Some(shim_sync);
        m.xFileSize = Some(shim_file_size);
        m.xLock = Some(shim_lock);
        m.xUnlock = Some(shim_unlock);
        m.xCheckReservedLock = Some(shim_check_reserved);
        m.xFileControl = Some(shim_file_control);
        m.xSectorSize = Some(shim_sector_size);
        m.xDeviceCharacteristics = Some(shim_device_characteristics);
        m.xShmMap = Some(shim_shm_map);
        m.xShmLock = Some(shim_shm_lock);
        m.xShmBarrier = Some(shim_shm_barrier);
        m.xShmUnmap = Some(shim_shm_unmap);
        m.xFetch = Some(shim_fetch);
        m.xUnfetch = Some(shim_unfetch);
        SHIM_METHODS = Some(m);
    }
    #[allow(static_mut_refs)]
    let methods_ptr = SHIM_METHODS.as_ref().unwrap() as *const ffi::sqlite3_io_methods;
    (*shim).base.pMethods = methods_ptr;
    rv
}

unsafe extern "C" fn shim_close(file: *mut ffi::sqlite3_file) -> c_int {
    let rv = (methods(file).xClose.unwrap())(real(file));
    let shim = file as *mut ShimFile;
    if !(*shim).path.is_null() {
        drop(Box::from_raw((*shim).path));
        (*shim).path = std::ptr::null_mut();
    }
    rv
}

unsafe extern "C" fn shim_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amt: c_int,
    off: ffi::sqlite3_int64,
) -> c_int {
    (methods(file).xRead.unwrap())(real(file), buf, amt, off)
}

/// Calls are counted (and faults injected) on object databases only, not on
/// the host's own files under `_dohost/`, so that start-up is not a target.
unsafe fn counted(file: *mut ffi::sqlite3_file) -> bool {
    !path(file).contains("/_dohost/")
}

unsafe extern "C" fn shim_write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amt: c_int,
    off: ffi::sqlite3_int64,
) -> c_int {
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
            eprintln!("failpoint VFS: write {n} fails");
            return if *full {
                ffi::SQLITE_FULL
            } else {
                ffi::SQLITE_IOERR_WRITE
            };
        }
        _ => {}
    }
    // Remember what this write overwrites, until the next sync.
    let mut size: ffi::sqlite3_int64 = 0;
    (methods(file).xFileSize.unwrap())(real(file), &mut size);
    if off < size {
        let len = (amt as i64).min(size - off) as usize;
        let mut old = vec![0u8; len];
        (methods(file).xRead.unwrap())(
            real(file),
            old.as_mut_ptr() as *mut c_void,
            len as c_int,
            off,
        );
        if let Some(files) = UNDO.lock().unwrap().as_mut() {
            files
                .entry(path(file).to_string())
                .or_default()
                .undo
                .push((off as u64, old));
        }
    }
    (methods(file).xWrite.unwrap())(real(file), buf, amt, off)
}

unsafe extern "C" fn shim_truncate(
    file: *mut ffi::sqlite3_file,
    size: ffi::sqlite3_int64,
) -> c_int {
    let mut old_size: ffi::sqlite3_int64 = 0;
    (methods(file).xFileSize.unwrap())(real(file), &mut old_size);
    if size < old_size {
        let len = (old_size - size) as usize;
        let mut old = vec![0u8; len];
        (methods(file).xRead.unwrap())(
            real(file),
            old.as_mut_ptr() as *mut c_void,
            len as c_int,
            size,
        );
        if let Some(files) = UNDO.lock().unwrap().as_mut() {
            files
                .entry(path(file).to_string())
                .or_default()
                .undo
                .push((size as u64, old));
        }
    }
    (methods(file).xTruncate.unwrap())(real(file), size)
}

unsafe extern "C" fn shim_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
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
            eprintln!("failpoint VFS: sync {n} fails");
            return ffi::SQLITE_IOERR_FSYNC;
        }
        _ => {}
    }
    let rv = (methods(file).xSync.unwrap())(real(file), flags);
    if rv == ffi::SQLITE_OK {
        let mut size: ffi::sqlite3_int64 = 0;
        (methods(file).xFileSize.unwrap())(real(file), &mut size);
        if let Some(files) = UNDO.lock().unwrap().as_mut() {
            let fu = files.entry(path(file).to_string()).or_default();
            fu.undo.clear();
            fu.synced_size = size.max(0) as u64;
        }
    }
    rv
}

unsafe extern "C" fn shim_file_size(
    file: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    (methods(file).xFileSize.unwrap())(real(file), size)
}

unsafe extern "C" fn shim_lock(file: *mut ffi::sqlite3_file, lock: c_int) -> c_int {
    (methods(file).xLock.unwrap())(real(file), lock)
}

unsafe extern "C" fn shim_unlock(file: *mut ffi::sqlite3_file, lock: c_int) -> c_int {
    (methods(file).xUnlock.unwrap())(real(file), lock)
}

unsafe extern "C" fn shim_check_reserved(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    (methods(file).xCheckReservedLock.unwrap())(real(file), out)
}

unsafe extern "C" fn shim_file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    (methods(file).xFileControl.unwrap())(real(file), op, arg)
}

unsafe extern "C" fn shim_sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    (methods(file).xSectorSize.unwrap())(real(file))
}

unsafe extern "C" fn shim_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    (methods(file).xDeviceCharacteristics.unwrap())(real(file))
}

unsafe extern "C" fn shim_shm_map(
    file: *mut ffi::sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    (methods(file).xShmMap.unwrap())(real(file), region, size, extend, out)
}

unsafe extern "C" fn shim_shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    (methods(file).xShmLock.unwrap())(real(file), offset, n, flags)
}

unsafe extern "C" fn shim_shm_barrier(file: *mut ffi::sqlite3_file) {
    (methods(file).xShmBarrier.unwrap())(real(file))
}

unsafe extern "C" fn shim_shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    (methods(file).xShmUnmap.unwrap())(real(file), delete)
}

unsafe extern "C" fn shim_fetch(
    file: *mut ffi::sqlite3_file,
    off: ffi::sqlite3_int64,
    amt: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // No memory-mapped reads: every read goes through xRead (and sees reverts).
    *out = std::ptr::null_mut();
    let _ = (file, off, amt);
    ffi::SQLITE_OK
}

unsafe extern "C" fn shim_unfetch(
    file: *mut ffi::sqlite3_file,
    off: ffi::sqlite3_int64,
    p: *mut c_void,
) -> c_int {
    let _ = (file, off, p);
    ffi::SQLITE_OK
}
