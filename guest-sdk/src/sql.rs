//! SQL values and the cursor returned by `exec`, with serde helpers for rows.

use crate::bindings::dohost::object::sql as wit;
use crate::{Error, Result};
use serde::de::DeserializeOwned;

/// One SQLite value (`null`, `integer`, `real`, `text` or `blob`).
pub use crate::bindings::dohost::object::types::SqlValue;

/// Builds a `&[SqlValue]` parameter list: `params![name, 42, 1.5, None::<i64>]`.
#[macro_export]
macro_rules! params {
    () => { &[] as &[$crate::SqlValue] };
    ($($value:expr),+ $(,)?) => { &[$($crate::SqlValue::from($value)),+] as &[$crate::SqlValue] };
}

macro_rules! integer_from {
    ($($t:ty),*) => {$(
        impl From<$t> for SqlValue {
            fn from(v: $t) -> Self { SqlValue::Integer(v as i64) }
        }
    )*};
}
integer_from!(i8, i16, i32, i64, u8, u16, u32, isize);

impl From<u64> for SqlValue {
    /// Values above `i64::MAX` wrap; SQLite has no unsigned 64-bit type.
    fn from(v: u64) -> Self {
        SqlValue::Integer(v as i64)
    }
}

impl From<bool> for SqlValue {
    fn from(v: bool) -> Self {
        SqlValue::Integer(v as i64)
    }
}

impl From<f64> for SqlValue {
    fn from(v: f64) -> Self {
        SqlValue::Real(v)
    }
}

impl From<f32> for SqlValue {
    fn from(v: f32) -> Self {
        SqlValue::Real(v as f64)
    }
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_string())
    }
}

impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}

impl From<&String> for SqlValue {
    fn from(v: &String) -> Self {
        SqlValue::Text(v.clone())
    }
}

impl From<Vec<u8>> for SqlValue {
    fn from(v: Vec<u8>) -> Self {
        SqlValue::Blob(v)
    }
}

impl From<&[u8]> for SqlValue {
    fn from(v: &[u8]) -> Self {
        SqlValue::Blob(v.to_vec())
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

impl SqlValue {
    /// The value as JSON: integers and reals as numbers, text as a string, blobs
    /// as an array of bytes, null as null.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            SqlValue::Null => serde_json::Value::Null,
            SqlValue::Integer(i) => (*i).into(),
            SqlValue::Real(r) => serde_json::Number::from_f64(*r)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            SqlValue::Text(t) => t.clone().into(),
            SqlValue::Blob(b) => b.clone().into(),
        }
    }

    /// The integer, if this is an `Integer`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            SqlValue::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The text, if this is a `Text`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            SqlValue::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// The result of [`crate::Storage::sql`]`().exec(…)`: column names, rows and
/// counters of the last statement.
#[derive(Debug, Clone)]
pub struct Cursor {
    /// Column names of the last statement, in order.
    pub columns: Vec<String>,
    /// Rows of the last statement, each with one value per column.
    pub rows: Vec<Vec<SqlValue>>,
    /// Rows read by all statements of the call.
    pub rows_read: u64,
    /// Rows written by all statements of the call.
    pub rows_written: u64,
}

impl Cursor {
    pub(crate) fn from_wit(c: wit::Cursor) -> Self {
        Cursor {
            columns: c.columns,
            rows: c.rows,
            rows_read: c.rows_read,
            rows_written: c.rows_written,
        }
    }

    /// Each row as a JSON object keyed by column name.
    pub fn json_rows(&self) -> Vec<serde_json::Map<String, serde_json::Value>> {
        self.rows
            .iter()
            .map(|row| {
                self.columns
                    .iter()
                    .cloned()
                    .zip(row.iter().map(SqlValue::to_json))
                    .collect()
            })
            .collect()
    }

    /// Every row deserialized into `T` (a struct or map keyed by column name).
    pub fn rows<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.json_rows()
            .into_iter()
            .map(|row| {
                serde_json::from_value(serde_json::Value::Object(row))
                    .map_err(|e| Error::new(format!("row does not match the expected type: {e}")))
            })
            .collect()
    }

    /// Exactly one row deserialized into `T`; an error for zero or several rows.
    pub fn one<T: DeserializeOwned>(&self) -> Result<T> {
        match self.rows.len() {
            1 => Ok(self.rows::<T>()?.remove(0)),
            n => Err(Error::new(format!("expected exactly one row, got {n}"))),
        }
    }

    /// The first column of exactly one row, e.g. `SELECT count(*) FROM t`.
    pub fn scalar<T: DeserializeOwned>(&self) -> Result<T> {
        let [row] = self.rows.as_slice() else {
            return Err(Error::new(format!(
                "expected exactly one row, got {}",
                self.rows.len()
            )));
        };
        let value = row
            .first()
            .ok_or_else(|| Error::new("the row has no columns"))?;
        serde_json::from_value(value.to_json())
            .map_err(|e| Error::new(format!("value does not match the expected type: {e}")))
    }
}
