//! What an object actor reaches outside itself: a narrow environment the
//! runtime builds once, instead of the whole runtime.

use super::Envelope;
use crate::capabilities::alarms::{AlarmHook, AlarmScheduler};
use crate::capabilities::namespaces::Peers;
use crate::capabilities::sockets::connection::ConnectionLimits;
use crate::capabilities::sockets::{SocketHook, SocketHub};
use crate::clock::SharedClock;
use crate::config::{AppEnv, Limits};
use crate::id::ObjectKey;
use crate::metrics::Metrics;
use crate::registry::Registry;
use std::path::PathBuf;
use std::sync::Arc;

/// The collaborators of every object actor.
pub struct ObjectEnv {
    pub limits: Limits,
    /// Where object databases live (`<data_dir>/<class>/<id>.sqlite`).
    pub data_dir: PathBuf,
    pub clock: SharedClock,
    pub metrics: Arc<Metrics>,
    pub registry: Arc<Registry<Envelope>>,
    pub sockets: Arc<SocketHub>,
    pub alarms: Arc<AlarmScheduler>,
    /// Other objects (the `namespaces` import).
    pub peers: Arc<dyn Peers>,
    /// What the capabilities do around each commit.
    pub hooks: CommitHooks,
    /// The application's vars and secrets (every object's `env`).
    pub app_env: Arc<AppEnv>,
    /// `[assets]`, for the `ASSETS` binding.
    pub assets: Option<Arc<crate::assets::Assets>>,
}

/// The commit hooks of every capability that has one, in the order they run.
pub struct CommitHooks {
    pub alarms: AlarmHook,
    pub sockets: SocketHook,
}

/// How accepted sockets are served.
pub fn connection_limits(limits: &Limits) -> ConnectionLimits {
    ConnectionLimits {
        max_message: limits.max_ws_message_bytes,
        write_timeout: limits.ws_write_timeout,
    }
}

impl ObjectEnv {
    /// Where the database of an object lives. Class names are validated
    /// identifiers and ids are hex, so the path cannot escape the data dir.
    pub fn object_path(&self, key: &ObjectKey) -> PathBuf {
        self.data_dir
            .join(&*key.class)
            .join(format!("{}.sqlite", key.id))
    }
}
