//! REST rate limits, asobi's groups and shapes: `register` 3/s, `auth` 5/s, `erase` 3/min,
//! `iap` 10/s, `api` 300/s, keyed on the caller's player id when the request carries a valid
//! bearer token and on its source address otherwise (an IPv6 /64 counts as one source).
//! Refusals are 429 `rate_limited` with `retry_after` (seconds) at the top level and in
//! `details`, and a `retry-after` header; answers carry `x-ratelimit-remaining` and
//! `x-ratelimit-reset`.
//!
//! The counts are per process, as asobi's are per node: a per-shard table would hand a caller
//! one budget per core by opening one connection per core. Each group's table sits behind its
//! own mutex, held for one hash-map update; the tables are bounded
//! (`asobi_rules::accounts::MAX_TRACKED_KEYS`), so no number of source addresses grows them.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use asobi_net::http::{Head, Method, Response};
use asobi_rules::accounts::{Decision, RateTable};
use asobi_rules::limits::Source;
use asobi_schema::error::code;
use asobi_schema::ApiError;
use serde_json::json;

use super::config::{Group, RateLimits};
use crate::services::Shard;

/// Who a request counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Caller {
    Source(Source),
    Player(String),
}

/// The process-wide tables, one per group.
pub(crate) struct Limiter {
    tables: Vec<Mutex<RateTable<Caller>>>,
}

impl Limiter {
    pub(crate) fn new(limits: &RateLimits) -> Limiter {
        Limiter {
            tables: Group::ALL
                .iter()
                .map(|g| Mutex::new(RateTable::new(limits.get(*g))))
                .collect(),
        }
    }

    /// Counts one request of `group` for `caller` at `now`.
    pub(crate) fn check(&self, group: Group, caller: &Caller, now: Instant) -> Decision {
        match self.tables.get(group as usize) {
            Some(t) => t
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .check(now, caller),
            None => Decision::Allow {
                remaining: u32::MAX,
                reset: Duration::ZERO,
            },
        }
    }

    /// Keys held by a group's table (its memory is proportional to this).
    #[cfg(test)]
    pub(crate) fn tracked(&self, group: Group) -> usize {
        self.tables
            .get(group as usize)
            .map_or(0, |t| t.lock().unwrap_or_else(|e| e.into_inner()).tracked())
    }
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::new(&RateLimits::default())
    }
}

/// Which group a path belongs to. Segments are compared after dropping empty ones, the way the
/// router matches, so `/api/v1//auth/register/` cannot slip into a looser bucket.
pub(crate) fn group_of(path: &str) -> Option<Group> {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        // Probes of load balancers and orchestrators are never limited.
        ["health" | "ready" | "live"] | ["api", "v1", "health" | "ready" | "live"] => None,
        ["api", "v1", "auth", "register"] => Some(Group::Register),
        ["api", "v1", "players", "me", "erase"] => Some(Group::Erase),
        ["api", "v1", "auth", ..] => Some(Group::Auth),
        ["api", "v1", "iap", ..] => Some(Group::Iap),
        _ => Some(Group::Api),
    }
}

/// What an admitted request's answer carries.
pub(crate) struct Quota {
    remaining: u32,
    reset: Duration,
}

impl Quota {
    /// Adds the `x-ratelimit-*` headers.
    pub(crate) fn decorate(self, r: Response) -> Response {
        r.with_header("x-ratelimit-remaining", self.remaining.to_string())
            .with_header("x-ratelimit-reset", ceil_secs(self.reset).to_string())
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000) as u64
}

/// Counts the request; `Err` is the 429 to send instead of handling it.
pub(crate) fn admit(shard: &Shard, head: &Head, peer: IpAddr) -> Result<Option<Quota>, Response> {
    if head.method == Method::Options {
        return Ok(None);
    }
    let Some(group) = group_of(&head.path) else {
        return Ok(None);
    };
    let caller = match head.bearer().and_then(|t| super::access::verify(shard, t)) {
        Some(a) => Caller::Player(a.player_id),
        None => Caller::Source(Source::from(peer)),
    };
    match shard
        .ctx
        .accounts
        .limiter
        .check(group, &caller, Instant::now())
    {
        Decision::Allow { remaining, reset } => Ok(Some(Quota { remaining, reset })),
        Decision::Deny { retry_after } => {
            let secs = ceil_secs(retry_after).max(1);
            let e = ApiError::new(
                429,
                code::RATE_LIMITED,
                "Too many requests. Slow down and retry.",
            )
            .with_details(json!({ "retry_after": secs }));
            Err(crate::services::rest::error_response(&e)
                .with_header("retry-after", secs.to_string())
                .with_header("x-ratelimit-remaining", "0")
                .with_header("x-ratelimit-reset", secs.to_string()))
        }
    }
}

