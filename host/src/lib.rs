//! dohost: a runtime for durable objects written as WebAssembly components.
//!
//! `Runtime` loads classes (`engine`), routes events to one `ObjectActor` per
//! object (`registry`, `object`), which owns its `ObjectInstance` (`instance`)
//! and `ObjectDb` (`storage`). `server` is the HTTP front end, `cli` the binary.

pub mod alarm_index;
pub mod alarms;
pub mod bindings;
pub mod cli;
pub mod client;
pub mod config;
pub mod data_dir;
pub mod deadline;
pub mod engine;
pub mod failpoints;
pub mod fd_budget;
pub mod footprint;
pub mod guest_log;
pub mod id;
pub mod imports;
pub mod instance;
pub mod limits;
pub mod metrics;
pub mod object;
pub mod peers;
pub mod registry;
pub mod rpc;
pub mod runtime;
pub mod server;
pub mod sockets;
pub mod storage;
