//! Per-shard counters and their Prometheus rendering.
//!
//! Every counter is a plain `Cell` owned by one shard and bumped only by that shard's thread: no
//! atomics, no locks, nothing shared on the paths that move messages. `GET /metrics` asks every
//! shard for a [`Snapshot`] over the mesh (plain data) and renders them together, one sample per
//! shard labelled `shard="N"`, with `prometheus-client`'s text encoder.

use std::cell::Cell;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

/// Upper bounds (seconds) of the latency histograms: sub-millisecond callbacks up to the 1 s of
/// a badly stalled tick or database call. The last, implicit bucket is `+Inf`.
const BOUNDS: [f64; 10] = [
    0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 0.25, 1.0,
];

/// Upper bounds (seconds) for in-memory operations that should take microseconds (a
/// leaderboard read or write on its owning shard): 1 µs to 100 ms, fine around the 1 ms goal.
const FAST_BOUNDS: [f64; 12] = [
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.01,
    0.1,
];

/// A fixed-bucket histogram of durations, bucket counts not cumulative.
#[derive(Debug)]
pub(crate) struct Hist {
    bounds: &'static [f64],
    /// One per bound, then `+Inf`.
    buckets: Box<[Cell<u64>]>,
    sum: Cell<f64>,
}

impl Default for Hist {
    fn default() -> Self {
        Hist::with_bounds(&BOUNDS)
    }
}

impl Hist {
    fn with_bounds(bounds: &'static [f64]) -> Hist {
        Hist {
            bounds,
            buckets: (0..=bounds.len()).map(|_| Cell::new(0)).collect(),
            sum: Cell::new(0.0),
        }
    }

    pub(crate) fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(b) = self.buckets.get(i) {
            bump(b);
        }
        self.sum.set(self.sum.get() + secs);
    }

    fn snapshot(&self) -> HistSnapshot {
        HistSnapshot {
            bounds: if std::ptr::eq(self.bounds, &BOUNDS[..]) {
                Vec::new()
            } else {
                self.bounds.to_vec()
            },
            buckets: self.buckets.iter().map(Cell::get).collect(),
            sum: self.sum.get(),
        }
    }
}

/// A [`Hist`] with microsecond buckets ([`FAST_BOUNDS`]).
#[derive(Debug)]
pub(crate) struct FastHist(pub(crate) Hist);

impl Default for FastHist {
    fn default() -> Self {
        FastHist(Hist::with_bounds(&FAST_BOUNDS))
    }
}

impl FastHist {
    pub(crate) fn observe(&self, d: Duration) {
        self.0.observe(d);
    }
}

/// Adds one.
pub(crate) fn bump(c: &Cell<u64>) {
    c.set(c.get().wrapping_add(1));
}

/// Adds `n`.
pub(crate) fn add(c: &Cell<u64>, n: u64) {
    c.set(c.get().wrapping_add(n));
}

/// What one shard counts. Owned by the shard, touched only on its thread.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) ws_messages_in: Cell<u64>,
    pub(crate) ws_messages_out: Cell<u64>,
    pub(crate) ws_bytes_in: Cell<u64>,
    pub(crate) ws_bytes_out: Cell<u64>,
    pub(crate) slow_consumer_closes: Cell<u64>,
    pub(crate) http_requests: Cell<u64>,
    pub(crate) matches_started: Cell<u64>,
    pub(crate) matches_finished: Cell<u64>,
    pub(crate) ticks: Cell<u64>,
    pub(crate) ticks_skipped: Cell<u64>,
    pub(crate) inputs_dropped: Cell<u64>,
    pub(crate) tick_lateness: Hist,
    pub(crate) lua_callback: Hist,
    pub(crate) lua_budget_aborts: Cell<u64>,
    pub(crate) reloads: Cell<u64>,
    pub(crate) reload_failures: Cell<u64>,
    pub(crate) storage_latency: Hist,
    pub(crate) storage_failures: Cell<u64>,
    /// Match records handed to storage and not yet written (drain waits for zero).
    pub(crate) records_pending: Cell<u64>,
    pub(crate) records_written: Cell<u64>,
    pub(crate) kicks: Cell<u64>,
    /// How late each world zone's tick started after its own due time: the world tick's, plus
    /// its slice's offset when a large world's tick is spread over the period (a zone counts
    /// its wait behind the zones ticked before it in its slice).
    pub(crate) zone_tick_lateness: Hist,
    pub(crate) world_snapshots_written: Cell<u64>,
    pub(crate) world_snapshot_failures: Cell<u64>,
    /// Entities handed from this shard's part of a split world to another shard's.
    pub(crate) world_handoffs: Cell<u64>,
    /// Leaderboard operations on the board's owning shard: command in → answer sent (rank
    /// index, entry JSON, the reply's hand-off).
    pub(crate) leaderboards: LeaderboardHists,
}

