//! Host metadata of an object (`_dohost_meta`): what other capabilities keep
//! in the object's database, in the event's transaction — the alarm, the
//! auto-response pair, the name — and which of it an event or batch changed.
//!
//! Capabilities learn their effects from here, not from each other: a batch
//! that changed `Alarm` makes the alarm index follow at the commit (whoever
//! wrote it: `set-alarm`, `delete-all`, the alarm event itself), one that
//! changed `AutoResponse` updates the socket hub.

/// One host metadata key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meta {
    /// The name the object was first addressed by (identity).
    Name,
    /// The alarm time, epoch ms (alarms).
    Alarm,
    /// Failed attempts of the pending alarm (alarms).
    AlarmRetry,
    /// The WebSocket auto-response pair, JSON (sockets).
    AutoResponse,
    /// An event other than a constructor changed the schema (storage).
    SchemaByEvents,
}

impl Meta {
    const ALL: [Meta; 5] = [
        Meta::Name,
        Meta::Alarm,
        Meta::AlarmRetry,
        Meta::AutoResponse,
        Meta::SchemaByEvents,
    ];

    /// The key in `_dohost_meta` (never change one: databases hold them).
    pub fn key(self) -> &'static str {
        match self {
            Meta::Name => "name",
            Meta::Alarm => "alarm",
            Meta::AlarmRetry => "alarm_retry",
            Meta::AutoResponse => "auto_response",
            Meta::SchemaByEvents => "schema_by_events",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// What `delete-all` removes with the guest's data (all but the name).
    pub fn deleted_with_all() -> impl Iterator<Item = Meta> {
        Meta::ALL.into_iter().filter(|m| *m != Meta::Name)
    }
}

/// Which metadata an event, and the batch so far, changed.
#[derive(Debug, Default, Clone, Copy)]
pub struct MetaChanges {
    /// Changed by the running event (kept if it finishes, dropped if undone).
    event: u8,
    /// Writes of `Alarm` in the running event (to tell whether a handler set
    /// or deleted the alarm itself).
    event_alarm_writes: u32,
    /// Changed by the kept events of the batch (and by host writes outside
    /// events).
    batch: u8,
}

impl MetaChanges {
    /// Records a write of `meta`, inside an event or not.
    pub fn wrote(&mut self, meta: Meta, in_event: bool) {
        if meta == Meta::Alarm && in_event {
            self.event_alarm_writes += 1;
        }
        if in_event {
            self.event |= meta.bit();
        } else {
            self.batch |= meta.bit();
        }
    }

    pub fn begin_event(&mut self) {
        self.event = 0;
        self.event_alarm_writes = 0;
    }

    pub fn finish_event(&mut self) {
        self.batch |= self.event;
        self.event = 0;
    }

    pub fn undo_event(&mut self) {
        self.event = 0;
    }

    /// Writes of the alarm so far in the running event.
    pub fn event_alarm_writes(&self) -> u32 {
        self.event_alarm_writes
    }

    /// True if the batch (its kept events) changed `meta`.
    pub fn batch_changed(&self, meta: Meta) -> bool {
        self.batch & meta.bit() != 0
    }

    /// What the batch and the running event changed so far, as batch
    /// changes (for a commit in the middle of the event: the output gate).
    pub fn so_far(&self) -> MetaChanges {
        MetaChanges {
            batch: self.batch | self.event,
            ..*self
        }
    }

    /// The transaction ended (committed or rolled back): start over.
    pub fn clear(&mut self) {
        *self = MetaChanges::default();
    }
}
