//! What the host still has to write to one WebSocket, with a byte budget.
//!
//! Messages are queued by the hub (after the event that sent them committed)
//! and written by the socket's connection task. A client that stops reading
//! makes the queue grow; past the budget the queue drops what it holds and
//! turns into a close (1008): the host never buffers without bound for a
//! slow reader.

use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

/// One thing to write.
#[derive(Debug)]
pub enum Outgoing {
    Message(Message),
    Close(u16, String),
    /// The budget was exceeded: close with 1008 and tell the object why.
    Overflow(String),
}

fn cost(out: &Outgoing) -> usize {
    match out {
        Outgoing::Message(m) => m.len(),
        Outgoing::Close(..) | Outgoing::Overflow(_) => 0,
    }
}

#[derive(Default)]
struct State {
    items: VecDeque<Outgoing>,
    bytes: usize,
    /// A close was queued (by the object, the host or an overflow): later
    /// messages are dropped.
    closing: bool,
    /// The connection task is gone (nobody pops any more).
    gone: bool,
    /// Why the queue overflowed, once it did.
    overflow: Option<String>,
}

/// Why a message was not queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The socket is closing or closed.
    Closed,
    /// The budget was exceeded: the queue now holds only a 1008 close.
    Overflow,
}

pub struct SendQueue {
    state: Mutex<State>,
    ready: Notify,
    budget: usize,
}

impl SendQueue {
    pub fn new(budget: usize) -> SendQueue {
        SendQueue {
            state: Mutex::default(),
            ready: Notify::new(),
            budget,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a message. Over the budget, the queued messages are dropped
    /// and replaced by a close with 1008 that names the budget.
    pub fn push(&self, message: Message) -> Result<(), Refused> {
        let mut s = self.lock();
        if s.closing || s.gone {
            return Err(Refused::Closed);
        }
        let len = message.len();
        if s.bytes + len > self.budget {
            s.items.clear();
            s.bytes = 0;
            s.closing = true;
            let reason = format!(
                "send queue over {} bytes (limits.max_ws_send_queue_bytes): the client does not read fast enough",
                self.budget
            );
            s.items.push_back(Outgoing::Overflow(reason.clone()));
            s.overflow = Some(reason);
            drop(s);
            self.ready.notify_waiters();
            self.ready.notify_one();
            return Err(Refused::Overflow);
        }
        s.bytes += len;
        s.items.push_back(Outgoing::Message(message));
        drop(s);
        self.ready.notify_one();
        Ok(())
    }

    /// Queues a close after what is queued; false if one was queued already.
    pub fn close(&self, code: u16, reason: String) -> bool {
        let mut s = self.lock();
        if s.closing || s.gone {
            return false;
        }
        s.closing = true;
        s.items.push_back(Outgoing::Close(code, reason));
        drop(s);
        self.ready.notify_one();
        true
    }

    /// True once a close is queued.
    pub fn is_closing(&self) -> bool {
        self.lock().closing
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// The next thing to write, waiting for one.
    pub async fn pop(&self) -> Outgoing {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                if let Some(out) = s.items.pop_front() {
                    s.bytes -= cost(&out).min(s.bytes);
                    return out;
                }
            }
            notified.await;
        }
    }

    /// Waits until the queue overflows (a writer stuck on a client that does
    /// not read learns it without finishing its write); returns why.
    pub async fn overflowed(&self) -> String {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(reason) = self.lock().overflow.clone() {
                return reason;
            }
            notified.await;
        }
    }

    /// The connection task ended: nothing is queued any more.
    pub fn shut(&self) {
        let mut s = self.lock();
        s.gone = true;
        s.items.clear();
        s.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_come_out_in_order_and_free_their_bytes() {
        let q = SendQueue::new(100);
        q.push(Message::text("a")).unwrap();
        q.push(Message::text("bc")).unwrap();
        assert_eq!(q.queued_bytes(), 3);
        assert!(matches!(q.pop().await, Outgoing::Message(m) if m.to_text().unwrap() == "a"));
        assert!(matches!(q.pop().await, Outgoing::Message(m) if m.to_text().unwrap() == "bc"));
        assert_eq!(q.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn a_queue_over_its_budget_drops_everything_and_closes_with_1008() {
        let q = SendQueue::new(10);
        q.push(Message::text("12345")).unwrap();
        q.push(Message::text("12345")).unwrap(); // exactly at the budget
        assert_eq!(q.push(Message::text("x")), Err(Refused::Overflow));
        assert_eq!(q.queued_bytes(), 0, "the queued messages were freed");
        match q.pop().await {
            Outgoing::Overflow(reason) => assert!(reason.contains("10 bytes"), "{reason}"),
            other => panic!("expected an overflow, got {other:?}"),
        }
        assert_eq!(q.push(Message::text("late")), Err(Refused::Closed));
    }

    #[tokio::test]
    async fn a_close_goes_after_what_is_queued_and_only_once() {
        let q = SendQueue::new(100);
        q.push(Message::text("last words")).unwrap();
        assert!(q.close(4000, "bye".into()));
        assert!(!q.close(4001, "again".into()));
        assert!(matches!(q.pop().await, Outgoing::Message(_)));
        assert!(matches!(q.pop().await, Outgoing::Close(4000, _)));
    }
}
