//! How an object reaches other objects (the `namespaces` import). The runtime
//! implements `Peers`; `NoPeers` serves instances that run alone (benches).
//!
//! Every event carries its call chain: the objects blocked waiting for it,
//! outermost first, ending with the object itself. A call to an object already
//! on the chain would deadlock (each object runs one event at a time), so it
//! fails fast with the chain in the message.

mod import;

pub use import::{EntryUpgrade, NamespacesCtx, NamespacesView};

use crate::bindings::dohost::object::types::{Request, Response};
use crate::capabilities::sockets::UpgradeOffer;
use crate::id::ObjectId;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// One object on a call chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainLink {
    pub class: Arc<str>,
    pub id: ObjectId,
    pub name: Option<String>,
}

impl std::fmt::Display for ChainLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}:{name}", self.class),
            None => write!(f, "{}/{}", self.class, self.id),
        }
    }
}

/// The objects waiting on an event, outermost first.
pub type CallChain = Arc<Vec<ChainLink>>;

/// Why a call to another object failed: the `call-error` cases its caller's
/// guest tells apart. Each message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The callee's mailbox is full or the host has no active slot for it.
    #[error("{0}")]
    Overloaded(String),
    /// The callee did not answer within `limits.call_timeout`.
    #[error("{0}")]
    Timeout(String),
    /// The call would close a circle of waiting objects, or the chain of them
    /// would grow past its limit.
    #[error("{0}")]
    Cycle(String),
    /// No class of that name is served.
    #[error("{0}")]
    UnknownClass(String),
    /// The class has no RPC method of that name.
    #[error("{0}")]
    NotFound(String),
    /// A malformed id, name or argument.
    #[error("{0}")]
    Invalid(String),
    /// The callee failed (trapped, aborted, storage) or the host is stopping.
    #[error("{0}")]
    Failed(String),
    /// The callee's untyped method threw (its event was rolled back).
    #[error("{name}: {message}")]
    Thrown { name: String, message: String },
}

/// Fails if calling (class, id) from `chain` would form a cycle.
pub fn check_cycle(
    chain: &[ChainLink],
    class: &str,
    id: ObjectId,
    name: Option<&str>,
) -> Result<(), String> {
    if chain.iter().any(|l| &*l.class == class && l.id == id) {
        let target = ChainLink {
            class: class.into(),
            id,
            name: name.map(str::to_string).or_else(|| {
                chain
                    .iter()
                    .find(|l| &*l.class == class && l.id == id)
                    .and_then(|l| l.name.clone())
            }),
        };
        let path: Vec<String> = chain
            .iter()
            .map(ToString::to_string)
            .chain([target.to_string()])
            .collect();
        return Err(format!(
            "call cycle: {} would deadlock (each object runs one event at a time)",
            path.join(" → ")
        ));
    }
    Ok(())
}

/// Which object is waiting on which, across requests. The chain of one
/// request catches A → B → A; two requests can still deadlock: A (serving
/// one request) calls B while B (serving another) calls A, and each waits
/// for the other's event to end. Before a call, the caller follows the
/// waits from its target: reaching itself means the call would never end,
/// so it fails at once instead of after `limits.call_timeout`.
#[derive(Default)]
pub struct WaitGraph {
    /// Caller → the object it waits on (one call at a time per object).
    edges: std::sync::Mutex<std::collections::HashMap<(Arc<str>, ObjectId), ChainLink>>,
}

/// A registered wait; dropping it ends the wait.
pub struct Waiting<'a> {
    graph: &'a WaitGraph,
    from: Option<(Arc<str>, ObjectId)>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(from) = self.from.take() {
            let mut edges = self.graph.edges.lock().unwrap_or_else(|p| p.into_inner());
            edges.remove(&from);
        }
    }
}

impl WaitGraph {
    /// Registers that the last object of `chain` waits on `target`, or
    /// fails if `target` (transitively) waits on it.
    pub fn wait_on(&self, chain: &CallChain, target: &Callee) -> Result<Waiting<'_>, String> {
        let Some(caller) = chain.last() else {
            return Ok(Waiting {
                graph: self,
                from: None,
            });
        };
        let from = (caller.class.clone(), caller.id);
        let mut edges = self.edges.lock().unwrap_or_else(|p| p.into_inner());
        let mut path = vec![ChainLink {
            class: target.class.as_str().into(),
            id: target.id,
            name: target.name.clone(),
        }];
        let mut at = (Arc::<str>::from(target.class.as_str()), target.id);
        while let Some(next) = edges.get(&at) {
            path.push(next.clone());
            if (next.class.clone(), next.id) == from {
                let shown: Vec<String> = std::iter::once(caller.to_string())
                    .chain(path.iter().map(ToString::to_string))
                    .collect();
                return Err(format!(
                    "call deadlock: {} (another request is waiting the other way; each object \
                     runs one event at a time)",
                    shown.join(" → ")
                ));
            }
            at = (next.class.clone(), next.id);
            if path.len() > edges.len() + 1 {
                break;
            }
        }
        edges.insert(from.clone(), path[0].clone());
        Ok(Waiting {
            graph: self,
            from: Some(from),
        })
    }
}

