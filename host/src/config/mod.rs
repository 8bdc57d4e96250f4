//! The manifest (`dohost.toml`): parsed once at start-up, validated with errors
//! that name the offending key. Nothing else reads the file.
//!
//! ```toml
//! listen = "127.0.0.1:8787"
//! data_dir = ".dohost"
//!
//! [limits]
//! hibernate_after = "10s"
//!
//! [classes.Counter]
//! component = "target/wasm32-wasip2/guest/counter.wasm"
//!
//! [[migrations]]
//! tag = "v1"
//! new_sqlite_classes = ["Counter"]
//! ```

pub mod limits;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A manifest that cannot be used, with the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read manifest {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid manifest {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid manifest {path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    /// Development mode: error bodies carry the guest's output.
    dev: Option<bool>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    alarms: RawAlarms,
    #[serde(default)]
    classes: BTreeMap<String, RawClass>,
    #[serde(default)]
    migrations: Vec<RawMigration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    hibernate_after: Option<String>,
    max_active: Option<usize>,
    cpu_per_event: Option<String>,
    memory_per_instance_mib: Option<u64>,
    mailbox: Option<usize>,
    max_body_bytes: Option<usize>,
    call_timeout: Option<String>,
    max_sockets_per_object: Option<usize>,
    max_ws_message_bytes: Option<usize>,
    request_read_timeout: Option<String>,
    mailbox_bytes: Option<usize>,
    max_inflight_bytes: Option<usize>,
    max_connections: Option<usize>,
    max_storage_bytes: Option<u64>,
    max_temp_bytes: Option<u64>,
    max_ws_send_queue_bytes: Option<usize>,
    ws_write_timeout: Option<String>,
    activation_wait: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlarms {
    retry_base: Option<String>,
    max_retries: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClass {
    component: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMigration {
    tag: String,
    #[serde(default)]
    new_sqlite_classes: Vec<String>,
    #[serde(default)]
    new_classes: Vec<String>,
    #[serde(default)]
    renamed_classes: Vec<toml::Value>,
    #[serde(default)]
    deleted_classes: Vec<String>,
    #[serde(default)]
    transferred_classes: Vec<toml::Value>,
}

/// Runtime limits (see `limits.rs` for the defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub hibernate_after: Duration,
    pub max_active: usize,
    pub cpu_per_event: Duration,
    pub memory_per_instance: u64,
    pub mailbox: usize,
    pub max_body_bytes: usize,
    /// How long a call from one object to another may take.
    pub call_timeout: Duration,
    pub max_sockets_per_object: usize,
    pub max_ws_message_bytes: usize,
    /// How long a client may take to send a request's headers, and its body
    /// (None: the server's default of 30 s).
    pub request_read_timeout: Option<Duration>,
    /// Bytes of queued events per object (beyond: 503).
    pub mailbox_bytes: usize,
    /// Bytes of request bodies in flight in the whole host (beyond: 503).
    pub max_inflight_bytes: usize,
    /// Open client connections (HTTP and WebSocket); None: derived from the
    /// file-descriptor limit at start-up.
    pub max_connections: Option<usize>,
    /// The storage quota of one object.
    pub max_storage_bytes: u64,
    /// Temporary files of guest queries, all objects together.
    pub max_temp_bytes: u64,
    /// Bytes queued to one WebSocket that its client has not read (beyond: 1008).
    pub max_ws_send_queue_bytes: usize,
    /// How long one WebSocket write may wait for a client that does not read.
    pub ws_write_timeout: Duration,
    /// How long an event waits for an active slot before it is refused.
    pub activation_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            hibernate_after: limits::DEFAULT_HIBERNATE_AFTER,
            max_active: limits::DEFAULT_MAX_ACTIVE,
            cpu_per_event: limits::DEFAULT_CPU_PER_EVENT,
            memory_per_instance: limits::DEFAULT_MEMORY_PER_INSTANCE,
            mailbox: limits::DEFAULT_MAILBOX,
            max_body_bytes: limits::DEFAULT_MAX_BODY,
            call_timeout: limits::DEFAULT_CALL_TIMEOUT,
            max_sockets_per_object: limits::DEFAULT_MAX_SOCKETS_PER_OBJECT,
            max_ws_message_bytes: limits::DEFAULT_MAX_WS_MESSAGE,
            request_read_timeout: None,
            mailbox_bytes: limits::DEFAULT_MAILBOX_BYTES,
            max_inflight_bytes: limits::DEFAULT_MAX_INFLIGHT_BYTES,
            max_connections: None,
            max_storage_bytes: limits::MAX_DATABASE_BYTES,
            max_temp_bytes: limits::DEFAULT_MAX_TEMP_BYTES,
            max_ws_send_queue_bytes: limits::DEFAULT_WS_SEND_QUEUE_BYTES,
            ws_write_timeout: limits::DEFAULT_WS_WRITE_TIMEOUT,
            activation_wait: limits::DEFAULT_ACTIVATION_WAIT,
        }
    }
}

/// One object class: a name and its component file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassConfig {
    pub name: String,
    pub component: PathBuf,
}

/// A validated manifest.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Where compiled components are cached (default `<data_dir>/_dohost/compiled`).
    pub cache_dir: PathBuf,
    pub limits: Limits,
    pub alarms: AlarmPolicy,
    pub classes: Vec<ClassConfig>,
    /// Development mode: error bodies carry the guest's output and traps.
    pub dev: bool,
    /// The bearer token the admin surface requires (`DOHOST_ADMIN_TOKEN`;
    /// not in the manifest: it is a secret).
    pub admin_token: Option<String>,
}

