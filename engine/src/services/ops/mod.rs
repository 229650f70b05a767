//! Operations: what an operator and a deploy pipeline need from a running node.
//!
//! - `metrics.rs`: per-shard counters (plain `Cell`s, no shared atomics) and `GET /metrics`,
//!   which asks every shard for a snapshot over the mesh and renders Prometheus text.
//! - `auth.rs`: the ops credential (`ASOBI_OPS_SECRET` / `_FILE`, bearer) and console sessions
//!   (cookie + `x-csrf-token`), as asobi defines them: every rejection is 403 `forbidden`.
//! - `rest.rs`: asobi's `/api/v1/ops/*` routes for the features that exist, plus actions asobi
//!   lacks (kick, ban, end a match, grant currency), every mutation written to the audit trail.
//! - `console.rs`: the operator web UI at `/console` (off unless `ASOBI_CONSOLE`), embedded.
//! - drain: on SIGTERM `/ready` answers 503, no new match is placed, running matches get until
//!   `ASOBI_DRAIN_TIMEOUT_SECS` to end, and every match record is written before the shard stops.
//!
//! It owns no game state: views read other features' service functions and indexes.

pub(crate) mod auth;
pub(crate) mod cmd;
pub(crate) mod console;
pub(crate) mod metrics;
pub(crate) mod rest;
pub(crate) mod settings;
pub(crate) mod views;

use std::cell::Cell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use asobi_schema::error::code;
use asobi_schema::ApiError;
use asobi_script::Game;

use super::Shard;
use metrics::{bump, Gauges, Metrics, Snapshot};

/// This shard's part of the ops plane.
#[derive(Default)]
pub(crate) struct Ops {
    pub(crate) metrics: Metrics,
    /// Set when a drain starts: no new matches, `/ready` 503.
    pub(crate) draining: Cell<bool>,
}

/// Hot reloads the console lists (newest last); older ones are dropped.
const RECENT_RELOADS: usize = 20;

/// One hot reload as the console shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ReloadNote {
    pub(crate) version: u64,
    pub(crate) at_ms: i64,
}

/// The ops plane's process-wide state. Touched by operator requests and lifecycle events only,
/// never per message, so plain mutexes do.
#[derive(Default)]
pub(crate) struct OpsState {
    pub(crate) config: OpsConfig,
    pub(crate) sessions: Mutex<HashMap<String, auth::ConsoleSession>>,
    pub(crate) reloads: Mutex<VecDeque<ReloadNote>>,
    /// Banned players: every bearer check refuses them (loaded from storage at start).
    pub(crate) bans: Mutex<HashSet<String>>,
    pub(crate) started: Option<Instant>,
}