/// The object a call goes to.
#[derive(Clone, Debug)]
pub struct Callee {
    pub class: String,
    pub id: ObjectId,
    /// The name, when the caller derived the id from one.
    pub name: Option<String>,
}

/// Other objects, as seen from inside an object.
pub trait Peers: Send + Sync {
    /// True if `class` is served by this host.
    fn knows_class(&self, class: &str) -> bool;

    /// Calls RPC `method` with JSON `args`; the JSON result or an error message.
    fn call(
        &self,
        target: Callee,
        method: String,
        args: Value,
        chain: CallChain,
    ) -> BoxFuture<Result<Value, PeerError>>;

    /// Sends `req` to the object's `fetch` handler.
    fn fetch(
        &self,
        target: Callee,
        req: Request,
        chain: CallChain,
    ) -> BoxFuture<Result<Response, PeerError>>;

    /// Sends `req`, a WebSocket upgrade, with the client's connection: if
    /// the object accepts, it takes the connection and answers 101.
    fn fetch_upgrade(
        &self,
        target: Callee,
        req: Request,
        offer: UpgradeOffer,
        chain: CallChain,
    ) -> BoxFuture<Result<Response, PeerError>> {
        drop(offer);
        self.fetch(target, req, chain)
    }
}

/// No other objects: every call fails.
pub struct NoPeers;

impl Peers for NoPeers {
    fn knows_class(&self, _class: &str) -> bool {
        false
    }

    fn call(
        &self,
        target: Callee,
        _: String,
        _: Value,
        _: CallChain,
    ) -> BoxFuture<Result<Value, PeerError>> {
        Box::pin(async move { Err(unknown_class(&target)) })
    }

    fn fetch(
        &self,
        target: Callee,
        _: Request,
        _: CallChain,
    ) -> BoxFuture<Result<Response, PeerError>> {
        Box::pin(async move { Err(unknown_class(&target)) })
    }
}

fn unknown_class(target: &Callee) -> PeerError {
    PeerError::UnknownClass(format!("unknown class {:?}", target.class))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(class: &str, name: &str) -> Callee {
        Callee {
            class: class.into(),
            id: ObjectId::from_name(class, name),
            name: Some(name.into()),
        }
    }

    #[test]
    fn two_requests_calling_each_others_objects_are_a_deadlock_caught_at_once() {
        let graph = WaitGraph::default();
        let a: CallChain = Arc::new(vec![link("A", "a")]);
        let b: CallChain = Arc::new(vec![link("B", "b")]);
        // A waits on B (request 1)...
        let waiting = graph.wait_on(&a, &target("B", "b")).unwrap();
        // ...then B (request 2) calls A: it would wait for itself.
        let err = graph.wait_on(&b, &target("A", "a")).err().unwrap();
        assert!(err.contains("call deadlock: B:b → A:a → B:b"), "{err}");
        // Once A's call ends, B may call A.
        drop(waiting);
        assert!(graph.wait_on(&b, &target("A", "a")).is_ok());
    }

    #[test]
    fn waits_that_do_not_close_a_circle_are_fine() {
        let graph = WaitGraph::default();
        let a: CallChain = Arc::new(vec![link("A", "a")]);
        let c: CallChain = Arc::new(vec![link("C", "c")]);
        let _ab = graph.wait_on(&a, &target("B", "b")).unwrap();
        let _cb = graph.wait_on(&c, &target("B", "b")).unwrap();
        let b: CallChain = Arc::new(vec![link("B", "b")]);
        assert!(graph.wait_on(&b, &target("D", "d")).is_ok());
    }

    fn link(class: &str, name: &str) -> ChainLink {
        ChainLink {
            class: class.into(),
            id: ObjectId::from_name(class, name),
            name: Some(name.into()),
        }
    }

    #[test]
    fn a_call_back_into_the_chain_is_a_cycle_named_in_full() {
        let chain = vec![link("Player", "p1"), link("Leaderboard", "global")];
        let err =
            check_cycle(&chain, "Player", ObjectId::from_name("Player", "p1"), None).unwrap_err();
        assert_eq!(
            err,
            "call cycle: Player:p1 → Leaderboard:global → Player:p1 would deadlock (each object runs one event at a time)"
        );
        assert!(check_cycle(&chain, "Player", ObjectId::from_name("Player", "p2"), None).is_ok());
        assert!(check_cycle(&chain, "Other", ObjectId::from_name("Player", "p1"), None).is_ok());
    }

    #[test]
    fn a_call_to_itself_is_a_cycle() {
        let chain = vec![link("Counter", "c")];
        assert!(check_cycle(
            &chain,
            "Counter",
            ObjectId::from_name("Counter", "c"),
            Some("c")
        )
        .is_err());
    }
}
