//! The commit pipeline: one batch of events in one transaction, committed,
//! then released — in the order durability depends on:
//!
//! 1. every event runs in its own savepoint; a failed event rolls back alone.
//!    If SQLite itself rolls the transaction back under one event's
//!    statement, the events before it in the batch are void (their clients
//!    are told to retry) and the batch goes on in a new transaction;
//! 2. before the commit, the capabilities write ahead what must be durable
//!    first (the alarm index learns an earlier time);
//! 3. the commit (one flush for the batch);
//! 4. after it, and only if it succeeded, the capabilities apply what the
//!    events did (socket operations, accepted connections, the index
//!    settles); then the replies go out (the output gate). A failed commit
//!    applies nothing and answers every event with the failure.
//!
//! A batch whose events queued more than `MAX_EVENT_SEND_BYTES` of socket
//! messages is committed and released early, so that memory stays bounded.
//!
//! The pipeline only orders; its collaborators are a [`Stage`] (the object
//! actor in production, a recording fake in the tests below).

use super::{Envelope, EventError, EventOutput};
use crate::capabilities::sockets::SocketOp;
use crate::config::limits::MAX_EVENT_SEND_BYTES;
use crate::guest::instance::EventEffects;
use std::fmt::Display;
use tokio::sync::oneshot;

/// An event that ran, waiting for its batch to commit.
pub struct Pending {
    pub reply: oneshot::Sender<Result<EventOutput, EventError>>,
    pub label: &'static str,
    pub result: Result<EventOutput, EventError>,
    /// What it did outside storage (empty if it failed), with the
    /// connection of a socket it accepted.
    pub effects: EventEffects,
}

impl Pending {
    pub fn failed(
        reply: oneshot::Sender<Result<EventOutput, EventError>>,
        label: &'static str,
        error: EventError,
    ) -> Pending {
        Pending {
            reply,
            label,
            result: Err(error),
            effects: EventEffects::default(),
        }
    }
}

/// What the pipeline drives. Each step says what it must never do.
#[allow(async_fn_in_trait)] // used generically, never as a trait object
pub trait Stage {
    /// The object's sticky failure, if its storage failed: every event fails
    /// until the object is reset.
    fn broken(&self) -> Option<String>;
    /// Opens the batch's transaction (on failure the object is broken).
    fn begin(&mut self) -> Result<(), String>;
    /// Runs one event in its savepoint; `batch_accepts` sockets were accepted
    /// by earlier events of the batch. Never releases anything.
    async fn run(&mut self, envelope: Envelope, batch_accepts: usize) -> Pending;
    /// Why SQLite rolled the transaction back under the last event, if it did.
    fn take_lost(&mut self) -> Option<String>;
    /// Writes ahead what must be durable before the commit.
    fn before_commit(&mut self) -> Result<(), String>;
    /// Commits (one flush).
    fn commit(&mut self) -> Result<(), String>;
    /// Applies what the committed events did (called only after a commit).
    fn after_commit(&mut self, committed: &mut [Pending]);
    /// Rolls back a failed batch and resets the object.
    fn abandon(&mut self);
    /// Sends one reply.
    fn release(&mut self, pending: Pending);
}

/// The events of the open transaction.
#[derive(Default)]
struct Batch {
    pending: Vec<Pending>,
    /// Bytes of socket messages the events queued.
    send_bytes: usize,
    /// Sockets the events accepted (not in the hub until the commit).
    accepts: usize,
    /// The first events, committed at an output gate: never void.
    durable: usize,
}

impl Batch {
    fn push(&mut self, p: Pending) {
        let sockets = &p.effects.sockets;
        self.send_bytes += sockets.send_bytes;
        self.accepts += sockets
            .ops
            .iter()
            .filter(|op| matches!(op, SocketOp::Accept { .. }))
            .count();
        self.pending.push(p);
    }

