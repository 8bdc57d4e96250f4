//! Unit tests of the storage layer against real SQLite files.

use super::*;
use crate::deadline::Deadline;
use rusqlite::types::Value;

fn open() -> (tempfile::TempDir, ObjectDb) {
    let dir = tempfile::tempdir().unwrap();
    let db = ObjectDb::open(&dir.path().join("Class").join("obj.sqlite")).unwrap();
    (dir, db)
}

fn in_event(db: &mut ObjectDb, f: impl FnOnce(&mut ObjectDb)) {
    db.begin().unwrap();
    db.begin_event().unwrap();
    f(db);
    db.finish_event().unwrap();
    db.commit().unwrap();
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

#[test]
fn exec_returns_columns_rows_and_counters() {
    let (_d, mut db) = open();
    in_event(&mut db, |db| {
        db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)", &[])
            .unwrap();
        let c = db
            .exec(
                "INSERT INTO t (name) VALUES (?), (?), (?)",
                &[text("a"), text("b"), text("c")],
            )
            .unwrap();
        assert_eq!((c.rows_read, c.rows_written), (0, 3));
        let c = db.exec("SELECT id, name FROM t ORDER BY id", &[]).unwrap();
        assert_eq!(c.columns, vec!["id", "name"]);
        assert_eq!(c.rows.len(), 3);
        assert_eq!(c.rows[1], vec![Value::Integer(2), text("b")]);
        assert_eq!((c.rows_read, c.rows_written), (3, 0));
        let c = db
            .exec("SELECT name FROM t WHERE id = ?", &[Value::Integer(2)])
            .unwrap();
        assert_eq!((c.rows_read, c.rows.len()), (1, 1));
        let c = db
            .exec("SELECT count(*) FROM t WHERE name > 'a'", &[])
            .unwrap();
        assert_eq!(c.rows_read, 3, "a full scan reads every row");
        let c = db.exec("UPDATE t SET name = 'x'", &[]).unwrap();
        assert_eq!(c.rows_written, 3);
    });
}

#[test]
fn several_statements_run_in_order_and_bind_params_across_them() {
    let (_d, mut db) = open();
    in_event(&mut db, |db| {
        let c = db
            .exec(
                "CREATE TABLE t (v); INSERT INTO t VALUES (?); INSERT INTO t VALUES (?), (?); SELECT sum(v) AS s FROM t",
                &[Value::Integer(1), Value::Integer(2), Value::Integer(3)],
            )
            .unwrap();
        assert_eq!(c.columns, vec!["s"]);
        assert_eq!(c.rows, vec![vec![Value::Integer(6)]]);
        assert_eq!(c.rows_written, 3);
    });
}

#[test]
fn a_failing_statement_undoes_the_whole_exec() {
    let (_d, mut db) = open();
    in_event(&mut db, |db| {
        db.exec("CREATE TABLE t (v INTEGER PRIMARY KEY)", &[])
            .unwrap();
        let err = db
            .exec("INSERT INTO t VALUES (1); INSERT INTO t VALUES (1)", &[])
            .unwrap_err();
        assert!(err.to_string().contains("UNIQUE"), "{err}");
        let c = db.exec("SELECT count(*) FROM t", &[]).unwrap();
        assert_eq!(c.rows, vec![vec![Value::Integer(0)]]);
    });
}

