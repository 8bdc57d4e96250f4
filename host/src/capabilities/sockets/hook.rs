//! The socket capability at the commit: the committed events' socket
//! operations are applied to the hub in order, the auto-response pair
//! follows the object's stored one, and accepted sockets start being served.

use super::connection::{serve_socket, ConnectionLimits, SocketEvents};
use super::{stored_auto_response, SocketEffects, SocketHub, SocketOp};
use crate::capabilities::hooks::{BatchCommit, CommitHook};
use crate::capabilities::storage::Meta;
use std::sync::Arc;

/// Applies committed socket operations and serves accepted connections.
pub struct SocketHook {
    pub hub: Arc<SocketHub>,
    /// Where the served sockets deliver their events.
    pub events: Arc<dyn SocketEvents>,
    pub limits: ConnectionLimits,
}

impl CommitHook for SocketHook {
    type Effects = SocketEffects;

    fn after_commit(&self, batch: &mut BatchCommit<'_>, effects: Vec<SocketEffects>) {
        let auto_response = batch.changes.batch_changed(Meta::AutoResponse);
        let mut ops: Vec<SocketOp> = Vec::new();
        let mut served = Vec::new();
        for mut e in effects {
            ops.append(&mut e.ops);
            served.extend(e.served.take());
        }
        if ops.is_empty() && !auto_response {
            return;
        }
        if crate::failpoints::hit("after-accept").is_some() {
            return;
        }
        let (hub, key, db) = (&self.hub, batch.key, &*batch.db);
        // The pair first: a client that gets this batch's messages and sends
        // at once must already meet the new pair (seen as a flake: a cleared
        // pair still answered the next message).
        if auto_response {
            hub.set_auto_response(key, stored_auto_response(db).ok().flatten());
        }
        hub.apply(key, ops, || stored_auto_response(db).ok().flatten());
        let name = batch.name.map(str::to_string);
        for (socket, connection) in served {
            tokio::spawn(serve_socket(
                self.events.clone(),
                hub.clone(),
                self.limits,
                (key.clone(), name.clone(), socket),
                connection,
            ));
        }
    }
}
