//! `State`: the object's identity, storage, sockets and stubs to other objects
//! (the Rust counterpart of `DurableObjectState`, `this.ctx`).

use crate::bindings::dohost::object::{
    env as wit_env, namespaces, state as wit_state, types, websockets,
};
use crate::websocket::{AutoResponse, WebSocket};
use crate::{Error, Request, Response, Result, Storage};
use serde::{de::DeserializeOwned, Serialize};

/// Passed to [`crate::DurableObject::alarm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmInfo {
    /// 0 on the first attempt, then 1, 2, … for retries.
    pub retry_count: u32,
    /// True if this attempt is a retry of a failed one.
    pub is_retry: bool,
}

impl From<types::AlarmInfo> for AlarmInfo {
    fn from(info: types::AlarmInfo) -> Self {
        AlarmInfo {
            retry_count: info.retry_count,
            is_retry: info.is_retry,
        }
    }
}

/// Handle to the object's context. Cheap to copy; keep it in your struct.
#[derive(Debug, Clone, Copy, Default)]
pub struct State;

impl State {
    /// The object id (64 lowercase hex characters).
    pub fn id(&self) -> String {
        wit_state::id()
    }

    /// The name the id was derived from, if the object was addressed by name.
    pub fn name(&self) -> Option<String> {
        wit_state::name()
    }

    /// The value of the manifest's var or secret `name` (`[vars]`,
    /// `[secrets]`), if it defines one. A secret is an ordinary string here:
    /// do not log it.
    pub fn env(&self, name: &str) -> Option<String> {
        wit_env::get(name)
    }

    /// The names of every var and secret, sorted.
    pub fn env_names(&self) -> Vec<String> {
        wit_env::names()
    }

    /// The class bound to `name` in the manifest's `[bindings]`
    /// (`COUNTER = "Counter"`), if any: pass it to `namespace`.
    pub fn binding(&self, name: &str) -> Option<String> {
        wit_env::bindings()
            .into_iter()
            .find_map(|(n, class)| (n == name).then_some(class))
    }

    /// The class name from the manifest.
    pub fn class_name(&self) -> String {
        wit_state::class_name()
    }

    /// The object's storage.
    pub fn storage(&self) -> Storage {
        Storage
    }

    /// Rolls back the current event and resets the object. Never returns.
    pub fn abort(&self, reason: &str) -> ! {
        wit_state::abort(reason);
        unreachable!("the host does not return from abort")
    }

    /// Accepts the WebSocket upgrade of the current request, with optional tags
    /// (at most 10, each at most 256 chars). Reply with
    /// [`Response::web_socket_accepted`].
    pub fn accept_web_socket(&self, tags: &[&str]) -> Result<WebSocket> {
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        websockets::accept(&tags)
            .map(WebSocket::from_wit)
            .map_err(Error::from)
    }

    /// Open sockets of this object, all or those with `tag`.
    pub fn get_web_sockets(&self, tag: Option<&str>) -> Result<Vec<WebSocket>> {
        Ok(websockets::get_web_sockets(tag)?
            .into_iter()
            .map(WebSocket::from_wit)
            .collect())
    }

    /// Sets (or clears, with `None`) the pair the host answers without waking
    /// the object.
    pub fn set_web_socket_auto_response(&self, pair: Option<AutoResponse>) -> Result<()> {
        websockets::set_auto_response(
            pair.map(|p| websockets::AutoResponse {
                request: p.request,
                response: p.response,
            })
            .as_ref(),
        )
        .map_err(Error::from)
    }

    /// The auto-response pair currently set, if any.
    pub fn get_web_socket_auto_response(&self) -> Option<AutoResponse> {
        websockets::get_auto_response().map(|p| AutoResponse {
            request: p.request,
            response: p.response,
        })
    }

    /// The id of `name` in `class`.
    pub fn id_from_name(&self, class: &str, name: &str) -> Result<String> {
        namespaces::id_from_name(class, name).map_err(Error::from)
    }

    /// Validates an id string for `class`.
    pub fn id_from_string(&self, class: &str, id: &str) -> Result<String> {
        namespaces::id_from_string(class, id).map_err(Error::from)
    }

    /// A new random id in `class`.
    pub fn new_unique_id(&self, class: &str) -> Result<String> {
        namespaces::new_unique_id(class).map_err(Error::from)
    }

    /// Calls RPC `method` of object `id` of `class` with JSON-serializable args
    /// (a tuple or array; `()` for none). The JSON result is decoded into `R`;
    /// a WIT `result` arrives as [`crate::WitResult`].
    pub fn call<A: Serialize, R: DeserializeOwned>(
        &self,
        class: &str,
        id: &str,
        method: &str,
        args: &A,
    ) -> Result<R> {
        let args = serde_json::to_string(args)?;
        let result = namespaces::call(class, id, method, &args)?;
        serde_json::from_str(&result).map_err(Error::from)
    }

    /// Sends a request to the `fetch` handler of object `id` of `class`.
    pub fn fetch_object(&self, class: &str, id: &str, req: Request) -> Result<Response> {
        namespaces::fetch(class, id, &req.into_wit())
            .map(Response::from_wit)
            .map_err(Error::from)
    }
}
