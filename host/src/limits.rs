//! Every limit and default of the runtime, named in one place. The manifest
//! (`[limits]` in `dohost.toml`) can override the configurable ones.

use std::time::Duration;

/// An object idle this long is hibernated (instance and database dropped).
pub const DEFAULT_HIBERNATE_AFTER: Duration = Duration::from_secs(10);
/// At most this many objects have a live instance at once; beyond it the least
/// recently used one is hibernated.
pub const DEFAULT_MAX_ACTIVE: usize = 1_000;
/// Wall-clock time a single event may spend running guest code.
pub const DEFAULT_CPU_PER_EVENT: Duration = Duration::from_secs(30);
/// Linear memory per instance.
pub const DEFAULT_MEMORY_PER_INSTANCE: u64 = 128 * 1024 * 1024;
/// Events queued per object before new ones are refused with 503.
pub const DEFAULT_MAILBOX: usize = 1_000;
/// How long a call from one object to another may take.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// WebSockets one object may hold.
pub const DEFAULT_MAX_SOCKETS_PER_OBJECT: usize = 32_768;
/// Largest WebSocket message, in either direction.
pub const DEFAULT_MAX_WS_MESSAGE: usize = 1024 * 1024;
/// Largest accepted HTTP request body.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;
/// Seconds a client is told to wait (`Retry-After`) when an object is overloaded.
pub const RETRY_AFTER_SECS: u32 = 1;

/// KV key size.
pub const MAX_KEY_BYTES: usize = 2 * 1024;
/// KV value size.
pub const MAX_VALUE_BYTES: usize = 2 * 1024 * 1024;
/// Keys per KV batch operation.
pub const MAX_BATCH_KEYS: usize = 128;
/// Largest SQL string or blob value (and row).
pub const MAX_SQL_VALUE_BYTES: usize = 2 * 1024 * 1024;
/// Largest SQL statement text.
pub const MAX_SQL_TEXT_BYTES: usize = 1024 * 1024;
/// Largest SQL result handed to a guest in one `exec`.
pub const MAX_SQL_RESULT_BYTES: usize = 32 * 1024 * 1024;
/// Storage per object.
pub const MAX_DATABASE_BYTES: u64 = 10 * 1000 * 1000 * 1000;
/// Nested transactions (savepoints) open at once within one event.
pub const MAX_NESTED_TRANSACTIONS: u32 = 64;

/// Events run in one storage transaction (one fsync) when they queue up.
pub const MAX_EVENTS_PER_COMMIT: usize = 256;
/// How often the CPU-limit clock ticks; a running guest yields to other
/// objects at least this often.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Bytes of guest stdout/stderr kept to explain a trap.
pub const GUEST_LOG_TAIL_BYTES: usize = 4 * 1024;
