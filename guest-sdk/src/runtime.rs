//! Glue between the exported handler functions and the user's
//! [`DurableObject`] instance. Used by [`crate::export_object!`]; not public API.
//!
//! The instance lives in a thread-local cell: a component instance is
//! single-threaded and the host never re-enters it during an event.

use crate::bindings::dohost::object::{types, websockets};
use crate::http::{Request, Response};
use crate::websocket::{Message, WebSocket};
use crate::{DurableObject, Error, State};
use std::any::Any;
use std::cell::RefCell;

thread_local! {
    static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Runs `f` with the live instance of `T`. Panics if the host calls a handler
/// before `init` (a host bug).
pub fn with_instance<T: DurableObject, R>(f: impl FnOnce(&mut T) -> R) -> R {
    INSTANCE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let instance = slot
            .as_mut()
            .and_then(|b| b.downcast_mut::<T>())
            .expect("dohost: event delivered before init");
        f(instance)
    })
}

/// Runs `f` with the live object of class `T`, for RPC exports:
///
/// ```ignore
/// impl rpc::exports::dohost::examples::counter::Guest for CounterRpc {
///     fn increment(by: i64) -> i64 {
///         dohost_sdk::with_object(|c: &mut Counter| c.increment(by))
///     }
/// }
/// ```
///
/// An `Err` traps with its message: the event is rolled back and the caller
/// gets an error. Methods that should return errors to their caller declare a
/// WIT `result` and return it from `Ok`.
pub fn with_object<T: DurableObject, R>(f: impl FnOnce(&mut T) -> crate::Result<R>) -> R {
    match with_instance(f) {
        Ok(value) => value,
        Err(err) => panic!("{err}"),
    }
}

pub fn init<T: DurableObject>() -> Result<(), String> {
    let object = T::new(State)?;
    INSTANCE.with(|cell| *cell.borrow_mut() = Some(Box::new(object)));
    Ok(())
}

pub fn fetch<T: DurableObject>(req: types::Request) -> types::Response {
    let req = Request::from_wit(req);
    match with_instance(|o: &mut T| o.fetch(req)) {
        Ok(res) => res.into_wit(),
        Err(err) => Response::error(err.http_status(), err.message()).into_wit(),
    }
}

pub fn alarm<T: DurableObject>(info: types::AlarmInfo) -> Result<(), String> {
    with_instance(|o: &mut T| o.alarm(info.into())).map_err(String::from)
}

pub fn web_socket_message<T: DurableObject>(
    ws: websockets::WebSocket,
    message: types::WsMessage,
) -> Result<(), String> {
    let (ws, message) = (WebSocket::from_wit(ws), Message::from_wit(message));
    with_instance(|o: &mut T| o.web_socket_message(ws, message)).map_err(String::from)
}

pub fn web_socket_close<T: DurableObject>(
    ws: websockets::WebSocket,
    code: u16,
    reason: String,
    was_clean: bool,
) -> Result<(), String> {
    let ws = WebSocket::from_wit(ws);
    with_instance(|o: &mut T| o.web_socket_close(ws, code, reason, was_clean)).map_err(String::from)
}

pub fn web_socket_error<T: DurableObject>(
    ws: websockets::WebSocket,
    error: String,
) -> Result<(), String> {
    let ws = WebSocket::from_wit(ws);
    with_instance(|o: &mut T| o.web_socket_error(ws, error)).map_err(String::from)
}

impl From<Error> for types::Response {
    fn from(err: Error) -> Self {
        Response::error(err.http_status(), err.message()).into_wit()
    }
}
