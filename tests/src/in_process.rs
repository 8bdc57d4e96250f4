//! A host inside the test process, on virtual time: the real runtime and
//! HTTP server of the `dohost` crate run as tasks of the test's tokio runtime
//! (like mini-redis's `tests/server.rs`), with a `ManualClock` the test moves
//! forward. Alarms, retries and hibernation then happen exactly when the test
//! says, without waiting for them. Everything else is the same as with the
//! binary: real HTTP and WebSocket clients, real guest components, real
//! SQLite files. For crashes, power loss, restarts, signals and the host log,
//! use the binary (`TestHost::start`).
//!
//! Tests must use `#[tokio::test(flavor = "multi_thread")]` (the runtime
//! blocks a worker for commits).

use dohost::clock::ManualClock;
use dohost::runtime::Runtime;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use tokio::sync::oneshot;

/// The in-process parts of a `TestHost`.
pub struct InProcess {
    pub runtime: Arc<Runtime>,
    pub clock: Arc<ManualClock>,
    /// Stops the server when dropped.
    _stop: oneshot::Sender<()>,
}

/// Where in-process hosts keep their data dirs: one directory for the test
/// process, because SQLite's temporary-file directory is process-wide and
/// set from the first runtime's data dir (it must outlive every test).
pub fn process_dir() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
}

/// A fresh data dir under `process_dir()`.
pub fn fresh_data_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    process_dir().join(format!("host-{n}"))
}

/// Starts the runtime of the manifest at `manifest` (data in `data_dir`) and
/// serves it on a free loopback port; returns its URL.
pub async fn start(manifest: &std::path::Path, data_dir: PathBuf) -> (String, InProcess) {
    let overrides = dohost::config::Overrides {
        listen: None,
        data_dir: Some(data_dir),
        dev: false,
    };
    let config = dohost::config::Config::load(manifest, &overrides)
        .unwrap_or_else(|e| panic!("manifest: {e}"));
    let clock = ManualClock::new();
    let runtime =
        Runtime::with_clock(config, clock.clone()).unwrap_or_else(|e| panic!("runtime: {e:#}"));
    runtime.start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(dohost::server::serve(
        runtime.clone(),
        listener,
        10_000,
        dohost::server::Surface::All,
        async move {
            let _ = stopped.await;
        },
    ));
    let parts = InProcess {
        runtime,
        clock,
        _stop: stop,
    };
    (url, parts)
}
