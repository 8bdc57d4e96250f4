//! How an object reaches other objects (the `namespaces` import). The runtime
//! implements `Peers`; `NoPeers` serves instances that run alone (benches).
//!
//! Every event carries its call chain: the objects blocked waiting for it,
//! outermost first, ending with the object itself. A call to an object already
//! on the chain would deadlock (each object runs one event at a time), so it
//! fails fast with the chain in the message.

use crate::bindings::dohost::object::types::{Request, Response};
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

/// The object a call goes to.
#[derive(Clone, Debug)]
pub struct Target {
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
        target: Target,
        method: String,
        args: Value,
        chain: CallChain,
    ) -> BoxFuture<Result<Value, String>>;

    /// Sends `req` to the object's `fetch` handler.
    fn fetch(
        &self,
        target: Target,
        req: Request,
        chain: CallChain,
    ) -> BoxFuture<Result<Response, String>>;
}

/// No other objects: every call fails.
pub struct NoPeers;

impl Peers for NoPeers {
    fn knows_class(&self, _class: &str) -> bool {
        false
    }

    fn call(
        &self,
        target: Target,
        _: String,
        _: Value,
        _: CallChain,
    ) -> BoxFuture<Result<Value, String>> {
        Box::pin(async move { Err(format!("unknown class {:?}", target.class)) })
    }

    fn fetch(
        &self,
        target: Target,
        _: Request,
        _: CallChain,
    ) -> BoxFuture<Result<Response, String>> {
        Box::pin(async move { Err(format!("unknown class {:?}", target.class)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