#[test]
fn wrong_parameter_counts_are_reported() {
    let (_d, mut db) = open();
    in_event(&mut db, |db| {
        let err = db.exec("SELECT ?, ?", &[Value::Integer(1)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the query has 2 parameter(s) but 1 were given"
        );
        let err = db.exec("SELECT 1; SELECT ?", &[]).unwrap_err();
        assert!(
            err.to_string().contains("statement 2 needs 1 parameter"),
            "{err}"
        );
        let err = db.exec("  -- nothing\n", &[]).unwrap_err();
        assert_eq!(err.to_string(), "query is empty");
    });
}

#[test]
fn guest_sql_is_guarded() {
    let (_d, mut db) = open();
    in_event(&mut db, |db| {
        for (sql, expect) in [
            ("BEGIN", "BEGIN is not allowed"),
            ("COMMIT", "COMMIT is not allowed"),
            ("SAVEPOINT x", "SAVEPOINT"),
            ("ATTACH DATABASE 'x.db' AS x", "ATTACH is not allowed"),
            ("SELECT * FROM _dohost_kv", "_dohost_kv is not allowed"),
            (
                "INSERT INTO _dohost_meta VALUES ('a', 1)",
                "_dohost_meta is not allowed",
            ),
            ("CREATE TABLE _dohost_x (a)", "_dohost_x is not allowed"),
            (
                "PRAGMA journal_mode = DELETE",
                "PRAGMA journal_mode is not allowed",
            ),
            (
                "PRAGMA writable_schema = 1",
                "PRAGMA writable_schema is not allowed",
            ),
            (
                "SELECT load_extension('x')",
                "load_extension() is not allowed",
            ),
            ("CREATE TEMP TABLE t (a)", "would not survive hibernation"),
            ("CREATE TABLE temp.t (a)", "temp schema is not available"),
            (
                "CREATE VIRTUAL TABLE temp.v USING fts5(x)",
                "temp schema is not available",
            ),
            (
                "CREATE VIEW temp.w AS SELECT 1",
                "would not survive hibernation",
            ),
            (
                "INSERT OR ROLLBACK INTO ok VALUES (1)",
                "would end the host's transaction",
            ),
            ("ALTER TABLE ok RENAME TO _dohost_x", "belong to the host"),
        ] {
            if sql.contains(" ok ") {
                db.exec("CREATE TABLE IF NOT EXISTS ok (a)", &[]).unwrap();
            }
            let err = db.exec(sql, &[]).unwrap_err();
            assert!(matches!(err, StorageError::Refused(_)), "{sql}: {err:?}");
            assert!(err.to_string().contains(expect), "{sql}: {err}");
        }
        db.exec("CREATE TABLE IF NOT EXISTS ok (a)", &[]).unwrap();
        db.exec("PRAGMA table_info(ok)", &[]).unwrap();
        // The host itself still reaches its tables.
        db.kv_put("k", b"v").unwrap();
    });
}

#[test]
fn events_and_nested_transactions_roll_back_independently() {
    let (_d, mut db) = open();
    db.begin().unwrap();
    db.begin_event().unwrap();
    db.exec("CREATE TABLE t (v)", &[]).unwrap();
    db.finish_event().unwrap();
    db.begin_event().unwrap();
    db.exec("INSERT INTO t VALUES (1)", &[]).unwrap();
    db.begin_nested().unwrap();
    db.exec("INSERT INTO t VALUES (2)", &[]).unwrap();
    db.rollback_nested().unwrap();
    db.begin_nested().unwrap();
    db.exec("INSERT INTO t VALUES (3)", &[]).unwrap();
    db.commit_nested().unwrap();
    assert!(db.commit_nested().is_err(), "no nested transaction left");
    db.finish_event().unwrap();
    db.begin_event().unwrap();
    db.exec("INSERT INTO t VALUES (4)", &[]).unwrap();
    db.undo_event().unwrap();
    db.commit().unwrap();
    db.begin().unwrap();
    db.begin_event().unwrap();
    let c = db.exec("SELECT v FROM t ORDER BY v", &[]).unwrap();
    assert_eq!(
        c.rows,
        vec![vec![Value::Integer(1)], vec![Value::Integer(3)]]
    );
    db.finish_event().unwrap();
    db.rollback();
}

#[test]
fn kv_round_trips_and_enforces_limits() {
    let (_d, mut db) = open();
    in_event(&mut db, |db| {
        db.kv_put("a", b"1").unwrap();
        assert_eq!(db.kv_get("a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(db.kv_get("missing").unwrap(), None);
        assert!(db.kv_delete("a").unwrap());
        assert!(!db.kv_delete("a").unwrap());
        let long = "k".repeat(crate::config::limits::MAX_KEY_BYTES + 1);
        assert!(db
            .kv_put(&long, b"")
            .unwrap_err()
            .to_string()
            .contains("key too long"));
        let big = vec![0u8; crate::config::limits::MAX_VALUE_BYTES + 1];
        assert!(db
            .kv_put("big", &big)
            .unwrap_err()
            .to_string()
            .contains("too large"));
        let keys: Vec<String> = (0..129).map(|i| format!("k{i}")).collect();
        let err = db.kv_get_many(&keys).unwrap_err();
        assert!(err.to_string().contains("at most 128 keys"), "{err}");
        let entries: Vec<(String, Vec<u8>)> = keys.iter().map(|k| (k.clone(), vec![1])).collect();
        assert!(db.kv_put_many(&entries).is_err());
        assert!(db.kv_put_many(&entries[..128]).is_ok());
        assert_eq!(db.kv_delete_many(&keys[..128]).unwrap(), 128);
    });
}

#[test]
fn kv_list_honours_prefix_range_reverse_and_limit() {
    let (_d, mut db) = open();
    in_event(&mut db, |db| {
        for k in ["a", "b:1", "b:2", "b:3", "c", "b;"] {
            db.kv_put(k, k.as_bytes()).unwrap();
        }
        let mut keys = |o: ListOptions| -> Vec<String> {
            db.kv_list(&o)
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(
            keys(ListOptions::default()),
            ["a", "b:1", "b:2", "b:3", "b;", "c"]
        );
        let prefix = || ListOptions {
            prefix: Some("b:".into()),
            ..Default::default()
        };
        assert_eq!(keys(prefix()), ["b:1", "b:2", "b:3"]);
        assert_eq!(
            keys(ListOptions {
                reverse: true,
                limit: Some(2),
                ..prefix()
            }),
            ["b:3", "b:2"]
        );
        assert_eq!(
            keys(ListOptions {
                start: Some("b:2".into()),
                ..prefix()
            }),
            ["b:2", "b:3"]
        );
        assert_eq!(
            keys(ListOptions {
                end: Some("b:3".into()),
                ..prefix()
            }),
            ["b:1", "b:2"]
        );
        assert_eq!(
            keys(ListOptions {
                limit: Some(0),
                ..prefix()
            }),
            Vec::<String>::new()
        );
    });
}

#[test]
fn delete_all_removes_tables_keys_and_listed_meta() {
    let (_d, mut db) = open();
    in_event(&mut db, |db| {
        db.exec(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY AUTOINCREMENT);
             CREATE TABLE child (p INTEGER REFERENCES parent(id));
             CREATE VIEW v AS SELECT * FROM parent;
             CREATE INDEX child_p ON child(p);
             INSERT INTO parent DEFAULT VALUES; INSERT INTO child VALUES (1);",
            &[],
        )
        .unwrap();
        db.kv_put("k", b"v").unwrap();
        db.set_meta(Meta::Alarm, Value::Integer(5)).unwrap();
        db.set_meta(Meta::Name, text("keep")).unwrap();
        db.delete_all().unwrap();
    });
    in_event(&mut db, |db| {
        let c = db
            .exec(
                "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite%'",
                &[],
            )
            .unwrap();
        // Only the host's two tables (and their autoindexes, if any) remain.
        assert!(c.rows[0][0] == Value::Integer(2), "{:?}", c.rows);
        assert_eq!(db.kv_get("k").unwrap(), None);
        assert_eq!(db.meta(Meta::Alarm).unwrap(), None);
        assert_eq!(db.meta(Meta::Name).unwrap(), Some(text("keep")));
        db.exec("CREATE TABLE parent (id)", &[]).unwrap();
    });
}

#[test]
fn committed_data_survives_reopen_and_rolled_back_data_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("C").join("x.sqlite");
    {
        let mut db = ObjectDb::open(&path).unwrap();
        in_event(&mut db, |db| db.kv_put("kept", b"1").unwrap());
        db.begin().unwrap();
        db.begin_event().unwrap();
        db.kv_put("lost", b"1").unwrap();
        db.finish_event().unwrap();
        db.rollback();
    }
    let mut db = ObjectDb::open(&path).unwrap();
    assert_eq!(db.kv_get("kept").unwrap(), Some(b"1".to_vec()));
    assert_eq!(db.kv_get("lost").unwrap(), None);
}

#[test]
fn oversized_sql_values_are_refused_clearly() {
    let (_d, mut db) = open();
    in_event(&mut db, |db| {
        db.exec("CREATE TABLE t (b BLOB)", &[]).unwrap();
        let err = db
            .exec(
                "INSERT INTO t VALUES (zeroblob(?))",
                &[Value::Integer(5 * 1024 * 1024)],
            )
            .unwrap_err();
        assert!(err.to_string().contains("value too large"), "{err}");
    });
}

#[test]
fn guest_sql_never_reuses_a_host_statement() {
    let (_d, mut db) = open();
    in_event(&mut db, |db| {
        // The host has prepared (and cached) these texts; the guest sends the same.
        db.kv_put("secret", b"x").unwrap();
        let err = db
            .exec(
                "SELECT value FROM _dohost_kv WHERE key = ?1",
                &[text("secret")],
            )
            .unwrap_err();
        assert!(matches!(err, StorageError::Refused(_)), "{err:?}");
        for host_text in [
            "SAVEPOINT dohost_event",
            "RELEASE dohost_event",
            "COMMIT",
            "BEGIN",
        ] {
            let err = db.exec(host_text, &[]).unwrap_err();
            assert!(
                matches!(err, StorageError::Refused(_)),
                "{host_text}: {err:?}"
            );
        }
    });
}

fn open_limited(max_bytes: u64, deadline: Deadline) -> (tempfile::TempDir, ObjectDb) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Class").join("obj.sqlite");
    let db = ObjectDb::open_with(&path, StorageLimits { max_bytes }, deadline).unwrap();
    (dir, db)
}

const RUNAWAY_READ: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

#[test]
fn a_runaway_query_is_interrupted_at_the_deadline_and_the_event_goes_on() {
    let deadline = Deadline::default();
    let (_d, mut db) = open_limited(MAX_DATABASE_BYTES, deadline.clone());
    db.begin().unwrap();
    db.begin_event().unwrap();
    db.exec("CREATE TABLE t (v)", &[]).unwrap();
    deadline.arm(std::time::Duration::from_millis(50));
    let started = std::time::Instant::now();
    let err = db.exec(RUNAWAY_READ, &[]).unwrap_err();
    assert!(matches!(err, StorageError::DeadlineExceeded), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    deadline.disarm();
    // A read-only statement loses nothing: the transaction is intact.
    assert!(db.take_lost().is_none());
    db.exec("INSERT INTO t VALUES (1)", &[]).unwrap();
    db.finish_event().unwrap();
    db.commit().unwrap();
}

#[test]
fn an_interrupted_write_loses_the_batch_and_nothing_commits_on_its_own() {
    let deadline = Deadline::default();
    let (_d, mut db) = open_limited(MAX_DATABASE_BYTES, deadline.clone());
    in_event(&mut db, |db| {
        db.exec("CREATE TABLE t (v)", &[]).unwrap();
    });
    db.begin().unwrap();
    db.begin_event().unwrap();
    db.exec("INSERT INTO t VALUES ('earlier event')", &[])
        .unwrap();
    db.finish_event().unwrap();
    db.begin_event().unwrap();
    deadline.arm(std::time::Duration::from_millis(50));
    let err = db
        .exec(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) INSERT INTO t SELECT x FROM c",
            &[],
        )
        .unwrap_err();
    deadline.disarm();
    assert!(matches!(err, StorageError::DeadlineExceeded), "{err:?}");
    // SQLite rolled back the whole transaction: later writes are refused
    // instead of committing on their own.
    let err = db.kv_put("after", b"x").unwrap_err();
    assert!(matches!(err, StorageError::TransactionLost(_)), "{err:?}");
    assert!(db.take_lost().is_some());
    // A new transaction sees neither event.
    in_event(&mut db, |db| {
        let c = db.exec("SELECT count(*) FROM t", &[]).unwrap();
        assert_eq!(c.rows, vec![vec![Value::Integer(0)]]);
        assert_eq!(db.kv_get("after").unwrap(), None);
    });
}

#[test]
fn a_constraint_that_rolls_back_ends_nothing_behind_the_hosts_back() {
    let (_d, mut db) = open();
    // A table from before the text check (created by the host here).
    db.conn
        .execute_batch("CREATE TABLE u (v UNIQUE ON CONFLICT ROLLBACK); INSERT INTO u VALUES (1)")
        .unwrap();
    db.begin().unwrap();
    db.begin_event().unwrap();
    db.kv_put("earlier", b"1").unwrap();
    let err = db.exec("INSERT INTO u VALUES (1)", &[]).unwrap_err();
    assert!(matches!(err, StorageError::TransactionLost(_)), "{err:?}");
    assert!(err.to_string().contains("UNIQUE"), "{err}");
    // The guest writes after it: refused, not autocommitted.
    assert!(db.exec("INSERT INTO u VALUES (2)", &[]).is_err());
    db.undo_event().unwrap();
    assert!(db.take_lost().unwrap().contains("UNIQUE"));
    in_event(&mut db, |db| {
        let c = db.exec("SELECT count(*) FROM u", &[]).unwrap();
        assert_eq!(c.rows, vec![vec![Value::Integer(1)]]);
        assert_eq!(db.kv_get("earlier").unwrap(), None);
    });
}

#[test]
fn the_quota_refuses_the_write_that_crosses_it_and_keeps_the_rest() {
    let quota = 1024 * 1024;
    let (_d, mut db) = open_limited(quota, Deadline::default());
    db.begin().unwrap();
    db.begin_event().unwrap();
    db.exec("CREATE TABLE b (v BLOB)", &[]).unwrap();
    let mut kept = 0;
    let err = loop {
        match db.exec("INSERT INTO b VALUES (zeroblob(60000))", &[]) {
            Ok(_) => kept += 1,
            Err(e) => break e,
        }
        assert!(kept < 100, "the quota never stopped the writes");
    };
    assert!(matches!(err, StorageError::Quota(_)), "{err:?}");
    assert!(err.to_string().contains("1048576 bytes"), "{err}");
    assert!(
        db.size().unwrap() <= quota,
        "{} > {quota}",
        db.size().unwrap()
    );
    // Just below the quota the crossing write alone was undone: the event
    // keeps the others and commits.
    db.kv_put("small", b"x").unwrap();
    db.finish_event().unwrap();
    db.commit().unwrap();
    in_event(&mut db, |db| {
        let c = db.exec("SELECT count(*) FROM b", &[]).unwrap();
        assert_eq!(c.rows, vec![vec![Value::Integer(kept)]]);
        // Deleting makes room again.
        db.exec("DELETE FROM b", &[]).unwrap();
        db.exec("INSERT INTO b VALUES (zeroblob(60000))", &[])
            .unwrap();
    });
}

#[test]
fn a_write_that_jumps_over_the_quota_dooms_only_its_event() {
    let quota = 4 * 1024 * 1024;
    let (_d, mut db) = open_limited(quota, Deadline::default());
    in_event(&mut db, |db| {
        db.exec("CREATE TABLE b (v BLOB)", &[]).unwrap();
        db.kv_put("kept", b"1").unwrap();
    });
    db.begin().unwrap();
    db.begin_event().unwrap();
    db.kv_put("event", b"1").unwrap();
    // From far below the quota to past it in one statement.
    let err = db
        .exec(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3) \
             INSERT INTO b SELECT zeroblob(1500000) FROM c",
            &[],
        )
        .unwrap_err();
    assert!(matches!(err, StorageError::Quota(_)), "{err:?}");
    let err = db.finish_event().unwrap_err();
    assert!(matches!(err, StorageError::Quota(_)), "{err:?}");
    db.commit().unwrap();
    in_event(&mut db, |db| {
        assert_eq!(
            db.kv_get("event").unwrap(),
            None,
            "the event was rolled back"
        );
        assert_eq!(db.kv_get("kept").unwrap(), Some(b"1".to_vec()));
    });
}

