//! `Storage`: the object's private SQLite database (SQL and KV) and its alarm.
//! All of it belongs to the current event's transaction.

use crate::bindings::dohost::object::{alarms, kv, sql as wit_sql, storage as wit_storage};
use crate::sql::{Cursor, SqlValue};
use crate::{Error, Result};
use serde::{de::DeserializeOwned, Serialize};

/// Handle to the object's storage. Cheap to copy.
#[derive(Debug, Clone, Copy, Default)]
pub struct Storage;

/// Handle to the SQL API.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sql;

impl Sql {
    /// Runs one or more `;`-separated statements; `?` parameters bind in order.
    /// The cursor holds the last statement's rows.
    pub fn exec(&self, query: &str, params: &[SqlValue]) -> Result<Cursor> {
        wit_sql::exec(query, params)
            .map(Cursor::from_wit)
            .map_err(Error::from)
    }

    /// Bytes used by the database.
    pub fn database_size(&self) -> Result<u64> {
        wit_storage::database_size().map_err(Error::from)
    }
}

/// Options of [`Storage::list`]; keys come back in byte order.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Only keys that start with this.
    pub prefix: Option<String>,
    /// Only keys >= start.
    pub start: Option<String>,
    /// Only keys < end.
    pub end: Option<String>,
    /// Descending order.
    pub reverse: bool,
    /// At most this many entries.
    pub limit: Option<u32>,
}

impl ListOptions {
    /// Options that list only the keys starting with `prefix`.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        ListOptions {
            prefix: Some(prefix.into()),
            ..Default::default()
        }
    }
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::new(format!(
            "value of key {key:?} is not the expected JSON: {e}"
        ))
    })
}

impl Storage {
    /// The SQL API of the object's database.
    pub fn sql(&self) -> Sql {
        Sql
    }

    /// The value of `key`, deserialized from JSON.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.get_bytes(key)?
            .map(|bytes| decode(key, &bytes))
            .transpose()
    }

    /// Stores `value` as JSON under `key`.
    pub fn put<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        self.put_bytes(key, &serde_json::to_vec(value)?)
    }

    /// The raw bytes of `key`.
    pub fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>> {
        kv::get(key).map_err(Error::from)
    }

    /// Stores raw bytes under `key`.
    pub fn put_bytes(&self, key: &str, value: &[u8]) -> Result<()> {
        kv::put(key, value).map_err(Error::from)
    }

    /// Deletes `key`; true if it existed.
    pub fn delete(&self, key: &str) -> Result<bool> {
        kv::delete(key).map_err(Error::from)
    }

    /// The existing entries among `keys` (at most 128), in key order.
    pub fn get_many<T: DeserializeOwned>(&self, keys: &[String]) -> Result<Vec<(String, T)>> {
        kv::get_many(keys)?
            .into_iter()
            .map(|(k, v)| decode(&k, &v).map(|v| (k, v)))
            .collect()
    }

    /// Stores up to 128 entries as JSON, atomically.
    pub fn put_many<T: Serialize>(&self, entries: &[(String, T)]) -> Result<()> {
        let encoded = entries
            .iter()
            .map(|(k, v)| Ok((k.clone(), serde_json::to_vec(v)?)))
            .collect::<Result<Vec<_>>>()?;
        kv::put_many(&encoded).map_err(Error::from)
    }

    /// Deletes up to 128 keys; returns how many existed.
    pub fn delete_many(&self, keys: &[String]) -> Result<u32> {
        kv::delete_many(keys).map_err(Error::from)
    }

    /// Entries in key order (or reverse), deserialized from JSON.
    pub fn list<T: DeserializeOwned>(&self, options: ListOptions) -> Result<Vec<(String, T)>> {
        self.list_bytes(options)?
            .into_iter()
            .map(|(k, v)| decode(&k, &v).map(|v| (k, v)))
            .collect()
    }

    /// Entries with raw byte values.
    pub fn list_bytes(&self, options: ListOptions) -> Result<Vec<(String, Vec<u8>)>> {
        kv::list(&kv::ListOptions {
            prefix: options.prefix,
            start: options.start,
            end: options.end,
            reverse: options.reverse,
            limit: options.limit,
        })
        .map_err(Error::from)
    }

    /// Deletes everything: SQL tables, KV entries and the alarm.
    pub fn delete_all(&self) -> Result<()> {
        wit_storage::delete_all().map_err(Error::from)
    }

    /// Runs `f` in a nested transaction (like `transactionSync`): if it returns
    /// `Err`, only its writes are rolled back and the error is returned.
    pub fn transaction<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        wit_storage::begin_nested()?;
        match f() {
            Ok(value) => {
                wit_storage::commit_nested()?;
                Ok(value)
            }
            Err(err) => {
                wit_storage::rollback_nested()?;
                Err(err)
            }
        }
    }

    /// Sets (or replaces) the alarm, in milliseconds since the Unix epoch.
    pub fn set_alarm(&self, epoch_ms: i64) -> Result<()> {
        alarms::set_alarm(epoch_ms).map_err(Error::from)
    }

    /// The scheduled alarm time, if any.
    pub fn get_alarm(&self) -> Result<Option<i64>> {
        alarms::get_alarm().map_err(Error::from)
    }

    /// Cancels the scheduled alarm, if any.
    pub fn delete_alarm(&self) -> Result<()> {
        alarms::delete_alarm().map_err(Error::from)
    }
}
