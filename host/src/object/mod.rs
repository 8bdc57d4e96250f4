//! The object actor: one tokio task per active object, the only owner of the
//! object's database connection and component instance.
//!
//! Events are processed strictly one at a time. Events that queue up while a
//! batch runs form the next batch: one SQLite transaction with one savepoint
//! per event, committed (one fsync) before any reply of the batch is released
//! (the output gate). A guest failure rolls back only its own event and
//! discards the instance; a storage failure rolls back the whole batch and
//! resets the object. An idle object hibernates: instance and database are
//! dropped and the actor leaves the registry.

mod alarm;
mod event;

pub use event::{AlarmOutcome, Envelope, EventError, EventKind, EventOutput};

use crate::bindings::dohost::object::types::Response;
use crate::engine::ClassRuntime;
use crate::id::ObjectId;
use crate::instance::{CallLimits, GuestFailure, InstanceLinks, ObjectInstance};
use crate::limits::MAX_EVENTS_PER_COMMIT;
use crate::metrics::LiveGuard;
use crate::peers::CallChain;
use crate::registry::{ActivePermit, ObjectKey};

use crate::runtime::Runtime;
use crate::sockets::{SocketEvent, SocketOp};
use crate::storage::ObjectDb;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long an event may wait for an active slot before it is refused.
const ACTIVATION_WAIT: Duration = Duration::from_secs(10);

/// The actor of one object.
pub struct ObjectActor {
    runtime: Arc<Runtime>,
    class: Arc<ClassRuntime>,
    key: ObjectKey,
    mailbox: mpsc::Receiver<Envelope>,
    /// Present while active. Always dropped together with `db` and `instance`.
    permit: Option<ActivePermit>,
    db: Option<ObjectDb>,
    instance: Option<(ObjectInstance, LiveGuard)>,
    name: Option<String>,
    /// Set when the database failed; the batch is rolled back and the object reset.
    broken: Option<String>,
    /// An event of the current batch changed the alarm: the index must follow.
    alarm_dirty: bool,
}

impl ObjectActor {
    /// Starts the actor of (class, id) and returns its mailbox.
    pub fn spawn(
        runtime: Arc<Runtime>,
        class: Arc<ClassRuntime>,
        id: ObjectId,
    ) -> mpsc::Sender<Envelope> {
        let (tx, rx) = mpsc::channel(runtime.config.limits.mailbox);
        let key = ObjectKey {
            class: class.name.clone(),
            id,
        };
        let actor = ObjectActor {
            runtime,
            class,
            key,
            mailbox: rx,
            permit: None,
            db: None,
            instance: None,
            name: None,
            broken: None,
            alarm_dirty: false,
        };
        tokio::spawn(actor.run());
        tx
    }

    fn object(&self) -> String {
        self.key.to_string()
    }