#[test]
fn deferred_foreign_keys_fail_their_own_event_not_the_batch() {
    let (_d, mut db) = open();
    in_event(&mut db, |db| {
        db.exec(
            "CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (p REFERENCES p(id))",
            &[],
        )
        .unwrap();
    });
    db.begin().unwrap();
    db.begin_event().unwrap();
    db.kv_put("first", b"1").unwrap();
    db.finish_event().unwrap();
    db.begin_event().unwrap();
    db.exec("PRAGMA defer_foreign_keys = ON", &[]).unwrap();
    db.exec("INSERT INTO c VALUES (42)", &[]).unwrap();
    let err = db.finish_event().unwrap_err();
    assert!(
        err.to_string().contains("FOREIGN KEY constraint failed"),
        "{err}"
    );
    // The next event has immediate foreign keys again.
    db.begin_event().unwrap();
    let err = db.exec("INSERT INTO c VALUES (43)", &[]).unwrap_err();
    assert!(err.to_string().contains("FOREIGN KEY"), "{err}");
    db.finish_event().unwrap();
    db.commit()
        .expect("the batch commits: the violation left with its event");
    in_event(&mut db, |db| {
        assert_eq!(db.kv_get("first").unwrap(), Some(b"1".to_vec()));
        let c = db.exec("SELECT count(*) FROM c", &[]).unwrap();
        assert_eq!(c.rows, vec![vec![Value::Integer(0)]]);
    });
}