/// Per-operation latency of the leaderboards' owning shard.
#[derive(Debug, Default)]
pub(crate) struct LeaderboardHists {
    pub(crate) submit: FastHist,
    pub(crate) top: FastHist,
    pub(crate) around: FastHist,
    pub(crate) rank: FastHist,
}

/// Gauges read from the shard's state at snapshot time.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Gauges {
    pub(crate) connections: u64,
    pub(crate) sessions: u64,
    pub(crate) matches: u64,
    pub(crate) mesh_backlog: u64,
    pub(crate) mesh_bounced: u64,
    pub(crate) outbox_drops: u64,
    pub(crate) timers: u64,
    pub(crate) storage_queue: u64,
    pub(crate) matchmaker_tickets: u64,
    /// (mode, waiting tickets, oldest wait ms)
    pub(crate) queues: Vec<(String, u64, u64)>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct HistSnapshot {
    /// Upper bounds of `buckets`; empty: [`BOUNDS`].
    #[serde(default)]
    pub(crate) bounds: Vec<f64>,
    pub(crate) buckets: Vec<u64>,
    pub(crate) sum: f64,
}

/// One shard's numbers at one moment: plain data, so it crosses the mesh as JSON.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub(crate) shard: usize,
    pub(crate) counters: Vec<(String, u64)>,
    pub(crate) hists: Vec<(String, HistSnapshot)>,
    pub(crate) gauges: Gauges,
}

impl Metrics {
    /// A client message of `len` bytes arrived.
    pub(crate) fn message_in(&self, len: usize) {
        bump(&self.ws_messages_in);
        add(&self.ws_bytes_in, len as u64);
    }

    /// A frame of `len` bytes is written to a client.
    pub(crate) fn message_out(&self, len: usize) {
        bump(&self.ws_messages_out);
        add(&self.ws_bytes_out, len as u64);
    }

    /// A match tick is run, `tick.late` after its schedule.
    pub(crate) fn tick(&self, tick: &asobi_rules::matches::Tick) {
        bump(&self.ticks);
        add(&self.ticks_skipped, u64::from(tick.skipped));
        self.tick_lateness.observe(tick.late);
    }

    pub(crate) fn snapshot(&self, shard: usize, gauges: Gauges) -> Snapshot {
        let c = |name: &str, v: &Cell<u64>| (name.to_owned(), v.get());
        Snapshot {
            shard,
            counters: vec![
                c("ws_messages_in", &self.ws_messages_in),
                c("ws_messages_out", &self.ws_messages_out),
                c("ws_bytes_in", &self.ws_bytes_in),
                c("ws_bytes_out", &self.ws_bytes_out),
                c("slow_consumer_closes", &self.slow_consumer_closes),
                c("http_requests", &self.http_requests),
                c("matches_started", &self.matches_started),
                c("matches_finished", &self.matches_finished),
                c("ticks", &self.ticks),
                c("ticks_skipped", &self.ticks_skipped),
                c("match_inputs_dropped", &self.inputs_dropped),
                c("lua_budget_aborts", &self.lua_budget_aborts),
                c("hot_reloads", &self.reloads),
                c("hot_reload_failures", &self.reload_failures),
                c("storage_failures", &self.storage_failures),
                c("match_records_written", &self.records_written),
                c("ops_kicks", &self.kicks),
                c("world_snapshots_written", &self.world_snapshots_written),
                c("world_snapshot_failures", &self.world_snapshot_failures),
                c("world_handoffs", &self.world_handoffs),
            ],
            hists: vec![
                (
                    "tick_lateness_seconds".into(),
                    self.tick_lateness.snapshot(),
                ),
                ("lua_callback_seconds".into(), self.lua_callback.snapshot()),
                (
                    "zone_tick_lateness_seconds".into(),
                    self.zone_tick_lateness.snapshot(),
                ),
                (
                    "storage_latency_seconds".into(),
                    self.storage_latency.snapshot(),
                ),
                (
                    "leaderboard_submit_seconds".into(),
                    self.leaderboards.submit.0.snapshot(),
                ),
                (
                    "leaderboard_top_seconds".into(),
                    self.leaderboards.top.0.snapshot(),
                ),
                (
                    "leaderboard_around_seconds".into(),
                    self.leaderboards.around.0.snapshot(),
                ),
                (
                    "leaderboard_rank_seconds".into(),
                    self.leaderboards.rank.0.snapshot(),
                ),
            ],
            gauges,
        }
    }
}

