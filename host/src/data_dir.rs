//! The data dir belongs to one host at a time: `<data_dir>/_dohost/lock`,
//! held with `flock` for the life of the runtime (the kernel releases it
//! when the process dies, kill -9 included). Two hosts on one data dir would
//! each believe they own every object's database.

use anyhow::{bail, Context};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

/// The held lock; released when dropped (or when the process ends).
pub struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    /// Takes the lock of `data_dir`, or says which process holds it.
    pub fn take(data_dir: &Path) -> anyhow::Result<DataDirLock> {
        let dir = data_dir.join("_dohost");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: a valid open descriptor.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            bail!(
                "the data dir {} is in use by another dohost (pid {}); stop it, or give this one \
                 another --data-dir",
                data_dir.display(),
                holder.trim()
            );
        }
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{}", std::process::id())?;
        Ok(DataDirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_data_dir_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::take(dir.path()).unwrap();
        let err = DataDirLock::take(dir.path()).err().unwrap().to_string();
        assert!(err.contains("in use by another dohost"), "{err}");
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(first);
        assert!(DataDirLock::take(dir.path()).is_ok());
    }
}
