//! The host's durable alarm index (`<data_dir>/_dohost/alarms.sqlite`),
//! written by one writer thread with group commit: every write submitted
//! while a commit runs joins the next transaction, so objects setting alarms
//! at once share one flush.
//!
//! A write is *submitted* (it gets a ticket) and, if the caller needs it
//! durable before going on, *waited for*: the index is written ahead of an
//! object's commit only when the object's alarm moves earlier (see
//! [`crate::capabilities::alarms`]); settling it afterwards needs no wait.

use crate::capabilities::storage::StorageError;
use rusqlite::Connection;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// An entry of the index: (class, object id, alarm time in epoch ms).
pub type Entry = (String, String, i64);

/// Failed commits remembered for waiters that have not looked yet.
const FAILURES_KEPT: usize = 64;

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

/// A submitted write; wait for it with [`AlarmIndex::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

#[derive(Default)]
struct Queue {
    writes: Vec<Write>,
    /// Ticket of the last submitted write.
    submitted: u64,
    /// Every ticket up to this one is committed (or failed).
    committed: u64,
    /// Ticket ranges (first, last) of failed commits, with the error.
    failures: VecDeque<(u64, u64, String)>,
    stop: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// The writer waits here for writes.
    wake: Condvar,
    /// Waiters wait here for commits.
    done: Condvar,
    /// Transactions committed (each is one flush).
    commits: AtomicU64,
}

pub struct AlarmIndex {
    shared: Arc<Shared>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl AlarmIndex {
    /// Opens (creating) the index, starts its writer and returns it with its entries.
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
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            wake: Condvar::new(),
            done: Condvar::new(),
            commits: AtomicU64::new(0),
        });
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("dohost-alarm-index".into())
            .spawn(move || write_loop(&writer_shared, conn))?;
        let index = AlarmIndex {
            shared,
            writer: Some(writer),
        };
        Ok((index, entries))
    }

    /// Submits "(class, id) has an alarm at `at`".
    pub fn submit_upsert(&self, class: &Arc<str>, id: String, at: i64) -> Ticket {
        self.submit(Write::Upsert {
            class: class.clone(),
            id,
            at,
        })
    }

    /// Submits "(class, id) has no alarm".
    pub fn submit_remove(&self, class: &Arc<str>, id: String) -> Ticket {
        self.submit(Write::Remove {
            class: class.clone(),
            id,
        })
    }

    fn submit(&self, write: Write) -> Ticket {
        let mut q = self.lock();
        q.writes.push(write);
        q.submitted += 1;
        let ticket = Ticket(q.submitted);
        drop(q);
        self.shared.wake.notify_one();
        ticket
    }

    /// Returns once the write of `ticket` is durable, or its commit failed.
    pub fn wait(&self, ticket: Ticket) -> Result<(), StorageError> {
        let mut q = self.lock();
        while q.committed < ticket.0 {
            q = self.shared.done.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        match q
            .failures
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&ticket.0))
        {
            Some((_, _, e)) => Err(StorageError::Failed(format!("alarm index: {e}"))),
            None => Ok(()),
        }
    }

    /// Transactions committed so far.
    pub fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.shared.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for AlarmIndex {
    /// Commits what is still queued, then stops the writer.
    fn drop(&mut self) {
        self.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The writer: commits everything queued so far in one transaction, again
/// and again, until stopped with nothing queued.
fn write_loop(shared: &Shared, mut conn: Connection) {
    loop {
        let mut q = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        while q.writes.is_empty() && !q.stop {
            q = shared.wake.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        if q.writes.is_empty() {
            return;
        }
        let writes = std::mem::take(&mut q.writes);
        let (first, last) = (q.committed + 1, q.submitted);
        drop(q);
        let result = commit(&mut conn, &writes);
        if result.is_ok() {
            shared.commits.fetch_add(1, Ordering::Relaxed);
        }
        let mut q = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.committed = last;
        if let Err(e) = result {
            tracing::error!("alarm index: commit failed: {e}");
            q.failures.push_back((first, last, e.to_string()));
            if q.failures.len() > FAILURES_KEPT {
                q.failures.pop_front();
            }
        }
        drop(q);
        shared.done.notify_all();
    }
}

/// Applies `writes` in one transaction (one flush).
fn commit(conn: &mut Connection, writes: &[Write]) -> rusqlite::Result<()> {
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
    tx.commit()
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
                        let ticket = index.submit_upsert(&class, format!("{t}-{i}"), i);
                        index.wait(ticket).unwrap();
                        if i % 5 == 0 {
                            let ticket = index.submit_remove(&class, format!("{t}-{i}"));
                            index.wait(ticket).unwrap();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let writes = 8 * (50 + 10);
        let commits = index.commits();
        assert!(
            commits < writes,
            "{commits} commits for {writes} writes: none shared"
        );
        drop(Arc::into_inner(index).unwrap());
        let (_, entries) = AlarmIndex::open(&path).unwrap();
        assert_eq!(entries.len(), 8 * 40);
        assert!(entries.iter().all(|(_, id, _)| {
            let i: i64 = id.split('-').nth(1).unwrap().parse().unwrap();
            i % 5 != 0
        }));
    }

    #[test]
    fn writes_nobody_waits_for_are_committed_before_the_index_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alarms.sqlite");
        let class: Arc<str> = "C".into();
        {
            let (index, _) = AlarmIndex::open(&path).unwrap();
            for i in 0..100 {
                index.submit_upsert(&class, format!("o{i}"), i);
            }
        }
        let (_, entries) = AlarmIndex::open(&path).unwrap();
        assert_eq!(entries.len(), 100);
    }
}