/// Help text per metric name; a name missing here is not rendered (so a typo shows in tests).
fn help(name: &str) -> Option<&'static str> {
    Some(match name {
        "ws_messages_in" => "WebSocket/QUIC messages received from clients",
        "ws_messages_out" => "WebSocket/QUIC frames written to clients",
        "ws_bytes_in" => "Bytes of client messages received",
        "ws_bytes_out" => "Bytes of frames written to clients",
        "slow_consumer_closes" => "Sessions closed because their outbox overflowed",
        "http_requests" => "REST requests handled",
        "matches_started" => "Matches created",
        "matches_finished" => "Matches finished (record handed to storage)",
        "ticks" => "Match ticks run",
        "ticks_skipped" => "Match ticks skipped because they were late by a whole period",
        "match_inputs_dropped" => "Match input dropped because the match held too much for its next tick",
        "lua_budget_aborts" => "Lua callbacks aborted for exceeding a budget",
        "hot_reloads" => "Game reloads applied to this shard",
        "hot_reload_failures" => "Live matches that kept their old code after a failed reload",
        "storage_failures" => "Match-record writes that failed",
        "match_records_written" => "Finished-match records written to storage",
        "ops_kicks" => "Sessions closed by an operator",
        "world_snapshots_written" => "Persistent world snapshots written to storage",
        "world_snapshot_failures" => "Persistent world snapshot writes that failed (retried)",
        "world_handoffs" => {
            "Entities handed from this shard's part of a split world to another shard's"
        }
        "tick_lateness_seconds" => "How late each match tick ran after its scheduled time",
        "lua_callback_seconds" => "Wall-clock time of each Lua match callback",
        "zone_tick_lateness_seconds" => {
            "How late each world zone's tick started after its due time (its world tick's, plus its slice's offset)"
        }
        "storage_latency_seconds" => {
            "Round-trip time of the shard's match-record writes to storage"
        }
        "leaderboard_submit_seconds" => "Score submits on the board's owning shard",
        "leaderboard_top_seconds" => "Top-N reads on the board's owning shard",
        "leaderboard_around_seconds" => "Around-me reads on the board's owning shard",
        "leaderboard_rank_seconds" => "Rank reads on the board's owning shard",
        _ => return None,
    })
}

