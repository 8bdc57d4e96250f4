//! `Batcher`: collects items and flushes them with an alarm.
//!
//! Public contract (tests and docs rely on it):
//! - `POST /obj/Batcher/<name>/add?flush_ms=N` (body = item text) stores the item
//!   and, if no alarm is set, sets one N ms ahead (default 1000) →
//!   `{"pending": n, "alarm": epoch_ms}`.
//! - The alarm moves every pending item to the flushed table in one step.
//! - `POST /obj/Batcher/<name>/fail?times=K` (default 1) makes the next K alarm runs
//!   fail: each failing run records itself, decrements the count and returns an
//!   error (its writes are kept, the alarm is retried) → `{"failNext": K}`.
//! - `GET /obj/Batcher/<name>/` → `{"pending": n, "flushed": n, "alarm": epoch_ms|null,
//!   "runs": [{"retryCount": r, "isRetry": b, "ok": b}, …]}`.
//! - `DELETE /obj/Batcher/<name>/alarm` deletes the alarm → `{"alarm": null}`.

use dohost_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

struct Batcher {
    state: State,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Run {
    retry_count: i64,
    is_retry: bool,
    ok: bool,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Batcher {
    fn count(&self, table: &str) -> Result<i64> {
        self.state
            .storage()
            .sql()
            .exec(&format!("SELECT count(*) FROM {table}"), params![])?
            .scalar()
    }

    fn record_run(&self, info: AlarmInfo, ok: bool) -> Result<()> {
        self.state.storage().sql().exec(
            "INSERT INTO runs (retry_count, is_retry, ok) VALUES (?, ?, ?)",
            params![info.retry_count, info.is_retry, ok],
        )?;
        Ok(())
    }

    fn status(&self) -> Result<serde_json::Value> {
        let runs: Vec<Run> = self
            .state
            .storage()
            .sql()
            .exec(
                "SELECT retry_count AS retryCount, is_retry = 1 AS isRetry, ok = 1 AS ok FROM runs ORDER BY seq",
                params![],
            )?
            .json_rows()
            .into_iter()
            .map(|r| Run {
                retry_count: r["retryCount"].as_i64().unwrap_or(0),
                is_retry: r["isRetry"].as_i64() == Some(1),
                ok: r["ok"].as_i64() == Some(1),
            })
            .collect();
        Ok(json!({
            "pending": self.count("pending")?,
            "flushed": self.count("flushed")?,
            "alarm": self.state.storage().get_alarm()?,
            "runs": runs,
        }))
    }
}

impl DurableObject for Batcher {
    fn new(state: State) -> Result<Self> {
        state.storage().sql().exec(
            "CREATE TABLE IF NOT EXISTS pending (seq INTEGER PRIMARY KEY AUTOINCREMENT, item TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS flushed (seq INTEGER PRIMARY KEY, item TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS runs (seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 retry_count INTEGER NOT NULL, is_retry INTEGER NOT NULL, ok INTEGER NOT NULL);",
            params![],
        )?;
        Ok(Batcher { state })
    }

    fn fetch(&mut self, req: Request) -> Result<Response> {
        let storage = self.state.storage();
        match (req.method(), req.path()) {
            (Method::Post, "/add") => {
                let flush_ms: i64 = match req.query("flush_ms").map(|v| v.parse()) {
                    None => 1000,
                    Some(Ok(ms)) if ms >= 0 => ms,
                    Some(_) => {
                        return Ok(Response::error(
                            400,
                            "?flush_ms must be a non-negative integer",
                        ))
                    }
                };
                storage.sql().exec(
                    "INSERT INTO pending (item) VALUES (?)",
                    params![req.text()?],
                )?;
                if storage.get_alarm()?.is_none() {
                    storage.set_alarm(now_ms() + flush_ms)?;
                }
                Response::json(&json!({
                    "pending": self.count("pending")?,
                    "alarm": storage.get_alarm()?,
                }))
            }
            (Method::Post, "/fail") => {
                let times: i64 = match req.query("times").map(|v| v.parse()) {
                    None => 1,
                    Some(Ok(k)) if k >= 0 => k,
                    Some(_) => {
                        return Ok(Response::error(
                            400,
                            "?times must be a non-negative integer",
                        ))
                    }
                };
                storage.put("fail_next", &times)?;
                Response::json(&json!({ "failNext": times }))
            }
            (Method::Get, "/") => Response::json(&self.status()?),
            (Method::Delete, "/alarm") => {
                storage.delete_alarm()?;
                Response::json(&json!({ "alarm": null }))
            }
            (_, path) => Ok(Response::error(404, format!("no route {path}"))),
        }
    }

    fn alarm(&mut self, info: AlarmInfo) -> Result<()> {
        let storage = self.state.storage();
        let fail_next: i64 = storage.get("fail_next")?.unwrap_or(0);
        if fail_next > 0 {
            storage.put("fail_next", &(fail_next - 1))?;
            self.record_run(info, false)?;
            return Err(Error::new(format!(
                "failing on purpose ({} more to go)",
                fail_next - 1
            )));
        }
        storage.sql().exec(
            "INSERT INTO flushed (item) SELECT item FROM pending ORDER BY seq; DELETE FROM pending",
            params![],
        )?;
        self.record_run(info, true)
    }
}

export_object!(Batcher);
