//! Guest KV: string keys to byte values in `_dohost_kv`, in key (byte) order,
//! within the event's transaction.

use super::{ObjectDb, Result, StorageError};
use crate::config::limits::{MAX_BATCH_KEYS, MAX_KEY_BYTES, MAX_KV_LIST_BYTES, MAX_VALUE_BYTES};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::OptionalExtension;

/// Options of `list`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    pub prefix: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub reverse: bool,
    pub limit: Option<u32>,
}

fn check_key(key: &str) -> Result<()> {
    if key.len() > MAX_KEY_BYTES {
        return Err(StorageError::Invalid(format!(
            "key too long: {} bytes (keys are at most {MAX_KEY_BYTES} bytes)",
            key.len()
        )));
    }
    Ok(())
}

fn check_value(key: &str, value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        let shown: String = key.chars().take(64).collect();
        return Err(StorageError::Invalid(format!(
            "value of key {shown:?} too large: {} bytes (values are at most {MAX_VALUE_BYTES} bytes)",
            value.len()
        )));
    }
    Ok(())
}

fn check_batch(n: usize) -> Result<()> {
    if n > MAX_BATCH_KEYS {
        return Err(StorageError::Invalid(format!(
            "too many keys: {n} (a batch holds at most {MAX_BATCH_KEYS} keys)"
        )));
    }
    Ok(())
}

/// The smallest byte string greater than every string that starts with
/// `prefix`, or `None` if there is none (prefix of only 0xFF bytes).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A bound compared as TEXT by bytes, possibly not valid UTF-8.
struct TextBytes(Vec<u8>);

impl rusqlite::ToSql for TextBytes {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(&self.0)))
    }
}

impl ObjectDb {
    pub fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>> {
        self.guest_op(false, |db| db.kv_get_one(key))
    }

    fn kv_get_one(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM _dohost_kv WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    /// The entries that exist among `keys`, in key order.
    pub fn kv_get_many(&mut self, keys: &[String]) -> Result<Vec<(String, Vec<u8>)>> {
        self.guest_op(false, |db| db.kv_get_many_now(keys))
    }

    fn kv_get_many_now(&self, keys: &[String]) -> Result<Vec<(String, Vec<u8>)>> {
        check_batch(keys.len())?;
        let mut found = Vec::new();
        for key in keys {
            if let Some(value) = self.kv_get_one(key)? {
                found.push((key.clone(), value));
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found.dedup_by(|a, b| a.0 == b.0);
        Ok(found)
    }

    pub fn kv_put(&mut self, key: &str, value: &[u8]) -> Result<()> {
        self.guest_op(true, |db| db.kv_put_one(key, value))
    }

    fn kv_put_one(&self, key: &str, value: &[u8]) -> Result<()> {
        check_key(key)?;
        check_value(key, value)?;
        self.conn
            .prepare_cached(
                "INSERT INTO _dohost_kv (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?
            .execute(rusqlite::params![key, value])?;
        Ok(())
    }

    /// Stores all entries or none.
    pub fn kv_put_many(&mut self, entries: &[(String, Vec<u8>)]) -> Result<()> {
        check_batch(entries.len())?;
        for (key, value) in entries {
            check_key(key)?;
            check_value(key, value)?;
        }
        self.guest_op(true, |db| {
            db.run("SAVEPOINT dohost_op_many")?;
            let stored = entries.iter().try_for_each(|(k, v)| db.kv_put_one(k, v));
            match stored {
                Ok(()) => db.run("RELEASE dohost_op_many")?,
                Err(_) => db
                    .conn
                    .execute_batch("ROLLBACK TO dohost_op_many; RELEASE dohost_op_many")?,
            }
            stored
        })
    }

    /// True if the key existed.
    pub fn kv_delete(&mut self, key: &str) -> Result<bool> {
        self.guest_op(false, |db| db.kv_delete_one(key))
    }

    fn kv_delete_one(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        let n = self
            .conn
            .prepare_cached("DELETE FROM _dohost_kv WHERE key = ?1")?
            .execute([key])?;
        Ok(n > 0)
    }

    /// The number of keys that existed.
    pub fn kv_delete_many(&mut self, keys: &[String]) -> Result<u32> {
        check_batch(keys.len())?;
        for key in keys {
            check_key(key)?;
        }
        self.guest_op(false, |db| {
            let mut deleted = 0;
            for key in keys {
                deleted += db.kv_delete_one(key)? as u32;
            }
            Ok(deleted)
        })
    }

    /// Entries in key order, at most `MAX_KV_LIST_BYTES` of them: a list that
    /// would be larger is refused (ask for fewer with `limit`).
    pub fn kv_list(&mut self, options: &ListOptions) -> Result<Vec<(String, Vec<u8>)>> {
        self.guest_op(false, |db| db.kv_list_now(options))
    }

    fn kv_list_now(&self, options: &ListOptions) -> Result<Vec<(String, Vec<u8>)>> {
        // Lower bound: the larger of start and prefix; upper: the smaller of end
        // and the first string past the prefix.
        let mut lower: Option<Vec<u8>> = options.start.as_ref().map(|s| s.as_bytes().to_vec());
        let mut upper: Option<Vec<u8>> = options.end.as_ref().map(|s| s.as_bytes().to_vec());
        if let Some(prefix) = &options.prefix {
            let p = prefix.as_bytes().to_vec();
            if lower.as_ref().is_none_or(|l| *l < p) {
                lower = Some(p.clone());
            }
            if let Some(pe) = prefix_end(&p) {
                if upper.as_ref().is_none_or(|u| pe < *u) {
                    upper = Some(pe);
                }
            }
        }
        let mut sql = String::from("SELECT key, value FROM _dohost_kv WHERE 1");
        let mut binds: Vec<TextBytes> = Vec::new();
        if let Some(l) = lower {
            binds.push(TextBytes(l));
            sql.push_str(&format!(" AND key >= ?{}", binds.len()));
        }
        if let Some(u) = upper {
            binds.push(TextBytes(u));
            sql.push_str(&format!(" AND key < ?{}", binds.len()));
        }
        sql.push_str(if options.reverse {
            " ORDER BY key DESC"
        } else {
            " ORDER BY key"
        });
        sql.push_str(&format!(" LIMIT ?{}", binds.len() + 1));
        let limit = options.limit.map_or(-1, i64::from);
        let mut params: Vec<&dyn rusqlite::ToSql> =
            binds.iter().map(|b| b as &dyn rusqlite::ToSql).collect();
        params.push(&limit);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params.as_slice())?;
        let (mut entries, mut bytes) = (Vec::new(), 0usize);
        while let Some(row) = rows.next()? {
            let (key, value): (String, Vec<u8>) = (row.get(0)?, row.get(1)?);
            bytes += key.len() + value.len() + 16;
            if bytes > MAX_KV_LIST_BYTES {
                return Err(StorageError::Invalid(format!(
                    "list result too large: more than {MAX_KV_LIST_BYTES} bytes; \
                     pass a limit (and continue from the last key with start)"
                )));
            }
            entries.push((key, value));
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_the_next_string_after_the_prefix() {
        assert_eq!(prefix_end(b"user:"), Some(b"user;".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
