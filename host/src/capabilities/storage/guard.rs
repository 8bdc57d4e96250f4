//! The SQL guard: an SQLite authorizer that keeps guest SQL inside its lane.
//!
//! Guest statements may not control transactions (the host owns them), attach
//! other databases, create temporary objects (they would not survive
//! hibernation), change durability or schema machinery through PRAGMAs, load
//! extensions, or touch the host's `_dohost_*` tables. The check runs while
//! SQLite prepares a statement, so it sees what the statement really does
//! (no string matching). Host statements run with the guard lowered.

use rusqlite::hooks::{AuthAction, AuthContext, Authorization, TransactionOperation};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Prefix of every table the host keeps in an object's database.
pub const HOST_TABLE_PREFIX: &str = "_dohost_";

/// PRAGMAs a guest may run with or without an argument (schema introspection).
const INTROSPECTION_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "integrity_check",
    "quick_check",
];
/// PRAGMAs a guest may read but not set.
const READ_ONLY_PRAGMAS: &[&str] = &[
    "page_count",
    "page_size",
    "freelist_count",
    "data_version",
    "schema_version",
    "encoding",
    "foreign_keys",
    "compile_options",
    "collation_list",
    "function_list",
    "module_list",
    "pragma_list",
];
/// PRAGMAs a guest may also set: they are transactional or event-scoped.
const SETTABLE_PRAGMAS: &[&str] = &["user_version", "application_id", "defer_foreign_keys"];
/// SQL functions a guest may not call.
const FORBIDDEN_FUNCTIONS: &[&str] = &["load_extension", "fts3_tokenizer"];

/// Shared between the authorizer callback and the connection owner.
#[derive(Debug, Default)]
pub struct SqlGuard {
    guest: AtomicBool,
    denial: Mutex<Option<String>>,
    /// A guest statement changed the schema since `take_schema_changed`.
    schema_changed: AtomicBool,
    /// A guest statement set `defer_foreign_keys` since `take_defer_set`.
    defer_set: AtomicBool,
}

