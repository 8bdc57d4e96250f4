//! dohost: a runtime for durable objects written as WebAssembly components.

pub mod limits;
pub mod storage;
