//! `dohost:object/sql`: guest SQL over the object's database.

use super::StorageView;
use crate::bindings::dohost::object::sql::{self, Cursor};
use crate::bindings::dohost::object::types::SqlValue;
use rusqlite::types::Value;

fn to_sqlite(v: SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => Value::Integer(i),
        SqlValue::Real(r) => Value::Real(r),
        SqlValue::Text(t) => Value::Text(t),
        SqlValue::Blob(b) => Value::Blob(b),
    }
}

fn to_wit(v: Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Integer(i) => SqlValue::Integer(i),
        Value::Real(r) => SqlValue::Real(r),
        Value::Text(t) => SqlValue::Text(t),
        Value::Blob(b) => SqlValue::Blob(b),
    }
}

impl sql::Host for StorageView<'_> {
    fn exec(
        &mut self,
        query: String,
        params: Vec<SqlValue>,
    ) -> wasmtime::Result<Result<Cursor, String>> {
        let params: Vec<Value> = params.into_iter().map(to_sqlite).collect();
        let result = self.db.exec(&query, &params).map(|c| Cursor {
            columns: c.columns,
            rows: c
                .rows
                .into_iter()
                .map(|r| r.into_iter().map(to_wit).collect())
                .collect(),
            rows_read: c.rows_read,
            rows_written: c.rows_written,
        });
        self.result(result)
    }

    fn database_size(&mut self) -> wasmtime::Result<Result<u64, String>> {
        let result = self.db.size();
        self.result(result)
    }

    fn begin_nested(&mut self) -> wasmtime::Result<Result<(), String>> {
        self.guest(false, |db| db.begin_nested())
    }

    fn commit_nested(&mut self) -> wasmtime::Result<Result<(), String>> {
        self.guest(false, |db| db.commit_nested())
    }

    fn rollback_nested(&mut self) -> wasmtime::Result<Result<(), String>> {
        self.guest(false, |db| db.rollback_nested())
    }
}