impl SqlGuard {
    /// Installs the authorizer on `conn` and returns the guard's handle.
    pub fn install(conn: &mut rusqlite::Connection) -> rusqlite::Result<Arc<SqlGuard>> {
        let guard = Arc::new(SqlGuard::default());
        let hook = Arc::clone(&guard);
        conn.authorizer(Some(move |ctx: AuthContext<'_>| hook.authorize(&ctx)))?;
        Ok(guard)
    }

    /// Runs `f` with guest restrictions on.
    pub fn as_guest<T>(&self, f: impl FnOnce() -> T) -> T {
        self.guest.store(true, Ordering::Relaxed);
        self.clear_denial();
        let result = f();
        self.guest.store(false, Ordering::Relaxed);
        result
    }

    /// Why the last guest statement was refused, if it was.
    pub fn take_denial(&self) -> Option<String> {
        self.denial.lock().ok().and_then(|mut d| d.take())
    }

    /// True if a guest statement created, dropped or altered something since
    /// the last call.
    pub fn take_schema_changed(&self) -> bool {
        self.schema_changed.swap(false, Ordering::Relaxed)
    }

    /// True if a guest statement changed the schema or `defer_foreign_keys`
    /// and the host has not looked yet.
    pub fn has_notes(&self) -> bool {
        self.schema_changed.load(Ordering::Relaxed) || self.defer_set.load(Ordering::Relaxed)
    }

    /// True if a guest statement set `PRAGMA defer_foreign_keys` since the
    /// last call.
    pub fn take_defer_set(&self) -> bool {
        self.defer_set.swap(false, Ordering::Relaxed)
    }

    fn clear_denial(&self) {
        if let Ok(mut d) = self.denial.lock() {
            *d = None;
        }
    }

    fn authorize(&self, ctx: &AuthContext<'_>) -> Authorization {
        if !self.guest.load(Ordering::Relaxed) {
            return Authorization::Allow;
        }
        let checked = check_guest_action(&ctx.action).and_then(|()| match ctx.database_name {
            Some(db) if db.eq_ignore_ascii_case("temp") => Err(
                "the temp schema is not available to objects: temporary tables, views, triggers \
                 and virtual tables would not survive hibernation; use the main schema"
                    .to_string(),
            ),
            _ => Ok(()),
        });
        match checked {
            Ok(()) => {
                self.note(&ctx.action);
                Authorization::Allow
            }
            Err(reason) => {
                if let Ok(mut d) = self.denial.lock() {
                    d.get_or_insert(reason);
                }
                Authorization::Deny
            }
        }
    }
}

impl SqlGuard {
    /// Remembers what an allowed guest action means for the host.
    fn note(&self, action: &AuthAction<'_>) {
        use AuthAction::*;
        match action {
            CreateTable { .. }
            | CreateIndex { .. }
            | CreateTrigger { .. }
            | CreateView { .. }
            | CreateVtable { .. }
            | DropTable { .. }
            | DropIndex { .. }
            | DropTrigger { .. }
            | DropView { .. }
            | DropVtable { .. }
            | AlterTable { .. } => self.schema_changed.store(true, Ordering::Relaxed),
            Pragma {
                pragma_name,
                pragma_value: Some(_),
            } if pragma_name.eq_ignore_ascii_case("defer_foreign_keys") => {
                self.defer_set.store(true, Ordering::Relaxed)
            }
            _ => {}
        }
    }
}

fn is_host_table(name: &str) -> bool {
    name.len() >= HOST_TABLE_PREFIX.len()
        && name[..HOST_TABLE_PREFIX.len()].eq_ignore_ascii_case(HOST_TABLE_PREFIX)
}

fn host_table(name: &str) -> Result<(), String> {
    if is_host_table(name) {
        Err(format!(
            "access to {name} is not allowed: tables named {HOST_TABLE_PREFIX}* belong to the host"
        ))
    } else {
        Ok(())
    }
}

fn temporary(what: &str) -> Result<(), String> {
    Err(format!(
        "temporary {what}s are not allowed: they would not survive hibernation; use a regular {what}"
    ))
}

/// Decides whether a guest statement may perform `action`. Pure, for tests.
pub fn check_guest_action(action: &AuthAction<'_>) -> Result<(), String> {
    use AuthAction::*;
    match *action {
        Transaction { operation } => Err(format!(
            "{} is not allowed: the host runs every event in a transaction; use a nested \
             transaction (storage.transaction / begin-nested) instead",
            match operation {
                TransactionOperation::Begin => "BEGIN",
                TransactionOperation::Rollback => "ROLLBACK",
                _ => "COMMIT",
            }
        )),
        Savepoint { .. } => Err(
            "SAVEPOINT/RELEASE/ROLLBACK TO are not allowed: use a nested transaction \
             (storage.transaction / begin-nested) instead"
                .to_string(),
        ),
        Attach { .. } => {
            Err("ATTACH is not allowed: an object may only use its own database".into())
        }
        Detach { .. } => {
            Err("DETACH is not allowed: an object may only use its own database".into())
        }
        CreateTempTable { .. } => temporary("table"),
        CreateTempIndex { .. } => temporary("index"),
        CreateTempTrigger { .. } => temporary("trigger"),
        CreateTempView { .. } => temporary("view"),
        Pragma {
            pragma_name,
            pragma_value,
        } => check_pragma(pragma_name, pragma_value),
        Function { function_name } => {
            if FORBIDDEN_FUNCTIONS
                .iter()
                .any(|f| f.eq_ignore_ascii_case(function_name))
            {
                Err(format!("function {function_name}() is not allowed"))
            } else {
                Ok(())
            }
        }
        Read { table_name, .. }
        | Insert { table_name }
        | Update { table_name, .. }
        | Delete { table_name }
        | CreateTable { table_name }
        | DropTable { table_name }
        | Analyze { table_name }
        | CreateVtable { table_name, .. }
        | DropVtable { table_name, .. }
        | AlterTable { table_name, .. } => host_table(table_name),
        CreateIndex {
            index_name,
            table_name,
        }
        | DropIndex {
            index_name,
            table_name,
        } => host_table(index_name).and_then(|()| host_table(table_name)),
        CreateTrigger {
            trigger_name,
            table_name,
        }
        | DropTrigger {
            trigger_name,
            table_name,
        } => host_table(trigger_name).and_then(|()| host_table(table_name)),
        CreateView { view_name } | DropView { view_name } => host_table(view_name),
        Reindex { index_name } => host_table(index_name),
        _ => Ok(()),
    }
}

fn check_pragma(name: &str, value: Option<&str>) -> Result<(), String> {
    let is = |list: &[&str]| list.iter().any(|p| p.eq_ignore_ascii_case(name));
    if is(INTROSPECTION_PRAGMAS) {
        return match value {
            Some(table) => host_table(table),
            None => Ok(()),
        };
    }
    if is(SETTABLE_PRAGMAS) || (is(READ_ONLY_PRAGMAS) && value.is_none()) {
        return Ok(());
    }
    if is(READ_ONLY_PRAGMAS) {
        return Err(format!("PRAGMA {name} is read-only for objects"));
    }
    Err(format!(
        "PRAGMA {name} is not allowed: the host controls durability and the database file \
         (allowed: schema introspection such as table_info, and user_version)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_control_is_refused_with_a_hint() {
        let err = check_guest_action(&AuthAction::Transaction {
            operation: TransactionOperation::Begin,
        })
        .unwrap_err();
        assert!(err.contains("BEGIN is not allowed"), "{err}");
        assert!(err.contains("nested transaction"), "{err}");
    }

    #[test]
    fn host_tables_are_refused_case_insensitively() {
        for name in ["_dohost_kv", "_DOHOST_meta"] {
            assert!(check_guest_action(&AuthAction::Read {
                table_name: name,
                column_name: "key"
            })
            .is_err());
        }
        assert!(check_guest_action(&AuthAction::Read {
            table_name: "dohost_kv",
            column_name: "key"
        })
        .is_ok());
    }

    #[test]
    fn pragmas_follow_the_allow_lists() {
        let pragma = |name, value| {
            check_guest_action(&AuthAction::Pragma {
                pragma_name: name,
                pragma_value: value,
            })
        };
        assert!(pragma("table_info", Some("users")).is_ok());
        assert!(pragma("table_info", Some("_dohost_kv")).is_err());
        assert!(pragma("user_version", Some("3")).is_ok());
        assert!(pragma("page_size", None).is_ok());
        assert!(pragma("page_size", Some("1024")).is_err());
        assert!(pragma("journal_mode", Some("off")).is_err());
        assert!(pragma("synchronous", Some("0")).is_err());
        assert!(pragma("writable_schema", Some("1")).is_err());
    }

    #[test]
    fn load_extension_is_refused() {
        assert!(check_guest_action(&AuthAction::Function {
            function_name: "load_extension"
        })
        .is_err());
        assert!(check_guest_action(&AuthAction::Function {
            function_name: "upper"
        })
        .is_ok());
    }
}
