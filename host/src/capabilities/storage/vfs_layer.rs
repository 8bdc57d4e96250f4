//! A SQLite VFS layer over the current default VFS. It forwards every call to
//! the VFS below and lets a [`Layer`] intercept opening, writing, truncating and
//! syncing files. The group-sync layer (production) and the failpoint layer
//! (tests) are both built on it, one above the other.

use rusqlite::ffi;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

/// What a layer adds to the VFS below it. Every hook is optional.
pub trait Layer: Sync + Send + 'static {
    /// A file was opened (`path` is empty for temporary files).
    fn opened(&self, _file: &File<'_>) {}
    /// Before a write; `Some(rc)` answers instead of writing.
    fn write(&self, _file: &File<'_>, _data: &[u8], _offset: i64) -> Option<c_int> {
        None
    }
    /// Before a truncation; `Some(rc)` answers instead of truncating.
    fn truncate(&self, _file: &File<'_>, _size: i64) -> Option<c_int> {
        None
    }
    /// Before a sync; `Some(rc)` answers instead of syncing below.
    fn sync(&self, _file: &File<'_>, _flags: c_int) -> Option<c_int> {
        None
    }
    /// After the VFS below synced the file successfully.
    fn synced(&self, _file: &File<'_>) {}
    /// Before the file is closed.
    fn closing(&self, _file: &File<'_>) {}
}

/// A file as a layer sees it.
pub struct File<'a> {
    lower: *mut ffi::sqlite3_file,
    pub path: &'a str,
}

impl File<'_> {
    /// The file's size as the VFS below reports it.
    pub fn size(&self) -> i64 {
        let mut size: ffi::sqlite3_int64 = 0;
        // SAFETY: `lower` is an open file of the VFS below.
        unsafe { ((*(*self.lower).pMethods).xFileSize.expect("xFileSize"))(self.lower, &mut size) };
        size
    }

    /// Reads `len` bytes at `offset` (zero-filled past the end).
    pub fn read(&self, offset: i64, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        // SAFETY: as above; `buf` holds `len` bytes.
        unsafe {
            ((*(*self.lower).pMethods).xRead.expect("xRead"))(
                self.lower,
                buf.as_mut_ptr() as *mut c_void,
                len as c_int,
                offset,
            )
        };
        buf
    }
}

#[repr(C)]
struct LayerVfs {
    vfs: ffi::sqlite3_vfs,
    lower: *mut ffi::sqlite3_vfs,
    methods: OnceLock<ffi::sqlite3_io_methods>,
    layer: &'static dyn Layer,
}

// SAFETY: the pointers are to process-lifetime SQLite VFS objects.
unsafe impl Sync for LayerVfs {}
unsafe impl Send for LayerVfs {}

#[repr(C)]
struct LayerFile {
    base: ffi::sqlite3_file,
    lower: *mut ffi::sqlite3_file,
    owner: *const LayerVfs,
    path: *mut String,
}

/// Registers `layer` as the new default VFS, on top of the current default.
pub fn register(name: &'static CStr, layer: &'static dyn Layer) -> std::io::Result<()> {
    // SAFETY: the VFS object is leaked (lives for the process) and registered
    // before connections that should use it are opened.
    unsafe {
        let lower = ffi::sqlite3_vfs_find(std::ptr::null());
        if lower.is_null() {
            return Err(std::io::Error::other("no default SQLite VFS"));
        }
        let mut vfs = *lower;
        vfs.zName = name.as_ptr();
        vfs.szOsFile = (std::mem::size_of::<LayerFile>() as c_int) + (*lower).szOsFile;
        vfs.xOpen = Some(open);
        vfs.pNext = std::ptr::null_mut();
        let this = Box::leak(Box::new(LayerVfs {
            vfs,
            lower,
            methods: OnceLock::new(),
            layer,
        }));
        if ffi::sqlite3_vfs_register(&mut this.vfs, 1) != ffi::SQLITE_OK {
            return Err(std::io::Error::other("registering a SQLite VFS failed"));
        }
    }
    Ok(())
}

unsafe fn parts<'a>(file: *mut ffi::sqlite3_file) -> (&'a LayerVfs, File<'a>) {
    let f = file as *mut LayerFile;
    let path = (*f).path.as_ref().map_or("", |s| s.as_str());
    (
        &*(*f).owner,
        File {
            lower: (*f).lower,
            path,
        },
    )
}

unsafe fn lower(
    file: *mut ffi::sqlite3_file,
) -> (*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) {
    let l = (*(file as *mut LayerFile)).lower;
    (l, &*(*l).pMethods)
}

unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let owner = vfs as *const LayerVfs;
    let f = file as *mut LayerFile;
    let lower_file =
        (file as *mut u8).add(std::mem::size_of::<LayerFile>()) as *mut ffi::sqlite3_file;
    (*f).lower = lower_file;
    (*f).owner = owner;
    (*f).path = std::ptr::null_mut();
    (*f).base.pMethods = std::ptr::null();
    let lower_vfs = (*owner).lower;
    let rv = ((*lower_vfs).xOpen.expect("xOpen"))(lower_vfs, name, lower_file, flags, out_flags);
    if rv != ffi::SQLITE_OK || (*lower_file).pMethods.is_null() {
        return rv;
    }
    let path = if name.is_null() {
        String::new()
    } else {
        CStr::from_ptr(name).to_string_lossy().into_owned()
    };
    (*f).path = Box::into_raw(Box::new(path));
    let methods = (*owner).methods.get_or_init(|| {
        let mut m = *(*lower_file).pMethods;
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
        m
    });
    (*f).base.pMethods = methods;
    let (owner, file) = parts(file);
    owner.layer.opened(&file);
    rv
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    let (owner, f) = parts(file);
    owner.layer.closing(&f);
    let (l, m) = lower(file);
    let rv = (m.xClose.expect("xClose"))(l);
    let f = file as *mut LayerFile;
    if !(*f).path.is_null() {
        drop(Box::from_raw((*f).path));
        (*f).path = std::ptr::null_mut();
    }
    rv
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amt: c_int,
    off: ffi::sqlite3_int64,
) -> c_int {
    let (owner, f) = parts(file);
    let data = std::slice::from_raw_parts(buf as *const u8, amt.max(0) as usize);
    if let Some(rc) = owner.layer.write(&f, data, off) {
        return rc;
    }
    let (l, m) = lower(file);
    (m.xWrite.expect("xWrite"))(l, buf, amt, off)
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    let (owner, f) = parts(file);
    if let Some(rc) = owner.layer.truncate(&f, size) {
        return rc;
    }
    let (l, m) = lower(file);
    (m.xTruncate.expect("xTruncate"))(l, size)
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    let (owner, f) = parts(file);
    if let Some(rc) = owner.layer.sync(&f, flags) {
        return rc;
    }
    let (l, m) = lower(file);
    let rv = (m.xSync.expect("xSync"))(l, flags);
    if rv == ffi::SQLITE_OK {
        owner.layer.synced(&f);
    }
    rv
}

// Plain forwarding.
unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amt: c_int,
    off: ffi::sqlite3_int64,
) -> c_int {
    let (l, m) = lower(file);
    (m.xRead.expect("xRead"))(l, buf, amt, off)
}
unsafe extern "C" fn file_size(
    file: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    let (l, m) = lower(file);
    (m.xFileSize.expect("xFileSize"))(l, size)
}
unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let (l, m) = lower(file);
    (m.xLock.expect("xLock"))(l, level)
}
unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let (l, m) = lower(file);
    (m.xUnlock.expect("xUnlock"))(l, level)
}
unsafe extern "C" fn check_reserved(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    let (l, m) = lower(file);
    (m.xCheckReservedLock.expect("xCheckReservedLock"))(l, out)
}
unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    let (l, m) = lower(file);
    (m.xFileControl.expect("xFileControl"))(l, op, arg)
}
unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    let (l, m) = lower(file);
    (m.xSectorSize.expect("xSectorSize"))(l)
}
unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    let (l, m) = lower(file);
    (m.xDeviceCharacteristics.expect("xDeviceCharacteristics"))(l)
}
unsafe extern "C" fn shm_map(
    file: *mut ffi::sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    let (l, m) = lower(file);
    (m.xShmMap.expect("xShmMap"))(l, region, size, extend, out)
}
unsafe extern "C" fn shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    let (l, m) = lower(file);
    (m.xShmLock.expect("xShmLock"))(l, offset, n, flags)
}
unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    let (l, m) = lower(file);
    (m.xShmBarrier.expect("xShmBarrier"))(l)
}
unsafe extern "C" fn shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    let (l, m) = lower(file);
    (m.xShmUnmap.expect("xShmUnmap"))(l, delete)
}
unsafe extern "C" fn fetch(
    file: *mut ffi::sqlite3_file,
    off: ffi::sqlite3_int64,
    amt: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // Memory-mapped reads would bypass the layer's view of the file.
    let _ = (file, off, amt);
    *out = std::ptr::null_mut();
    ffi::SQLITE_OK
}
unsafe extern "C" fn unfetch(
    file: *mut ffi::sqlite3_file,
    off: ffi::sqlite3_int64,
    p: *mut c_void,
) -> c_int {
    let _ = (file, off, p);
    ffi::SQLITE_OK
}