/// Command-line values that override the manifest.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    /// `--dev`: development mode.
    pub dev: bool,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
pub const DEFAULT_DATA_DIR: &str = ".dohost";

/// True if `name` can be a class name: an identifier, safe in paths and URLs.
pub fn is_valid_class_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
}

/// The retry policy of alarms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmPolicy {
    /// First retry delay; it doubles each time.
    pub retry_base: Duration,
    /// Retries before an alarm is given up.
    pub max_retries: u32,
}

impl Default for AlarmPolicy {
    fn default() -> Self {
        AlarmPolicy {
            retry_base: limits::DEFAULT_RETRY_BASE,
            max_retries: limits::DEFAULT_MAX_RETRIES,
        }
    }
}

/// The dotted key (`limits.max_active`, `migrations[0].tag`) of the entry of
/// manifest `text` whose key or value covers `span` (of a parse error).
fn key_at(text: &str, span: &std::ops::Range<usize>) -> Option<String> {
    use toml::de::{DeTable, DeValue};
    use toml::Spanned;
    fn covers(outer: &std::ops::Range<usize>, inner: &std::ops::Range<usize>) -> bool {
        outer.start <= inner.start && inner.end <= outer.end
    }
    fn in_table(
        table: &DeTable<'_>,
        span: &std::ops::Range<usize>,
        prefix: &str,
    ) -> Option<String> {
        table.iter().find_map(|(key, value)| {
            let path = match prefix {
                "" => key.get_ref().to_string(),
                _ => format!("{prefix}.{}", key.get_ref()),
            };
            in_value(value, span, &path).or_else(|| covers(&key.span(), span).then_some(path))
        })
    }
    fn in_value(
        value: &Spanned<DeValue<'_>>,
        span: &std::ops::Range<usize>,
        path: &str,
    ) -> Option<String> {
        let inner = match value.get_ref() {
            DeValue::Table(table) => in_table(table, span, path),
            DeValue::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| in_value(item, span, &format!("{path}[{i}]"))),
            _ => None,
        };
        inner.or_else(|| covers(&value.span(), span).then(|| path.to_string()))
    }
    in_table(DeTable::parse(text).ok()?.get_ref(), span, "")
}

