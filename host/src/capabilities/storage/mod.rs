//! Storage: one SQLite database per object at `<data-dir>/<class>/<id>.sqlite`.
//!
//! `ObjectDb` owns the connection. The object actor drives transactions (one
//! per batch of events, one savepoint per event, nested savepoints for the
//! guest's `transaction()`); guest SQL and KV calls go through `sql.rs` and
//! `kv.rs`. This module never decides *when* to commit; the actor does.

pub mod group_sync;
mod guard;
mod import_kv;
mod import_sql;
mod import_storage;
mod kv;
mod meta;
mod sql;
mod sql_text;
pub mod temp_files;
pub mod vfs_layer;
mod view;

pub use guard::{check_guest_action, HOST_TABLE_PREFIX};
pub use kv::ListOptions;
pub use meta::{Meta, MetaChanges};
pub use sql::Cursor;
pub use view::StorageView;

use crate::config::limits::{
    MAX_DATABASE_BYTES, MAX_KEY_BYTES, MAX_NESTED_TRANSACTIONS, MAX_SQL_TEXT_BYTES,
    MAX_VALUE_BYTES, QUOTA_MARGIN_BYTES, WAL_KEEP_BYTES,
};
use crate::deadline::Deadline;
use guard::SqlGuard;
use rusqlite::{limits::Limit, Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Page size of object databases (fixed, so the size cap needs no query).
const PAGE_SIZE: u64 = 4096;

/// Pages a database may grow past its quota within one operation before
/// SQLite's own page limit stops it (which would roll back the whole batch).
/// Writes that start within this margin below the quota run in their own
/// savepoint, so an overrun undoes just that write.
fn quota_margin_pages(max_pages: u64) -> u64 {
    (QUOTA_MARGIN_BYTES / PAGE_SIZE).min(max_pages / 4).max(1)
}

/// A failed sync is fail-stop for the process, as in PostgreSQL: after
/// fsync reports an error, Linux may have dropped the dirty pages, and
/// SQLite's view of the file no longer matches the disk. Serving on would
/// risk acknowledging state that is not durable.
fn stop_if_sync_failed(path: &Path, err: &rusqlite::Error) {
    const IOERR_FSYNC: i32 = rusqlite::ffi::SQLITE_IOERR_FSYNC;
    const IOERR_DIR_FSYNC: i32 = rusqlite::ffi::SQLITE_IOERR_DIR_FSYNC;
    if let rusqlite::Error::SqliteFailure(e, _) = err {
        if e.extended_code == IOERR_FSYNC || e.extended_code == IOERR_DIR_FSYNC {
            group_sync::fail_stop(&format!("syncing {} failed: {err}", path.display()));
        }
    }
}

/// The bytes of an empty object database: WAL mode, the host's tables.
static TEMPLATE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

/// Builds the template once, in a scratch file of the host's own directory
/// (`<data_dir>/_dohost/`, for an object at `<data_dir>/<class>/<id>.sqlite`).
fn template(near: &Path) -> Result<&'static [u8]> {
    if let Some(t) = TEMPLATE.get() {
        return Ok(t);
    }
    let host_dir = near
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| Path::new("."))
        .join("_dohost");
    let _ = std::fs::create_dir_all(&host_dir);
    let scratch = host_dir.join(format!(
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
    // A link, not a rename: it never replaces a database that appeared
    // meanwhile (a rename would, silently).
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(fail(e)),
    }
}

/// A storage failure, phrased for the guest (and the client) to act on.
#[derive(Debug, Clone, thiserror::Error)]
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
    /// The object's storage quota is used up; nothing of the operation was kept.
    #[error("{0}")]
    Quota(String),
    /// The event's deadline passed while SQLite was working for it.
    #[error("the event's deadline passed during a storage call (limits.cpu_per_event)")]
    DeadlineExceeded,
    /// SQLite ended the batch's transaction under a guest statement (I/O
    /// error, full disk, interrupted write): every event of the batch so far
    /// is rolled back.
    #[error("the transaction was rolled back by SQLite: {0}")]
    TransactionLost(String),
    /// The database itself failed (I/O, disk full, corruption): the object is broken.
    #[error("{0}")]
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
                    "value too large: SQL strings and blobs are limited to {} bytes and KV values to \
                     {MAX_VALUE_BYTES} ({detail})",
                    sql_value_limit()
                )),
                OperationInterrupted => StorageError::DeadlineExceeded,
                DiskFull => StorageError::Failed(format!("database or disk is full: {detail}")),
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

