//! Edge limits that are pure counting: connects per source address per second, and a cap on
//! open connections.
//!
//! Owns counters for one shard's edge. It must not accept, refuse or close sockets itself, nor
//! read a clock; the listener asks at `now` and acts on the answer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// asobi's default: 60 WebSocket connects per second from one address.
pub const DEFAULT_CONNECTS_PER_SECOND: u32 = 60;

/// The counting window; counts reset when a new one starts (as the engine and asobi do).
pub const CONNECT_WINDOW: Duration = Duration::from_secs(1);

/// Distinct sources tracked per window, per shard. Each costs about 40 bytes, so the table
/// stays under half a megabyte; 8192 distinct addresses connecting to one core within one
/// second is far above any real login wave. Past it the traffic is a distributed flood that
/// per-source counting cannot stop: further new sources are let through uncounted (and
/// reported by [`ConnectRate::untracked`]) rather than refused, since refusing them would let
/// the flood lock every other new player out. The connection cap is what bounds that case.
pub const MAX_TRACKED_SOURCES: usize = 8192;

/// The unit a connect is counted against: an IPv4 address, or an IPv6 /64 (one subscriber's
/// network, which hands a single host 2^64 addresses to rotate through).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// One IPv4 address (IPv4-mapped IPv6 addresses count as their IPv4 address).
    V4(u32),
    /// The upper 64 bits of an IPv6 address.
    V6Prefix(u64),
}

impl From<IpAddr> for Source {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(u32::from(v4)),
                None => Self::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Connects per source per second, in bounded memory.
///
/// **Input and output in one call**: [`allow`](Self::allow) counts a connect attempt at `now`
/// and answers whether to accept it. No timer is needed: a window that has ended is reset by
/// the next call.
#[derive(Debug, Clone)]
pub struct ConnectRate {
    /// Connects allowed per source per window; 0 disables the limit.
    limit: u32,
    max_sources: usize,
    window_start: Option<Instant>,
    counts: HashMap<Source, u32>,
    untracked: u64,
}

impl ConnectRate {
    /// A limiter allowing `limit` connects per source per second (0: unlimited), tracking at
    /// most [`MAX_TRACKED_SOURCES`] sources.
    pub fn new(limit: u32) -> Self {
        Self::with_capacity(limit, MAX_TRACKED_SOURCES)
    }

    /// As [`new`](Self::new) with a different source cap.
    pub fn with_capacity(limit: u32, max_sources: usize) -> Self {
        Self {
            limit,
            max_sources,
            window_start: None,
            counts: HashMap::new(),
            untracked: 0,
        }
    }

    /// Counts a connect from `ip` at `now`; false when its source is over the limit.
    pub fn allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        if self.limit == 0 {
            return true;
        }
        let expired = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= CONNECT_WINDOW);
        if expired {
            self.window_start = Some(now);
            self.counts.clear();
        }
        let source = Source::from(ip);
        if !self.counts.contains_key(&source) && self.counts.len() >= self.max_sources {
            self.untracked += 1;
            return true;
        }
        let n = self.counts.entry(source).or_insert(0);
        *n = n.saturating_add(1);
        *n <= self.limit
    }

    /// Sources counted in the current window.
    pub fn tracked(&self) -> usize {
        self.counts.len()
    }

    /// Connects let through uncounted because the table was full, since creation (a flood
    /// indicator for metrics).
    pub fn untracked(&self) -> u64 {
        self.untracked
    }
}

/// A cap on connections open at once (per shard: give each shard its share of the process
/// limit, so no shard needs to ask the others).
///
/// **Inputs**: [`try_open`](Self::try_open) when a socket is accepted (refuse it on `false`),
/// [`close`](Self::close) when an accepted one ends. Every successful `try_open` must be
/// matched by exactly one `close`.
#[derive(Debug, Clone)]
pub struct ConnectionCap {
    max: usize,
    open: usize,
}

impl ConnectionCap {
    /// A cap of `max` open connections.
    pub fn new(max: usize) -> Self {
        Self { max, open: 0 }
    }

    /// Takes a slot for a new connection; false when all `max` are in use.
    pub fn try_open(&mut self) -> bool {
        if self.open >= self.max {
            return false;
        }
        self.open += 1;
        true
    }

    /// Releases a slot. A close without a matching open is ignored rather than underflowing.
    pub fn close(&mut self) {
        self.open = self.open.saturating_sub(1);
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open
    }

    /// Slots left.
    pub fn remaining(&self) -> usize {
        self.max - self.open
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, last))
    }

    #[test]
    fn each_source_gets_its_limit_per_window() {
        let t0 = Instant::now();
        let mut r = ConnectRate::new(3);
        assert!((0..3).all(|_| r.allow(t0, v4(1))));
        assert!(!r.allow(t0, v4(1)));
        assert!(r.allow(t0, v4(2)), "another address has its own count");
        assert!(!r.allow(t0 + Duration::from_millis(999), v4(1)));
        // A new window starts one second after the previous one started.
        assert!(r.allow(t0 + CONNECT_WINDOW, v4(1)));
        assert_eq!(r.tracked(), 1, "the old window's counts are gone");
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let t0 = Instant::now();
        let mut r = ConnectRate::new(2);
        let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, 1));
        let b = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0xffff, 1, 2, 3));
        let other = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        assert!(r.allow(t0, a));
        assert!(r.allow(t0, b));
        assert!(!r.allow(t0, a), "same /64");
        assert!(r.allow(t0, other));
        let mapped = IpAddr::V6(Ipv4Addr::new(203, 0, 113, 9).to_ipv6_mapped());
        assert!(r.allow(t0, v4(9)));
        assert!(r.allow(t0, mapped));
        assert!(!r.allow(t0, v4(9)));
    }

    #[test]
    fn memory_is_bounded_and_overflow_is_let_through_uncounted() {
        let t0 = Instant::now();
        let mut r = ConnectRate::with_capacity(1, 100);
        for i in 0..1_000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            assert!(r.allow(t0, ip));
        }
        assert_eq!(r.tracked(), 100);
        assert_eq!(r.untracked(), 900);
        // Tracked sources are still limited.
        assert!(!r.allow(t0, IpAddr::V4(Ipv4Addr::from(0x0a00_0000))));
    }

    #[test]
    fn zero_disables_the_rate_limit() {
        let t0 = Instant::now();
        let mut r = ConnectRate::new(0);
        assert!((0..1_000).all(|_| r.allow(t0, v4(1))));
        assert_eq!(r.tracked(), 0);
    }

    #[test]
    fn the_cap_counts_open_connections() {
        let mut c = ConnectionCap::new(2);
        assert!(c.try_open());
        assert!(c.try_open());
        assert!(!c.try_open());
        assert_eq!((c.open(), c.remaining()), (2, 0));
        c.close();
        assert!(c.try_open());
        c.close();
        c.close();
        c.close();
        assert_eq!(c.open(), 0);
    }
}
