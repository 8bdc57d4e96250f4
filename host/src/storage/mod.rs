//! Storage: one SQLite database per object at `<data-dir>/<class>/<id>.sqlite`.
//!
//! `ObjectDb` owns the connection. The object actor drives transactions (one
//! per batch of events, one savepoint per event, nested savepoints for the
//! guest's `transaction()`); guest SQL and KV calls go through `sql.rs` and
//! `kv.rs`. This module never decides *when* to commit; the actor does.

pub mod group_sync;
mod guard;
mod kv;
mod sql;
pub mod vfs_layer;

pub use guard::{check_guest_action, HOST_TABLE_PREFIX};
pub use kv::ListOptions;
pub use sql::Cursor;

use crate::limits::{
    MAX_DATABASE_BYTES, MAX_KEY_BYTES, MAX_NESTED_TRANSACTIONS, MAX_SQL_TEXT_BYTES,
    MAX_SQL_VALUE_BYTES, MAX_VALUE_BYTES,
};
use guard::SqlGuard;
use rusqlite::{limits::Limit, Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Page size of object databases (fixed, so the size cap needs no query).
const PAGE_SIZE: u64 = 4096;

/// The bytes of an empty object database: WAL mode, the host's tables.
static TEMPLATE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

/// Builds the template once, in a scratch file next to `near`.
fn template(near: &Path) -> Result<&'static [u8]> {
    if let Some(t) = TEMPLATE.get() {
        return Ok(t);
    }
    let scratch = near.with_file_name(format!(
        ".template-{}-{:?}.sqlite",
        std::process::id(),
        std::thread::current().id()
    ));
    let built = (|| -> rusqlite::Result<()> {
        let conn = Connection::open(&scratch)?;
        conn.execute_batch(&format!(
            "PRAGMA page_size = {PAGE_SIZE}; PRAGMA journal_mode = WAL;"
        ))?;
        conn.execute_batch(HOST_SCHEMA)?;
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        conn.close().map_err(|(_, e)| e)
    })();
    let bytes = built.map_err(StorageError::from).and_then(|()| {
        std::fs::read(&scratch)
            .map_err(|e| StorageError::Failed(format!("reading the template: {e}")))
    });
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", scratch.display()));
    }
    Ok(TEMPLATE.get_or_init(|| bytes.unwrap_or_default()))
}

/// Creates a new object database by copying the template: one durable write
/// and a rename, instead of SQLite switching a new file to WAL mode through a
/// rollback journal (several flushes).
fn create_from_template(path: &Path) -> Result<()> {
    let bytes = template(path)?;
    if bytes.is_empty() {
        return Ok(()); // no template: SQLite creates the file itself
    }
    let tmp = path.with_extension("sqlite.new");
    let fail =
        |e: std::io::Error| StorageError::Failed(format!("creating {}: {e}", path.display()));
    std::fs::write(&tmp, bytes).map_err(fail)?;
    // Durable before it gets its name (the group-sync VFS, or an fsync).
    if !group_sync::flush() {
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(fail)?;
    }
    std::fs::rename(&tmp, path).map_err(fail)
}

/// A storage failure, phrased for the guest (and the client) to act on.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The guest asked for something that is not allowed.
    #[error("{0}")]
    Refused(String),
    /// The guest passed invalid arguments or exceeded a limit.
    #[error("{0}")]
    Invalid(String),
    /// SQLite rejected the guest's SQL (syntax, constraint, type …).
    #[error("{0}")]
    Sql(String),
    /// The database itself failed (I/O, disk full, corruption): the object is broken.
    #[error("storage failure: {0}")]
    Failed(String),
}

impl StorageError {
    /// True if the failure is in the database, not in the guest's request.
    pub fn is_fatal(&self) -> bool {
        matches!(self, StorageError::Failed(_))
    }

    fn from_sqlite(err: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::*;
        if let rusqlite::Error::SqliteFailure(e, ref msg) = err {
            let detail = msg.clone().unwrap_or_else(|| e.to_string());
            return match e.code {
                TooBig => StorageError::Invalid(format!(
                    "value too large: SQL strings, blobs and rows are limited to {MAX_SQL_VALUE_BYTES} bytes ({detail})"
                )),
                DiskFull => StorageError::Failed(format!(
                    "database or disk is full (objects are limited to {MAX_DATABASE_BYTES} bytes): {detail}"
                )),
                SystemIoFailure | DatabaseCorrupt | NotADatabase | CannotOpen | ReadOnly
                | FileLockingProtocolFailed | OutOfMemory => StorageError::Failed(detail),
                _ => StorageError::Sql(detail),
            };
        }
        StorageError::Sql(err.to_string())
    }
}

