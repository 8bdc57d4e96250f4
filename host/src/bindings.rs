//! The one `bindgen!` of the host: Rust types and traits for the `dohost:object`
//! world. Imports are synchronous (SQLite calls are microseconds) except
//! `namespaces`, which awaits other objects; all imports may trap.

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
});

/// The host side of a `web-socket` resource handed to a guest: which socket.
#[derive(Debug)]
pub struct SocketHandle {
    pub id: crate::id::SocketId,
}
