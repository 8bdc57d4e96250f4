//! Named failpoints for crash and error testing, compiled in only with the
//! `failpoints` feature (the `dohost-failpoints` test binary). Without the
//! feature every check is a constant `None` and costs nothing.
//!
//! `DOHOST_FAILPOINTS="after-commit=crash,persist-alarm=error"` arms points:
//! `crash` aborts the process on the spot (like a power cut for everything not
//! yet durable), `error` makes the operation at that point fail.

/// What an armed failpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Crash,
    Error,
}

/// Every failpoint, for tests to enumerate.
pub const POINTS: &[&str] = &[
    "before-commit",
    "after-commit",
    "persist-alarm",
    "mid-eviction",
    "after-accept",
    // Applying migrations at start-up (migrations.rs).
    "migration-moved-data",
    "migration-removed-data",
    "migration-before-record",
];

/// The action armed at `name`, if any. `Crash` never returns.
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) -> Option<Action> {
    debug_assert!(POINTS.contains(&name), "unknown failpoint {name}");
    let spec = std::env::var("DOHOST_FAILPOINTS").ok()?;
    let action = spec.split(',').find_map(|entry| {
        let (point, action) = entry.split_once('=')?;
        (point.trim() == name).then(|| action.trim().to_string())
    })?;
    match action.as_str() {
        "crash" => {
            eprintln!("failpoint {name}: crashing");
            std::process::abort()
        }
        "error" => Some(Action::Error),
        _ => None,
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) -> Option<Action> {
    None
}

#[cfg(feature = "failpoints")]
pub mod vfs;

/// Installs the power-loss / I/O-error SQLite VFS if the environment asks for
/// it (`DOHOST_POWERLOSS`, `DOHOST_IOERROR`); failpoint builds only.
pub fn install_from_env() {
    #[cfg(feature = "failpoints")]
    vfs::install_from_env();
}
