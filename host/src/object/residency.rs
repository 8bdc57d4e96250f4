//! Where an object lives right now, as a type: on disk only, with an active
//! slot, with its database open, or with a live instance (which then holds
//! the database). Every transition is a method, so "an instance without a
//! slot" or "a database outside the instance while one lives" cannot be
//! written down.

use crate::capabilities::storage::ObjectDb;
use crate::guest::instance::ObjectInstance;
use crate::metrics::LiveGuard;
use crate::registry::ActivePermit;

// One per actor, moved only by its own transitions: the size of `Open` costs
// nothing, boxing its database would cost an allocation per activation.
#[allow(clippy::large_enum_variant)]
#[derive(Default)]
pub enum Residency {
    /// On disk only: no slot, no database, no instance.
    #[default]
    Hibernated,
    /// An active slot, but no database (after a storage failure: it is
    /// reopened by the next event).
    Slot { permit: ActivePermit },
    /// An active slot and an open database; no instance.
    Open { permit: ActivePermit, db: ObjectDb },
    /// An active slot and a live instance, which holds the database.
    Live {
        permit: ActivePermit,
        instance: Box<ObjectInstance>,
        _live: LiveGuard,
    },
}

impl Residency {
    pub fn permit(&self) -> Option<&ActivePermit> {
        match self {
            Residency::Hibernated => None,
            Residency::Slot { permit }
            | Residency::Open { permit, .. }
            | Residency::Live { permit, .. } => Some(permit),
        }
    }

    /// The database, wherever it is (`None` without one).
    pub fn db(&mut self) -> Option<&mut ObjectDb> {
        match self {
            Residency::Open { db, .. } => Some(db),
            Residency::Live { instance, .. } => Some(instance.db()),
            Residency::Hibernated | Residency::Slot { .. } => None,
        }
    }

    pub fn instance(&mut self) -> Option<&mut ObjectInstance> {
        match self {
            Residency::Live { instance, .. } => Some(instance),
            _ => None,
        }
    }

    /// Takes the database out to build an instance around it (`Open` →
    /// `Slot`), with the permit kept.
    pub fn take_db(&mut self) -> Option<ObjectDb> {
        match std::mem::take(self) {
            Residency::Open { permit, db } => {
                *self = Residency::Slot { permit };
                Some(db)
            }
            other => {
                *self = other;
                None
            }
        }
    }

    /// True if the object has a slot but no database (reopened on demand).
    pub fn needs_db(&self) -> bool {
        matches!(self, Residency::Hibernated | Residency::Slot { .. })
    }

    /// Puts a database back after instantiating around it failed (`Slot` →
    /// `Open`).
    pub fn put_db(&mut self, db: ObjectDb) {
        match std::mem::take(self) {
            Residency::Slot { permit } => *self = Residency::Open { permit, db },
            other => *self = other,
        }
    }

    /// A new instance holds the database now (`Slot` → `Live`).
    pub fn go_live(&mut self, instance: ObjectInstance, live: LiveGuard) {
        match std::mem::take(self) {
            Residency::Slot { permit } => {
                *self = Residency::Live {
                    permit,
                    instance: Box::new(instance),
                    _live: live,
                }
            }
            other => *self = other,
        }
    }

    /// Drops the instance and keeps its database (`Live` → `Open`).
    pub fn discard_instance(&mut self) {
        match std::mem::take(self) {
            Residency::Live {
                permit, instance, ..
            } => {
                *self = Residency::Open {
                    permit,
                    db: instance.into_db(),
                }
            }
            other => *self = other,
        }
    }

    /// Drops instance and database, keeps the slot (after a storage failure).
    pub fn reset(self) -> Residency {
        match self {
            Residency::Hibernated => Residency::Hibernated,
            Residency::Slot { permit }
            | Residency::Open { permit, .. }
            | Residency::Live { permit, .. } => Residency::Slot { permit },
        }
    }

    /// Hibernates: gives up the slot and hands back the database to close.
    pub fn close(self) -> Option<ObjectDb> {
        match self {
            Residency::Open { db, .. } => Some(db),
            Residency::Live { instance, .. } => Some(instance.into_db()),
            Residency::Slot { .. } | Residency::Hibernated => None,
        }
    }
}
