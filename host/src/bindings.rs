//! The one `bindgen!` of the host: Rust types and traits for the `dohost:object`
//! world. Imports are synchronous (SQLite calls are microseconds) except
//! `namespaces`, which awaits other objects; all imports may trap.
//!
//! The WIT error variants are `trappable_error_type`s: an import returns its
//! host error with `?` (a `StorageError`, a `PeerError`, or anything else), and
//! the interface's `convert_*` method decides in one place which errors reach
//! the guest as a case of the variant and which trap.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "dohost:object/object",
    imports: {
        "dohost:object/namespaces": async | trappable,
        default: trappable,
    },
    exports: { default: async },
    with: {
        "dohost:object/websockets.web-socket": SocketHandle,
    },
    trappable_error_type: {
        "dohost:object/types.storage-error" => StorageFailure,
        "dohost:object/namespaces.call-error" => CallFailure,
    },
});

/// The host side of a `web-socket` resource handed to a guest: which socket.
#[derive(Debug)]
pub struct SocketHandle {
    pub id: crate::id::SocketId,
}

/// A storage import's error before `convert_storage_error` classifies it.
pub type StorageFailure = wasmtime::Error;

/// A `namespaces` import's error before `convert_call_error` classifies it.
pub type CallFailure = wasmtime::Error;

impl self::dohost::object::types::StorageError {
    /// The message of the case: what to fix.
    pub fn message(&self) -> &str {
        use self::dohost::object::types::StorageError::*;
        match self {
            Refused(m) | Invalid(m) | Quota(m) | Sql(m) | Unsupported(m) => m,
        }
    }
}
