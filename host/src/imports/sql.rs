//! `dohost:object/sql`: guest SQL over the object's database.

use crate::bindings::dohost::object::sql::{self, Cursor};
use crate::bindings::dohost::object::types::SqlValue;
use crate::instance::InstanceState;
use rusqlite::types::Value;
use wasmtime::component::{HasSelf, Linker};

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    sql::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

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

impl sql::Host for InstanceState {
    fn exec(
        &mut self,
        query: String,
        params: Vec<SqlValue>,
    ) -> wasmtime::Result<Result<Cursor, String>> {
        let params: Vec<Value> = params.into_iter().map(to_sqlite).collect();
        Ok(match self.db.exec(&query, &params) {
            Ok(c) => Ok(Cursor {
                columns: c.columns,
                rows: c
                    .rows
                    .into_iter()
                    .map(|r| r.into_iter().map(to_wit).collect())
                    .collect(),
                rows_read: c.rows_read,
                rows_written: c.rows_written,
            }),
            Err(e) => Err(self.storage_error(e)),
        })
    }

    fn database_size(&mut self) -> wasmtime::Result<Result<u64, String>> {
        Ok(self.db.size().map_err(|e| self.storage_error(e)))
    }

    fn begin_nested(&mut self) -> wasmtime::Result<Result<(), String>> {
        Ok(self.db.begin_nested().map_err(|e| self.storage_error(e)))
    }

    fn commit_nested(&mut self) -> wasmtime::Result<Result<(), String>> {
        Ok(self.db.commit_nested().map_err(|e| self.storage_error(e)))
    }

    fn rollback_nested(&mut self) -> wasmtime::Result<Result<(), String>> {
        Ok(self.db.rollback_nested().map_err(|e| self.storage_error(e)))
    }
}
