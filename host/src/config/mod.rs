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

pub mod env;
pub mod limits;
pub mod wrangler;

pub use env::{AppEnv, Secret};

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A manifest that cannot be used, with the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read manifest {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid manifest {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{wrangler} is a Cloudflare project's config, not a dohost manifest: build the project with `dohost build --project {project}`, then serve it with `dohost serve --config {manifest}`")]
    Wrangler {
        wrangler: PathBuf,
        project: PathBuf,
        manifest: PathBuf,
    },
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
    admin_listen: Option<String>,
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
    #[serde(default)]
    vars: BTreeMap<String, String>,
    #[serde(default)]
    secrets: BTreeMap<String, env::RawSecret>,
    #[serde(default)]
    bindings: BTreeMap<String, String>,
    entry: Option<RawEntry>,
    assets: Option<RawAssets>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAssets {
    directory: PathBuf,
    binding: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    component: PathBuf,
    expose_objects: Option<bool>,
    #[serde(default)]
    allow: Vec<String>,
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
    max_entry_instances: Option<usize>,
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
    #[serde(default)]
    allow: Vec<String>,
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
    /// Entry instances (requests in the entry) at once.
    pub max_entry_instances: usize,
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
            max_entry_instances: limits::DEFAULT_MAX_ENTRY_INSTANCES,
        }
    }
}

/// One object class: a name and its component file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassConfig {
    pub name: String,
    pub component: PathBuf,
    /// Where the class's objects may send HTTP requests: `host:port` or `host`.
    pub allow: Vec<String>,
}

/// The application's entry worker (`[entry]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryConfig {
    /// A `wasi:http/proxy` component.
    pub component: PathBuf,
    /// Serve `/obj/…` and `/rpc/…` directly too (otherwise they reach the entry).
    pub expose_objects: bool,
    /// Where the entry may send HTTP requests: `host:port` or `host`.
    pub allow: Vec<String>,
}

/// A validated manifest.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where the admin surface (`/_dohost/*`) is served instead of `listen`,
    /// if set: `listen` then serves objects only.
    pub admin_listen: Option<SocketAddr>,
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
    /// `[vars]`, `[secrets]` and `[bindings]`: every object's and the entry's `env`.
    pub env: AppEnv,
    /// The entry worker, if the application has one.
    pub entry: Option<EntryConfig>,
    /// Static assets (`[assets]`), served before the entry.
    pub assets: Option<AssetsConfig>,
    /// `[[migrations]]`, in order (applied tags are append-only, steps are
    /// applied at start-up: `migrations.rs`).
    pub migrations: Vec<Migration>,
}

/// One `[[migrations]]` entry, as far as applying it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub tag: String,
    /// `deleted_classes`: every object's storage and alarm are removed.
    pub deleted_classes: Vec<String>,
}

/// `[assets]`: a directory of files the host serves itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetsConfig {
    pub directory: PathBuf,
    /// The entry's binding to them (`env.ASSETS.fetch(request)`), if any.
    pub binding: Option<String>,
}

impl Config {
    /// The components the instance pool is sized for: every class, and the
    /// entry (named `entry`), if any.
    pub fn pooled_components(&self) -> Vec<ClassConfig> {
        let mut all = self.classes.clone();
        if let Some(entry) = &self.entry {
            all.push(ClassConfig {
                name: "entry".into(),
                component: entry.component.clone(),
                allow: Vec::new(),
            });
        }
        all
    }

    /// Pool slots the entry needs besides the objects' (`max_active`).
    pub fn entry_slots(&self) -> usize {
        self.entry
            .as_ref()
            .map_or(0, |_| self.limits.max_entry_instances)
    }
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

/// A wrangler config given as the manifest, or found where the manifest is
/// missing: the error says how to build and serve that project.
fn wrangler_instead(path: &Path) -> Result<(), ConfigError> {
    let is_wrangler = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| wrangler::CONFIG_FILES.contains(&n));
    let project = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let found = if is_wrangler {
        Some(path.to_path_buf())
    } else if !path.exists() {
        wrangler::find(&project)
    } else {
        None
    };
    match found {
        Some(wrangler) => Err(ConfigError::Wrangler {
            wrangler,
            manifest: project.join(".dohost/dohost.toml"),
            project,
        }),
        None => Ok(()),
    }
}

