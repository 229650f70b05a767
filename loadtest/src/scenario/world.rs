//! `world`: one world, players walking randomly. The first player creates the world
//! (`world.create`), every other one joins it by id (`world.join`); each then sends
//! `world.input {dx, dy}` (a random step, each -1, 0 or 1, with a `seq`) at a fixed rate and
//! reads `world.tick` frames. `examples/world-walk` is the world this is made for (2,000 ×
//! 2,000 units, 20 × 20 zones, view radius 1).
//!
//! Measures, per step of CCU: the server's **zone tick lateness** (how late each zone's tick
//! started after its due time: the world tick's, plus its slice's offset in a sliced tick), read from the server's `GET /metrics` histogram
//! `asobi_zone_tick_lateness_seconds` before and after the step; `world.tick` bytes per
//! player per second (the frame text the client received); input → `world.ack` latency; and
//! server and client CPU. `--ramp` adds players in steps and reports the highest CCU whose
//! zone tick lateness p99 stays within the bound.
//!
//! With `--wire binary` each session asks for asobi's binary `world.tick` at
//! `session.connect`; the bytes counted are then the binary frames' payloads.
//!
//! The histogram has fixed buckets (…, 5, 10, 25 ms, …), so p99 is reported as the upper
//! bound of the bucket holding it; the ramp judges "p99 ≤ bound" as "at least 99% of zone
//! ticks in buckets ≤ bound", which is exact when the bound is a bucket bound (10 ms is).

use std::collections::VecDeque;
use std::io::Write as _;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::{open_waves, phase, put, q_ms, thousands, CpuMeter, RunSpec};
use crate::monitor::Monitor;
use crate::result::{round3, Cpu, Run};
use crate::runner::{self, Counter, Metric, Pool, Worker};
use crate::ws::Endpoint;

/// The server histogram the scenario judges by.
const LATENESS_METRIC: &str = "asobi_zone_tick_lateness_seconds";

/// Parameters of `world`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorldParams {
    /// World mode to create.
    pub mode: String,
    /// Players (fixed run).
    pub players: usize,
    /// Inputs per second per player.
    pub input_hz: f64,
    /// Measured seconds (fixed run).
    pub duration_s: f64,
    /// Connections per wave.
    pub wave: usize,
    /// Pause between waves (ms).
    pub wave_ms: u64,
    /// Seconds allowed for everyone to be in the world.
    pub join_timeout_s: f64,
    /// Ramp mode.
    pub ramp: Option<WorldRamp>,
}

/// Ramp settings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorldRamp {
    /// First step's CCU.
    pub start: usize,
    /// CCU added per step.
    pub step: usize,
    /// Highest CCU tried.
    pub max: usize,
    /// Seconds measured per step.
    pub step_s: f64,
    /// Bound (ms) on zone tick lateness p99.
    pub lateness_p99_bound_ms: f64,
}

/// What the player tasks share.
struct Cfg {
    mode: String,
    input_period: Duration,
    world_id: Mutex<Option<String>>,
    in_world: AtomicI64,
    tick_frames: AtomicU64,
    tick_bytes: AtomicU64,
    inputs: AtomicU64,
}

/// Zone tick lateness buckets summed over shards: (upper bound in seconds, cumulative count),
/// ascending, `+Inf` last.
type Buckets = Vec<(f64, f64)>;

/// Parses the cumulative buckets of `metric` out of Prometheus text, summed over labels.
fn parse_buckets(text: &str, metric: &str) -> Buckets {
    let prefix = format!("{metric}_bucket{{");
    let mut sums: Vec<(f64, f64)> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let Some(le) = labels
            .split(',')
            .find_map(|l| l.strip_prefix("le=\""))
            .and_then(|v| v.strip_suffix('"'))
        else {
            continue;
        };
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            match le.parse::<f64>() {
                Ok(v) => v,
                Err(_) => continue,
            }
        };
        let Ok(v) = value.trim().parse::<f64>() else {
            continue;
        };
        match sums.iter_mut().find(|(b, _)| *b == le) {
            Some(slot) => slot.1 += v,
            None => sums.push((le, v)),
        }
    }
    sums.sort_by(|a, b| a.0.total_cmp(&b.0));
    sums
}

