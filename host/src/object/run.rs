//! One event of a batch: its savepoint, the instance (built, with its
//! constructor, as part of the event that needs it), the handler call, and
//! what the event produced.

use super::pipeline::Pending;
use super::{EventError, EventKind, EventOutput, ObjectActor};
use crate::bindings::dohost::object::types::Response;
use crate::capabilities::namespaces::ChainLink;
use crate::capabilities::sockets::SocketEvent;
use crate::capabilities::storage::{Meta, Phase, StorageError};
use crate::guest::instance::{CallLimits, EventEffects, Identity, InstanceLinks, ObjectInstance};
use crate::guest::GuestFailure;
use crate::id::ObjectKey;
use crate::object::Envelope;

/// What an event left behind: its answer and its effects.
pub(super) type Ran = (Result<EventOutput, EventError>, EventEffects);

impl ObjectActor {
    /// Runs one envelope of the batch (`batch_accepts`: sockets accepted by
    /// earlier events of the batch).
    pub(super) async fn run_envelope(
        &mut self,
        envelope: Envelope,
        batch_accepts: usize,
    ) -> Pending {
        let Envelope {
            mut kind,
            name,
            callers,
            reply,
            ..
        } = envelope;
        let label = kind.label();
        if let Some(message) = self.broken.clone() {
            let err = EventError::Storage {
                object: self.object(),
                message,
            };
            return Pending::failed(reply, label, err);
        }
        if self.name.is_none() {
            self.name = name;
        }
        let upgrade = match &mut kind {
            EventKind::Fetch { upgrade, .. } => upgrade.take().filter(|o| o.is_open()),
            _ => None,
        };
        let (mut result, mut effects) = match kind {
            EventKind::Alarm => self.run_alarm(&callers).await,
            // The timers lived in an instance that is gone (an earlier event
            // of the batch failed): nothing is left to fire.
            EventKind::Timer if self.residency.instance().is_none() => {
                (Ok(EventOutput::Done), Default::default())
            }
            kind => {
                let start = EventStart {
                    callers: &callers,
                    upgrade: upgrade.is_some(),
                    batch_accepts,
                    alarm: None,
                };
                self.run_event(kind, start).await
            }
        };
        // The accepted socket is served from the request's connection once
        // the event commits (an event that failed has no effects).
        if let (Ok(EventOutput::Upgrade { socket, response }), Some(offer)) = (&result, upgrade) {
            match offer.accept(response.headers.clone()) {
                Some(connection) => effects.sockets.served = Some((*socket, connection)),
                // Another object accepted the entry's connection first
                // (a call that timed out left its event queued): this
                // accept is dropped, as when a fetch accepts without a 101.
                None => {
                    let socket = *socket;
                    effects.sockets.ops.retain(|op| op.socket() != Some(socket));
                    result = Ok(EventOutput::Response(Response {
                        status: 409,
                        headers: vec![("content-type".into(), "text/plain".into())],
                        body: b"the WebSocket was already accepted by another object".to_vec(),
                    }));
                }
            }
        }
        Pending {
            reply,
            label,
            result,
            effects,
        }
    }

    /// Runs a fetch, RPC, WebSocket or timer event in its own savepoint.
    async fn run_event(&mut self, kind: EventKind, start: EventStart<'_>) -> Ran {
        if let Err(e) = self.db().begin_event() {
            return (Err(self.storage_failed(e)), EventEffects::default());
        }
        let for_socket = matches!(kind, EventKind::Socket(_));
        if let Err(e) = self.ensure_instance(&start, for_socket).await {
            return (Err(e), EventEffects::default());
        }
        let object = &self.key;
        let instance = self.residency.instance().expect("ensured");
        let label = kind.label();
        let handled = |r: Result<(), String>| {
            if let Err(e) = r {
                // A returned error is not a crash: the event's writes are kept.
                tracing::warn!("object {object} {label} handler returned an error: {e}");
            }
            EventOutput::Done
        };
        let result = match &kind {
            EventKind::Fetch { request, .. } => instance
                .fetch(request)
                .await
                .map(|response| upgrade_output(instance, response, object)),
            EventKind::Rpc { method, args } if method.dynamic => instance
                .call_dynamic(method, args)
                .await
                .map(EventOutput::Dynamic),
            EventKind::Rpc { method, args } => {
                instance.call(method, args).await.map(EventOutput::Value)
            }
            EventKind::Socket(SocketEvent::Message { socket, message }) => {
                instance.socket_message(*socket, message).await.map(handled)
            }
            EventKind::Socket(SocketEvent::Close {
                socket,
                code,
                reason,
                was_clean,
            }) => instance
                .socket_close(socket, *code, reason, *was_clean)
                .await
                .map(handled),
            EventKind::Socket(SocketEvent::Error { socket, error }) => {
                instance.socket_error(socket, error).await.map(handled)
            }
            EventKind::Timer => instance.fire_timers().await.map(handled),
            EventKind::Alarm => unreachable!("alarm events run in run_alarm"),
        };
        self.finish_event(result)
    }