impl From<rusqlite::Error> for StorageError {
    fn from(err: rusqlite::Error) -> Self {
        StorageError::from_sqlite(err)
    }
}

/// Host metadata keys that `delete-all` removes with the guest's data.
pub const META_DELETED_WITH_ALL: &[&str] = &[crate::alarms::META_ALARM, crate::alarms::META_RETRY];

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// The database of one object.
pub struct ObjectDb {
    conn: Connection,
    guard: Arc<SqlGuard>,
    path: PathBuf,
    in_transaction: bool,
    in_event: bool,
    nested: u32,
    /// The host's tables are created by the first transaction.
    needs_schema: bool,
}

impl std::fmt::Debug for ObjectDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectDb")
            .field("path", &self.path)
            .finish()
    }
}

const HOST_SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS _dohost_kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS _dohost_meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
";

impl ObjectDb {
    /// Runs one fixed host statement through the statement cache (the hot
    /// path runs BEGIN, SAVEPOINT, RELEASE and COMMIT for every event).
    fn run(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn.prepare_cached(sql)?.execute([]).map(|_| ())
    }

    /// Opens (creating if needed) the database at `path` with WAL and
    /// `synchronous=FULL`, the guest limits and the SQL guard.
    pub fn open(path: &Path) -> Result<ObjectDb> {
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StorageError::Failed(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            create_from_template(path)?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags)?;
        // One connection per database, ever: EXCLUSIVE locking keeps the WAL index
        // in memory (no -shm file to create, map and lock on every wake). It must
        // be set before WAL mode is entered. The page size applies to new files.
        conn.execute_batch(&format!(
            "PRAGMA page_size = {PAGE_SIZE};
             PRAGMA locking_mode = EXCLUSIVE;
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA max_page_count = {};",
            MAX_DATABASE_BYTES / PAGE_SIZE
        ))?;
        // A KV row holds a key and a value; the SQL limit covers both.
        conn.set_limit(
            Limit::SQLITE_LIMIT_LENGTH,
            (MAX_VALUE_BYTES + MAX_KEY_BYTES + 1024) as i32,
        )?;
        conn.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_TEXT_BYTES as i32)?;
        conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
        conn.set_prepared_statement_cache_capacity(64);
        // Closing (hibernation, LRU eviction) must not cost a checkpoint and its
        // fsyncs: the WAL stays and is checkpointed as it grows.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )?;
        // A new database gets the host's tables in its first transaction (one
        // fsync less per new object); an existing one already has them.
        let needs_schema: bool = conn.query_row(
            "SELECT count(*) < 2 FROM sqlite_schema WHERE name IN ('_dohost_kv', '_dohost_meta')",
            [],
            |r| r.get(0),
        )?;
        let guard = SqlGuard::install(&mut conn)?;
        Ok(ObjectDb {
            conn,
            guard,
            path: path.to_path_buf(),
            in_transaction: false,
            in_event: false,
            nested: 0,
            needs_schema,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts the transaction of a batch of events.
    pub fn begin(&mut self) -> Result<()> {
        self.run("BEGIN")?;
        self.in_transaction = true;
        if self.needs_schema {
            if let Err(e) = self.conn.execute_batch(HOST_SCHEMA) {
                self.rollback();
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Makes the batch durable (fsync). On error the transaction is rolled back.
    pub fn commit(&mut self) -> Result<()> {
        self.in_transaction = false;
        if let Err(e) = self.run("COMMIT") {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(StorageError::Failed(format!("commit failed: {e}")));
        }
        self.needs_schema = false;
        Ok(())
    }

    /// Abandons the batch.
    pub fn rollback(&mut self) {
        if self.in_transaction {
            self.in_transaction = false;
            self.in_event = false;
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    pub fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    /// Starts one event inside the batch.
    pub fn begin_event(&mut self) -> Result<()> {
        self.run("SAVEPOINT dohost_event")?;
        self.in_event = true;
        self.nested = 0;
        Ok(())
    }

    /// Keeps the event's writes (and those of nested transactions left open).
    pub fn finish_event(&mut self) -> Result<()> {
        self.in_event = false;
        self.nested = 0;
        self.run("RELEASE dohost_event")?;
        Ok(())
    }

    /// Undoes the event's writes.
    pub fn undo_event(&mut self) -> Result<()> {
        self.in_event = false;
        self.nested = 0;
        self.conn
            .execute_batch("ROLLBACK TO dohost_event; RELEASE dohost_event")?;
        Ok(())
    }

    /// Opens a nested transaction for the guest.
    pub fn begin_nested(&mut self) -> Result<()> {
        if !self.in_event {
            return Err(StorageError::Invalid("no event is running".into()));
        }
        if self.nested >= MAX_NESTED_TRANSACTIONS {
            return Err(StorageError::Invalid(format!(
                "too many nested transactions (at most {MAX_NESTED_TRANSACTIONS})"
            )));
        }
        self.nested += 1;
        self.conn
            .execute_batch(&format!("SAVEPOINT dohost_nested_{}", self.nested))?;
        Ok(())
    }

    /// Keeps the innermost nested transaction.
    pub fn commit_nested(&mut self) -> Result<()> {
        let n = self.innermost_nested("commit-nested")?;
        self.conn
            .execute_batch(&format!("RELEASE dohost_nested_{n}"))?;
        self.nested -= 1;
        Ok(())
    }

    /// Undoes the innermost nested transaction.
    pub fn rollback_nested(&mut self) -> Result<()> {
        let n = self.innermost_nested("rollback-nested")?;
        self.conn.execute_batch(&format!(
            "ROLLBACK TO dohost_nested_{n}; RELEASE dohost_nested_{n}"
        ))?;
        self.nested -= 1;
        Ok(())
    }

    fn innermost_nested(&self, what: &str) -> Result<u32> {
        match self.nested {
            0 => Err(StorageError::Invalid(format!(
                "{what} without begin-nested: no nested transaction is open"
            ))),
            n => Ok(n),
        }
    }

    /// Bytes used by the database file.
    pub fn size(&self) -> Result<u64> {
        let pages: i64 = self
            .conn
            .pragma_query_value(None, "page_count", |r| r.get(0))?;
        let page_size: i64 = self
            .conn
            .pragma_query_value(None, "page_size", |r| r.get(0))?;
        Ok((pages * page_size).max(0) as u64)
    }

    /// A host-owned metadata value.
    pub fn meta(&self, key: &str) -> Result<Option<rusqlite::types::Value>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM _dohost_meta WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    /// Sets (or, with NULL, deletes) a host-owned metadata value.
    pub fn set_meta(&self, key: &str, value: rusqlite::types::Value) -> Result<()> {
        if value == rusqlite::types::Value::Null {
            self.conn
                .prepare_cached("DELETE FROM _dohost_meta WHERE key = ?1")?
                .execute([key])?;
        } else {
            self.conn
                .prepare_cached(
                    "INSERT INTO _dohost_meta (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )?
                .execute(rusqlite::params![key, value])?;
        }
        Ok(())
    }

    /// Deletes every guest table, view and trigger, every KV entry and every
    /// metadata value listed in `meta_keys` (e.g. the alarm).
    pub fn delete_all(&mut self, meta_keys: &[&str]) -> Result<()> {
        let objects: Vec<(String, String)> = {
            let mut stmt = self.conn.prepare(
                "SELECT type, name FROM sqlite_schema
                 WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
                   AND name NOT LIKE '\\_dohost\\_%' ESCAPE '\\'
                 ORDER BY type = 'table', name",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        // Foreign keys between dropped tables must not fail the drop.
        self.conn.pragma_update(None, "defer_foreign_keys", true)?;
        for (kind, name) in objects {
            let kind = if kind == "view" { "VIEW" } else { "TABLE" };
            let quoted = name.replace('"', "\"\"");
            self.conn
                .execute_batch(&format!("DROP {kind} IF EXISTS \"{quoted}\""))?;
        }
        let has_sequence: bool = self.conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_sequence'",
            [],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )?;
        if has_sequence {
            self.conn.execute_batch("DELETE FROM sqlite_sequence")?;
        }
        self.conn.execute_batch("DELETE FROM _dohost_kv")?;
        for key in meta_keys {
            self.set_meta(key, rusqlite::types::Value::Null)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
