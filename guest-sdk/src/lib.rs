//! `dohost-sdk`: write a durable object class in Rust.
//!
//! A class is a type that implements [`DurableObject`] and is exported with
//! [`export_object!`]. The host creates one instance per object id, calls
//! [`DurableObject::new`] on every new instance (after hibernation too) and then
//! delivers events one at a time. In-memory fields are a cache: anything that
//! must survive hibernation lives in [`Storage`].
//!
//! ```ignore
//! use dohost_sdk::prelude::*;
//!
//! struct Counter { state: State }
//!
//! impl DurableObject for Counter {
//!     fn new(state: State) -> Result<Self> {
//!         state.storage().sql().exec(
//!             "CREATE TABLE IF NOT EXISTS counter (value INTEGER NOT NULL)", &[])?;
//!         Ok(Counter { state })
//!     }
//!     fn fetch(&mut self, req: Request) -> Result<Response> {
//!         Ok(Response::text(format!("hello from {}", self.state.id())))
//!     }
//! }
//! export_object!(Counter);
//! ```
//!
//! This crate never talks to the host except through the generated WIT bindings.

#![warn(missing_docs)]

mod error;
mod http;
pub mod outbound;
mod rpc;
#[doc(hidden)]
pub mod runtime;
mod sql;
mod state;
mod storage;
mod stub;
mod websocket;

/// Bindings generated from the `dohost:object` world. Use them directly only for
/// what the safe wrappers don't cover.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "dohost:object/object",
        pub_export_macro: true,
        export_macro_name: "__export_object_world",
        default_bindings_module: "dohost_sdk::bindings",
        generate_all,
    });
}

pub use error::{Error, ErrorKind, Result};
pub use http::{Method, Request, Response};
pub use runtime::with_object;
pub use sql::{Cursor, SqlValue};
pub use state::{AlarmInfo, State};
pub use storage::{ListOptions, Storage};
pub use stub::WitResult;
pub use websocket::{AutoResponse, Message, WebSocket};

/// What a class that holds WebSockets needs besides the prelude.
pub mod websocket_prelude {
    pub use crate::AutoResponse;
}

/// Everything a class usually needs.
pub mod prelude {
    pub use crate::{
        export_object, export_rpc, params, stub, with_object, AlarmInfo, Cursor, DurableObject,
        Error, ErrorKind, ListOptions, Message, Method, Request, Response, Result, SqlValue, State,
        Storage, WebSocket, WitResult,
    };
}

/// A durable object class: the Rust counterpart of `extends DurableObject`.
///
/// Every method is one atomic event. Returning (`Ok` or `Err`) commits the
/// event's storage writes; a panic rolls them back and resets the object.
pub trait DurableObject: Sized + 'static {
    /// The constructor, run on each new instance before its first event. Create
    /// tables here (`CREATE TABLE IF NOT EXISTS …`).
    fn new(state: State) -> Result<Self>;

    /// Handles an HTTP request. An `Err` becomes a response with its HTTP
    /// status (500 unless made with [`Error::http`] or [`Error::bad_request`])
    /// carrying its message; the event's writes are still committed.
    fn fetch(&mut self, req: Request) -> Result<Response>;

    /// The alarm fired. An `Err` commits the writes and schedules a retry.
    fn alarm(&mut self, info: AlarmInfo) -> Result<()> {
        let _ = info;
        Err(Error::new("this class has no alarm handler"))
    }

    /// A message arrived on a socket accepted by this object.
    fn web_socket_message(&mut self, ws: WebSocket, message: Message) -> Result<()> {
        let _ = (ws, message);
        Ok(())
    }

    /// A socket closed.
    fn web_socket_close(
        &mut self,
        ws: WebSocket,
        code: u16,
        reason: String,
        was_clean: bool,
    ) -> Result<()> {
        let _ = (ws, code, reason, was_clean);
        Ok(())
    }

    /// A socket failed (protocol error, oversized message …).
    fn web_socket_error(&mut self, ws: WebSocket, error: String) -> Result<()> {
        let _ = (ws, error);
        Ok(())
    }
}

/// Exports a [`DurableObject`] type as this component's object class.
#[macro_export]
macro_rules! export_object {
    ($ty:ty) => {
        const _: () = {
            struct __DohostExports;
            impl $crate::bindings::exports::dohost::object::handler::Guest for __DohostExports {
                fn init() -> ::core::result::Result<(), ::std::string::String> {
                    $crate::runtime::init::<$ty>()
                }
                fn fetch(
                    req: $crate::bindings::dohost::object::types::Request,
                ) -> $crate::bindings::dohost::object::types::Response {
                    $crate::runtime::fetch::<$ty>(req)
                }
                fn alarm(
                    info: $crate::bindings::dohost::object::types::AlarmInfo,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::runtime::alarm::<$ty>(info)
                }
                fn web_socket_message(
                    ws: $crate::bindings::dohost::object::websockets::WebSocket,
                    message: $crate::bindings::dohost::object::types::WsMessage,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::runtime::web_socket_message::<$ty>(ws, message)
                }
                fn web_socket_close(
                    ws: $crate::bindings::dohost::object::websockets::WebSocket,
                    code: u16,
                    reason: ::std::string::String,
                    was_clean: bool,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::runtime::web_socket_close::<$ty>(ws, code, reason, was_clean)
                }
                fn web_socket_error(
                    ws: $crate::bindings::dohost::object::websockets::WebSocket,
                    error: ::std::string::String,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::runtime::web_socket_error::<$ty>(ws, error)
                }
            }
            $crate::bindings::__export_object_world!(__DohostExports with_types_in $crate::bindings);
        };
    };
}