/// Lateness over a window: observations, the p99 bucket bound (ms) and the share within
/// `bound_ms`.
#[derive(Debug, Clone, PartialEq)]
struct Lateness {
    count: f64,
    p99_le_ms: Option<f64>,
    within_bound: f64,
}

fn lateness(before: &Buckets, after: &Buckets, bound_ms: f64) -> Lateness {
    let at = |b: &Buckets, le: f64| b.iter().find(|(x, _)| *x == le).map_or(0.0, |(_, v)| *v);
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, v)| (*le, (v - at(before, *le)).max(0.0)))
        .collect();
    let count = delta.last().map_or(0.0, |(_, v)| *v);
    if count <= 0.0 {
        return Lateness {
            count: 0.0,
            p99_le_ms: None,
            within_bound: 0.0,
        };
    }
    let p99_le_ms = delta
        .iter()
        .find(|(_, v)| *v >= 0.99 * count)
        .map(|(le, _)| le * 1000.0);
    let within = delta
        .iter()
        .filter(|(le, _)| *le * 1000.0 <= bound_ms + 1e-9)
        .map(|(_, v)| *v)
        .fold(0.0, f64::max);
    Lateness {
        count,
        p99_le_ms,
        within_bound: within / count,
    }
}

/// The server's lateness buckets now (blocking HTTP on a helper thread).
async fn scrape(base: String) -> anyhow::Result<Buckets> {
    tokio::task::spawn_blocking(move || -> anyhow::Result<Buckets> {
        let text = ureq::get(&format!("{base}/metrics"))
            .call()?
            .body_mut()
            .read_to_string()?;
        Ok(parse_buckets(&text, LATENESS_METRIC))
    })
    .await?
}

/// A small xorshift generator per player: deterministic per index, no shared state.
struct Walk(u64);

