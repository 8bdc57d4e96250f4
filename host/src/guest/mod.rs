//! The guest side of the host: the wasmtime engine and the loaded classes
//! (`engine`), one component instance per active object with its limits
//! (`instance`), the pool footprint of a component (`footprint`), guest
//! output (`log`) and the one `bindgen!` (`bindings`).

pub mod engine;
mod failure;
pub mod footprint;
pub mod instance;
pub mod limiter;
pub mod log;
mod state;
pub mod store;

pub use failure::GuestFailure;
pub use state::InstanceState;
