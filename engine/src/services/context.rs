//! What every shard's services share: settings, the storage bridge, token keys, the registry and
//! each feature's process-wide index. Built once by `node` at start-up and immutable afterwards,
//! except for the indexes (mutex-guarded, written only on lifecycle changes).

use std::sync::Arc;

use tokio::sync::watch;

use asobi_script::{Budgets, Game};
use asobi_storage::StoreHandle;

use crate::shard::registry::Registry;

use super::accounts::tokens::Tokens;

/// The settings services read. `node::config` fills it from flags and `ASOBI_*` variables.
#[derive(Clone)]
pub(crate) struct Settings {
    /// Largest inbound WebSocket frame in bytes.
    pub(crate) ws_max_frame: usize,
    /// Messages per second one connection may send (0: no limit).
    pub(crate) ws_msg_rate: u32,
    /// Milliseconds a new socket has to send `session.connect`.
    pub(crate) ws_connect_timeout_ms: u64,
    /// Frames queued for one client before it is closed as too slow.
    pub(crate) ws_outbox: usize,
    /// Milliseconds a dropped player keeps a match seat.
    pub(crate) reconnect_grace_ms: u64,
    /// Seconds a matchmaker ticket waits before it expires (a mode may override it).
    pub(crate) matchmaker_max_wait_secs: u64,
    /// Tickets one mode's queue may hold.
    pub(crate) matchmaker_max_queue: usize,
    /// Forward script errors to the player whose input caused them.
    pub(crate) dev_errors: bool,
    /// Secret for guest device verifiers (guest auth is off without it).
    pub(crate) guest_pepper: Option<String>,
    /// Milliseconds one write to a client may take before the connection is dropped.
    pub(crate) write_timeout_ms: u64,
    /// Leaderboard settings: client submits, per-board order/operator/reset, board cap.
    pub(crate) leaderboards: super::leaderboards::Config,
    /// Fewest characters a password may have (asobi: 8).
    pub(crate) password_min_len: usize,
    /// Origins allowed by CORS (`ASOBI_CORS_ORIGINS`; `*` for any); empty: no CORS headers.
    pub(crate) cors_origins: Vec<String>,
    /// Accounts: registration posture, rate limits, providers, ops token.
    pub(crate) accounts: super::accounts::config::Config,
    /// Shards a world's zones are spread over when its script does not say
    /// (`ASOBI_WORLD_SHARDS`; `0` is every shard, 1 keeps each world on one shard).
    pub(crate) world_shards: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ws_max_frame: 64 * 1024,
            ws_msg_rate: 60,
            ws_connect_timeout_ms: 10_000,
            ws_outbox: 1024,
            reconnect_grace_ms: 0,
            matchmaker_max_wait_secs: 60,
            matchmaker_max_queue: 100_000,
            dev_errors: false,
            guest_pepper: None,
            write_timeout_ms: 10_000,
            leaderboards: super::leaderboards::Config::default(),
            password_min_len: 8,
            cors_origins: Vec::new(),
            accounts: Default::default(),
            world_shards: 1,
        }
    }
}

pub(crate) struct Context {
    pub(crate) settings: Settings,
    pub(crate) store: StoreHandle,
    pub(crate) tokens: Tokens,
    /// Where players are connected; the seam a clustered registry replaces.
    pub(crate) registry: Box<dyn Registry>,
    /// Where live matches run and what `match.list` shows of them.
    pub(crate) matches: super::matches::Directory,
    pub(crate) worlds: super::worlds::Directory,
    /// Newest compiled game; hot reload publishes here.
    pub(crate) game: watch::Receiver<Arc<Game>>,
    pub(crate) budgets: Budgets,
    /// Accounts state every shard shares (rate limiter, hashing pool, provider keys).
    pub(crate) accounts: super::accounts::Shared,
    /// The ops plane: secret, console sessions, recent reloads.
    pub(crate) ops: super::ops::OpsState,
    /// Which party each player sits in (the index; parties live on their owner shard).
    pub(crate) parties: super::parties::Directory,
}

impl Context {
    /// The counters shard `id` publishes.
    pub(crate) fn stats(&self, id: usize) -> &crate::shard::registry::ShardStats {
        &self.registry.shards()[id]
    }
}

impl std::fmt::Debug for Settings {
    /// Everything but the guest pepper, which is a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("ws_max_frame", &self.ws_max_frame)
            .field("ws_msg_rate", &self.ws_msg_rate)
            .field("ws_connect_timeout_ms", &self.ws_connect_timeout_ms)
            .field("ws_outbox", &self.ws_outbox)
            .field("reconnect_grace_ms", &self.reconnect_grace_ms)
            .field("matchmaker_max_wait_secs", &self.matchmaker_max_wait_secs)
            .field("matchmaker_max_queue", &self.matchmaker_max_queue)
            .field("dev_errors", &self.dev_errors)
            .field(
                "guest_pepper",
                &self.guest_pepper.as_ref().map(|_| "<redacted>"),
            )
            .field("write_timeout_ms", &self.write_timeout_ms)
            .field("leaderboards", &self.leaderboards)
            .field("password_min_len", &self.password_min_len)
            .field("cors_origins", &self.cors_origins)
            .field("world_shards", &self.world_shards)
            .finish()
    }
}