impl Config {
    /// Reads and validates the manifest at `path`. Relative component paths and
    /// data dir are resolved against the manifest's directory.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::parse(&text, path, &base, overrides)
    }

    /// Validates manifest `text`; `path` names it in errors.
    pub fn parse(
        text: &str,
        path: &Path,
        base: &Path,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            // A value of the wrong type or an unknown key: name the key.
            match e.span().and_then(|span| key_at(text, &span)) {
                Some(key) => ConfigError::Invalid {
                    path: path.to_path_buf(),
                    key,
                    message: e.message().trim_end().replace('\n', " "),
                },
                None => ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string().trim_end().replace('\n', " "),
                },
            }
        })?;
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            message,
        };

        let listen = match (overrides.listen, raw.listen) {
            (Some(addr), _) => addr,
            (None, Some(s)) => s.parse().map_err(|e| {
                invalid(
                    "listen",
                    format!("{s:?} is not an address like 127.0.0.1:8787 ({e})"),
                )
            })?,
            (None, None) => DEFAULT_LISTEN.parse().expect("default address parses"),
        };
        let data_dir = match (&overrides.data_dir, raw.data_dir) {
            (Some(dir), _) => dir.clone(),
            (None, Some(dir)) => base.join(dir),
            (None, None) => base.join(DEFAULT_DATA_DIR),
        };
        let cache_dir = match raw.cache_dir {
            Some(dir) => base.join(dir),
            None => data_dir.join("_dohost").join("compiled"),
        };

        let duration = |key: &str, value: &Option<String>, default: Duration| match value {
            None => Ok(default),
            Some(s) => match humantime::parse_duration(s) {
                Ok(d) if !d.is_zero() => Ok(d),
                Ok(_) => Err(invalid(key, "must be greater than zero".into())),
                Err(e) => Err(invalid(
                    key,
                    format!("{s:?} is not a duration like \"10s\" or \"500ms\" ({e})"),
                )),
            },
        };
        let positive = |key: &str, value: Option<usize>, default: usize| match value {
            Some(0) => Err(invalid(key, "must be at least 1".into())),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        let d = Limits::default();
        let limits = Limits {
            // "0s" hibernates after every batch of events (tests, debugging).
            hibernate_after: match &raw.limits.hibernate_after {
                Some(s) if s.trim() == "0s" || s.trim() == "0" => Duration::ZERO,
                _ => duration(
                    "limits.hibernate_after",
                    &raw.limits.hibernate_after,
                    d.hibernate_after,
                )?,
            },
            max_active: positive("limits.max_active", raw.limits.max_active, d.max_active)?,
            cpu_per_event: duration(
                "limits.cpu_per_event",
                &raw.limits.cpu_per_event,
                d.cpu_per_event,
            )?,
            memory_per_instance: match raw.limits.memory_per_instance_mib {
                Some(mib @ 1..=4096) => mib * 1024 * 1024,
                Some(_) => {
                    return Err(invalid(
                        "limits.memory_per_instance_mib",
                        "must be between 1 and 4096".into(),
                    ))
                }
                None => d.memory_per_instance,
            },
            mailbox: positive("limits.mailbox", raw.limits.mailbox, d.mailbox)?,
            max_body_bytes: positive(
                "limits.max_body_bytes",
                raw.limits.max_body_bytes,
                d.max_body_bytes,
            )?,
            call_timeout: duration(
                "limits.call_timeout",
                &raw.limits.call_timeout,
                d.call_timeout,
            )?,
            max_sockets_per_object: positive(
                "limits.max_sockets_per_object",
                raw.limits.max_sockets_per_object,
                d.max_sockets_per_object,
            )?,
            max_ws_message_bytes: positive(
                "limits.max_ws_message_bytes",
                raw.limits.max_ws_message_bytes,
                d.max_ws_message_bytes,
            )?,
            request_read_timeout: match &raw.limits.request_read_timeout {
                None => None,
                some => Some(duration(
                    "limits.request_read_timeout",
                    some,
                    Duration::ZERO,
                )?),
            },
            mailbox_bytes: positive(
                "limits.mailbox_bytes",
                raw.limits.mailbox_bytes,
                d.mailbox_bytes,
            )?,
            max_inflight_bytes: positive(
                "limits.max_inflight_bytes",
                raw.limits.max_inflight_bytes,
                d.max_inflight_bytes,
            )?,
            max_connections: match raw.limits.max_connections {
                Some(n) => Some(positive("limits.max_connections", Some(n), n)?),
                None => None,
            },
            max_storage_bytes: positive(
                "limits.max_storage_bytes",
                raw.limits.max_storage_bytes.map(|b| b as usize),
                d.max_storage_bytes as usize,
            )? as u64,
            max_temp_bytes: positive(
                "limits.max_temp_bytes",
                raw.limits.max_temp_bytes.map(|b| b as usize),
                d.max_temp_bytes as usize,
            )? as u64,
            max_ws_send_queue_bytes: positive(
                "limits.max_ws_send_queue_bytes",
                raw.limits.max_ws_send_queue_bytes,
                d.max_ws_send_queue_bytes,
            )?,
            ws_write_timeout: duration(
                "limits.ws_write_timeout",
                &raw.limits.ws_write_timeout,
                d.ws_write_timeout,
            )?,
            activation_wait: duration(
                "limits.activation_wait",
                &raw.limits.activation_wait,
                d.activation_wait,
            )?,
        };
        if limits.max_ws_send_queue_bytes < limits.max_ws_message_bytes {
            return Err(invalid(
                "limits.max_ws_send_queue_bytes",
                format!(
                    "must be at least limits.max_ws_message_bytes ({}): one message must fit",
                    limits.max_ws_message_bytes
                ),
            ));
        }

        let default_policy = AlarmPolicy::default();
        let alarms = AlarmPolicy {
            retry_base: duration(
                "alarms.retry_base",
                &raw.alarms.retry_base,
                default_policy.retry_base,
            )?,
            max_retries: raw.alarms.max_retries.unwrap_or(default_policy.max_retries),
        };
        if raw.classes.is_empty() {
            return Err(invalid(
                "classes",
                "no classes: add a [classes.<Name>] table with a component path".into(),
            ));
        }
        let mut classes = Vec::new();
        for (name, class) in &raw.classes {
            let key = format!("classes.{name}");
            if !is_valid_class_name(name) {
                return Err(invalid(&key, "a class name is letters, digits and _ (not starting with a digit), at most 128 chars".into()));
            }
            let component = base.join(&class.component);
            if !component.is_file() {
                return Err(invalid(
                    &format!("{key}.component"),
                    format!(
                        "component file {} not found (build it with `make build`)",
                        component.display()
                    ),
                ));
            }
            classes.push(ClassConfig {
                name: name.clone(),
                component,
            });
        }

        let mut tags = Vec::new();
        let mut migrated = BTreeMap::new();
        for (i, m) in raw.migrations.iter().enumerate() {
            let key = format!("migrations[{i}]");
            if m.tag.trim().is_empty() {
                return Err(invalid(&format!("{key}.tag"), "must not be empty".into()));
            }
            if tags.contains(&m.tag) {
                return Err(invalid(
                    &format!("{key}.tag"),
                    format!("tag {:?} is used twice", m.tag),
                ));
            }
            tags.push(m.tag.clone());
            if !m.new_classes.is_empty() {
                return Err(invalid(&format!("{key}.new_classes"), "not supported: dohost only has SQLite-backed classes; list them in new_sqlite_classes".into()));
            }
            for (field, empty) in [
                ("renamed_classes", m.renamed_classes.is_empty()),
                ("deleted_classes", m.deleted_classes.is_empty()),
                ("transferred_classes", m.transferred_classes.is_empty()),
            ] {
                if !empty {
                    return Err(invalid(
                        &format!("{key}.{field}"),
                        "not supported yet: only new_sqlite_classes migrations are implemented"
                            .into(),
                    ));
                }
            }
            for class in &m.new_sqlite_classes {
                if !raw.classes.contains_key(class) {
                    return Err(invalid(
                        &format!("{key}.new_sqlite_classes"),
                        format!("unknown class {class:?}: it has no [classes.{class}] entry"),
                    ));
                }
                if migrated.insert(class.clone(), m.tag.clone()).is_some() {
                    return Err(invalid(
                        &format!("{key}.new_sqlite_classes"),
                        format!("class {class:?} is created by two migrations"),
                    ));
                }
            }
        }
        let missing: Vec<&str> = raw
            .classes
            .keys()
            .filter(|c| !migrated.contains_key(*c))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(invalid(
                "migrations",
                format!(
                    "migrations required: class(es) {} have no migration; add them to new_sqlite_classes of a [[migrations]] entry",
                    missing.join(", ")
                ),
            ));
        }

        Ok(Config {
            listen,
            data_dir,
            cache_dir,
            limits,
            alarms,
            classes,
            dev: overrides.dev || raw.dev.unwrap_or(false),
            admin_token: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.wasm"), b"").unwrap();
        Config::parse(
            text,
            Path::new("dohost.toml"),
            dir.path(),
            &Overrides::default(),
        )
    }

    const GOOD: &str = r#"
        [classes.Counter]
        component = "a.wasm"
        [[migrations]]
        tag = "v1"
        new_sqlite_classes = ["Counter"]
    "#;

    #[test]
    fn a_minimal_manifest_gets_the_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.classes.len(), 1);
        assert!(c.data_dir.ends_with(DEFAULT_DATA_DIR));
    }

    #[test]
    fn a_class_without_migration_is_refused_by_name() {
        let err = parse(
            r#"
            [classes.Counter]
            component = "a.wasm"
            [classes.Other]
            component = "a.wasm"
            [[migrations]]
            tag = "v1"
            new_sqlite_classes = ["Counter"]
        "#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("migrations required"), "{err}");
        assert!(err.contains("Other"), "{err}");
    }

    #[test]
    fn errors_name_the_offending_key() {
        let cases = [
            (format!("listen = \"nope\"\n{GOOD}"), "listen"),
            (
                format!("[limits]\nhibernate_after = \"soon\"\n{GOOD}"),
                "limits.hibernate_after",
            ),
            (
                format!("[limits]\nmax_active = 0\n{GOOD}"),
                "limits.max_active",
            ),
            (format!("[limits]\nbogus = 1\n{GOOD}"), "bogus"),
            (
                GOOD.replace("a.wasm", "missing.wasm"),
                "classes.Counter.component",
            ),
            (
                GOOD.replace("[\"Counter\"]", "[\"Counter\", \"Nope\"]"),
                "new_sqlite_classes",
            ),
            (
                format!("{GOOD}\n[[migrations]]\ntag = \"v1\"\n"),
                "migrations[1].tag",
            ),
            (
                format!("{GOOD}\n[[migrations]]\ntag = \"v2\"\nnew_classes = [\"X\"]\n"),
                "new_classes",
            ),
            (GOOD.replace("Counter", "Bad-Name"), "classes.Bad-Name"),
            // A value of the wrong type, and an unknown key, inside a table.
            (
                format!("[limits]\nmax_active = -1\n{GOOD}"),
                "limits.max_active: invalid value: integer `-1`, expected usize",
            ),
            (
                format!("[alarms]\nmax_retries = \"six\"\n{GOOD}"),
                "alarms.max_retries: invalid type: string \"six\", expected u32",
            ),
            (
                GOOD.replace("tag = \"v1\"", "tag = 1"),
                "migrations[0].tag: invalid type: integer `1`, expected a string",
            ),
        ];
        for (text, key) in cases {
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(key), "expected {key:?} in: {err}");
        }
    }

    #[test]
    fn overrides_win_over_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.wasm"), b"").unwrap();
        let o = Overrides {
            listen: Some("127.0.0.1:9".parse().unwrap()),
            data_dir: Some("/tmp/x".into()),
            dev: false,
        };
        let c = Config::parse(
            &format!("listen = \"0.0.0.0:1\"\n{GOOD}"),
            Path::new("m"),
            dir.path(),
            &o,
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    }
}
