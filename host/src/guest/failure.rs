//! Why a guest call failed.

use std::time::Duration;

/// Why an event failed inside the guest. The event is rolled back and the
/// instance discarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestFailure {
    /// The guest trapped; `output` is what it wrote during the event
    /// (panic messages with source paths): shown to clients only in dev mode.
    #[error("trapped: {trap}{}", if output.is_empty() { String::new() } else { format!("; guest output: {output}") })]
    Trap { trap: String, output: String },
    #[error("exceeded the CPU limit of {0:?} per event (limits.cpu_per_event)")]
    CpuLimit(Duration),
    #[error("exceeded the memory limit of {} MiB per instance (limits.memory_per_instance_mib)", .0 / (1024 * 1024))]
    MemoryLimit(u64),
    #[error("aborted: {0}")]
    Aborted(String),
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("constructor failed: {0}")]
    Init(String),
    /// An untyped RPC method threw (its event is rolled back like a trap's).
    #[error("threw {name}: {message}")]
    Thrown { name: String, message: String },
}

impl GuestFailure {
    /// A trap without guest output.
    pub fn trap(trap: impl Into<String>) -> GuestFailure {
        GuestFailure::Trap {
            trap: trap.into(),
            output: String::new(),
        }
    }

    /// The failure as a client outside dev mode sees it: without the guest's
    /// output (kept in the host log).
    pub fn redacted(&self) -> String {
        match self {
            GuestFailure::Trap { trap, output } if !output.is_empty() => {
                format!("trapped: {trap} (the guest's output is in the host log)")
            }
            other => other.to_string(),
        }
    }
}