    /// Ends the event: keeps its writes and effects, or rolls it back.
    pub(super) fn finish_event(&mut self, result: Result<EventOutput, GuestFailure>) -> Ran {
        let output = match result {
            Ok(output) => output,
            Err(failure) => {
                self.discard_instance();
                return (Err(self.guest_failed(failure)), EventEffects::default());
            }
        };
        let instance = self.residency.instance().expect("a guest call ran");
        match instance.db().finish_event() {
            Ok(()) => (Ok(output), instance.take_effects()),
            Err(e) if e.is_fatal() => (Err(self.storage_failed(e)), EventEffects::default()),
            Err(e) => {
                // Refused at the end (quota, deferred foreign keys): the event
                // is rolled back, and the instance, which believes its writes
                // happened, goes with it.
                self.discard_instance();
                let object = self.object();
                let err = match e {
                    StorageError::Quota(message) => EventError::Quota { object, message },
                    other => EventError::Refused {
                        object,
                        message: other.to_string(),
                    },
                };
                (Err(err), EventEffects::default())
            }
        }
    }

    /// Makes sure a constructed instance exists and starts the event on it.
    /// A new instance's constructor runs as part of the event: its writes
    /// and effects stand or fall with it. On failure the event is undone.
    pub(super) async fn ensure_instance(
        &mut self,
        start: &EventStart<'_>,
        for_socket: bool,
    ) -> Result<(), EventError> {
        if let Some(instance) = self.residency.instance() {
            instance.begin_event(
                start.callers,
                start.upgrade,
                start.batch_accepts,
                start.alarm,
            );
            return Ok(());
        }
        if for_socket {
            self.env.metrics.socket_wakeups.inc();
        }
        let name = match self.learn_name() {
            Ok(name) => name,
            Err(e) => {
                let err = self.storage_failed(e);
                self.discard_instance();
                return Err(err);
            }
        };
        let db = self
            .residency
            .take_db()
            .expect("the database is open outside an instance");
        let call_limits = CallLimits::from(&self.env.limits);
        let links = InstanceLinks {
            peers: self.env.peers.clone(),
            sockets: self.env.sockets.clone(),
            deadline: self.deadline.clone(),
            clock: self.env.clock.clone(),
            env: self.env.app_env.clone(),
            metrics: self.env.metrics.clone(),
            alarms: Some(self.env.alarms.clone()),
            assets: self.env.assets.clone(),
        };
        let who = Identity {
            id: self.key.id,
            name,
        };
        let instantiated =
            ObjectInstance::instantiate(&self.class, who, db, call_limits, links).await;
        let instance = match instantiated {
            Ok(instance) => instance,
            Err((message, db)) => {
                self.residency.put_db(db);
                self.discard_instance();
                return Err(EventError::Instantiate {
                    object: self.object(),
                    message,
                });
            }
        };
        let guard = self.env.metrics.instance_started(&self.key.class);
        self.residency.go_live(instance, guard);
        let instance = self.residency.instance().expect("just went live");
        instance.begin_event(
            start.callers,
            start.upgrade,
            start.batch_accepts,
            start.alarm,
        );
        instance.db().set_phase(Phase::Constructor);
        let constructed = instance.init().await;
        instance.db().set_phase(Phase::Event);
        match constructed {
            Ok(()) => Ok(()),
            Err(failure) => {
                self.discard_instance();
                Err(self.guest_failed(failure))
            }
        }
    }

    /// The name the object goes by: stored with it, or learned from the first
    /// event that addressed it by name (and then stored).
    fn learn_name(&mut self) -> Result<Option<String>, StorageError> {
        use rusqlite::types::Value;
        let stored = match self.db().meta(Meta::Name)? {
            Some(Value::Text(n)) => Some(n),
            _ => None,
        };
        if let (None, Some(name)) = (&stored, &self.name) {
            let name = name.clone();
            self.db().set_meta(Meta::Name, Value::Text(name))?;
        }
        Ok(stored.or_else(|| self.name.clone()))
    }

    pub(super) fn guest_failed(&mut self, failure: GuestFailure) -> EventError {
        // A storage failure inside the guest call breaks the object, unless
        // SQLite merely rolled the transaction back (the batch handles that).
        let lost = self.residency.db().is_some_and(|db| db.is_lost());
        if let GuestFailure::Storage(message) = &failure {
            if !lost {
                self.broken.get_or_insert_with(|| message.clone());
            }
        }
        tracing::warn!("object {} {failure}", self.key);
        EventError::Guest {
            object: self.object(),
            failure,
        }
    }
}

/// How an event starts on an instance.
pub(super) struct EventStart<'a> {
    pub callers: &'a [ChainLink],
    /// A fetch that asks for a WebSocket upgrade.
    pub upgrade: bool,
    pub batch_accepts: usize,
    /// The alarm (at, retry) an alarm event handles: the output gate keeps
    /// it stored across a commit in the event, constructor included.
    pub alarm: Option<(i64, u32)>,
}

/// Matches a fetch's response with its WebSocket accept: 101 needs an accepted
/// socket, and an accepted socket needs 101 (otherwise it is dropped).
fn upgrade_output(
    instance: &mut ObjectInstance,
    response: Response,
    object: &ObjectKey,
) -> EventOutput {
    match (instance.accepted_socket(), response.status) {
        (Some(socket), 101) => EventOutput::Upgrade { response, socket },
        (Some(_), _) => {
            instance.discard_accepted();
            EventOutput::Response(response)
        }
        (None, 101) => EventOutput::Response(Response {
            status: 500,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::json!({
                "error": format!("object {object} answered 101 without accepting the WebSocket (call accept first)")
            })
            .to_string()
            .into_bytes(),
        }),
        (None, _) => EventOutput::Response(response),
    }
}