    /// SQLite rolled back the transaction: nothing of the events so far was
    /// kept, whatever they answered.
    fn void(&mut self, object: &(dyn Display + Sync), reason: &str) {
        for p in self.pending.iter_mut().skip(self.durable) {
            if p.result.is_ok() {
                p.result = Err(EventError::BatchRolledBack {
                    object: object.to_string(),
                    reason: reason.to_string(),
                });
            }
            p.effects = EventEffects::default();
        }
        self.send_bytes = 0;
        self.accepts = 0;
    }
}

/// Runs `envelopes` as one batch on `stage` (`object` names it in errors;
/// formatted only when one happens).
pub async fn run_batch<S: Stage>(
    stage: &mut S,
    object: &(dyn Display + Sync),
    envelopes: Vec<Envelope>,
) {
    if let Err(message) = stage.begin() {
        // The object is reset: the next batch starts afresh.
        stage.abandon();
        let err = EventError::Storage {
            object: object.to_string(),
            message,
        };
        for envelope in envelopes {
            let label = envelope.kind.label();
            stage.release(Pending::failed(envelope.reply, label, err.clone()));
        }
        return;
    }
    let mut batch = Batch::default();
    for envelope in envelopes {
        let pending = stage.run(envelope, batch.accepts).await;
        // The event committed at its output gate: what came before is durable.
        if pending.effects.flushed {
            batch.durable = batch.pending.len();
        }
        if let Some(reason) = stage.take_lost() {
            batch.void(object, &reason);
            begin_again(stage);
        }
        batch.push(pending);
        if batch.send_bytes >= MAX_EVENT_SEND_BYTES && stage.broken().is_none() {
            commit_and_release(stage, object, std::mem::take(&mut batch));
            begin_again(stage);
        }
    }
    commit_and_release(stage, object, batch);
}

/// Opens a new transaction in the middle of a batch; a failure breaks the
/// object (the following events fail, the final commit does not happen).
fn begin_again<S: Stage>(stage: &mut S) {
    if stage.broken().is_none() {
        let _ = stage.begin();
    }
}

/// Commits the events of `batch` and releases what they produced.
fn commit_and_release<S: Stage>(stage: &mut S, object: &(dyn Display + Sync), batch: Batch) {
    let mut pending = batch.pending;
    let committed = match stage.broken() {
        Some(message) => Err(message),
        None => stage.before_commit().and_then(|()| stage.commit()),
    };
    match committed {
        Ok(()) => stage.after_commit(&mut pending),
        Err(message) => {
            stage.abandon();
            let err = EventError::Storage {
                object: object.to_string(),
                message,
            };
            for p in &mut pending {
                p.result = Err(err.clone());
            }
        }
    }
    // Output gate: replies leave only now, after the commit.
    for p in pending {
        stage.release(p);
    }
}

#[cfg(test)]
mod tests {
    //! Ordering tests in the manner of workerd's `actor-sqlite-test.c++`: a
    //! fake stage records every call, and each test reads like the rule it
    //! checks.

    use super::*;
    use crate::capabilities::namespaces::CallChain;
    use crate::object::EventKind;

    /// What a scripted event does.
    #[derive(Clone, Copy, PartialEq)]
    enum Script {
        Ok,
        Trap,
        /// Succeeds, then SQLite rolls the transaction back.
        LoseTransaction,
        /// Queues `n` MiB of socket messages.
        Send(usize),
        /// Accepts a socket.
        Accept,
        /// Commits at the output gate, then SQLite rolls the transaction back.
        FlushThenLose,
    }

    #[derive(Default)]
    struct Fake {
        log: Vec<String>,
        scripts: Vec<Script>,
        fail_commit: bool,
        fail_before_commit: bool,
        broken: Option<String>,
        lost: Option<String>,
        /// Replies seen by `release`, in order: (event, ok).
        released: Vec<(usize, bool)>,
    }