impl Walk {
    fn new(idx: usize) -> Walk {
        Walk((idx as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn step(&mut self) -> (i32, i32) {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (((x % 3) as i32) - 1, (((x >> 8) % 3) as i32) - 1)
    }
}

fn create_frame(buf: &mut Vec<u8>, mode: &str) {
    buf.clear();
    buf.extend_from_slice(br#"{"type":"world.create","cid":"j","payload":{"mode":"#);
    let _ = serde_json::to_writer(&mut *buf, mode);
    buf.extend_from_slice(b"}}");
}

fn join_frame(buf: &mut Vec<u8>, world_id: &str) {
    buf.clear();
    buf.extend_from_slice(br#"{"type":"world.join","cid":"j","payload":{"world_id":"#);
    let _ = serde_json::to_writer(&mut *buf, world_id);
    buf.extend_from_slice(b"}}");
}

fn input_frame(buf: &mut Vec<u8>, seq: u64, dx: i32, dy: i32) {
    buf.clear();
    let _ = write!(
        buf,
        r#"{{"type":"world.input","seq":{seq},"payload":{{"dx":{dx},"dy":{dy}}}}}"#
    );
}

/// What a step measured.
struct StepFigures {
    ccu: u64,
    dt: f64,
    lateness: Option<Lateness>,
    tick_bytes_per_player_s: f64,
    tick_frames_per_player_s: f64,
    inputs_per_s: f64,
    cpu: Cpu,
}

fn step_json(s: &StepFigures, mon: &Monitor, ok: bool) -> Value {
    let l = s.lateness.as_ref();
    let ack = mon.window.get(Metric::InputToState);
    json!({
        "ccu": s.ccu,
        "seconds": round3(s.dt),
        "zone_ticks": l.map(|l| l.count),
        "zone_tick_lateness_p99_le_ms": l.and_then(|l| l.p99_le_ms),
        "zone_ticks_within_bound": l.map(|l| round3(l.within_bound)),
        "world_tick_bytes_per_player_s": s.tick_bytes_per_player_s.round(),
        "world_tick_frames_per_player_s": round3(s.tick_frames_per_player_s),
        "inputs_per_s": s.inputs_per_s.round(),
        "input_to_ack_p50_ms": q_ms(ack, 0.5),
        "input_to_ack_p99_ms": q_ms(ack, 0.99),
        "server_cores_busy": s.cpu.server_util,
        "client_cores_busy": s.cpu.client_util,
        "within_bound": ok,
    })
}

/// One run's fixed parts: the server, the client pool and what the players share.
struct Driver<'a> {
    spec: &'a RunSpec,
    p: &'a WorldParams,
    base: String,
    shared: Arc<runner::Shared>,
    pool: Pool,
    cfg: Arc<Cfg>,
}

impl Driver<'_> {
    async fn measure(&self, mon: &mut Monitor, secs: f64, bound_ms: f64) -> StepFigures {
        let (spec, shared, pool, cfg) = (self.spec, &self.shared, &self.pool, &self.cfg);
        let base = &self.base;
        mon.mark();
        let before = match scrape(base.to_string()).await {
            Ok(b) => Some(b),
            Err(e) => {
                shared.note_error(format!("metrics: {e}"));
                None
            }
        };
        let (b0, f0, i0) = (
            cfg.tick_bytes.load(Ordering::Relaxed),
            cfg.tick_frames.load(Ordering::Relaxed),
            cfg.inputs.load(Ordering::Relaxed),
        );
        let meter = CpuMeter::start(spec.server.pid);
        let t = Instant::now();
        mon.sleep(Duration::from_secs_f64(secs)).await;
        let dt = t.elapsed().as_secs_f64().max(1e-9);
        let cpu = meter.stop();
        let after = scrape(base.to_string()).await;
        pool.fold().await;
        mon.tick();
        let lateness = match (before, after) {
            (Some(b), Ok(a)) => Some(lateness(&b, &a, bound_ms)),
            (_, Err(e)) => {
                shared.note_error(format!("metrics: {e}"));
                None
            }
            _ => None,
        };
        let ccu = shared
            .count(Counter::Opened)
            .saturating_sub(shared.count(Counter::Dropped));
        let per = |v: u64| v as f64 / dt / (ccu.max(1) as f64);
        StepFigures {
            ccu,
            dt,
            lateness,
            tick_bytes_per_player_s: per(cfg.tick_bytes.load(Ordering::Relaxed) - b0),
            tick_frames_per_player_s: per(cfg.tick_frames.load(Ordering::Relaxed) - f0),
            inputs_per_s: (cfg.inputs.load(Ordering::Relaxed) - i0) as f64 / dt,
            cpu,
        }
    }

    /// Opens players `range`, then waits until they are in the world (or failed); false on
    /// timeout.
    async fn open_and_settle(
        &self,
        mon: &mut Monitor,
        range: std::ops::Range<usize>,
    ) -> anyhow::Result<bool> {
        let (spec, p, shared, cfg) = (self.spec, self.p, &self.shared, &self.cfg);
        runner::ensure_players(&spec.auth, range.end).await?;
        let mut range = range;
        if range.start == 0
            && cfg
                .world_id
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_none()
        {
            // The first player creates the world; everyone else joins it by id.
            self.open_with(mon, 0..1).await;
            let created = mon
                .wait_until(Duration::from_secs_f64(p.join_timeout_s), |_| {
                    cfg.world_id
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .is_some()
                })
                .await;
            if !created {
                anyhow::bail!("the first player could not create a {:?} world", p.mode);
            }
            range.start = 1;
        }
        self.open_with(mon, range.clone()).await;
        let want = range.end as u64;
        let t = Duration::from_secs_f64(p.join_timeout_s);
        Ok(mon
            .wait_until(t, |s| {
                let settled = cfg.in_world.load(Ordering::Relaxed).max(0) as u64
                    + s.count(Counter::Failed)
                    + s.count(Counter::Dropped);
                settled >= want
            })
            .await
            && shared.count(Counter::Failed) == 0)
    }

    async fn open_with(&self, mon: &mut Monitor, range: std::ops::Range<usize>) {
        let cfg = &self.cfg;
        open_waves(
            &self.pool,
            mon,
            range,
            self.p.wave,
            self.p.wave_ms,
            &|idx| {
                let cfg = cfg.clone();
                Box::new(move |w: Rc<Worker>| {
                    tokio::task::spawn_local(player(w, idx, cfg));
                })
            },
        )
        .await;
    }
}

/// Runs the scenario.
pub async fn run(spec: &RunSpec, p: &WorldParams) -> anyhow::Result<Run> {
    let (shared, pool, mut mon) = spec.start(Metric::InputToState)?;
    let base = Endpoint::parse(&spec.url)?.http_base();
    let cfg = Arc::new(Cfg {
        mode: p.mode.clone(),
        input_period: Duration::from_secs_f64(1.0 / p.input_hz.max(0.01)),
        world_id: Mutex::new(None),
        in_world: AtomicI64::new(0),
        tick_frames: AtomicU64::new(0),
        tick_bytes: AtomicU64::new(0),
        inputs: AtomicU64::new(0),
    });
    let d = Driver {
        spec,
        p,
        base,
        shared: shared.clone(),
        pool,
        cfg: cfg.clone(),
    };
    let bound = p.ramp.as_ref().map_or(10.0, |r| r.lateness_p99_bound_ms);
    let mut f = Map::new();
    let total_cpu = CpuMeter::start(spec.server.pid);
    let headline;
    if let Some(ramp) = &p.ramp {
        let mut steps = Vec::new();
        let mut best: Option<u64> = None;
        let mut best_step: Option<Value> = None;
        let mut current = 0usize;
        let mut target = ramp.start.max(1);
        loop {
            let settled = d.open_and_settle(&mut mon, current..target).await?;
            current = target;
            mon.sleep(Duration::from_secs(2)).await;
            let s = d.measure(&mut mon, ramp.step_s, bound).await;
            let failed = shared.count(Counter::Failed) + shared.count(Counter::Dropped);
            let ok = settled
                && failed == 0
                && s.lateness
                    .as_ref()
                    .is_some_and(|l| l.count > 0.0 && l.within_bound >= 0.99);
            let row = step_json(&s, &mon, ok);
            eprintln!(
                "ramp step: ccu {} zone tick lateness p99 ≤ {} ms, {:.1}% within {bound} ms, {} B/player/s ({})",
                s.ccu,
                s.lateness
                    .as_ref()
                    .and_then(|l| l.p99_le_ms)
                    .map_or("n/a".into(), |v| v.to_string()),
                s.lateness.as_ref().map_or(0.0, |l| l.within_bound * 100.0),
                s.tick_bytes_per_player_s.round(),
                if ok { "ok" } else { "over bound / failures" }
            );
            steps.push(row.clone());
            if !ok {
                break;
            }
            best = Some(s.ccu);
            best_step = Some(row);
            if target >= ramp.max {
                break;
            }
            target = (target + ramp.step.max(1)).min(ramp.max);
        }
        f.insert("lateness_p99_bound_ms".into(), bound.into());
        put(&mut f, "max_ccu_within_bound", best);
        if let Some(b) = &best_step {
            for k in [
                "world_tick_bytes_per_player_s",
                "world_tick_frames_per_player_s",
                "zone_tick_lateness_p99_le_ms",
                "server_cores_busy",
                "client_cores_busy",
                "input_to_ack_p99_ms",
            ] {
                if let Some(v) = b.get(k) {
                    f.insert(format!("at_max_{k}"), v.clone());
                }
            }
        }
        f.insert("steps".into(), Value::Array(steps));
        headline = format!(
            "{} world ramp: highest CCU with zone tick lateness p99 ≤ {} ms = {}{}",
            p.mode,
            bound,
            best.map_or("none".to_string(), |b| thousands(b as f64)),
            best_step.as_ref().map_or(String::new(), |b| format!(
                " ({} B/player/s of world.tick, server {} cores busy)",
                b["world_tick_bytes_per_player_s"], b["server_cores_busy"]
            ))
        );
    } else {
        let settled = d.open_and_settle(&mut mon, 0..p.players).await?;
        mon.sleep(Duration::from_secs(2)).await;
        let s = d.measure(&mut mon, p.duration_s, bound).await;
        let row = step_json(&s, &mon, true);
        if let Value::Object(m) = row {
            for (k, v) in m {
                if k != "within_bound" {
                    f.insert(k, v);
                }
            }
        }
        f.insert("all_joined".into(), settled.into());
        headline = format!(
            "{} world, {} CCU at {} Hz input: zone tick lateness p99 ≤ {} ms, {} B/player/s of world.tick, input→ack p99 {} ms, server {} cores busy",
            p.mode,
            thousands(s.ccu as f64),
            p.input_hz,
            s.lateness
                .as_ref()
                .and_then(|l| l.p99_le_ms)
                .map_or("n/a".into(), |v| v.to_string()),
            thousands(s.tick_bytes_per_player_s),
            q_ms(mon.window.get(Metric::InputToState), 0.99)
                .map_or("n/a".into(), |v| v.to_string()),
            s.cpu
                .server_util
                .map_or("n/a".into(), |v| v.to_string()),
        );
    }
    let cpu = total_cpu.stop();
    f.insert(
        "world_id".into(),
        cfg.world_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .into(),
    );
    f.insert(
        "connections_failed".into(),
        shared.count(Counter::Failed).into(),
    );
    f.insert(
        "connections_dropped".into(),
        shared.count(Counter::Dropped).into(),
    );
    f.insert("error_frames".into(), shared.count(Counter::Errors).into());
    shared.set_phase(phase::STOP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    d.pool.stop();
    Ok(spec.finish(
        &shared,
        mon,
        cpu,
        f,
        &[
            (Metric::InputToState, "input_to_ack"),
            (Metric::Connect, "connect"),
        ],
        headline,
    ))
}

/// One player: connect, create or join the world, walk until STOP.
async fn player(w: Rc<Worker>, idx: usize, cfg: Arc<Cfg>) {
    let Some(mut s) = runner::open(&w, idx).await else {
        return;
    };
    let mut buf = Vec::with_capacity(128);
    let world_id = cfg
        .world_id
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match &world_id {
        Some(id) => join_frame(&mut buf, id),
        None => create_frame(&mut buf, &cfg.mode),
    }
    s.conn.queue_text(&buf);
    w.add(Counter::Out, 1);
    let mut in_world = false;
    let mut walk = Walk::new(idx);
    let mut seq = 0u64;
    let mut sent: VecDeque<(u64, Instant)> = VecDeque::new();
    let frac = (idx as f64 * 0.618_033_988_75).fract();
    let mut next_input = Instant::now();
    let joined_by = Instant::now() + Duration::from_secs(60);
    loop {
        if w.phase_at_least(phase::STOP) {
            break;
        }
        let now = Instant::now();
        if in_world && next_input <= now {
            seq += 1;
            let (dx, dy) = walk.step();
            input_frame(&mut buf, seq, dx, dy);
            s.conn.queue_text(&buf);
            sent.push_back((seq, now));
            // An ack may never come for inputs the server dropped; keep the queue short.
            if sent.len() > 256 {
                sent.pop_front();
            }
            w.add(Counter::Out, 1);
            cfg.inputs.fetch_add(1, Ordering::Relaxed);
            next_input += cfg.input_period;
            if next_input + cfg.input_period < now {
                next_input = now + cfg.input_period;
            }
        }
        if !in_world && now > joined_by {
            w.shared.note_error("world join: no reply".into());
            w.add(Counter::Failed, 1);
            return;
        }
        let wake = if in_world {
            next_input.min(now + Duration::from_millis(200))
        } else {
            now + Duration::from_millis(200)
        };
        let mut got = 0u64;
        let mut joined: Option<Option<String>> = None;
        let mut errors: Vec<String> = Vec::new();
        let mut acked: Option<u64> = None;
        let mut t_now: Option<Instant> = None;
        let r = s
            .conn
            .pump(Some(wake), |msg| {
                got += 1;
                if msg.first() != Some(&b'{') {
                    // With `--wire binary` the server sends `world.tick` (and only it) in
                    // asobi's binary encoding.
                    cfg.tick_frames.fetch_add(1, Ordering::Relaxed);
                    cfg.tick_bytes
                        .fetch_add(msg.len() as u64, Ordering::Relaxed);
                    return;
                }
                let Some(env) = crate::proto::scan(msg) else {
                    return;
                };
                match env.ty {
                    Some(b"world.tick") => {
                        cfg.tick_frames.fetch_add(1, Ordering::Relaxed);
                        cfg.tick_bytes
                            .fetch_add(msg.len() as u64, Ordering::Relaxed);
                    }
                    Some(b"world.ack") => {
                        let _ = t_now.get_or_insert_with(Instant::now);
                        let seq = env
                            .payload
                            .and_then(|p| serde_json::from_slice::<Value>(p).ok())
                            .and_then(|v| v.get("seq").and_then(Value::as_u64));
                        acked = acked.max(seq);
                    }
                    // Only the creator needs the id; a joiner's reply carries the whole
                    // roster (asobi's shape), which is not worth parsing per join.
                    Some(b"world.joined") if world_id.is_some() => joined = Some(None),
                    Some(b"world.joined") => {
                        let id = env
                            .payload
                            .and_then(|p| serde_json::from_slice::<Value>(p).ok())
                            .and_then(|v| {
                                v.get("world_id").and_then(Value::as_str).map(str::to_owned)
                            });
                        joined = Some(id);
                    }
                    Some(b"error") => errors.push(crate::proto::error_code(env.payload)),
                    _ => {}
                }
            })
            .await;
        w.add(Counter::In, got);
        if let (Some(a), Some(t)) = (acked, t_now) {
            while sent.front().is_some_and(|&(n, _)| n <= a) {
                if let Some((_, at)) = sent.pop_front() {
                    w.record_dur(Metric::InputToState, t.saturating_duration_since(at));
                }
            }
        }
        if let Some(id) = joined {
            if !in_world {
                in_world = true;
                cfg.in_world.fetch_add(1, Ordering::Relaxed);
                if world_id.is_none() {
                    *cfg.world_id.lock().unwrap_or_else(|e| e.into_inner()) = id;
                }
                next_input = Instant::now() + cfg.input_period.mul_f64(frac);
            }
        }
        for e in errors {
            w.add(Counter::Errors, 1);
            w.shared.note_error(format!("error frame: {e}"));
            if !in_world {
                w.add(Counter::Failed, 1);
                return;
            }
        }
        if let Err(e) = r {
            runner::note_drop(&w, &e);
            if in_world {
                cfg.in_world.fetch_sub(1, Ordering::Relaxed);
            }
            return;
        }
    }
    if in_world {
        cfg.in_world.fetch_sub(1, Ordering::Relaxed);
    }
    s.conn.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP asobi_zone_tick_lateness_seconds How late\n\
asobi_zone_tick_lateness_seconds_bucket{le=\"0.005\",shard=\"0\"} 90\n\
asobi_zone_tick_lateness_seconds_bucket{le=\"0.01\",shard=\"0\"} 99\n\
asobi_zone_tick_lateness_seconds_bucket{le=\"+Inf\",shard=\"0\"} 100\n\
asobi_zone_tick_lateness_seconds_bucket{le=\"0.005\",shard=\"1\"} 10\n\
asobi_zone_tick_lateness_seconds_bucket{le=\"0.01\",shard=\"1\"} 10\n\
asobi_zone_tick_lateness_seconds_bucket{le=\"+Inf\",shard=\"1\"} 10\n\
asobi_tick_lateness_seconds_bucket{le=\"0.01\",shard=\"0\"} 5\n";

    #[test]
    fn buckets_sum_over_shards() {
        let b = parse_buckets(TEXT, LATENESS_METRIC);
        assert_eq!(
            b,
            vec![(0.005, 100.0), (0.01, 109.0), (f64::INFINITY, 110.0)]
        );
    }

    #[test]
    fn lateness_over_a_window() {
        let before = vec![(0.005, 100.0), (0.01, 100.0), (f64::INFINITY, 100.0)];
        let after = vec![(0.005, 150.0), (0.01, 199.0), (f64::INFINITY, 200.0)];
        let l = lateness(&before, &after, 10.0);
        assert_eq!(l.count, 100.0);
        assert_eq!(l.p99_le_ms, Some(10.0));
        assert!((l.within_bound - 0.99).abs() < 1e-9);
        let l = lateness(&before, &after, 5.0);
        assert!((l.within_bound - 0.5).abs() < 1e-9);
        assert_eq!(lateness(&after, &after, 10.0).p99_le_ms, None);
        let after = vec![(0.005, 100.0), (0.01, 150.0), (f64::INFINITY, 200.0)];
        assert_eq!(
            lateness(&before, &after, 10.0).p99_le_ms,
            Some(f64::INFINITY)
        );
    }

    #[test]
    fn walks_in_unit_steps_and_frames_are_json() {
        let mut w = Walk::new(7);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let (dx, dy) = w.step();
            assert!((-1..=1).contains(&dx) && (-1..=1).contains(&dy));
            seen.insert((dx, dy));
        }
        assert!(seen.len() >= 8, "{seen:?}");
        let mut b = Vec::new();
        input_frame(&mut b, 3, -1, 1);
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(
            (v["seq"].as_u64(), v["payload"]["dx"].as_i64()),
            (Some(3), Some(-1))
        );
        join_frame(&mut b, "w\"1");
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["payload"]["world_id"], "w\"1");
        create_frame(&mut b, "walk");
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["type"], "world.create");
    }
}