#[test]
fn delete_all_leaves_nothing_of_the_guest_and_runs_none_of_its_triggers() {
    let (_d, mut db) = open();
    in_event(&mut db, |db| {
        db.exec(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (p INTEGER REFERENCES parent(id) ON DELETE CASCADE);
             CREATE TABLE log (what);
             CREATE TRIGGER on_child_delete AFTER DELETE ON child BEGIN INSERT INTO log VALUES ('cascade'); END;
             CREATE VIRTUAL TABLE docs USING fts5(body);
             CREATE VIEW v AS SELECT * FROM parent;
             INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1);
             INSERT INTO docs VALUES ('hello world');
             PRAGMA user_version = 7; ANALYZE parent;",
            &[],
        )
        .unwrap();
        db.kv_put("k", b"v").unwrap();
        db.delete_all().unwrap();
    });
    in_event(&mut db, |db| {
        let c = db
            .exec(
                "SELECT type, name FROM sqlite_schema WHERE name NOT LIKE '\\_dohost\\_%' ESCAPE '\\'
                 AND name NOT IN ('sqlite_stat1', 'sqlite_stat4', 'sqlite_sequence')",
                &[],
            )
            .unwrap();
        assert!(c.rows.is_empty(), "left behind: {:?}", c.rows);
        let c = db.exec("PRAGMA user_version", &[]).unwrap();
        assert_eq!(c.rows, vec![vec![Value::Integer(0)]]);
        assert!(
            db.is_disposable().unwrap(),
            "nothing of the guest is stored"
        );
    });
}