/// The largest SQL string or blob: SQLite's length limit, which also covers
/// a KV row (key + value + overhead).
pub const fn sql_value_limit() -> usize {
    MAX_VALUE_BYTES + MAX_KEY_BYTES + 1024
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Limits of one object database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageLimits {
    /// The storage quota (bytes of the database file).
    pub max_bytes: u64,
}

impl Default for StorageLimits {
    fn default() -> Self {
        StorageLimits {
            max_bytes: MAX_DATABASE_BYTES,
        }
    }
}

/// Which part of an event the guest runs: the constructor's writes can be
/// rebuilt by running it again, an event's cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Constructor,
    Event,
}

/// The database of one object.
pub struct ObjectDb {
    conn: Connection,
    guard: Arc<SqlGuard>,
    path: PathBuf,
    limits: StorageLimits,
    in_transaction: bool,
    in_event: bool,
    nested: u32,
    /// The host's tables are created by the first transaction.
    needs_schema: bool,
    /// Set when SQLite ended the batch transaction under a guest statement.
    lost: Option<String>,
    /// The event went over the quota by more than an operation could undo:
    /// it fails when it finishes.
    doomed: Option<String>,
    /// Pages of the database after the last write (for the quota).
    pages: u64,
    phase: Phase,
    /// A guest event set `defer_foreign_keys` (reset before the next event).
    defer_set: bool,
    /// `Meta::SchemaByEvents` is known to be set.
    schema_by_events: bool,
    /// Which host metadata the event and the batch changed.
    changes: MetaChanges,
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

    /// Opens (creating if needed) the database at `path` with the default
    /// limits and no deadline.
    pub fn open(path: &Path) -> Result<ObjectDb> {
        ObjectDb::open_with(path, StorageLimits::default(), Deadline::default())
    }

