//! The memory and table budget of one instance, over all its core
//! instances' memories and tables together.

pub use crate::config::limits::MAX_TABLE_ELEMENTS;

/// Caps the linear memory of an instance — all its memories together (a
/// component holds several core instances, each may have its own) — and
/// remembers whether the cap was hit.
#[derive(Default)]
pub struct MemoryLimiter {
    pub limit: u64,
    /// Bytes of all memories (creation counts as growing from 0).
    used: u64,
    /// Elements of all tables.
    elements: usize,
    pub exceeded: bool,
}

impl MemoryLimiter {
    /// A budget of `limit` bytes of linear memory, none used yet.
    pub fn new(limit: u64) -> MemoryLimiter {
        MemoryLimiter {
            limit,
            ..MemoryLimiter::default()
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let next = self.used + (desired as u64).saturating_sub(current as u64);
        if next > self.limit {
            self.exceeded = true;
            return Err(wasmtime::Error::msg("memory limit exceeded"));
        }
        self.used = next;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let next = self.elements + desired.saturating_sub(current);
        if next > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        self.elements = next;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn the_memory_limit_counts_every_memory_of_the_instance() {
        let mut limiter = MemoryLimiter {
            limit: 100,
            ..Default::default()
        };
        // Two memories created (growing from 0): 60 + 40 fit, exactly.
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        assert!(limiter.memory_growing(0, 40, None).unwrap());
        assert!(!limiter.exceeded);
        // One byte more in either is over the limit for the instance.
        assert!(limiter.memory_growing(40, 41, None).is_err());
        assert!(limiter.exceeded);
    }

    #[test]
    fn tables_share_one_element_budget() {
        let mut limiter = MemoryLimiter::default();
        assert!(limiter
            .table_growing(0, MAX_TABLE_ELEMENTS - 1, None)
            .unwrap());
        assert!(limiter.table_growing(0, 1, None).unwrap());
        assert!(!limiter.table_growing(0, 1, None).unwrap());
    }
}