/// The per-player join limit (asobi's `join` group: 10 per minute), for `match.join` and
/// `match.find_or_create`.
pub(crate) fn allow_join(shard: &Shard, player_id: &str) -> Result<(), ApiError> {
    let caller = Caller::Player(player_id.to_owned());
    match shard
        .ctx
        .accounts
        .limiter
        .check(Group::Join, &caller, Instant::now())
    {
        Decision::Allow { .. } => Ok(()),
        Decision::Deny { retry_after } => Err(ApiError::new(
            429,
            code::JOIN_RATE_LIMITED,
            "Too many join attempts. Slow down and retry.",
        )
        .with_details(json!({ "retry_after": ceil_secs(retry_after).max(1) }))),
    }
}

/// The node-wide guest-creation limit (asobi's `guest_global`: 100/s): per-address limits do not
/// bound guests minted from many addresses.
pub(crate) fn allow_guest_create(shard: &Shard) -> Result<(), ApiError> {
    let caller = Caller::Player(String::new());
    match shard
        .ctx
        .accounts
        .limiter
        .check(Group::GuestGlobal, &caller, Instant::now())
    {
        Decision::Allow { .. } => Ok(()),
        Decision::Deny { retry_after } => Err(ApiError::new(
            429,
            code::GUEST_RATE_LIMITED,
            "Guests are being created too fast right now. Retry shortly.",
        )
        .with_details(json!({ "retry_after": ceil_secs(retry_after).max(1) }))),
    }
}

/// `world.resync` limits, in asobi's order: the player's own (`resync`: 2 per 10 s, over all
/// their sessions), then the node's (`resync_global`: 20/s, sliding window), since each
/// player's limit alone lets N players cost N times the keyframe egress. A request refused by
/// the node still counts against the player, as in asobi. `false`: drop the request quietly,
/// as asobi does.
pub(crate) fn allow_world_resync(shard: &Shard, player_id: &str, now: Instant) -> bool {
    let limiter = &shard.ctx.accounts.limiter;
    let player = Caller::Player(player_id.to_owned());
    if !matches!(
        limiter.check(Group::Resync, &player, now),
        Decision::Allow { .. }
    ) {
        return false;
    }
    let node = Caller::Player(String::new());
    matches!(
        limiter.check(Group::ResyncGlobal, &node, now),
        Decision::Allow { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_asobis_groups() {
        assert_eq!(group_of("/api/v1/auth/register"), Some(Group::Register));
        assert_eq!(group_of("/api/v1//auth/register/"), Some(Group::Register));
        assert_eq!(group_of("//api/v1/auth//register"), Some(Group::Register));
        assert_eq!(group_of("/api/v1/auth/login"), Some(Group::Auth));
        assert_eq!(group_of("/api/v1/auth/oauth?x=1"), Some(Group::Auth));
        assert_eq!(group_of("/api/v1/players/me/erase"), Some(Group::Erase));
        assert_eq!(group_of("/api/v1/players/abc"), Some(Group::Api));
        assert_eq!(group_of("/api/v1/iap/apple"), Some(Group::Iap));
        assert_eq!(group_of("/health"), None);
        assert_eq!(group_of("/api/v1/ready"), None);
    }

    #[test]
    fn a_hundred_thousand_addresses_leave_the_limiter_bounded() {
        let limiter = Limiter::default();
        let now = Instant::now();
        for i in 0..100_000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = limiter.check(Group::Auth, &Caller::Source(Source::from(ip)), now);
        }
        let cap = asobi_rules::accounts::MAX_TRACKED_KEYS;
        assert!(limiter.tracked(Group::Auth) <= 2 * cap);
        // A source that was tracked is still limited (5/s), and the other groups are untouched.
        let first = Caller::Source(Source::from(IpAddr::V4(std::net::Ipv4Addr::from(
            0x0a00_0000,
        ))));
        let passed = (0..10)
            .filter(|_| {
                matches!(
                    limiter.check(Group::Auth, &first, now),
                    Decision::Allow { .. }
                )
            })
            .count();
        assert_eq!(passed, 4);
        assert_eq!(limiter.tracked(Group::Api), 0);
    }
}