/// Renders every shard's snapshot as Prometheus text (`text/plain; version=0.0.4`).
pub(crate) fn render(snapshots: Vec<Snapshot>, draining: bool) -> String {
    let mut registry = Registry::with_prefix("asobi");
    registry.register_collector(Box::new(Shards {
        snapshots,
        draining,
    }));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

#[derive(Debug)]
struct Shards {
    snapshots: Vec<Snapshot>,
    draining: bool,
}

fn label(shard: usize) -> Vec<(&'static str, String)> {
    vec![("shard", shard.to_string())]
}

impl Collector for Shards {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(first) = self.snapshots.first() else {
            return Ok(());
        };
        for (i, (name, _)) in first.counters.iter().enumerate() {
            let Some(h) = help(name) else { continue };
            let mut m = enc.encode_descriptor(name, h, None, MetricType::Counter)?;
            for s in &self.snapshots {
                let v = s.counters.get(i).map_or(0, |c| c.1);
                let l = label(s.shard);
                m.encode_family(&l)?
                    .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&v, None)?;
            }
        }
        for (i, (name, _)) in first.hists.iter().enumerate() {
            let Some(h) = help(name) else { continue };
            let mut m = enc.encode_descriptor(name, h, None, MetricType::Histogram)?;
            for s in &self.snapshots {
                let Some((_, hist)) = s.hists.get(i) else {
                    continue;
                };
                let bounds = if hist.bounds.is_empty() {
                    &BOUNDS[..]
                } else {
                    &hist.bounds[..]
                };
                let buckets: Vec<(f64, u64)> = bounds
                    .iter()
                    .copied()
                    .chain([f64::MAX])
                    .zip(hist.buckets.iter().copied())
                    .collect();
                let count = hist.buckets.iter().sum();
                let l = label(s.shard);
                m.encode_family(&l)?
                    .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                        hist.sum, count, &buckets, None,
                    )?;
            }
        }
        type G = fn(&Gauges) -> u64;
        let gauges: [(&str, &str, G); 9] = [
            ("connections", "Open client connections", |g| g.connections),
            ("sessions", "Authenticated sessions", |g| g.sessions),
            ("matches", "Live matches hosted", |g| g.matches),
            ("mesh_backlog", "Messages queued for peer shards", |g| {
                g.mesh_backlog
            }),
            (
                "mesh_bounced",
                "Mesh sends refused because a peer was full (since start)",
                |g| g.mesh_bounced,
            ),
            (
                "outbox_drops",
                "Frames refused by a full session outbox (since start)",
                |g| g.outbox_drops,
            ),
            ("timers", "Timers armed on the shard", |g| g.timers),
            (
                "storage_queue_depth",
                "Calls waiting for the storage bridge",
                |g| g.storage_queue,
            ),
            (
                "matchmaker_tickets",
                "Tickets waiting in the queues this shard owns",
                |g| g.matchmaker_tickets,
            ),
        ];
        for (name, h, get) in gauges {
            let mut m = enc.encode_descriptor(name, h, None, MetricType::Gauge)?;
            for s in &self.snapshots {
                let l = label(s.shard);
                m.encode_family(&l)?
                    .encode_gauge(&(get(&s.gauges) as i64))?;
            }
        }
        let mut m = enc.encode_descriptor(
            "matchmaker_queue_size",
            "Tickets waiting, per mode",
            None,
            MetricType::Gauge,
        )?;
        for s in &self.snapshots {
            for (mode, n, _) in &s.gauges.queues {
                let l = vec![("shard", s.shard.to_string()), ("mode", mode.clone())];
                m.encode_family(&l)?.encode_gauge(&(*n as i64))?;
            }
        }
        let mut m = enc.encode_descriptor(
            "matchmaker_oldest_wait_seconds",
            "How long the oldest waiting ticket has waited, per mode",
            None,
            MetricType::Gauge,
        )?;
        for s in &self.snapshots {
            for (mode, _, oldest_ms) in &s.gauges.queues {
                let l = vec![("shard", s.shard.to_string()), ("mode", mode.clone())];
                m.encode_family(&l)?
                    .encode_gauge(&(*oldest_ms as f64 / 1000.0))?;
            }
        }
        let mut m = enc.encode_descriptor(
            "draining",
            "1 while the node drains for shutdown",
            None,
            MetricType::Gauge,
        )?;
        m.encode_gauge(&i64::from(self.draining))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_bucket_and_render() {
        let m = Metrics::default();
        m.tick_lateness.observe(Duration::from_micros(50));
        m.tick_lateness.observe(Duration::from_millis(3));
        m.tick_lateness.observe(Duration::from_secs(5));
        bump(&m.ticks);
        let mut a = m.snapshot(0, Gauges::default());
        a.gauges.queues.push(("duel".into(), 3, 1500));
        let b = Metrics::default().snapshot(1, Gauges::default());
        let text = render(vec![a, b], false);
        assert!(text.contains("asobi_ticks_total{shard=\"0\"} 1"), "{text}");
        assert!(text.contains("asobi_ticks_total{shard=\"1\"} 0"), "{text}");
        assert!(
            text.contains("asobi_tick_lateness_seconds_bucket{le=\"0.0001\",shard=\"0\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("asobi_tick_lateness_seconds_bucket{le=\"+Inf\",shard=\"0\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("asobi_matchmaker_queue_size{shard=\"0\",mode=\"duel\"} 3"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn leaderboard_histograms_have_microsecond_buckets() {
        let m = Metrics::default();
        m.leaderboards.top.observe(Duration::from_nanos(1_800));
        m.leaderboards.top.observe(Duration::from_micros(700));
        m.leaderboards.top.observe(Duration::from_secs(1));
        let text = render(vec![m.snapshot(0, Gauges::default())], false);
        for line in [
            "asobi_leaderboard_top_seconds_bucket{le=\"0.000001\",shard=\"0\"} 0",
            "asobi_leaderboard_top_seconds_bucket{le=\"0.0000025\",shard=\"0\"} 1",
            "asobi_leaderboard_top_seconds_bucket{le=\"0.001\",shard=\"0\"} 2",
            "asobi_leaderboard_top_seconds_bucket{le=\"+Inf\",shard=\"0\"} 3",
            "asobi_leaderboard_submit_seconds_count{shard=\"0\"} 0",
        ] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
    }
}
