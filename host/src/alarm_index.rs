//! The host's durable alarm index (`<data_dir>/_dohost/alarms.sqlite`), with
//! group commit: every write queued while a commit runs joins the next
//! transaction, so objects setting alarms at once share one flush instead of
//! queueing one flush each behind a lock.
//!
//! A writer waits until the transaction holding its write has committed (the
//! index is written ahead of the object's own commit, see [`crate::alarms`]).

use crate::storage::StorageError;
use rusqlite::Connection;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// An entry of the index: (class, object id, alarm time in epoch ms).
pub type Entry = (String, String, i64);

/// One change to the index.
enum Write {
    Upsert {
        class: Arc<str>,
        id: String,
        at: i64,
    },
    Remove {
        class: Arc<str>,
        id: String,
    },
}

/// Writes waiting for a commit, and the outcomes of finished commits.
#[derive(Default)]
struct Pending {
    /// Writes of the batch being collected.
    writes: Vec<Write>,
    /// Number of the batch being collected.
    batch: u64,
    /// Writers waiting on the batch being collected.
    writers: usize,
    /// A batch is being committed.
    running: bool,
    /// Outcome of finished batches: (error, writers that have not read it yet).
    outcomes: HashMap<u64, (Option<String>, usize)>,
}

pub struct AlarmIndex {
    conn: Mutex<Connection>,
    pending: Mutex<Pending>,
    finished: Condvar,
    /// Transactions committed (each is one flush).
    commits: std::sync::atomic::AtomicU64,
}

impl AlarmIndex {
    /// Opens (creating) the index and returns it with its entries.
    pub fn open(path: &Path) -> anyhow::Result<(AlarmIndex, Vec<Entry>)> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS alarms (
                class TEXT NOT NULL, id TEXT NOT NULL, at INTEGER NOT NULL,
                PRIMARY KEY (class, id)) WITHOUT ROWID;",
        )?;
        let entries = conn
            .prepare("SELECT class, id, at FROM alarms")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let index = AlarmIndex {
            conn: Mutex::new(conn),
            pending: Mutex::default(),
            finished: Condvar::new(),
            commits: Default::default(),
        };
        Ok((index, entries))
    }

    /// Records (durably) that (class, id) has an alarm at `at`.
    pub fn upsert(&self, class: &Arc<str>, id: String, at: i64) -> Result<(), StorageError> {
        self.write(Write::Upsert {
            class: class.clone(),
            id,
            at,
        })
    }

    /// Removes the entry of (class, id), durably.
    pub fn remove(&self, class: &Arc<str>, id: String) -> Result<(), StorageError> {
        self.write(Write::Remove {
            class: class.clone(),
            id,
        })
    }

    /// Queues `write` and returns once the batch holding it has committed:
    /// the first writer that finds no commit running commits everything
    /// queued so far; the others wait for it.
    fn write(&self, write: Write) -> Result<(), StorageError> {
        let mut p = self.lock_pending();
        p.writes.push(write);
        p.writers += 1;
        let mine = p.batch;
        loop {
            if let Some((error, unread)) = p.outcomes.get_mut(&mine) {
                let error = error.clone();
                *unread -= 1;
                if *unread == 0 {
                    p.outcomes.remove(&mine);
                }
                return match error {
                    None => Ok(()),
                    Some(e) => Err(StorageError::Failed(format!("alarm index: {e}"))),
                };
            }
            if !p.running {
                p.running = true;
                let writes = std::mem::take(&mut p.writes);
                let (batch, writers) = (p.batch, p.writers);
                p.batch += 1;
                p.writers = 0;
                drop(p);
                let error = self.commit(&writes).err().map(|e| e.to_string());
                p = self.lock_pending();
                p.running = false;
                p.outcomes.insert(batch, (error, writers));
                self.finished.notify_all();
                continue;
            }
            p = self.finished.wait(p).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Applies `writes` in one transaction (one flush).
    fn commit(&self, writes: &[Write]) -> rusqlite::Result<()> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction()?;
        for write in writes {
            match write {
                Write::Upsert { class, id, at } => tx
                    .prepare_cached(
                        "INSERT INTO alarms (class, id, at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (class, id) DO UPDATE SET at = excluded.at",
                    )?
                    .execute(rusqlite::params![&**class, id, at])?,
                Write::Remove { class, id } => tx
                    .prepare_cached("DELETE FROM alarms WHERE class = ?1 AND id = ?2")?
                    .execute(rusqlite::params![&**class, id])?,
            };
        }
        tx.commit()?;
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn lock_pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writers_share_commits_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alarms.sqlite");
        let (index, entries) = AlarmIndex::open(&path).unwrap();
        assert!(entries.is_empty());
        let index = Arc::new(index);
        let class: Arc<str> = "C".into();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (index, class) = (index.clone(), class.clone());
                std::thread::spawn(move || {
                    for i in 0..50 {
                        index.upsert(&class, format!("{t}-{i}"), i).unwrap();
                        if i % 5 == 0 {
                            index.remove(&class, format!("{t}-{i}")).unwrap();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(
            index.lock_pending().outcomes.is_empty(),
            "every outcome read"
        );
        drop(index);
        let (_, entries) = AlarmIndex::open(&path).unwrap();
        assert_eq!(entries.len(), 8 * 40);
        assert!(entries.iter().all(|(_, id, _)| {
            let i: i64 = id.split('-').nth(1).unwrap().parse().unwrap();
            i % 5 != 0
        }));
    }
}