    async fn run(mut self) {
        let hibernate_after = self.runtime.config.limits.hibernate_after;
        loop {
            let first = match &self.permit {
                None => self.mailbox.recv().await,
                Some(permit) => {
                    let slot = permit.slot().clone();
                    tokio::select! {
                        biased;
                        event = self.mailbox.recv() => event,
                        () = slot.evict.notified() => {
                            self.hibernate("lru");
                            if self.runtime.registry.leave_if_idle(&self.key, &self.mailbox) {
                                return;
                            }
                            continue;
                        }
                        () = tokio::time::sleep(hibernate_after) => {
                            self.hibernate("idle");
                            if self.runtime.registry.leave_if_idle(&self.key, &self.mailbox) {
                                return;
                            }
                            continue;
                        }
                    }
                }
            };
            let Some(first) = first else {
                // Every sender is gone: the registry dropped us (shutdown).
                self.hibernate("shutdown");
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_EVENTS_PER_COMMIT {
                match self.mailbox.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            self.runtime
                .metrics
                .mailbox_depth
                .dec_by(batch.len() as i64);
            self.run_batch(batch).await;
            // `hibernate_after = "0s"`: evict after every batch (nothing may
            // live in the instance between events).
            if hibernate_after.is_zero() && self.mailbox.is_empty() {
                self.hibernate("idle");
                if self
                    .runtime
                    .registry
                    .leave_if_idle(&self.key, &self.mailbox)
                {
                    return;
                }
            }
        }
    }

    /// Drops the instance and the database; the object now lives only on disk.
    fn hibernate(&mut self, reason: &str) {
        if self.permit.is_none() {
            return;
        }
        self.instance = None;
        let _ = crate::failpoints::hit("mid-eviction");
        self.db = None;
        self.permit = None;
        self.runtime.metrics.hibernation(reason);
        if self.runtime.registry.mark_hibernated(&self.key) {
            self.runtime.metrics.objects_hibernated.inc();
        }
    }

    /// Drops instance and database after a storage failure (reopened on demand).
    fn reset(&mut self) {
        self.instance = None;
        self.db = None;
        self.broken = None;
    }

    /// Opens the database if needed (acquiring an active slot first).
    async fn ensure_db(&mut self) -> Result<(), EventError> {
        if self.permit.is_none() {
            let limit = self.runtime.config.limits.max_active;
            let permit = self
                .runtime
                .registry
                .activate(&self.key, ACTIVATION_WAIT)
                .await
                .ok_or_else(|| EventError::NoCapacity {
                    object: self.object(),
                    limit,
                })?;
            self.permit = Some(permit);
            if self.runtime.registry.mark_woken(&self.key) {
                self.runtime.metrics.objects_hibernated.dec();
            }
        }
        if self.db.is_none() && self.instance.is_none() {
            let path = self.runtime.object_path(&self.key);
            let db = tokio::task::block_in_place(|| ObjectDb::open(&path)).map_err(|e| {
                EventError::Storage {
                    object: self.object(),
                    message: e.to_string(),
                }
            })?;
            self.db = Some(db);
        }
        Ok(())
    }

    fn db(&mut self) -> &mut ObjectDb {
        match (&mut self.instance, &mut self.db) {
            (Some((instance, _)), _) => instance.db(),
            (None, Some(db)) => db,
            (None, None) => unreachable!("ensure_db runs before any storage access"),
        }
    }

    fn storage_failed(&mut self, err: impl std::fmt::Display) -> EventError {
        let message = err.to_string();
        self.broken.get_or_insert_with(|| message.clone());
        EventError::Storage {
            object: self.object(),
            message,
        }
    }

    /// Moves the database out of a failed instance and undoes its event.
    fn discard_instance(&mut self) {
        if let Some((instance, _guard)) = self.instance.take() {
            let mut db = instance.into_db();
            if let Err(e) = db.undo_event() {
                self.broken.get_or_insert_with(|| e.to_string());
            }
            self.db = Some(db);
        }
    }

    async fn run_batch(&mut self, batch: Vec<Envelope>) {
        if let Err(e) = self.ensure_db().await {
            for envelope in batch {
                self.runtime
                    .metrics
                    .event(&self.key.class, envelope.kind.label(), "refused");
                let _ = envelope.reply.send(Err(e.clone()));
            }
            return;
        }
        if let Some(permit) = &self.permit {
            permit.touch();
        }
        let mut replies = Vec::with_capacity(batch.len());
        self.alarm_dirty = false;
        let mut socket_ops: Vec<SocketOp> = Vec::new();
        if let Err(e) = self.db().begin() {
            let err = self.storage_failed(e);
            for envelope in batch {
                replies.push((envelope.reply, envelope.kind.label(), Err(err.clone())));
            }
        } else {
            for envelope in batch {
                if self.broken.is_some() {
                    let err = EventError::Storage {
                        object: self.object(),
                        message: self.broken.clone().unwrap_or_default(),
                    };
                    replies.push((envelope.reply, envelope.kind.label(), Err(err)));
                    continue;
                }
                if self.name.is_none() {
                    self.name = envelope.name.clone();
                }
                let label = envelope.kind.label();
                let result = self.run_event(envelope.kind, &envelope.callers).await;
                if result.is_ok() {
                    if let Some((instance, _)) = &mut self.instance {
                        socket_ops.extend(instance.take_socket_ops());
                        self.alarm_dirty |= instance.take_alarm_dirty();
                    }
                }
                replies.push((envelope.reply, label, result));
            }
            if let Some(message) = self.broken.clone() {
                self.db().rollback();
                let err = EventError::Storage {
                    object: self.object(),
                    message,
                };
                for reply in &mut replies {
                    reply.2 = Err(err.clone());
                }
                self.reset();
            } else {
                // Alarm index first (write-ahead), so a committed alarm is always indexed.
                let remove_alarm = match self.sync_alarm_index_before_commit() {
                    Ok(remove) => remove,
                    Err(e) => {
                        let _ = self.storage_failed(e);
                        false
                    }
                };
                if crate::failpoints::hit("before-commit").is_some() {
                    let _ = self.storage_failed("failpoint before-commit");
                }
                let committed = match self.broken.clone() {
                    Some(message) => Err(crate::storage::StorageError::Failed(message)),
                    None => {
                        let db = self.db();
                        tokio::task::block_in_place(|| db.commit())
                    }
                };
                let committed =
                    committed.and_then(|()| match crate::failpoints::hit("after-commit") {
                        // Committed, but the client is told it failed: allowed (an error is
                        // never a lie about durability; it is "unknown").
                        Some(_) => Err(crate::storage::StorageError::Failed(
                            "failpoint after-commit".into(),
                        )),
                        None => Ok(()),
                    });
                match committed {
                    Ok(()) => {
                        self.runtime.metrics.commits.inc();
                        self.runtime
                            .metrics
                            .events_committed
                            .inc_by(replies.len() as u64);
                        // Messages, closes and accepts leave only after the commit.
                        if !socket_ops.is_empty()
                            && crate::failpoints::hit("after-accept").is_some()
                        {
                            socket_ops.clear();
                        }
                        self.runtime.sockets.apply(&self.key, socket_ops);
                        if remove_alarm {
                            let alarms = &self.runtime.alarms;
                            let removed = tokio::task::block_in_place(|| alarms.remove(&self.key));
                            if let Err(e) = removed {
                                tracing::warn!("object {}: alarm index: {e}", self.key);
                            }
                        }
                    }
                    Err(e) => {
                        let err = self.storage_failed(e);
                        for reply in &mut replies {
                            reply.2 = Err(err.clone());
                        }
                        self.reset();
                    }
                }
            }
        }
        // Output gate: replies leave only now, after the commit.
        for (reply, label, result) in replies {
            let outcome = match &result {
                Ok(_) => "ok",
                Err(EventError::Guest { .. }) => "guest_failure",
                Err(EventError::Storage { .. }) => "storage_failure",
                Err(_) => "error",
            };
            self.runtime.metrics.event(&self.key.class, label, outcome);
            let _ = reply.send(result);
        }
    }

    /// Makes sure a constructed instance exists (inside the batch transaction).
    async fn ensure_instance(&mut self, for_socket: bool) -> Result<(), EventError> {
        if self.instance.is_some() {
            return Ok(());
        }
        if for_socket {
            self.runtime.metrics.socket_wakeups.inc();
        }
        let db = self
            .db
            .take()
            .expect("database is open outside an instance");
        // The name is learned from the first event addressed by name, and kept.
        let stored_name = match db.meta("name") {
            Ok(Some(rusqlite::types::Value::Text(n))) => Some(n),
            Ok(_) => None,
            Err(e) => {
                self.db = Some(db);
                return Err(self.storage_failed(e));
            }
        };
        if let (None, Some(name)) = (&stored_name, &self.name) {
            if let Err(e) = db.set_meta("name", rusqlite::types::Value::Text(name.clone())) {
                self.db = Some(db);
                return Err(self.storage_failed(e));
            }
        }
        let name = stored_name.or_else(|| self.name.clone());
        let call_limits = CallLimits::from(&self.runtime.config.limits);
        let links = InstanceLinks {
            peers: self.runtime.clone(),
            sockets: self.runtime.sockets.clone(),
        };
        let instantiated =
            ObjectInstance::instantiate(&self.class, self.key.id, name, db, call_limits, links)
                .await;
        let mut instance = match instantiated {
            Ok(instance) => instance,
            Err((message, db)) => {
                self.db = Some(db);
                return Err(EventError::Instantiate {
                    object: self.object(),
                    message,
                });
            }
        };
        let guard = self.runtime.metrics.instance_started(&self.key.class);
        if let Err(e) = instance.db().begin_event() {
            self.db = Some(instance.into_db());
            return Err(self.storage_failed(e));
        }
        self.instance = Some((instance, guard));
        let (instance, _) = self.instance.as_mut().expect("just set");
        match instance.init().await {
            Ok(()) => {
                if let Err(e) = instance.db().finish_event() {
                    return Err(self.storage_failed(e));
                }
                Ok(())
            }
            Err(failure) => {
                self.discard_instance();
                Err(self.guest_failed(failure))
            }
        }
    }

    fn guest_failed(&mut self, failure: GuestFailure) -> EventError {
        if let GuestFailure::Storage(message) = &failure {
            self.broken.get_or_insert_with(|| message.clone());
        }
        tracing::warn!("object {} {failure}", self.key);
        EventError::Guest {
            object: self.object(),
            failure,
        }
    }

    /// Runs one event in its own savepoint.
    async fn run_event(
        &mut self,
        kind: EventKind,
        callers: &CallChain,
    ) -> Result<EventOutput, EventError> {
        if let EventKind::Alarm = kind {
            return self.run_alarm().await;
        }
        self.ensure_instance(matches!(kind, EventKind::Socket(_)))
            .await?;
        let object = self.object();
        let (instance, _) = self.instance.as_mut().expect("ensured");
        if let Err(e) = instance.db().begin_event() {
            return Err(self.storage_failed(e));
        }
        instance.set_callers(callers);
        let handled = |r: Result<(), String>| {
            if let Err(e) = r {
                // A returned error is not a crash: the event's writes are kept.
                tracing::warn!("object {object} websocket handler returned an error: {e}");
            }
            EventOutput::Done
        };
        let result = match &kind {
            EventKind::Fetch { request, upgrade } => instance
                .fetch(request, *upgrade)
                .await
                .map(|response| upgrade_output(instance, response, &object)),
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
            EventKind::Alarm => unreachable!("alarm events run in run_alarm"),
        };
        match result {
            Ok(response) => {
                if let Err(e) = instance.db().finish_event() {
                    return Err(self.storage_failed(e));
                }
                Ok(response)
            }
            Err(failure) => {
                self.discard_instance();
                Err(self.guest_failed(failure))
            }
        }
    }
}

/// Matches a fetch's response with its WebSocket accept: 101 needs an accepted
/// socket, and an accepted socket needs 101 (otherwise it is dropped).
fn upgrade_output(instance: &mut ObjectInstance, response: Response, object: &str) -> EventOutput {
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