/// Settings of the ops plane, from `OpsArgs`.
#[derive(Clone, Default)]
pub(crate) struct OpsConfig {
    /// The operator secret; `None`: every ops request answers 403.
    pub(crate) secret: Option<String>,
    /// Serve `/console`.
    pub(crate) console: bool,
    /// Names this deployment in the console.
    pub(crate) label: Option<String>,
    /// Marks a deployment to be careful in.
    pub(crate) production: bool,
    /// How long a drain lets running matches go on before they are ended.
    pub(crate) drain_timeout: Duration,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded maps stay consistent across a panic elsewhere; poisoning is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl OpsState {
    pub(crate) fn new(config: OpsConfig, bans: Vec<String>) -> OpsState {
        OpsState {
            config,
            bans: Mutex::new(bans.into_iter().collect()),
            started: Some(Instant::now()),
            ..OpsState::default()
        }
    }

    pub(crate) fn is_banned(&self, player_id: &str) -> bool {
        lock(&self.bans).contains(player_id)
    }

    pub(crate) fn uptime(&self) -> Duration {
        self.started.map(|s| s.elapsed()).unwrap_or_default()
    }
}

/// The error a match placement gets while the node drains.
pub(crate) fn draining() -> ApiError {
    ApiError::new(
        503,
        code::SHUTTING_DOWN,
        "The server is draining for a restart; try again shortly.",
    )
}

pub(crate) fn now_ms() -> i64 {
    crate::services::accounts::tokens::now_ms()
}

/// Counts a reload on this shard; shard 0 notes it for the console.
pub(crate) fn on_reload(shard: &Rc<Shard>, game: &Arc<Game>) {
    bump(&shard.ops.metrics.reloads);
    if shard.id() == 0 {
        let mut recent = lock(&shard.ctx.ops.reloads);
        if recent.len() >= RECENT_RELOADS {
            recent.pop_front();
        }
        recent.push_back(ReloadNote {
            version: game.version,
            at_ms: now_ms(),
        });
        tracing::info!(
            event = "hot_reload",
            version = game.version,
            "game reloaded"
        );
    }
}

/// Writes a finished match's record, counted while in flight so a drain can wait for it.
pub(crate) fn record_match(shard: &Rc<Shard>, record: asobi_storage::MatchRecord) {
    let m = &shard.ops.metrics;
    m.records_pending.set(m.records_pending.get() + 1);
    let task_shard = shard.clone();
    shard.rt.spawn(async move {
        let started = Instant::now();
        let id = record.id.clone();
        let result = task_shard.ctx.store.insert_match_record(record).await;
        let m = &task_shard.ops.metrics;
        m.storage_latency.observe(started.elapsed());
        m.records_pending.set(m.records_pending.get().saturating_sub(1));
        match result {
            Ok(()) => bump(&m.records_written),
            Err(e) => {
                bump(&m.storage_failures);
                tracing::warn!(event = "match_record_failed", match_id = %id, "could not record a finished match: {e}");
            }
        }
    });
}

/// This shard's numbers now.
pub(crate) fn snapshot(shard: &Shard) -> Snapshot {
    let stats = shard.ctx.stats(shard.id());
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    let queues = shard.matchmaker.waits(shard.rt.now());
    let gauges = Gauges {
        connections: stats.connections.load(relaxed) as u64,
        sessions: shard.rt.session_count() as u64,
        matches: shard.matches.len() as u64,
        mesh_backlog: shard.rt.backlog() as u64,
        mesh_bounced: shard.rt.counters.bounced.get(),
        outbox_drops: shard.rt.counters.outbox_refused.get(),
        timers: shard.rt.timer_count() as u64,
        storage_queue: shard.ctx.store.queue_depth() as u64,
        matchmaker_tickets: queues.iter().map(|q| q.1).sum(),
        queues,
    };
    shard.ops.metrics.snapshot(shard.id(), gauges)
}

/// Every shard's snapshot, asked over the mesh (this shard's taken in place). A shard that
/// cannot answer (overloaded, stopping) is left out rather than failing the scrape.
pub(crate) async fn all_snapshots(shard: &Rc<Shard>) -> Vec<Snapshot> {
    let mut out = Vec::with_capacity(shard.rt.nshards());
    for peer in 0..shard.rt.nshards() {
        if peer == shard.id() {
            out.push(snapshot(shard));
            continue;
        }
        let answer = crate::shard::request(shard, peer, |reply| {
            super::Cmd::Ops(cmd::Cmd::Snapshot { reply })
        })
        .await;
        match answer.map(serde_json::from_value::<Snapshot>) {
            Ok(Ok(s)) => out.push(s),
            Ok(Err(e)) => tracing::warn!(peer, "unreadable metrics snapshot: {e}"),
            Err(e) => tracing::debug!(peer, "no metrics snapshot: {}", e.message),
        }
    }
    out
}

/// Waits until this shard's match records are all written, or `limit` passes.
pub(crate) async fn flush_records(shard: &Rc<Shard>, limit: Duration) {
    let deadline = Instant::now() + limit;
    while shard.ops.metrics.records_pending.get() > 0 && Instant::now() < deadline {
        shard.rt.sleep(Duration::from_millis(5)).await;
    }
    let left = shard.ops.metrics.records_pending.get();
    if left > 0 {
        tracing::error!(
            event = "match_records_unflushed",
            shard = shard.id(),
            left,
            "match records still unwritten at the flush deadline"
        );
    }
}