#[test]
fn a_database_with_only_what_a_constructor_rebuilds_is_disposable() {
    let (_d, mut db) = open();
    db.begin().unwrap();
    db.begin_event().unwrap();
    db.set_meta(Meta::Name, text("someone")).unwrap();
    db.set_phase(Phase::Constructor);
    db.exec("CREATE TABLE IF NOT EXISTS counter (v)", &[])
        .unwrap();
    db.set_phase(Phase::Event);
    db.finish_event().unwrap();
    db.commit().unwrap();
    assert!(
        db.is_disposable().unwrap(),
        "schema from the constructor, no rows"
    );
    in_event(&mut db, |db| {
        db.exec("INSERT INTO counter VALUES (1)", &[]).unwrap();
    });
    assert!(!db.is_disposable().unwrap(), "a row");
    in_event(&mut db, |db| {
        db.exec("DELETE FROM counter", &[]).unwrap();
    });
    assert!(db.is_disposable().unwrap());
    in_event(&mut db, |db| {
        db.exec("CREATE TABLE made_by_an_event (v)", &[]).unwrap();
    });
    assert!(!db.is_disposable().unwrap(), "schema an event made");
    let (_d, mut db) = open();
    in_event(&mut db, |db| db.kv_put("k", b"").unwrap());
    assert!(!db.is_disposable().unwrap(), "a KV entry");
}

