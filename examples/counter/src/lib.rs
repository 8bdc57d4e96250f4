//! `Counter`: a durable counter in SQL storage.
//!
//! Public contract (tests and docs rely on it):
//! - `GET  /obj/Counter/<name>/`                      → current value as text (`0` when new)
//! - `POST /obj/Counter/<name>/increment[?by=N]`      → new value as text (N defaults to 1)
//! - `POST /obj/Counter/<name>/increment-then-fail`   → writes the increment, then panics:
//!   the client gets 500 and the stored value is unchanged (events are atomic).
//! - RPC (interface `dohost:examples/counter`): `increment(by: s64) -> s64`, `get() -> s64`,
//!   sharing the state of the fetch routes.

use dohost_sdk::prelude::*;

struct Counter {
    storage: Storage,
}

impl Counter {
    fn get(&self) -> Result<i64> {
        let cursor = self
            .storage
            .sql()
            .exec("SELECT value FROM counter WHERE id = 1", params![])?;
        Ok(cursor.rows.first().and_then(|r| r[0].as_i64()).unwrap_or(0))
    }

    /// Adds `by`; an overflow of the 64-bit value is an error and writes nothing.
    fn increment(&self, by: i64) -> Result<i64> {
        let value = self.get()?.checked_add(by).ok_or_else(|| {
            Error::new("counter overflow: the value must stay within 64-bit signed integers")
        })?;
        self.storage.sql().exec(
            "INSERT INTO counter (id, value) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET value = ?1",
            params![value],
        )?;
        Ok(value)
    }
}

impl DurableObject for Counter {
    fn new(state: State) -> Result<Self> {
        let storage = state.storage();
        storage.sql().exec(
            "CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)",
            params![],
        )?;
        Ok(Counter { storage })
    }

    fn fetch(&mut self, req: Request) -> Result<Response> {
        match (req.method(), req.path()) {
            (Method::Get, "/") => Ok(Response::text(self.get()?.to_string())),
            (Method::Post, "/increment") => {
                let by = req.query_as("by")?.unwrap_or(1);
                Ok(Response::text(self.increment(by)?.to_string()))
            }
            (Method::Post, "/increment-then-fail") => {
                let value = self.increment(1)?;
                panic!("increment-then-fail: wrote {value}, now failing on purpose");
            }
            (_, "/" | "/increment" | "/increment-then-fail") => {
                Ok(Response::error(405, "method not allowed"))
            }
            (_, path) => Ok(Response::error(404, format!("no route {path}"))),
        }
    }
}

export_object!(Counter);

/// The RPC methods: bindings for the example's own WIT interface, next to the
/// SDK's bindings of the object world.
mod rpc {
    wit_bindgen::generate!({ path: "../wit", world: "dohost:examples/counter-rpc" });
}

export_rpc!(Counter => rpc::exports::dohost::examples::counter {
    fn increment(by: i64) -> i64;
    fn get() -> i64;
});
