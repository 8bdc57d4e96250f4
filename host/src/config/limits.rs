//! Every limit a guest or client can reach, and every default, named in one
//! place — except the longest object name, `crate::id::MAX_NAME_BYTES` (ids
//! are a leaf module). The manifest (`[limits]` in `dohost.toml`) can
//! override the configurable ones. Internal tuning (how many alarms are
//! dispatched at once, the LRU headroom, the wasmtime pool) lives with the
//! code it tunes.

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
/// Default first retry delay of a failed alarm; it doubles each time.
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(2);
/// Default number of retries before an alarm is given up.
pub const DEFAULT_MAX_RETRIES: u32 = 6;
/// How long an event waits for an active slot before it is refused (503).
/// Entry instances that may run at once.
pub const DEFAULT_MAX_ENTRY_INSTANCES: usize = 64;
/// The largest response body an entry may answer (it is buffered).
pub const MAX_ENTRY_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
pub const DEFAULT_ACTIVATION_WAIT: Duration = Duration::from_secs(10);
/// Seconds a client is told to wait (`Retry-After`) when an object is overloaded.
pub const RETRY_AFTER_SECS: u32 = 1;

/// KV key size.
pub const MAX_KEY_BYTES: usize = 2 * 1024;
/// KV value size.
pub const MAX_VALUE_BYTES: usize = 2 * 1024 * 1024;
/// Keys per KV batch operation.
pub const MAX_BATCH_KEYS: usize = 128;
/// Largest SQL statement text.
pub const MAX_SQL_TEXT_BYTES: usize = 1024 * 1024;
/// Largest SQL result handed to a guest in one `exec`.
pub const MAX_SQL_RESULT_BYTES: usize = 32 * 1024 * 1024;
/// Storage per object (the default quota, `limits.max_storage_bytes`).
pub const MAX_DATABASE_BYTES: u64 = 10 * 1000 * 1000 * 1000;
/// How far below the quota writes start running in their own savepoint (so
/// that one going over it is undone alone), and how far past it SQLite's hard
/// page limit sits.
pub const QUOTA_MARGIN_BYTES: u64 = 16 * 1024 * 1024;
/// A WAL larger than this is truncated (journal_size_limit) and checkpointed
/// when the object hibernates: reopening reads the whole WAL back.
pub const WAL_KEEP_BYTES: u64 = 1024 * 1024;
/// Largest result of one KV `list`.
pub const MAX_KV_LIST_BYTES: usize = 32 * 1024 * 1024;
/// Temporary files of guest queries (sorts, large transactions), all objects
/// together; beyond it a query fails with "disk full".
pub const DEFAULT_MAX_TEMP_BYTES: u64 = 1024 * 1024 * 1024;
// The longest object name is `crate::id::MAX_NAME_BYTES` (ids are a leaf).
/// Names of ids an instance remembers from `id-from-name`, in bytes.
pub const MAX_KNOWN_NAME_BYTES: usize = 256 * 1024;
/// Objects on one call chain (A calls B calls C …).
pub const MAX_CALL_DEPTH: usize = 16;
/// Bytes of the JSON arguments of an RPC call (HTTP body or `namespaces.call`).
pub const MAX_RPC_ARGS_BYTES: usize = 4 * 1024 * 1024;
/// Bytes of an RPC result once encoded as JSON.
pub const MAX_RPC_RESULT_BYTES: usize = 16 * 1024 * 1024;
/// Response headers a guest may return.
pub const MAX_RESPONSE_HEADERS: usize = 1000;
/// Bytes of WebSocket messages one event may queue (sends are applied after
/// its commit); a batch of events is committed early when its sends reach it.
pub const MAX_EVENT_SEND_BYTES: usize = 64 * 1024 * 1024;
/// Default budget of bytes queued to one WebSocket that the client has not
/// read yet; beyond it the socket is closed with 1008.
pub const DEFAULT_WS_SEND_QUEUE_BYTES: usize = 8 * 1024 * 1024;
/// How long one WebSocket write may block on a client that does not read.
pub const DEFAULT_WS_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bytes of queued events per object (request bodies, RPC arguments).
pub const DEFAULT_MAILBOX_BYTES: usize = 64 * 1024 * 1024;
/// Default bytes of request bodies in flight in the whole host.
pub const DEFAULT_MAX_INFLIGHT_BYTES: usize = 512 * 1024 * 1024;
/// File descriptors kept for the host itself (listener, alarm index, logs,
/// cache, temp files, the answer to a refused connection).
pub const FD_RESERVE: u64 = 128;
/// File descriptors an active object holds (database and WAL; EXCLUSIVE
/// locking needs no -shm), plus one for a temporary file.
pub const FDS_PER_OBJECT: u64 = 3;
/// The latest alarm time (epoch ms): 9999-12-31T23:59:59.999Z.
pub const MAX_ALARM_MS: i64 = 253_402_300_799_999;
/// Nested transactions (savepoints) open at once within one event.
pub const MAX_NESTED_TRANSACTIONS: u32 = 64;

/// Events run in one storage transaction (one fsync) when they queue up.
pub const MAX_EVENTS_PER_COMMIT: usize = 256;
/// How often the CPU-limit clock ticks; a running guest yields to other
/// objects at least this often.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Bytes of guest stdout/stderr kept to explain a trap.
pub const GUEST_LOG_TAIL_BYTES: usize = 4 * 1024;
/// Tags per socket, and characters per tag.
pub const MAX_TAGS: usize = 10;
pub const MAX_TAG_CHARS: usize = 256;
/// Bytes of a socket's attachment.
pub const MAX_ATTACHMENT_BYTES: usize = 2048;
/// Resource handles a guest may hold at once (a guest leaking handles is
/// stopped, not the host).
pub const MAX_HANDLES: usize = 100_000;
/// Table elements all tables of an instance may hold together.
pub const MAX_TABLE_ELEMENTS: usize = 1_000_000;
/// Headers per request (more → 431 with the JSON error).
pub const MAX_HEADERS: usize = 100;
