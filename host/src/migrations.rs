//! The migrations applied to a data dir, in
//! `<data_dir>/_dohost/migrations.sqlite`: one row per tag, in the order the
//! manifest lists them. Tags are append-only, as on Cloudflare: a manifest
//! whose tags do not start with the applied ones (a tag rewritten, removed or
//! moved) is refused with the tag at fault, before anything is served. The
//! pending tags are recorded in one transaction when the host starts
//! (`new_sqlite_classes` needs no other step: an object's database is created
//! at its first event).

use anyhow::Context;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

/// A migration recorded as applied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    pub tag: String,
    /// When it was applied (epoch ms).
    pub applied_at: i64,
}

/// The record's file in `data_dir`.
pub fn record_path(data_dir: &Path) -> PathBuf {
    data_dir.join("_dohost").join("migrations.sqlite")
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS applied (
    position INTEGER PRIMARY KEY, tag TEXT NOT NULL UNIQUE, applied_at INTEGER NOT NULL)";

/// The applied migrations of `data_dir`, oldest first (none if it has no record).
/// Reads only: safe while a host serves the data dir.
pub fn applied(data_dir: &Path) -> anyhow::Result<Vec<Applied>> {
    let path = record_path(data_dir);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {}", path.display()))?;
    read(&conn).with_context(|| format!("reading {}", path.display()))
}

fn read(conn: &Connection) -> rusqlite::Result<Vec<Applied>> {
    conn.prepare("SELECT tag, applied_at FROM applied ORDER BY position")?
        .query_map([], |r| {
            Ok(Applied {
                tag: r.get(0)?,
                applied_at: r.get(1)?,
            })
        })?
        .collect()
}

/// Why the manifest's `tags` cannot follow what `applied` recorded, if they cannot.
pub fn check_order(applied: &[Applied], tags: &[String]) -> Result<(), String> {
    for (i, done) in applied.iter().enumerate() {
        match tags.get(i) {
            Some(tag) if *tag == done.tag => {}
            Some(tag) => {
                return Err(format!(
                    "migrations[{i}].tag: is {tag:?}, but this data dir applied {:?} at that place; applied tags are append-only: keep them as they were, in order, and add new migrations after them",
                    done.tag
                ))
            }
            None => {
                return Err(format!(
                    "migrations: the tag {:?} applied to this data dir (migrations[{i}]) is missing from the manifest; applied tags are append-only: put it back",
                    done.tag
                ))
            }
        }
    }
    Ok(())
}

/// Checks `tags` against the record of `data_dir` and records the pending
/// ones (atomically); returns the tags it applied. The caller holds the data
/// dir's lock.
pub fn apply(data_dir: &Path, tags: &[String], now_ms: i64) -> anyhow::Result<Vec<String>> {
    let path = record_path(data_dir);
    let mut conn =
        Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(SCHEMA)?;
    let tx = conn.transaction()?;
    let done = read(&tx)?;
    check_order(&done, tags).map_err(anyhow::Error::msg)?;
    let pending = &tags[done.len()..];
    for (i, tag) in pending.iter().enumerate() {
        tx.execute(
            "INSERT INTO applied (position, tag, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![(done.len() + i) as i64, tag, now_ms],
        )?;
    }
    tx.commit()
        .with_context(|| format!("recording migrations in {}", path.display()))?;
    Ok(pending.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn pending_tags_are_recorded_once_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("_dohost")).unwrap();
        assert_eq!(apply(dir.path(), &tags(&["v1"]), 10).unwrap(), ["v1"]);
        assert_eq!(
            apply(dir.path(), &tags(&["v1", "v2", "v3"]), 20).unwrap(),
            ["v2", "v3"]
        );
        assert!(apply(dir.path(), &tags(&["v1", "v2", "v3"]), 30)
            .unwrap()
            .is_empty());
        let done = applied(dir.path()).unwrap();
        let seen: Vec<_> = done
            .iter()
            .map(|a| (a.tag.as_str(), a.applied_at))
            .collect();
        assert_eq!(seen, [("v1", 10), ("v2", 20), ("v3", 20)]);
    }

    #[test]
    fn a_rewritten_reordered_or_removed_tag_is_refused_and_nothing_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("_dohost")).unwrap();
        apply(dir.path(), &tags(&["v1", "v2"]), 10).unwrap();
        let cases = [
            (
                tags(&["v1", "v2b", "v3"]),
                "migrations[1].tag: is \"v2b\", but this data dir applied \"v2\"",
            ),
            (
                tags(&["v2", "v1"]),
                "migrations[0].tag: is \"v2\", but this data dir applied \"v1\"",
            ),
            (
                tags(&["v1"]),
                "the tag \"v2\" applied to this data dir (migrations[1]) is missing",
            ),
        ];
        for (manifest, message) in cases {
            let err = apply(dir.path(), &manifest, 20).unwrap_err().to_string();
            assert!(err.contains(message), "{err}");
        }
        assert_eq!(applied(dir.path()).unwrap().len(), 2);
    }
}
