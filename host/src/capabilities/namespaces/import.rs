//! `dohost:object/namespaces`: ids of objects, and calls and requests to them
//! (through `Peers`, with cycle detection and a timeout).

use super::{check_cycle, CallChain, Callee, ChainLink, PeerError, Peers};
use crate::bindings::dohost::object::namespaces::{self, CallError};
use crate::bindings::dohost::object::types::{Request, Response};
use crate::bindings::CallFailure;
use crate::capabilities::outbound::OutputGate;
use crate::capabilities::sockets::UpgradeOffer;
use crate::capabilities::storage::ObjectDb;
use crate::config::is_valid_class_name;
use crate::config::limits::{MAX_CALL_DEPTH, MAX_KNOWN_NAME_BYTES, MAX_RPC_ARGS_BYTES};
use crate::deadline::Deadline;
use crate::id::{check_name, ObjectId};
use std::collections::HashMap;
use std::sync::Arc;

/// The namespaces capability of one instance.
pub struct NamespacesCtx {
    /// Other objects.
    pub peers: Arc<dyn Peers>,
    /// The call chain of the running event, ending with this object.
    pub chain: CallChain,
    /// Names of ids this instance derived with `id-from-name`, and their bytes.
    known_names: HashMap<(String, ObjectId), String>,
    known_name_bytes: usize,
    /// Paused while this instance waits on another object.
    deadline: Deadline,
    /// An entry serving a WebSocket upgrade: the client's connection.
    upgrade: Option<EntryUpgrade>,
}

/// The WebSocket connection of the request an entry serves, offered to the
/// objects it forwards GET requests to until one accepts it.
pub struct EntryUpgrade {
    pub offer: UpgradeOffer,
    /// The client's handshake headers (Upgrade, Connection,
    /// Sec-WebSocket-*): restored on a forwarded request that lacks them,
    /// as the Fetch API's `new Request(url, request)` drops them.
    pub handshake: Vec<(String, String)>,
}

impl NamespacesCtx {
    pub fn new(peers: Arc<dyn Peers>, me: ChainLink, deadline: Deadline) -> NamespacesCtx {
        NamespacesCtx {
            peers,
            chain: Arc::new(vec![me]),
            known_names: HashMap::new(),
            known_name_bytes: 0,
            deadline,
            upgrade: None,
        }
    }

    /// The namespaces of an entry worker: it is not an object, so its calls
    /// start a chain instead of extending one.
    pub fn for_entry(
        peers: Arc<dyn Peers>,
        deadline: Deadline,
        upgrade: Option<EntryUpgrade>,
    ) -> NamespacesCtx {
        NamespacesCtx {
            peers,
            chain: Arc::default(),
            known_names: HashMap::new(),
            known_name_bytes: 0,
            deadline,
            upgrade,
        }
    }

    /// The entry's connection, if `req` may take it: a GET while no object
    /// has accepted it. The handshake headers it lacks are restored.
    fn upgrade_for(&self, req: &mut Request) -> Option<UpgradeOffer> {
        let upgrade = self.upgrade.as_ref()?;
        if !req.method.eq_ignore_ascii_case("GET") || !upgrade.offer.is_open() {
            return None;
        }
        for (name, value) in &upgrade.handshake {
            if !req
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                req.headers.push((name.clone(), value.clone()));
            }
        }
        Some(upgrade.offer.clone())
    }

    /// A new event starts: its waiting callers, then this object.
    pub fn begin_event(&mut self, callers: &[ChainLink]) {
        if callers.is_empty() && self.chain.len() == 1 {
            return; // the usual case: nobody waits, the chain is this object
        }
        let me = self
            .chain
            .last()
            .cloned()
            .expect("the chain ends with this object");
        let mut chain = callers.to_vec();
        chain.push(me);
        self.chain = Arc::new(chain);
    }
}

fn check_class(class: &str) -> Result<(), PeerError> {
    if is_valid_class_name(class) {
        Ok(())
    } else {
        Err(PeerError::Invalid(format!("{class:?} is not a class name")))
    }
}

impl NamespacesCtx {
    /// Validates a call target: a served class, a well-formed id, no cycle,
    /// not too deep. The name is known if this instance derived the id from it.
    fn target(&self, class: String, id: &str) -> Result<Callee, PeerError> {
        check_class(&class)?;
        if !self.peers.knows_class(&class) {
            return Err(PeerError::UnknownClass(format!("unknown class {class:?}")));
        }
        let id = ObjectId::parse(id).map_err(|e| PeerError::Invalid(e.to_string()))?;
        let name = self.known_names.get(&(class.clone(), id)).cloned();
        check_cycle(&self.chain, &class, id, name.as_deref()).map_err(PeerError::Cycle)?;
        if self.chain.len() >= MAX_CALL_DEPTH {
            let path: Vec<String> = self.chain.iter().map(ToString::to_string).collect();
            return Err(PeerError::Cycle(format!(
                "call depth limit: {} already wait on each other ({} objects; at most \
                 {MAX_CALL_DEPTH} may be on one call chain)",
                path.join(" → "),
                self.chain.len()
            )));
        }
        Ok(Callee { class, id, name })
    }