impl Config {
    /// Reads and validates the manifest at `path`. Relative component paths and
    /// data dir are resolved against the manifest's directory.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        wrangler_instead(path)?;
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
        let raw = read_manifest(text, path)?;
        let check = Check { path };
        let listen = match (overrides.listen, &raw.listen) {
            (Some(addr), _) => addr,
            (None, Some(s)) => s.parse().map_err(|e| {
                check.invalid(
                    "listen",
                    format!("{s:?} is not an address like 127.0.0.1:8787 ({e})"),
                )
            })?,
            (None, None) => DEFAULT_LISTEN.parse().expect("default address parses"),
        };
        let admin_listen = match &raw.admin_listen {
            None => None,
            Some(s) => Some(s.parse().map_err(|e| {
                check.invalid(
                    "admin_listen",
                    format!("{s:?} is not an address like 127.0.0.1:8788 ({e})"),
                )
            })?),
        };
        let data_dir = match (&overrides.data_dir, &raw.data_dir) {
            (Some(dir), _) => dir.clone(),
            (None, Some(dir)) => base.join(dir),
            (None, None) => base.join(DEFAULT_DATA_DIR),
        };
        let cache_dir = match &raw.cache_dir {
            Some(dir) => base.join(dir),
            None => data_dir.join("_dohost").join("compiled"),
        };
        let limits = check.limits(&raw.limits)?;
        let alarms = check.alarms(&raw.alarms)?;
        let classes = check.classes(&raw.classes, base)?;
        check.migrations(&raw.migrations, &raw.classes)?;
        let mut env = env::read(&raw.vars, &raw.secrets, base, |var| std::env::var(var).ok())
            .map_err(|(key, message)| check.invalid(&key, message))?;
        let class_names: Vec<&str> = classes.iter().map(|c| c.name.as_str()).collect();
        env::bind(&mut env, &raw.bindings, &class_names)
            .map_err(|(key, message)| check.invalid(&key, message))?;
        let entry = raw
            .entry
            .as_ref()
            .map(|e| check.entry(e, base))
            .transpose()?;
        let assets = raw
            .assets
            .as_ref()
            .map(|a| check.assets(a, base, &mut env))
            .transpose()?;
        Ok(Config {
            listen,
            admin_listen,
            data_dir,
            cache_dir,
            limits,
            alarms,
            classes,
            dev: overrides.dev || raw.dev.unwrap_or(false),
            admin_token: None,
            env,
            entry,
            assets,
            migrations: raw
                .migrations
                .iter()
                .map(|m| Migration {
                    tag: m.tag.clone(),
                    deleted_classes: m.deleted_classes.clone(),
                })
                .collect(),
        })
    }
}

/// The manifest as TOML; a value of the wrong type or an unknown key names
/// its key.
fn read_manifest(text: &str, path: &Path) -> Result<RawManifest, ConfigError> {
    toml::from_str(text).map_err(|e| match e.span().and_then(|span| key_at(text, &span)) {
        Some(key) => ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message: e.message().trim_end().replace('\n', " "),
        },
        None => ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', " "),
        },
    })
}

/// Checks the sections of the manifest at `path`.
struct Check<'a> {
    path: &'a Path,
}

