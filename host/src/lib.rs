//! dohost: a runtime for durable objects written as WebAssembly components.
//!
//! An HTTP request's path through the host, one module at a time:
//! `server` (admission, routes) → `runtime` (the loaded classes, wiring) →
//! `registry` (the object's mailbox, its active slot) → `object` (the actor
//! and its commit pipeline) → `guest` (the component instance, its limits)
//! → `capabilities` (storage, alarms, sockets, namespaces, identity: what the
//! guest imports, and their per-event hooks) → back to `object`, which
//! commits and releases the reply.
//!
//! Leaves that import nothing of ours: `config`, `id`, `clock`, `deadline`,
//! `blocking`.

pub mod assets;
pub mod bindings;
pub mod blocking;
pub mod capabilities;
pub mod cli;
pub mod clock;
pub mod config;
pub mod data_dir;
pub mod deadline;
pub mod entry;
pub mod failpoints;
pub mod fd_budget;
pub mod guest;
pub mod id;
pub mod metrics;
pub mod migrations;
pub mod object;
pub mod registry;
pub mod rpc;
pub mod runtime;
pub mod server;
