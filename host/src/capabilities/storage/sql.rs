//! Guest SQL: `exec` of one or more statements with `?` parameters, under the
//! SQL guard, with row counters and a bound on the result size.

use super::guard::SqlGuard;
use super::{sql_text, ObjectDb, Result, StorageError};
use crate::config::limits::{MAX_SQL_RESULT_BYTES, MAX_SQL_TEXT_BYTES};
use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::types::Value;
use rusqlite::{Batch, Connection, StatementStatus};

/// The result of `exec`: the last statement's columns and rows, and counters
/// summed over all statements.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Cursor {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// Rows returned, or rows stepped over by full table scans when that is
    /// larger (SQLite exposes no exact per-row read counter).
    pub rows_read: u64,
    /// Rows inserted, updated or deleted (including by triggers and cascades).
    pub rows_written: u64,
    /// False when every statement was read-only (`sqlite3_stmt_readonly`):
    /// the database cannot have grown, so the quota check is skipped.
    pub may_have_written: bool,
}

fn value_bytes(v: &Value) -> usize {
    match v {
        Value::Text(t) => t.len() + 16,
        Value::Blob(b) => b.len() + 16,
        _ => 16,
    }
}

impl ObjectDb {
    /// Runs guest SQL. Several statements separated by `;` run in order,
    /// atomically (all or none); `params` bind in order across them.
    pub fn exec(&mut self, query: &str, params: &[Value]) -> Result<Cursor> {
        if query.len() > MAX_SQL_TEXT_BYTES {
            return Err(StorageError::Invalid(format!(
                "query too long: {} bytes (at most {MAX_SQL_TEXT_BYTES})",
                query.len()
            )));
        }
        sql_text::check(query).map_err(StorageError::Refused)?;
        self.guest_op_then(
            true,
            |db| db.exec_guarded(query, params),
            |cursor| cursor.may_have_written,
        )
    }

    fn exec_guarded(&mut self, query: &str, params: &[Value]) -> Result<Cursor> {
        let guest = |f: &dyn Fn() -> Result<Cursor>| {
            self.guard
                .as_guest(f)
                .map_err(|e| match self.guard.take_denial() {
                    Some(reason) => StorageError::Refused(reason),
                    None => e,
                })
        };
        if !query.contains(';') {
            return guest(&|| exec_one(&self.conn, &self.guard, query, params));
        }
        // Several statements: all or none, through a host-owned savepoint.
        self.conn.execute_batch("SAVEPOINT dohost_exec")?;
        match guest(&|| exec_many(&self.conn, query, params)) {
            Ok(cursor) => {
                self.conn.execute_batch("RELEASE dohost_exec")?;
                Ok(cursor)
            }
            Err(e) => {
                self.conn
                    .execute_batch("ROLLBACK TO dohost_exec; RELEASE dohost_exec")?;
                Err(e)
            }
        }
    }
}

/// Prefix of every guest statement in the prepared-statement cache. The cache
/// is keyed by SQL text and shared with the host's statements, which were
/// authorized without the guard: a guest must never get one of those back by
/// sending the same text. Host statements never start with this comment, and a
/// guest's always do (the comment changes nothing else).
pub(super) const GUEST_CACHE_PREFIX: &str = "--guest\n";

/// One statement, through the prepared-statement cache. Statements that
/// change the schema or `defer_foreign_keys` are not kept in the cache: the
/// guard must see them every time they run (it only sees a preparation).
fn exec_one(conn: &Connection, guard: &SqlGuard, query: &str, params: &[Value]) -> Result<Cursor> {
    let mut keyed = String::with_capacity(GUEST_CACHE_PREFIX.len() + query.len());
    keyed.push_str(GUEST_CACHE_PREFIX);
    keyed.push_str(query);
    let mut stmt = match conn.prepare_cached(&keyed) {
        Ok(stmt) => stmt,
        Err(rusqlite::Error::Empty) => return Err(StorageError::Invalid("query is empty".into())),
        // The message quotes the guest's text, not the cache key.
        Err(rusqlite::Error::SqlInputError {
            msg, sql, offset, ..
        }) => {
            let sql = sql.strip_prefix(GUEST_CACHE_PREFIX).unwrap_or(&sql);
            let prefix = GUEST_CACHE_PREFIX.len() as i32;
            let offset = if offset >= prefix {
                offset - prefix
            } else {
                offset
            };
            return Err(StorageError::Sql(format!(
                "{msg} in {sql} at offset {offset}"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let expected = stmt.parameter_count();
    if expected != params.len() {
        return Err(wrong_params(expected, params.len()));
    }
    let mut cursor = Cursor::default();
    let result = run(conn, &mut stmt, params, &mut cursor);
    if guard.has_notes() {
        stmt.discard();
    }
    result.map(|()| cursor)
}

/// Several statements in order; the caller makes them atomic.
fn exec_many(conn: &Connection, query: &str, params: &[Value]) -> Result<Cursor> {
    {
        let mut cursor = Cursor::default();
        let mut batch = Batch::new(conn, query);
        let mut used = 0;
        let mut statements = 0;
        while let Some(mut stmt) = batch.next()? {
            statements += 1;
            let n = stmt.parameter_count();
            let Some(these) = params.get(used..used + n) else {
                return Err(StorageError::Invalid(format!(
                    "statement {statements} needs {n} parameter(s) but only {} remain of the {} given",
                    params.len() - used,
                    params.len()
                )));
            };
            used += n;
            cursor.columns.clear();
            cursor.rows.clear();
            run(conn, &mut stmt, these, &mut cursor)?;
        }
        if statements == 0 {
            return Err(StorageError::Invalid("query is empty".into()));
        }
        if used != params.len() {
            return Err(wrong_params(used, params.len()));
        }
        Ok(cursor)
    }
}

fn wrong_params(expected: usize, given: usize) -> StorageError {
    StorageError::Invalid(format!(
        "the query has {expected} parameter(s) but {given} were given"
    ))
}

/// Binds, steps and collects one statement; adds its counters to `cursor`.
fn run(
    conn: &Connection,
    stmt: &mut rusqlite::Statement<'_>,
    params: &[Value],
    cursor: &mut Cursor,
) -> Result<()> {
    for (i, value) in params.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, value)?;
    }
    cursor.may_have_written |= !stmt.readonly();
    let changes_before = conn.total_changes();
    stmt.reset_status(StatementStatus::FullscanStep);
    let columns: Vec<String> = stmt.column_names().map(String::from).collect();
    let ncol = columns.len();
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    {
        let mut it = stmt.raw_query();
        while let Some(row) = it.next()? {
            let mut values = Vec::with_capacity(ncol);
            for i in 0..ncol {
                let v: Value = row.get(i)?;
                bytes += value_bytes(&v);
                values.push(v);
            }
            if bytes > MAX_SQL_RESULT_BYTES {
                return Err(StorageError::Invalid(format!(
                    "result too large: more than {MAX_SQL_RESULT_BYTES} bytes; select fewer rows \
                     (LIMIT/OFFSET) or columns"
                )));
            }
            rows.push(values);
        }
    }
    // FULLSCAN_STEP counts moves to a next row: a scan of n rows makes n-1.
    let steps = stmt.get_status(StatementStatus::FullscanStep).max(0) as u64;
    let scanned = if steps > 0 { steps + 1 } else { 0 };
    cursor.rows_read += scanned.max(rows.len() as u64);
    cursor.rows_written += conn.total_changes() - changes_before;
    cursor.columns = columns;
    cursor.rows = rows;
    Ok(())
}