#[test]
fn kv_lists_larger_than_their_cap_are_refused_with_a_hint() {
    let (_d, mut db) = open();
    in_event(&mut db, |db| {
        let value = vec![7u8; crate::config::limits::MAX_VALUE_BYTES];
        let n = crate::config::limits::MAX_KV_LIST_BYTES / value.len() + 1;
        for i in 0..n {
            db.kv_put(&format!("k{i:04}"), &value).unwrap();
        }
        let err = db.kv_list(&ListOptions::default()).unwrap_err();
        assert!(err.to_string().contains("pass a limit"), "{err}");
        let some = db
            .kv_list(&ListOptions {
                limit: Some(3),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(some.len(), 3);
    });
}

#[test]
fn creating_a_database_never_replaces_one_that_exists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.sqlite");
    {
        let mut db = ObjectDb::open(&path).unwrap();
        in_event(&mut db, |db| db.kv_put("kept", b"1").unwrap());
    }
    create_from_template(&path).unwrap();
    let mut db = ObjectDb::open(&path).unwrap();
    assert_eq!(db.kv_get("kept").unwrap(), Some(b"1".to_vec()));
}

#[test]
fn a_large_wal_is_checkpointed_away_when_the_object_hibernates() {
    let (dir, mut db) = open();
    in_event(&mut db, |db| {
        db.exec("CREATE TABLE b (v)", &[]).unwrap();
        for _ in 0..20 {
            db.exec("INSERT INTO b VALUES (zeroblob(100000))", &[])
                .unwrap();
        }
    });
    let wal = dir.path().join("Class").join("obj.sqlite-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > crate::config::limits::WAL_KEEP_BYTES);
    db.compact_wal().unwrap();
    assert!(
        std::fs::metadata(&wal).map_or(0, |m| m.len()) <= crate::config::limits::WAL_KEEP_BYTES
    );
    in_event(&mut db, |db| {
        let c = db.exec("SELECT count(*) FROM b", &[]).unwrap();
        assert_eq!(c.rows, vec![vec![Value::Integer(20)]]);
    });
}

#[test]
fn a_commit_at_the_gate_keeps_what_came_before_and_undoes_only_what_follows() {
    let (dir, mut db) = open();
    db.begin().unwrap();
    db.begin_event().unwrap();
    db.kv_put("before", b"1").unwrap();
    db.set_meta(Meta::AutoResponse, text("pair")).unwrap();
    db.commit_at_gate().unwrap();
    db.kv_put("after", b"2").unwrap();
    // The event fails after the gate: only its later writes go.
    db.undo_event().unwrap();
    // What the batch changed in host metadata is still known at its commit.
    assert!(db.meta_changes().so_far().batch_changed(Meta::AutoResponse));
    db.commit().unwrap();
    drop(db);
    let mut db = ObjectDb::open(&dir.path().join("Class").join("obj.sqlite")).unwrap();
    assert_eq!(db.kv_get("before").unwrap(), Some(b"1".to_vec()));
    assert_eq!(db.kv_get("after").unwrap(), None);
}

#[test]
fn the_gate_cannot_commit_inside_a_nested_transaction_or_outside_an_event() {
    let (_d, mut db) = open();
    assert!(db.check_gate().is_err());
    db.begin().unwrap();
    db.begin_event().unwrap();
    assert!(db.check_gate().is_ok());
    db.begin_nested().unwrap();
    let err = db.check_gate().unwrap_err().to_string();
    assert!(err.contains("inside a nested transaction"), "{err}");
    db.commit_nested().unwrap();
    assert!(db.check_gate().is_ok());
}
