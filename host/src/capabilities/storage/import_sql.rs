//! `dohost:object/sql`: guest SQL over the object's database.

use super::StorageView;
use crate::bindings::dohost::object::sql::{self, Cursor};
use crate::bindings::dohost::object::types::SqlValue;
use crate::bindings::StorageFailure;
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
    fn exec(&mut self, query: String, params: Vec<SqlValue>) -> Result<Cursor, StorageFailure> {
        let params: Vec<Value> = params.into_iter().map(to_sqlite).collect();
        let cursor = self.db.exec(&query, &params)?;
        Ok(Cursor {
            columns: cursor.columns,
            rows: cursor
                .rows
                .into_iter()
                .map(|r| r.into_iter().map(to_wit).collect())
                .collect(),
            rows_read: cursor.rows_read,
            rows_written: cursor.rows_written,
        })
    }
}
