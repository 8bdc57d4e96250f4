//! What every guest store gets, object instance and entry alike: WASI with
//! its output in the host log and the host's wall clock (nothing else: no
//! sockets, files or environment), a capped resource table, and the bounds
//! on its memory and CPU.

use super::limiter::MemoryLimiter;
use super::log::GuestLog;
use crate::clock::{SharedClock, WasiWallClock};
use crate::config::limits::MAX_HANDLES;
use crate::deadline::{Deadline, DeadlineExceeded};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::WasiCtx;

/// The WASI context of a guest.
pub fn guest_wasi(log: &GuestLog, clock: SharedClock) -> WasiCtx {
    WasiCtx::builder()
        .stdout(log.clone())
        .stderr(log.clone())
        .wall_clock(WasiWallClock(clock))
        .build()
}

/// A resource table of at most `MAX_HANDLES` entries.
pub fn guest_table() -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_HANDLES);
    table
}

/// Bounds `store`: its memories and tables by the state's limiter, its CPU
/// by the epoch callback, which traps once the state's deadline has passed.
pub fn limit_store<T: Send + 'static>(
    store: &mut Store<T>,
    limiter: fn(&mut T) -> &mut MemoryLimiter,
    deadline: fn(&T) -> &Deadline,
) {
    store.limiter(move |s| limiter(s));
    store.epoch_deadline_callback(move |ctx| {
        if deadline(ctx.data()).expired() {
            Err(wasmtime::Error::new(DeadlineExceeded))
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    store.set_epoch_deadline(1);
}
