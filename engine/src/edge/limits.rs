//! Limits that hold across shards and transports: WebSocket and QUIC connects per second per IP
//! (counted once for the process, not once per shard), and a cap on open connections.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use asobi_rules::limits::ConnectRate;

pub(crate) struct Limits {
    /// The per-source window (`asobi_rules::limits`), shared by every shard and QUIC.
    rate: Mutex<ConnectRate>,
    open: AtomicUsize,
    max_open: usize,
}

/// An open connection, counted until dropped.
pub(crate) struct Open(Arc<Limits>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Limits {
    /// `per_ip_per_second`: 0 disables the rate; `max_open`: 0 disables the cap.
    pub(crate) fn new(per_ip_per_second: u32, max_open: usize) -> Arc<Limits> {
        Arc::new(Limits {
            rate: Mutex::new(ConnectRate::new(per_ip_per_second)),
            open: AtomicUsize::new(0),
            max_open,
        })
    }

    /// Counts a connect from `ip` at `now`; false when over the per-IP rate.
    pub(crate) fn allow_connect_at(&self, ip: IpAddr, now: Instant) -> bool {
        self.rate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allow(now, ip)
    }

    pub(crate) fn allow_connect(&self, ip: IpAddr) -> bool {
        self.allow_connect_at(ip, Instant::now())
    }

    /// Takes a slot under the connection cap.
    pub(crate) fn open(self: &Arc<Self>) -> Option<Open> {
        let n = self.open.fetch_add(1, Ordering::Relaxed);
        if self.max_open != 0 && n >= self.max_open {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Open(self.clone()))
    }

    #[cfg(test)]
    pub(crate) fn open_now(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_rate_is_per_process_and_per_second() {
        let l = Limits::new(2, 0);
        let t = Instant::now();
        let ip: IpAddr = [10, 0, 0, 1].into();
        assert!(l.allow_connect_at(ip, t));
        assert!(l.allow_connect_at(ip, t));
        assert!(
            !l.allow_connect_at(ip, t),
            "a third connect in the same second"
        );
        assert!(l.allow_connect_at([10, 0, 0, 2].into(), t));
        assert!(l.allow_connect_at(ip, t + Duration::from_secs(1)));
    }

    #[test]
    fn the_connection_cap_holds_and_frees() {
        let l = Limits::new(0, 2);
        let a = l.open().unwrap();
        let _b = l.open().unwrap();
        assert!(l.open().is_none());
        drop(a);
        assert!(l.open().is_some());
        assert_eq!(l.open_now(), 1);
    }
}