    /// Opens (creating if needed) the database at `path` with WAL and
    /// `synchronous=FULL`, the guest limits, the SQL guard, and a progress
    /// handler that interrupts any statement once `deadline` has passed.
    pub fn open_with(path: &Path, limits: StorageLimits, deadline: Deadline) -> Result<ObjectDb> {
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
        // The quota is checked after every write (see `guest_op`); the hard
        // page limit is only a backstop beyond it, because reaching it rolls
        // back the whole transaction rather than one statement.
        let max_pages = limits.max_bytes / PAGE_SIZE;
        conn.execute_batch(&format!(
            "PRAGMA page_size = {PAGE_SIZE};
             PRAGMA locking_mode = EXCLUSIVE;
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA journal_size_limit = {WAL_KEEP_BYTES};
             PRAGMA max_page_count = {};",
            max_pages + quota_margin_pages(max_pages)
        ))?;
        // A KV row holds a key and a value; the SQL limit covers both.
        conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, sql_value_limit() as i32)?;
        // The guest's text is checked against MAX_SQL_TEXT_BYTES; SQLite sees
        // it behind the cache prefix.
        let sql_length = MAX_SQL_TEXT_BYTES + sql::GUEST_CACHE_PREFIX.len();
        conn.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, sql_length as i32)?;
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
        // Every ~1000 VM steps: has the event's deadline passed?
        conn.progress_handler(1000, Some(move || deadline.expired()))?;
        let mut db = ObjectDb {
            conn,
            guard,
            path: path.to_path_buf(),
            limits,
            in_transaction: false,
            in_event: false,
            nested: 0,
            needs_schema,
            lost: None,
            doomed: None,
            pages: 0,
            phase: Phase::Event,
            defer_set: false,
            schema_by_events: false,
            changes: MetaChanges::default(),
        };
        db.pages = db.page_count()?;
        Ok(db)
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

    /// Makes the batch durable (fsync). On error the transaction is rolled
    /// back; a failed sync stops the process (see `stop_if_sync_failed`).
    pub fn commit(&mut self) -> Result<()> {
        self.in_transaction = false;
        self.changes.clear();
        if let Err(e) = self.run("COMMIT") {
            stop_if_sync_failed(&self.path, &e);
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(StorageError::Failed(format!("commit failed: {e}")));
        }
        self.needs_schema = false;
        Ok(())
    }

    /// Why the running event cannot commit at the output gate now, if it
    /// cannot: inside a nested transaction (its savepoints would end), over
    /// the quota, with deferred foreign keys unresolved, or without a
    /// transaction.
    pub fn check_gate(&self) -> Result<()> {
        if !self.in_event || !self.in_transaction() {
            return Err(StorageError::Invalid("no event transaction is open".into()));
        }
        if self.nested > 0 {
            return Err(StorageError::Invalid(
                "inside a nested transaction (transactionSync / begin-nested): send after it ends"
                    .into(),
            ));
        }
        if let Some(reason) = &self.doomed {
            return Err(StorageError::Quota(reason.clone()));
        }
        if self.deferred_fk_violations() {
            return Err(StorageError::Sql(
                "FOREIGN KEY constraint failed: resolve the deferred foreign keys first".into(),
            ));
        }
        Ok(())
    }

    /// Commits the open transaction in the middle of an event (see
    /// `check_gate`) and goes on in a new one, the event in a new savepoint.
    /// What the batch and the event changed in host metadata is kept, as the
    /// batch's, for its own commit (the hooks apply it then).
    /// A failure ends the transaction as if SQLite had rolled it back.
    pub fn commit_at_gate(&mut self) -> Result<()> {
        let opened = self
            .run("RELEASE dohost_event")
            .and_then(|()| self.run("COMMIT"));
        if let Err(e) = opened {
            stop_if_sync_failed(&self.path, &e);
            let _ = self.conn.execute_batch("ROLLBACK");
            let reason = format!("commit at the output gate failed: {e}");
            self.lost = Some(reason.clone());
            return Err(StorageError::Failed(reason));
        }
        self.needs_schema = false;
        // What the event changed so far is committed: it belongs to the
        // batch now, even if the rest of the event is undone.
        let changes = self.changes.so_far();
        self.run("BEGIN")
            .and_then(|()| self.run("SAVEPOINT dohost_event"))
            .inspect_err(|e| self.lost = Some(format!("after the output gate: {e}")))?;
        self.changes = changes;
        Ok(())
    }

    /// Writes host metadata as the host, not as the running event (the
    /// output gate keeping a running alarm stored across its commit).
    pub fn restore_meta(&mut self, meta: Meta, value: rusqlite::types::Value) -> Result<()> {
        self.write_meta(meta.key(), value)?;
        self.changes.wrote(meta, false);
        Ok(())
    }

    /// Abandons the batch.
    pub fn rollback(&mut self) {
        self.lost = None;
        self.schema_by_events = false;
        self.changes.clear();
        if self.in_transaction {
            self.in_transaction = false;
            self.in_event = false;
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// True if SQLite rolled back the batch's transaction under a guest
    /// statement and the actor has not started a new one yet.
    pub fn is_lost(&self) -> bool {
        self.lost.is_some()
    }

    /// True while the batch's transaction is open (and SQLite has not
    /// rolled it back under a guest statement).
    pub fn in_transaction(&self) -> bool {
        self.in_transaction && self.lost.is_none()
    }

    /// Starts one event inside the batch. Its foreign keys start immediate
    /// again, whatever the previous event set.
    pub fn begin_event(&mut self) -> Result<()> {
        if std::mem::take(&mut self.defer_set) {
            self.run("PRAGMA defer_foreign_keys = OFF")?;
        }
        self.run("SAVEPOINT dohost_event")?;
        self.in_event = true;
        self.nested = 0;
        self.doomed = None;
        self.phase = Phase::Event;
        self.changes.begin_event();
        Ok(())
    }

    /// Tells which part of the event the guest runs next.
    pub fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
    }

    /// Keeps the event's writes (and those of nested transactions left open).
    /// An event that leaves deferred foreign keys unresolved, or that went
    /// over the quota, is undone instead and reported (`Sql` / `Quota`): it
    /// fails alone, not with the whole batch at COMMIT.
    pub fn finish_event(&mut self) -> Result<()> {
        let refused = match self.doomed.take() {
            Some(reason) => Some(StorageError::Quota(reason)),
            None if self.deferred_fk_violations() => Some(StorageError::Sql(
                "FOREIGN KEY constraint failed: the event leaves rows that violate deferred \
                 foreign keys (PRAGMA defer_foreign_keys); it was rolled back"
                    .into(),
            )),
            None => None,
        };
        if let Some(err) = refused {
            self.undo_event()?;
            return Err(err);
        }
        self.in_event = false;
        self.nested = 0;
        self.run("RELEASE dohost_event")?;
        self.changes.finish_event();
        Ok(())
    }

    /// Undoes the event's writes (nothing to do outside an event, or when
    /// SQLite already rolled back the whole transaction).
    pub fn undo_event(&mut self) -> Result<()> {
        let open = self.in_event && self.lost.is_none();
        self.in_event = false;
        self.nested = 0;
        self.doomed = None;
        self.schema_by_events = false;
        self.changes.undo_event();
        if open {
            self.conn
                .execute_batch("ROLLBACK TO dohost_event; RELEASE dohost_event")?;
        }
        Ok(())
    }

    /// True if deferred foreign keys are unresolved in the open transaction.
    fn deferred_fk_violations(&self) -> bool {
        let (mut current, mut high) = (0, 0);
        // SAFETY: the handle is this open connection's, used on its own thread.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_db_status(
                self.conn.handle(),
                rusqlite::ffi::SQLITE_DBSTATUS_DEFERRED_FKS,
                &mut current,
                &mut high,
                0,
            )
        };
        rc == rusqlite::ffi::SQLITE_OK && current > 0
    }

    /// Why SQLite ended the batch transaction, if it did; the database is
    /// ready for a new transaction afterwards.
    pub fn take_lost(&mut self) -> Option<String> {
        let reason = self.lost.take()?;
        self.schema_by_events = false;
        self.changes.clear();
        self.in_transaction = false;
        self.in_event = false;
        self.nested = 0;
        self.doomed = None;
        Some(reason)
    }

    fn page_count(&self) -> Result<u64> {
        let pages: i64 = self
            .conn
            .prepare_cached("PRAGMA page_count")?
            .query_row([], |r| r.get(0))?;
        Ok(pages.max(0) as u64)
    }

    fn max_pages(&self) -> u64 {
        self.limits.max_bytes / PAGE_SIZE
    }

    fn quota_message(&self) -> String {
        format!(
            "storage quota exceeded: this object's database is limited to {} bytes \
             (limits.max_storage_bytes); delete data, or raise the limit",
            self.limits.max_bytes
        )
    }

    /// Runs one guest storage operation. It is refused once the transaction
    /// is gone (a write would otherwise commit on its own); a write that goes
    /// over the quota is undone (near the quota each write runs in its own
    /// savepoint, far below it an overrun dooms the event); and a statement
    /// under which SQLite ended the whole transaction is reported as such.
    pub(crate) fn guest_op<T>(
        &mut self,
        write: bool,
        f: impl FnOnce(&mut ObjectDb) -> Result<T>,
    ) -> Result<T> {
        self.guest_op_then(write, f, |_| true)
    }

    /// The same, where the result tells whether the operation could have
    /// written after all (`wrote`): a read-only one skips the quota check,
    /// which costs a statement of its own.
    pub(crate) fn guest_op_then<T>(
        &mut self,
        write: bool,
        f: impl FnOnce(&mut ObjectDb) -> Result<T>,
        wrote: impl FnOnce(&T) -> bool,
    ) -> Result<T> {
        if let Some(reason) = &self.lost {
            return Err(StorageError::TransactionLost(reason.clone()));
        }
        let max = self.max_pages();
        let undoable = write && self.pages + quota_margin_pages(max) > max;
        if undoable {
            self.run("SAVEPOINT dohost_op")?;
        }
        let result = f(self);
        if self.in_transaction && self.conn.is_autocommit() {
            let reason = match &result {
                Err(e) => e.to_string(),
                Ok(_) => "a statement ended the transaction".to_string(),
            };
            tracing::warn!(
                "{}: {reason}; the batch was rolled back",
                self.path.display()
            );
            self.lost = Some(reason.clone());
            return Err(match result {
                Err(StorageError::DeadlineExceeded) => StorageError::DeadlineExceeded,
                _ => StorageError::TransactionLost(reason),
            });
        }
        let result = match result {
            Ok(v) if write && wrote(&v) => {
                self.pages = self.page_count()?;
                if self.pages > max {
                    Err(StorageError::Quota(self.quota_message()))
                } else {
                    Ok(v)
                }
            }
            other => other,
        };
        match (&result, undoable) {
            (Err(StorageError::Quota(_)), true) => {
                self.conn
                    .execute_batch("ROLLBACK TO dohost_op; RELEASE dohost_op")?;
                self.pages = self.page_count()?;
            }
            (Err(StorageError::Quota(reason)), false) => self.doomed = Some(reason.clone()),
            (_, true) => self.run("RELEASE dohost_op")?,
            (_, false) => {}
        }
        self.note_guest_effects()?;
        result
    }

    /// Records what the guard saw the last guest statement do.
    fn note_guest_effects(&mut self) -> Result<()> {
        if self.guard.take_defer_set() {
            self.defer_set = true;
        }
        if self.guard.take_schema_changed()
            && self.phase == Phase::Event
            && !self.schema_by_events
            && self.in_transaction
        {
            self.set_meta(Meta::SchemaByEvents, rusqlite::types::Value::Integer(1))?;
            self.schema_by_events = true;
        }
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

    /// A host metadata value.
    pub fn meta(&self, meta: Meta) -> Result<Option<rusqlite::types::Value>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM _dohost_meta WHERE key = ?1")?
            .query_row([meta.key()], |r| r.get(0))
            .optional()?)
    }

    /// Sets (or, with NULL, deletes) a host metadata value, and records the
    /// change for the event (or the batch, outside events).
    pub fn set_meta(&mut self, meta: Meta, value: rusqlite::types::Value) -> Result<()> {
        self.write_meta(meta.key(), value)?;
        self.changes.wrote(meta, self.in_event);
        Ok(())
    }

    /// Which host metadata the event and the batch changed.
    pub fn meta_changes(&self) -> &MetaChanges {
        &self.changes
    }

    fn write_meta(&self, key: &str, value: rusqlite::types::Value) -> Result<()> {
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

    /// Deletes everything of the guest: triggers first (so that nothing of
    /// the guest runs while the host drops its tables), virtual tables, views,
    /// tables (with their indexes), statistics, `user_version` and
    /// `application_id`, every KV entry, and the host metadata about it (all
    /// but the name: the alarm, the auto-response pair).
    pub fn delete_all(&mut self) -> Result<()> {
        let deferred: bool = self
            .conn
            .pragma_query_value(None, "defer_foreign_keys", |r| r.get(0))?;
        // Foreign keys between dropped tables must not fail the drop.
        self.conn.pragma_update(None, "defer_foreign_keys", true)?;
        for (kind, name) in self.guest_schema()? {
            let quoted = name.replace('"', "\"\"");
            self.conn
                .execute_batch(&format!("DROP {kind} IF EXISTS \"{quoted}\""))?;
        }
        for stat in ["sqlite_stat1", "sqlite_stat4", "sqlite_sequence"] {
            let exists: bool = self.conn.query_row(
                "SELECT count(*) > 0 FROM sqlite_schema WHERE name = ?1",
                [stat],
                |r| r.get(0),
            )?;
            if exists {
                self.conn.execute_batch(&format!("DELETE FROM {stat}"))?;
            }
        }
        self.conn.execute_batch(
            "PRAGMA user_version = 0; PRAGMA application_id = 0; DELETE FROM _dohost_kv",
        )?;
        for meta in Meta::deleted_with_all() {
            self.set_meta(meta, rusqlite::types::Value::Null)?;
        }
        self.conn
            .pragma_update(None, "defer_foreign_keys", deferred)?;
        Ok(())
    }

    /// The guest's schema objects as (DROP kind, name), in the order they
    /// can be dropped: triggers, virtual tables, views, then tables. The
    /// shadow tables of a virtual table go with it.
    fn guest_schema(&self) -> Result<Vec<(&'static str, String)>> {
        let mut stmt = self.conn.prepare(
            "SELECT type, name, coalesce(sql, '') LIKE 'CREATE VIRTUAL TABLE%' FROM sqlite_schema
             WHERE type IN ('table', 'view', 'trigger')
               AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
               AND name NOT LIKE '\\_dohost\\_%' ESCAPE '\\'",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, bool>(2)?,
            ))
        })?;
        let mut objects = Vec::new();
        for row in rows {
            let (kind, name, virtual_table) = row?;
            let (order, kind) = match (kind.as_str(), virtual_table) {
                ("trigger", _) => (0, "TRIGGER"),
                ("table", true) => (1, "TABLE"),
                ("view", _) => (2, "VIEW"),
                _ => (3, "TABLE"),
            };
            objects.push((order, kind, name));
        }
        objects.sort();
        Ok(objects.into_iter().map(|(_, k, n)| (k, n)).collect())
    }

    /// True if the database holds nothing that running the constructor again
    /// would not rebuild: no KV entry, no metadata but the name, no row in any
    /// table, and a schema that only constructors created. Such a database
    /// can be removed when the object hibernates (no disk for objects that
    /// were only looked at).
    pub fn is_disposable(&self) -> Result<bool> {
        let stored: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM _dohost_kv)
                 OR EXISTS (SELECT 1 FROM _dohost_meta WHERE key <> ?1)",
            [Meta::Name.key()],
            |r| r.get(0),
        )?;
        if stored {
            return Ok(false);
        }
        let tables: Vec<String> = self
            .conn
            .prepare(
                "SELECT name FROM sqlite_schema WHERE type = 'table'
                   AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL TABLE%'
                   AND name NOT LIKE '\\_dohost\\_%' ESCAPE '\\'",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for table in tables {
            let quoted = table.replace('"', "\"\"");
            let has_rows: bool = self.conn.query_row(
                &format!("SELECT EXISTS (SELECT 1 FROM \"{quoted}\")"),
                [],
                |r| r.get(0),
            )?;
            if has_rows {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Checkpoints and truncates a WAL that grew beyond `WAL_KEEP_BYTES`
    /// (reopening reads the whole WAL back; a hibernating object should not
    /// keep megabytes of it).
    pub fn compact_wal(&mut self) -> Result<()> {
        let wal = PathBuf::from(format!("{}-wal", self.path.display()));
        let size = std::fs::metadata(&wal).map_or(0, |m| m.len());
        if size > WAL_KEEP_BYTES {
            if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
                stop_if_sync_failed(&self.path, &e);
                return Err(e.into());
            }
        }
        Ok(())
    }
}

/// Removes an object's database files (after `is_disposable` said so and
/// the connection is closed).
pub fn remove_database(path: &Path) -> std::io::Result<()> {
    for suffix in ["-wal", "-shm", ""] {
        match std::fs::remove_file(format!("{}{suffix}", path.display())) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
