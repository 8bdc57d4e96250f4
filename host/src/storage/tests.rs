//! Unit tests of the storage layer against real SQLite files.

use super::*;
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
            (
                "CREATE TEMP TABLE t (a)",
                "temporary tables are not allowed",
            ),
        ] {
            let err = db.exec(sql, &[]).unwrap_err();
            assert!(matches!(err, StorageError::Refused(_)), "{sql}: {err:?}");
            assert!(err.to_string().contains(expect), "{sql}: {err}");
        }
        db.exec("CREATE TABLE ok (a)", &[]).unwrap();
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
        let long = "k".repeat(crate::limits::MAX_KEY_BYTES + 1);
        assert!(db
            .kv_put(&long, b"")
            .unwrap_err()
            .to_string()
            .contains("key too long"));
        let big = vec![0u8; crate::limits::MAX_VALUE_BYTES + 1];
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
        let keys = |o: ListOptions| -> Vec<String> {
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
        db.set_meta("alarm", Value::Integer(5)).unwrap();
        db.set_meta("name", text("keep")).unwrap();
        db.delete_all(&["alarm"]).unwrap();
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
        assert_eq!(db.meta("alarm").unwrap(), None);
        assert_eq!(db.meta("name").unwrap(), Some(text("keep")));
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
    let db = ObjectDb::open(&path).unwrap();
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