impl Check<'_> {
    fn invalid(&self, key: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            message,
        }
    }

    /// A duration like "10s", greater than zero.
    fn duration(
        &self,
        key: &str,
        value: &Option<String>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(s) = value else {
            return Ok(default);
        };
        match humantime::parse_duration(s) {
            Ok(d) if !d.is_zero() => Ok(d),
            Ok(_) => Err(self.invalid(key, "must be greater than zero".into())),
            Err(e) => Err(self.invalid(
                key,
                format!("{s:?} is not a duration like \"10s\" or \"500ms\" ({e})"),
            )),
        }
    }

    /// A count of at least 1.
    fn positive<N: Copy + PartialEq + From<u8>>(
        &self,
        key: &str,
        value: Option<N>,
        default: N,
    ) -> Result<N, ConfigError> {
        match value {
            Some(n) if n == N::from(0) => Err(self.invalid(key, "must be at least 1".into())),
            Some(n) => Ok(n),
            None => Ok(default),
        }
    }

    fn limits(&self, raw: &RawLimits) -> Result<Limits, ConfigError> {
        let d = Limits::default();
        macro_rules! positive {
            ($field:ident) => {
                self.positive(concat!("limits.", stringify!($field)), raw.$field, d.$field)?
            };
        }
        macro_rules! duration {
            ($field:ident) => {
                self.duration(
                    concat!("limits.", stringify!($field)),
                    &raw.$field,
                    d.$field,
                )?
            };
        }
        let limits = Limits {
            // "0s" hibernates after every batch of events (tests, debugging).
            hibernate_after: match &raw.hibernate_after {
                Some(s) if s.trim() == "0s" || s.trim() == "0" => Duration::ZERO,
                _ => duration!(hibernate_after),
            },
            max_active: positive!(max_active),
            cpu_per_event: duration!(cpu_per_event),
            memory_per_instance: match raw.memory_per_instance_mib {
                Some(mib @ 1..=4096) => mib * 1024 * 1024,
                Some(_) => {
                    let key = "limits.memory_per_instance_mib";
                    return Err(self.invalid(key, "must be between 1 and 4096".into()));
                }
                None => d.memory_per_instance,
            },
            mailbox: positive!(mailbox),
            max_body_bytes: positive!(max_body_bytes),
            call_timeout: duration!(call_timeout),
            max_sockets_per_object: positive!(max_sockets_per_object),
            max_ws_message_bytes: positive!(max_ws_message_bytes),
            request_read_timeout: match &raw.request_read_timeout {
                None => None,
                some => Some(self.duration("limits.request_read_timeout", some, Duration::ZERO)?),
            },
            mailbox_bytes: positive!(mailbox_bytes),
            max_inflight_bytes: positive!(max_inflight_bytes),
            max_connections: match raw.max_connections {
                Some(n) => Some(self.positive("limits.max_connections", Some(n), n)?),
                None => None,
            },
            max_storage_bytes: positive!(max_storage_bytes),
            max_temp_bytes: positive!(max_temp_bytes),
            max_ws_send_queue_bytes: positive!(max_ws_send_queue_bytes),
            ws_write_timeout: duration!(ws_write_timeout),
            activation_wait: duration!(activation_wait),
            max_entry_instances: positive!(max_entry_instances),
        };
        if limits.max_ws_send_queue_bytes < limits.max_ws_message_bytes {
            return Err(self.invalid(
                "limits.max_ws_send_queue_bytes",
                format!(
                    "must be at least limits.max_ws_message_bytes ({}): one message must fit",
                    limits.max_ws_message_bytes
                ),
            ));
        }
        Ok(limits)
    }

    fn alarms(&self, raw: &RawAlarms) -> Result<AlarmPolicy, ConfigError> {
        let d = AlarmPolicy::default();
        Ok(AlarmPolicy {
            retry_base: self.duration("alarms.retry_base", &raw.retry_base, d.retry_base)?,
            max_retries: raw.max_retries.unwrap_or(d.max_retries),
        })
    }

    /// The classes, with their component files (relative to `base`).
    fn classes(
        &self,
        raw: &BTreeMap<String, RawClass>,
        base: &Path,
    ) -> Result<Vec<ClassConfig>, ConfigError> {
        if raw.is_empty() {
            return Err(self.invalid(
                "classes",
                "no classes: add a [classes.<Name>] table with a component path".into(),
            ));
        }
        let mut classes = Vec::new();
        for (name, class) in raw {
            let key = format!("classes.{name}");
            if !is_valid_class_name(name) {
                return Err(self.invalid(&key, "a class name is letters, digits and _ (not starting with a digit), at most 128 chars".into()));
            }
            let component = base.join(&class.component);
            if !component.is_file() {
                return Err(self.invalid(
                    &format!("{key}.component"),
                    format!(
                        "component file {} not found (build it with `make build`)",
                        component.display()
                    ),
                ));
            }
            self.check_allow(&format!("{key}.allow"), &class.allow)?;
            classes.push(ClassConfig {
                name: name.clone(),
                component,
                allow: class.allow.clone(),
            });
        }
        Ok(classes)
    }

    fn entry(&self, raw: &RawEntry, base: &Path) -> Result<EntryConfig, ConfigError> {
        let component = base.join(&raw.component);
        if !component.is_file() {
            return Err(self.invalid(
                "entry.component",
                format!(
                    "component file {} not found (build it with `make build`)",
                    component.display()
                ),
            ));
        }
        self.check_allow("entry.allow", &raw.allow)?;
        Ok(EntryConfig {
            component,
            expose_objects: raw.expose_objects.unwrap_or(false),
            allow: raw.allow.clone(),
        })
    }

    /// `[assets]`: an existing directory, and a binding name that is free.
    fn assets(
        &self,
        raw: &RawAssets,
        base: &Path,
        env: &mut AppEnv,
    ) -> Result<AssetsConfig, ConfigError> {
        let directory = base.join(&raw.directory);
        if !directory.is_dir() {
            return Err(self.invalid(
                "assets.directory",
                format!("{} is not a directory", directory.display()),
            ));
        }
        if let Some(name) = &raw.binding {
            env::bind_assets(env, name).map_err(|(key, m)| self.invalid(&key, m))?;
        }
        Ok(AssetsConfig {
            directory,
            binding: raw.binding.clone(),
        })
    }

    /// An egress allow-list (`key`): `*`, `host` or `host:port` entries.
    fn check_allow(&self, key: &str, allow: &[String]) -> Result<(), ConfigError> {
        for (i, a) in allow.iter().enumerate() {
            let valid = a == "*"
                || (!a.is_empty()
                    && !a.contains('/')
                    && a.rsplit_once(':')
                        .is_none_or(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()));
            if !valid {
                return Err(self.invalid(
                    &format!("{key}[{i}]"),
                    format!("{a:?} is not a host or host:port (like \"api.example.com:443\")"),
                ));
            }
        }
        Ok(())
    }

    /// Every class is created by exactly one supported migration.
    fn migrations(
        &self,
        raw: &[RawMigration],
        classes: &BTreeMap<String, RawClass>,
    ) -> Result<(), ConfigError> {
        let mut migrated = BTreeMap::new();
        for (i, m) in raw.iter().enumerate() {
            let key = format!("migrations[{i}]");
            self.migration(&key, m, &raw[..i])?;
            self.deletions(&key, m, &mut migrated, classes)?;
            for class in &m.new_sqlite_classes {
                let key = format!("{key}.new_sqlite_classes");
                // A class a later migration deletes is no longer configured.
                let deleted_later = raw[i + 1..]
                    .iter()
                    .any(|later| later.deleted_classes.contains(class));
                if !classes.contains_key(class) && !deleted_later {
                    return Err(self.invalid(
                        &key,
                        format!("unknown class {class:?}: it has no [classes.{class}] entry"),
                    ));
                }
                if migrated.insert(class.clone(), m.tag.clone()).is_some() {
                    return Err(self.invalid(
                        &key,
                        format!("class {class:?} is created by two migrations"),
                    ));
                }
            }
        }
        let missing: Vec<&str> = classes
            .keys()
            .filter(|c| !migrated.contains_key(*c))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(self.invalid(
                "migrations",
                format!(
                    "migrations required: class(es) {} have no migration; add them to new_sqlite_classes of a [[migrations]] entry",
                    missing.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// `deleted_classes`: each was created earlier and is no longer configured.
    /// `migrated` (class → tag that created it) loses the deleted classes.
    fn deletions(
        &self,
        key: &str,
        m: &RawMigration,
        migrated: &mut BTreeMap<String, String>,
        classes: &BTreeMap<String, RawClass>,
    ) -> Result<(), ConfigError> {
        let key = format!("{key}.deleted_classes");
        for class in &m.deleted_classes {
            if classes.contains_key(class) {
                return Err(self.invalid(&key, format!("class {class:?} is still configured: remove [classes.{class}] to delete its objects")));
            }
            if migrated.remove(class).is_none() {
                return Err(self.invalid(&key, format!("class {class:?} was not created by an earlier migration (new_sqlite_classes)")));
            }
        }
        Ok(())
    }

    /// One migration's tag (unique among `earlier`) and its supported kinds.
    fn migration(
        &self,
        key: &str,
        m: &RawMigration,
        earlier: &[RawMigration],
    ) -> Result<(), ConfigError> {
        if m.tag.trim().is_empty() {
            return Err(self.invalid(&format!("{key}.tag"), "must not be empty".into()));
        }
        if earlier.iter().any(|e| e.tag == m.tag) {
            return Err(self.invalid(
                &format!("{key}.tag"),
                format!("tag {:?} is used twice", m.tag),
            ));
        }
        if !m.new_classes.is_empty() {
            return Err(self.invalid(&format!("{key}.new_classes"), "not supported: dohost only has SQLite-backed classes; list them in new_sqlite_classes".into()));
        }
        for (field, empty) in [
            ("renamed_classes", m.renamed_classes.is_empty()),
            ("transferred_classes", m.transferred_classes.is_empty()),
        ] {
            if !empty {
                return Err(self.invalid(
                    &format!("{key}.{field}"),
                    "not supported yet: only new_sqlite_classes and deleted_classes migrations are implemented".into(),
                ));
            }
        }
        Ok(())
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
