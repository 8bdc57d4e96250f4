//! The migrations applied to a data dir, in
//! `<data_dir>/_dohost/migrations.sqlite`: one row per tag, in the order the
//! manifest lists them. Tags are append-only, as on Cloudflare: a manifest
//! whose tags do not start with the applied ones (a tag rewritten, removed or
//! moved) is refused with the tag at fault, before anything is served.
//!
//! Pending migrations are applied when the host starts, under the data dir's
//! lock, one tag at a time: its steps, then its row in the record, which is
//! the commit point. Every step is idempotent, so a start that dies half-way
//! (kill -9 at any step: the `migration-*` failpoints) leaves the tag pending
//! and the next start redoes its steps and records it — the record is the
//! journal. `new_sqlite_classes` has no step (an object's database is created
//! at its first event). `deleted_classes`: the class's folder of databases is
//! renamed into `_dohost/` (the objects are gone from view at once), removed,
//! and its rows leave the alarm index.

use crate::config::Migration;
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

/// The tags of `migrations`, in order.
pub fn tags(migrations: &[Migration]) -> Vec<String> {
    migrations.iter().map(|m| m.tag.clone()).collect()
}

/// Checks `migrations` against the record of `data_dir`, then applies and
/// records the pending ones in order; returns the tags it applied. The caller
/// holds the data dir's lock.
pub fn apply(
    data_dir: &Path,
    migrations: &[Migration],
    now_ms: i64,
) -> anyhow::Result<Vec<String>> {
    let path = record_path(data_dir);
    let conn = Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(SCHEMA)?;
    let done = read(&conn)?;
    check_order(&done, &tags(migrations)).map_err(anyhow::Error::msg)?;
    let mut applied = Vec::new();
    for (position, migration) in migrations.iter().enumerate().skip(done.len()) {
        for class in &migration.deleted_classes {
            delete_class(data_dir, class).with_context(|| {
                format!("migration {:?}: deleting class {class}", migration.tag)
            })?;
        }
        failpoint("migration-before-record")?;
        conn.execute(
            "INSERT INTO applied (position, tag, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![position as i64, migration.tag, now_ms],
        )
        .with_context(|| {
            format!(
                "recording migration {:?} in {}",
                migration.tag,
                path.display()
            )
        })?;
        applied.push(migration.tag.clone());
    }
    Ok(applied)
}

/// `deleted_classes`: every object of `class` (databases, alarms) is removed.
/// Each step can be redone.
fn delete_class(data_dir: &Path, class: &str) -> anyhow::Result<()> {
    let live = data_dir.join(class);
    let doomed = data_dir.join("_dohost").join(format!("deleting-{class}"));
    if live.exists() {
        if doomed.exists() {
            std::fs::remove_dir_all(&doomed)?;
        }
        std::fs::rename(&live, &doomed)?;
    }
    failpoint("migration-moved-data")?;
    if doomed.exists() {
        std::fs::remove_dir_all(&doomed)?;
    }
    failpoint("migration-removed-data")?;
    let index = data_dir.join("_dohost").join("alarms.sqlite");
    if index.exists() {
        let conn = Connection::open(&index)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let has_table: bool = conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'alarms'",
            [],
            |r| r.get(0),
        )?;
        if has_table {
            conn.execute("DELETE FROM alarms WHERE class = ?1", [class])?;
        }
    }
    Ok(())
}

/// An armed failpoint (`dohost-failpoints` only): `crash` dies here, `error` fails the start.
fn failpoint(name: &str) -> anyhow::Result<()> {
    match crate::failpoints::hit(name) {
        Some(_) => anyhow::bail!("failpoint {name}"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<Migration> {
        list.iter()
            .map(|t| Migration {
                tag: t.to_string(),
                deleted_classes: Vec::new(),
            })
            .collect()
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
