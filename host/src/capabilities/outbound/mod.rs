//! Outbound HTTP (`wasi:http/outgoing-handler`, `fetch()` in JavaScript)
//! from entries and objects: only where the sender's egress policy allows
//! (`egress`), and, from an object, only once the writes before it are
//! durable (`gate`: the output gate; `object_http` wires both into an
//! object's `wasi:http`).

pub mod egress;
pub mod gate;
pub mod object_http;

pub use egress::{EgressHooks, EgressPolicy};
pub use gate::OutputGate;