    impl Stage for Fake {
        fn broken(&self) -> Option<String> {
            self.broken.clone()
        }
        fn begin(&mut self) -> Result<(), String> {
            self.log.push("begin".into());
            Ok(())
        }
        async fn run(&mut self, envelope: Envelope, batch_accepts: usize) -> Pending {
            let n = envelope.name.as_deref().unwrap().parse::<usize>().unwrap();
            self.log
                .push(format!("run {n} (accepts so far {batch_accepts})"));
            let mut effects = EventEffects::default();
            let result = match self.scripts[n] {
                Script::Trap => Err(EventError::Dropped {
                    object: format!("trap {n}"),
                }),
                Script::LoseTransaction => {
                    self.lost = Some(format!("lost under {n}"));
                    Err(EventError::Dropped {
                        object: format!("lost {n}"),
                    })
                }
                Script::Send(mib) => {
                    effects.sockets.send_bytes = mib << 20;
                    Ok(EventOutput::Done)
                }
                Script::Accept => {
                    effects.sockets.ops.push(SocketOp::Accept {
                        id: n as u64,
                        tags: vec![],
                    });
                    Ok(EventOutput::Done)
                }
                Script::FlushThenLose => {
                    effects.flushed = true;
                    self.lost = Some(format!("lost under {n}"));
                    Err(EventError::Dropped {
                        object: format!("lost {n}"),
                    })
                }
                Script::Ok => Ok(EventOutput::Done),
            };
            Pending {
                reply: envelope.reply,
                label: "fetch",
                result,
                effects,
            }
        }
        fn take_lost(&mut self) -> Option<String> {
            self.lost.take()
        }
        fn before_commit(&mut self) -> Result<(), String> {
            self.log.push("before_commit".into());
            if self.fail_before_commit {
                return Err("index write failed".into());
            }
            Ok(())
        }
        fn commit(&mut self) -> Result<(), String> {
            self.log.push("commit".into());
            if self.fail_commit {
                return Err("commit failed".into());
            }
            Ok(())
        }
        fn after_commit(&mut self, committed: &mut [Pending]) {
            let ok: Vec<String> = committed
                .iter()
                .filter(|p| p.result.is_ok())
                .map(|p| p.effects.sockets.send_bytes.to_string())
                .collect();
            self.log.push(format!("after_commit {}", ok.join(",")));
        }
        fn abandon(&mut self) {
            self.log.push("abandon".into());
        }
        fn release(&mut self, p: Pending) {
            let n = self.released.len();
            self.released.push((n, p.result.is_ok()));
            self.log.push(format!(
                "release {}",
                if p.result.is_ok() { "ok" } else { "err" }
            ));
            let _ = p.reply.send(p.result);
        }
    }

    type Reply = oneshot::Receiver<Result<EventOutput, EventError>>;

    fn envelopes(n: usize) -> (Vec<Envelope>, Vec<Reply>) {
        (0..n)
            .map(|i| {
                let (tx, rx) = oneshot::channel();
                let kind = EventKind::Alarm;
                (
                    Envelope::new(kind, Some(i.to_string()), CallChain::default(), tx),
                    rx,
                )
            })
            .unzip()
    }

    async fn run(fake: &mut Fake) -> Vec<Reply> {
        let (batch, replies) = envelopes(fake.scripts.len());
        run_batch(fake, &"O/1", batch).await;
        replies
    }

    fn position(log: &[String], prefix: &str) -> usize {
        log.iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {log:?}"))
    }

    #[tokio::test]
    async fn no_reply_leaves_before_the_commit() {
        let mut fake = Fake {
            scripts: vec![Script::Ok, Script::Ok, Script::Ok],
            ..Fake::default()
        };
        run(&mut fake).await;
        let commit = position(&fake.log, "commit");
        let first_release = position(&fake.log, "release");
        assert!(commit < first_release, "{:?}", fake.log);
        assert_eq!(
            fake.log.iter().filter(|l| *l == "commit").count(),
            1,
            "one commit for the batch"
        );
    }

    #[tokio::test]
    async fn what_must_be_durable_first_is_written_before_the_commit() {
        let mut fake = Fake {
            scripts: vec![Script::Ok],
            ..Fake::default()
        };
        run(&mut fake).await;
        assert!(position(&fake.log, "before_commit") < position(&fake.log, "commit"));
    }