    /// Remembers the name of an id, within a byte budget (then starts over).
    fn remember_name(&mut self, class: String, id: ObjectId, name: String) {
        let bytes = class.len() + name.len() + 64;
        if self.known_name_bytes + bytes > MAX_KNOWN_NAME_BYTES {
            self.known_names.clear();
            self.known_name_bytes = 0;
        }
        self.known_name_bytes += bytes;
        self.known_names.insert((class, id), name);
    }
}

type CallResult<T> = Result<T, CallFailure>;

/// What the namespaces import works on: the context and, in an object, its
/// output gate (a call leaves only after the writes before it are durable).
pub struct NamespacesView<'a> {
    pub ctx: &'a mut NamespacesCtx,
    /// None for an entry: it writes nothing.
    pub gate: Option<(&'a mut OutputGate, &'a mut ObjectDb)>,
}

impl NamespacesView<'_> {
    fn open_gate(&mut self) -> Result<(), PeerError> {
        match &mut self.gate {
            Some((gate, db)) => gate.open(db).map_err(|why| {
                PeerError::Invalid(format!(
                    "the call cannot leave before the writes before it: {why}"
                ))
            }),
            None => Ok(()),
        }
    }
}

impl namespaces::Host for NamespacesView<'_> {
    async fn id_from_name(&mut self, class: String, name: String) -> CallResult<String> {
        check_class(&class)?;
        check_name(&name).map_err(PeerError::Invalid)?;
        let id = ObjectId::from_name(&class, &name);
        // Remember the name so calls through this id address the object by name.
        self.ctx.remember_name(class, id, name);
        Ok(id.to_string())
    }

    async fn new_unique_id(&mut self, class: String) -> CallResult<String> {
        check_class(&class)?;
        Ok(ObjectId::new_unique().to_string())
    }

    async fn id_from_string(&mut self, class: String, id: String) -> CallResult<String> {
        check_class(&class)?;
        let id = ObjectId::parse(&id).map_err(|e| PeerError::Invalid(e.to_string()))?;
        Ok(id.to_string())
    }

    async fn call(
        &mut self,
        class: String,
        id: String,
        method: String,
        args_json: String,
    ) -> CallResult<String> {
        let target = self.ctx.target(class, &id)?;
        if args_json.len() > MAX_RPC_ARGS_BYTES {
            return Err(PeerError::Invalid(format!(
                "arguments too large: {} bytes of JSON (at most {MAX_RPC_ARGS_BYTES})",
                args_json.len()
            ))
            .into());
        }
        let args = crate::rpc::json::parse_strict(args_json.as_bytes())
            .map_err(|e| PeerError::Invalid(format!("args-json is not valid JSON: {e}")))?;
        // Waiting on another object does not count against this event's
        // deadline (the call has its own, limits.call_timeout).
        self.open_gate()?;
        let paused = self.ctx.deadline.pause();
        let result = self
            .ctx
            .peers
            .call(target, method, args, self.ctx.chain.clone())
            .await;
        self.ctx.deadline.resume(paused);
        Ok(result?.to_string())
    }

    async fn fetch(&mut self, class: String, id: String, mut req: Request) -> CallResult<Response> {
        let target = self.ctx.target(class, &id)?;
        self.open_gate()?;
        let paused = self.ctx.deadline.pause();
        let chain = self.ctx.chain.clone();
        let result = match self.ctx.upgrade_for(&mut req) {
            Some(offer) => {
                self.ctx
                    .peers
                    .fetch_upgrade(target, req, offer, chain)
                    .await
            }
            None => self.ctx.peers.fetch(target, req, chain).await,
        };
        self.ctx.deadline.resume(paused);
        Ok(result?)
    }

    /// Every `PeerError` reaches the guest as its case; anything else traps.
    fn convert_call_error(&mut self, err: CallFailure) -> wasmtime::Result<CallError> {
        let err = err.downcast::<PeerError>()?;
        Ok(match err {
            PeerError::Overloaded(m) => CallError::Overloaded(m),
            PeerError::Timeout(m) => CallError::Timeout(m),
            PeerError::Cycle(m) => CallError::Cycle(m),
            PeerError::UnknownClass(m) => CallError::UnknownClass(m),
            PeerError::NotFound(m) => CallError::NotFound(m),
            PeerError::Invalid(m) => CallError::Invalid(m),
            PeerError::Failed(m) => CallError::Failed(m),
            PeerError::Thrown { name, message } => {
                CallError::Thrown(namespaces::ThrownError { name, message })
            }
        })
    }
}
