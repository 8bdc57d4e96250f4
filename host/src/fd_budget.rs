//! File descriptors, budgeted at start-up: the soft `RLIMIT_NOFILE` is
//! raised to the hard limit, a reserve is kept for the host itself (so the
//! accept loop can always answer "503, come back later" and the alarm index
//! and caches keep working), and the rest is split between active objects
//! (`FDS_PER_OBJECT` each) and client connections (one each, WebSockets
//! included). The caps that come out are logged; `max_active` is lowered if
//! the limit cannot hold it.

use crate::config::limits::{FDS_PER_OBJECT, FD_RESERVE};

/// What the descriptor limit allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdPlan {
    /// The (raised) soft limit.
    pub limit: u64,
    pub max_active: usize,
    pub max_connections: usize,
}

/// Raises the soft descriptor limit to the hard one; returns the soft limit.
pub fn raise_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// Splits `limit` descriptors: objects get what `max_active` asks for, but
/// at most half of what is left after the reserve when connections are not
/// capped explicitly; connections get the rest (or `max_connections`, if
/// smaller).
pub fn plan(limit: u64, max_active: usize, max_connections: Option<usize>) -> FdPlan {
    let available = limit.saturating_sub(FD_RESERVE).max(2 * FDS_PER_OBJECT + 2);
    let object_share = match max_connections {
        Some(c) => available.saturating_sub(c as u64).max(available / 4),
        None => available / 2,
    };
    let active = (max_active as u64)
        .min(object_share / FDS_PER_OBJECT)
        .max(1);
    let connections = available - active * FDS_PER_OBJECT;
    let connections = match max_connections {
        Some(c) => connections.min(c as u64),
        None => connections,
    };
    FdPlan {
        limit,
        max_active: active as usize,
        max_connections: connections.max(1) as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generous_limit_keeps_max_active_and_gives_connections_the_rest() {
        let p = plan(1 << 20, 1000, None);
        assert_eq!(p.max_active, 1000);
        assert_eq!(
            p.max_connections as u64,
            (1 << 20) - FD_RESERVE - 1000 * FDS_PER_OBJECT
        );
    }

    #[test]
    fn the_common_1024_limit_lowers_max_active_and_keeps_a_reserve() {
        let p = plan(1024, 1000, None);
        let used = p.max_active as u64 * FDS_PER_OBJECT + p.max_connections as u64;
        assert!(used <= 1024 - FD_RESERVE, "{p:?}");
        assert!(p.max_active < 1000 && p.max_active >= 100, "{p:?}");
        assert!(p.max_connections >= 400, "{p:?}");
    }

    #[test]
    fn an_explicit_connection_cap_is_kept() {
        let p = plan(1 << 16, 1000, Some(5000));
        assert_eq!(p.max_connections, 5000);
        assert_eq!(p.max_active, 1000);
    }
}