    #[tokio::test]
    async fn nothing_is_applied_when_the_commit_fails_and_every_event_fails() {
        let mut fake = Fake {
            scripts: vec![Script::Accept, Script::Send(1), Script::Ok],
            fail_commit: true,
            ..Fake::default()
        };
        let replies = run(&mut fake).await;
        assert!(
            !fake.log.iter().any(|l| l.starts_with("after_commit")),
            "{:?}",
            fake.log
        );
        assert!(fake.log.contains(&"abandon".to_string()));
        for mut r in replies {
            let reply = r.try_recv().expect("answered");
            assert!(
                matches!(reply, Err(EventError::Storage { .. })),
                "{reply:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_failed_write_ahead_prevents_the_commit() {
        let mut fake = Fake {
            scripts: vec![Script::Ok],
            fail_before_commit: true,
            ..Fake::default()
        };
        run(&mut fake).await;
        assert!(!fake.log.contains(&"commit".to_string()), "{:?}", fake.log);
        assert_eq!(fake.released, vec![(0, false)]);
    }

    #[tokio::test]
    async fn a_trap_discards_only_its_event() {
        let mut fake = Fake {
            scripts: vec![Script::Send(1), Script::Trap, Script::Send(2)],
            ..Fake::default()
        };
        run(&mut fake).await;
        assert_eq!(fake.released, vec![(0, true), (1, false), (2, true)]);
        let applied = &fake.log[position(&fake.log, "after_commit")];
        assert_eq!(applied, &format!("after_commit {},{}", 1 << 20, 2 << 20));
    }

    #[tokio::test]
    async fn a_lost_transaction_voids_the_events_before_it_and_the_batch_goes_on() {
        let mut fake = Fake {
            scripts: vec![Script::Ok, Script::LoseTransaction, Script::Ok],
            ..Fake::default()
        };
        let mut replies = run(&mut fake).await;
        let first = replies[0].try_recv().unwrap();
        assert!(
            matches!(first, Err(EventError::BatchRolledBack { .. })),
            "{first:?}"
        );
        assert!(replies[2].try_recv().unwrap().is_ok());
        assert_eq!(
            fake.log.iter().filter(|l| *l == "begin").count(),
            2,
            "{:?}",
            fake.log
        );
    }

    #[tokio::test]
    async fn events_committed_at_an_output_gate_are_never_voided() {
        let mut fake = Fake {
            scripts: vec![Script::Ok, Script::FlushThenLose, Script::Ok],
            ..Fake::default()
        };
        let mut replies = run(&mut fake).await;
        // The first event was committed by the second one's gate: it is
        // durable, so a later loss does not make it a "retry".
        assert!(replies[0].try_recv().unwrap().is_ok());
        assert!(replies[2].try_recv().unwrap().is_ok());
    }

    #[tokio::test]
    async fn accepts_of_earlier_events_count_for_later_ones() {
        let mut fake = Fake {
            scripts: vec![Script::Accept, Script::Accept, Script::Ok],
            ..Fake::default()
        };
        run(&mut fake).await;
        assert!(
            fake.log.contains(&"run 2 (accepts so far 2)".to_string()),
            "{:?}",
            fake.log
        );
    }

    #[tokio::test]
    async fn a_batch_whose_sends_reach_the_cap_commits_and_releases_early() {
        let cap = MAX_EVENT_SEND_BYTES >> 20;
        let mut fake = Fake {
            scripts: vec![Script::Send(cap), Script::Ok],
            ..Fake::default()
        };
        run(&mut fake).await;
        let first_release = position(&fake.log, "release");
        let second_run = position(&fake.log, "run 1");
        assert!(first_release < second_run, "{:?}", fake.log);
        assert_eq!(fake.log.iter().filter(|l| *l == "commit").count(), 2);
    }

    #[tokio::test]
    async fn a_broken_object_commits_nothing_and_fails_every_event() {
        let mut fake = Fake {
            scripts: vec![Script::Ok, Script::Ok],
            broken: Some("disk gone".into()),
            ..Fake::default()
        };
        run(&mut fake).await;
        assert!(!fake.log.contains(&"commit".to_string()));
        assert_eq!(fake.released, vec![(0, false), (1, false)]);
    }
}
