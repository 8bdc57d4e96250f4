//! `TenantDb`: a private SQL + KV database per tenant, over JSON.
//!
//! Public contract (tests and docs rely on it):
//! - `POST /obj/TenantDb/<name>/sql` with `{"query": "...", "params": [...]}` →
//!   `{"columns": [...], "rows": [[...]], "rowsRead": n, "rowsWritten": n, "databaseSize": n}`
//! - `POST /obj/TenantDb/<name>/kv` with `{"op": "get"|"put"|"delete"|"list"|"deleteAll", …}`
//! - storage errors → 400 `{"error": "..."}`.
//!
//! JSON ⇄ SQL values: null ⇄ NULL, integers ⇄ INTEGER, other numbers ⇄ REAL,
//! strings ⇄ TEXT, `true`/`false` → 1/0, `{"base64": "..."}` ⇄ BLOB.
//! KV values are any JSON value.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use dohost_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{json, Map, Value};

struct TenantDb {
    storage: Storage,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    query: String,
    #[serde(default)]
    params: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KvRequest {
    op: String,
    key: Option<String>,
    keys: Option<Vec<String>>,
    value: Option<Value>,
    entries: Option<Map<String, Value>>,
    prefix: Option<String>,
    start: Option<String>,
    end: Option<String>,
    #[serde(default)]
    reverse: bool,
    limit: Option<u32>,
}

/// A failure to report as 400 `{"error": …}`.
struct BadRequest(String);

impl From<Error> for BadRequest {
    fn from(e: Error) -> Self {
        BadRequest(e.message().to_string())
    }
}

fn to_sql(v: &Value, index: usize) -> Result<SqlValue, BadRequest> {
    Ok(match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(*b as i64),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Object(o) if o.len() == 1 && o.get("base64").is_some_and(Value::is_string) => {
            let b64 = o["base64"].as_str().unwrap_or_default();
            SqlValue::Blob(B64.decode(b64).map_err(|e| {
                BadRequest(format!("params[{index}]: invalid base64: {e}"))
            })?)
        }
        other => {
            return Err(BadRequest(format!(
                "params[{index}]: expected null, boolean, number, string or {{\"base64\": …}}, got {other}"
            )))
        }
    })
}

fn from_sql(v: &SqlValue) -> Value {
    match v {
        SqlValue::Blob(b) => json!({ "base64": B64.encode(b) }),
        other => other.to_json(),
    }
}

fn decode_value(key: &str, bytes: &[u8]) -> Result<Value, BadRequest> {
    serde_json::from_slice(bytes)
        .map_err(|e| BadRequest(format!("value of {key:?} is not JSON: {e}")))
}

impl TenantDb {
    fn sql(&self, req: &Request) -> Result<Value, BadRequest> {
        let body: SqlRequest = req.json().map_err(BadRequest::from)?;
        let params = body
            .params
            .iter()
            .enumerate()
            .map(|(i, v)| to_sql(v, i))
            .collect::<Result<Vec<_>, _>>()?;
        let sql = self.storage.sql();
        let cursor = sql.exec(&body.query, &params)?;
        let rows: Vec<Value> = cursor
            .rows
            .iter()
            .map(|r| Value::Array(r.iter().map(from_sql).collect()))
            .collect();
        Ok(json!({
            "columns": cursor.columns,
            "rows": rows,
            "rowsRead": cursor.rows_read,
            "rowsWritten": cursor.rows_written,
            "databaseSize": sql.database_size()?,
        }))
    }

    fn kv(&self, req: &Request) -> Result<Value, BadRequest> {
        let body: KvRequest = req.json().map_err(BadRequest::from)?;
        let s = &self.storage;
        let missing = |what: &str| BadRequest(format!("op {:?} needs {what}", body.op));
        Ok(match body.op.as_str() {
            "get" => match (&body.key, &body.keys) {
                (Some(key), None) => {
                    let value = s.get_bytes(key)?;
                    json!({ "value": value.map(|v| decode_value(key, &v)).transpose()? })
                }
                (None, Some(keys)) => {
                    let mut entries = Map::new();
                    for (k, v) in s.get_many::<Value>(keys)? {
                        entries.insert(k, v);
                    }
                    json!({ "entries": entries })
                }
                _ => return Err(missing("\"key\" or \"keys\"")),
            },
            "put" => match (&body.key, &body.value, &body.entries) {
                (Some(key), Some(value), None) => {
                    s.put(key, value)?;
                    json!({ "ok": true })
                }
                (None, None, Some(entries)) => {
                    let entries: Vec<(String, Value)> = entries
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    s.put_many(&entries)?;
                    json!({ "ok": true })
                }
                _ => return Err(missing("\"key\" and \"value\", or \"entries\"")),
            },
            "delete" => match (&body.key, &body.keys) {
                (Some(key), None) => json!({ "deleted": s.delete(key)? }),
                (None, Some(keys)) => json!({ "deleted": s.delete_many(keys)? }),
                _ => return Err(missing("\"key\" or \"keys\"")),
            },
            "list" => {
                let entries = s.list_bytes(ListOptions {
                    prefix: body.prefix.clone(),
                    start: body.start.clone(),
                    end: body.end.clone(),
                    reverse: body.reverse,
                    limit: body.limit,
                })?;
                let entries = entries
                    .iter()
                    .map(|(k, v)| Ok(json!([k, decode_value(k, v)?])))
                    .collect::<Result<Vec<_>, BadRequest>>()?;
                json!({ "entries": entries })
            }
            "deleteAll" => {
                s.delete_all()?;
                json!({ "ok": true })
            }
            other => {
                return Err(BadRequest(format!(
                    "unknown op {other:?}; expected get, put, delete, list or deleteAll"
                )))
            }
        })
    }
}

impl DurableObject for TenantDb {
    fn new(state: State) -> Result<Self> {
        Ok(TenantDb {
            storage: state.storage(),
        })
    }

    fn fetch(&mut self, req: Request) -> Result<Response> {
        let result = match (req.method(), req.path()) {
            (Method::Post, "/sql") => self.sql(&req),
            (Method::Post, "/kv") => self.kv(&req),
            (_, "/sql" | "/kv") => return Ok(Response::error(405, "use POST")),
            (_, path) => {
                return Ok(Response::error(
                    404,
                    format!("no route {path}; use /sql or /kv"),
                ))
            }
        };
        match result {
            Ok(value) => Response::json(&value),
            Err(BadRequest(error)) => {
                Ok(Response::json(&json!({ "error": error }))?.with_status(400))
            }
        }
    }
}

export_object!(TenantDb);
