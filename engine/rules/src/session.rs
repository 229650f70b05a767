//! Per-connection rules: the message budget, the `session.connect` deadline, and throttles on
//! repeated error replies.
//!
//! Owns only counters and instants for one connection. It must not close sockets, send frames
//! or read a clock: the session loop asks these types what to do at `now` and does it.

use std::time::{Duration, Instant};

/// asobi's default message budget: 60 messages per second per connection.
pub const DEFAULT_MSG_RATE: u32 = 60;

/// asobi's default time a new socket has to authenticate with `session.connect`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Close code for a socket that did not authenticate in time (policy violation, as asobi).
pub const CONNECT_TIMEOUT_CLOSE_CODE: u16 = 1008;

/// At most one `rate_limited` error per this interval: a client over its budget is already
/// sending too much, and an error per refused frame would double the traffic it causes.
pub const RATE_LIMIT_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// At most one `match.not_in_match` error per this interval. Inputs stream at tick rate, so a
/// client that keeps sending after its match ended would otherwise get tens of errors a
/// second; one every 5 s is enough for it to notice.
pub const NOT_IN_MATCH_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Lets an event through at most once per interval.
///
/// **Input and output in one call**: [`allow`](Self::allow) answers whether to act at `now`
/// and, if so, starts a new interval.
#[derive(Debug, Clone)]
pub struct Throttle {
    interval: Duration,
    last: Option<Instant>,
}

impl Throttle {
    /// A throttle that lets one event through per `interval`; the first is always let through.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
        }
    }

    /// True (and the interval restarts) if nothing was let through in the last `interval`.
    pub fn allow(&mut self, now: Instant) -> bool {
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < self.interval)
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

/// The message budget of one connection: a token bucket holding at most one second of budget,
/// refilled continuously. Unlike asobi's fixed 1000 ms window, a burst straddling a second
/// boundary cannot pass twice the rate.
///
/// # Method kinds and call order
///
/// For each inbound message: [`allow`](Self::allow); if it refuses, drop the message and, if
/// [`should_report`](Self::should_report) agrees, answer `rate_limited`. Neither has a
/// deadline: the bucket refills from the time between calls.
#[derive(Debug, Clone)]
pub struct RateLimit {
    /// Tokens per second, and the bucket's capacity; 0 disables the limit.
    rate: f64,
    tokens: f64,
    last: Instant,
    report: Throttle,
}

impl RateLimit {
    /// A full bucket at `now` allowing `per_second` messages per second (0: unlimited).
    pub fn new(now: Instant, per_second: u32) -> Self {
        let rate = f64::from(per_second);
        Self {
            rate,
            tokens: rate,
            last: now,
            report: Throttle::new(RATE_LIMIT_REPORT_INTERVAL),
        }
    }

    /// Takes one token for a message arriving at `now`; false when the budget is spent.
    pub fn allow(&mut self, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.last = self.last.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether to answer a refused message with an error: at most once per
    /// [`RATE_LIMIT_REPORT_INTERVAL`].
    pub fn should_report(&mut self, now: Instant) -> bool {
        self.report.allow(now)
    }
}

/// The `session.connect` deadline of a new socket.
///
/// # Method kinds and call order
///
/// Create at accept time; call [`authenticated`](Self::authenticated) when `session.connect`
/// succeeds; arm a timer at [`next_deadline`](Self::next_deadline) and, when it fires (or on
/// any wake-up), close the socket with [`CONNECT_TIMEOUT_CLOSE_CODE`] if
/// [`must_close`](Self::must_close) says so.
#[derive(Debug, Clone)]
pub struct ConnectGate {
    deadline: Instant,
    authenticated: bool,
}

impl ConnectGate {
    /// A gate for a socket accepted at `now` that must authenticate within `timeout`.
    pub fn new(now: Instant, timeout: Duration) -> Self {
        Self {
            deadline: now + timeout,
            authenticated: false,
        }
    }

    /// The socket authenticated; the deadline no longer applies.
    pub fn authenticated(&mut self) {
        self.authenticated = true;
    }

    /// True once the socket has authenticated.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// True when the socket is still unauthenticated at or past its deadline.
    pub fn must_close(&self, now: Instant) -> bool {
        !self.authenticated && now >= self.deadline
    }

    /// When to check again; `None` once authenticated.
    pub fn next_deadline(&self) -> Option<Instant> {
        (!self.authenticated).then_some(self.deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn a_full_bucket_allows_one_second_of_burst_then_refills() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(t0, 60);
        for _ in 0..60 {
            assert!(r.allow(t0));
        }
        assert!(!r.allow(t0), "61st in the same instant");
        // 1/60 s later, one token is back.
        assert!(!r.allow(at(t0, 16)));
        assert!(r.allow(at(t0, 17)));
        assert!(!r.allow(at(t0, 17)));
        // A long idle refills to capacity, not beyond.
        let later = at(t0, 60_000);
        for _ in 0..60 {
            assert!(r.allow(later));
        }
        assert!(!r.allow(later));
    }

    #[test]
    fn a_steady_sender_at_the_rate_is_never_refused() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(t0, 50);
        for i in 0..5_000 {
            assert!(r.allow(at(t0, i * 20)), "message {i}");
        }
    }

    #[test]
    fn zero_disables_the_limit() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(t0, 0);
        assert!((0..100_000).all(|_| r.allow(t0)));
    }

    #[test]
    fn errors_are_reported_at_most_once_per_second() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(t0, 1);
        assert!(r.should_report(t0));
        assert!(!r.should_report(at(t0, 999)));
        assert!(r.should_report(at(t0, 1_000)));
        assert!(!r.should_report(at(t0, 1_500)));
    }

    #[test]
    fn not_in_match_errors_are_throttled_to_one_per_five_seconds() {
        let t0 = Instant::now();
        let mut t = Throttle::new(NOT_IN_MATCH_REPORT_INTERVAL);
        let allowed: Vec<u64> = (0..200)
            .map(|i| i * 100)
            .filter(|&ms| t.allow(at(t0, ms)))
            .collect();
        assert_eq!(allowed, vec![0, 5_000, 10_000, 15_000]);
    }

    #[test]
    fn the_connect_gate_closes_only_unauthenticated_sockets_at_the_deadline() {
        let t0 = Instant::now();
        let g = ConnectGate::new(t0, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(g.next_deadline(), Some(t0 + DEFAULT_CONNECT_TIMEOUT));
        assert!(!g.must_close(t0 + DEFAULT_CONNECT_TIMEOUT - Duration::from_millis(1)));
        assert!(g.must_close(t0 + DEFAULT_CONNECT_TIMEOUT));

        let mut g = ConnectGate::new(t0, DEFAULT_CONNECT_TIMEOUT);
        g.authenticated();
        assert!(g.is_authenticated());
        assert_eq!(g.next_deadline(), None);
        assert!(!g.must_close(t0 + DEFAULT_CONNECT_TIMEOUT * 100));
    }
}
