//! `play`: P players queue a mode, get matched, send `match.input` at a fixed rate and read
//! `match.state`. Measures input→state latency (input `seq` N sent → first state where
//! `players[me].seq >= N`), tick jitter (|state inter-arrival − tick period|), matchmaking
//! time, CCU and message rates. `--ramp` adds players in steps and reports the highest CCU
//! whose input→state p99 stays under a bound.
//!
//! The per-player task here is also what `reload` runs; it additionally watches the
//! `rules` field of each state for the version the reload scenario is waiting for.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::{open_waves, phase, put, q_ms, thousands, CpuMeter, RunSpec};
use crate::result::{round3, Run};
use crate::runner::{self, Counter, Metric, Worker};
use crate::{monitor::Monitor, proto, runner::Pool};

/// Parameters of `play`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlayParams {
    /// Players (rounded down to a multiple of the match size).
    pub players: usize,
    /// Game mode to queue.
    pub mode: String,
    /// Players per match in that mode.
    pub match_size: usize,
    /// Inputs per second per player.
    pub input_hz: f64,
    /// The server's tick period (ms), for jitter.
    pub tick_ms: f64,
    /// Measured seconds once everyone is matched.
    pub duration_s: f64,
    /// Connections per wave.
    pub wave: usize,
    /// Pause between waves (ms).
    pub wave_ms: u64,
    /// Seconds allowed for everyone to get matched.
    pub match_timeout_s: f64,
    /// Ramp mode.
    pub ramp: Option<Ramp>,
}

/// Ramp settings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ramp {
    /// First step's CCU.
    pub start: usize,
    /// CCU added per step.
    pub step: usize,
    /// Highest CCU tried.
    pub max: usize,
    /// Seconds measured per step.
    pub step_s: f64,
    /// p99 bound (ms) on `metric`.
    pub p99_bound_ms: f64,
    /// What the bound applies to.
    pub metric: RampMetric,
}

/// The latency a ramp step is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum RampMetric {
    /// |state inter-arrival − tick|: how late the server's ticks are. The default, because
    /// input→state latency includes waiting for the next tick (up to a whole tick period,
    /// 100 ms in the example game) and so cannot meet a tight bound at any load.
    TickJitter,
    /// Input→state latency.
    InputToState,
}

/// Scenario-wide gauges the player tasks update.
#[derive(Default)]
pub struct Gauges {
    /// Players currently in a match.
    pub in_match: AtomicI64,
    /// `match.matched` received.
    pub matched: AtomicU64,
    /// `match.finished` received.
    pub finished: AtomicU64,
    /// `match.state` frames received.
    pub states: AtomicU64,
    /// Ticks skipped (gaps in `tick`).
    pub ticks_missed: AtomicU64,
    /// Reload: rules version being waited for (0 = none).
    pub reload_target: AtomicI64,
    /// Reload: when the file was saved, ns since `epoch`.
    pub reload_saved_ns: AtomicU64,
    /// Reload: players that have seen `reload_target`.
    pub reload_seen: AtomicU64,
}

/// What a player task needs.
pub struct PlayerCfg {
    /// Mode to queue.
    pub mode: String,
    /// Input period.
    pub input_period: Duration,
    /// Tick period.
    pub tick: Duration,
    /// Shared gauges.
    pub gauges: Gauges,
    /// Time base for `reload_saved_ns`.
    pub epoch: Instant,
}

#[derive(Deserialize)]
struct State<'a> {
    #[serde(default)]
    tick: Option<u64>,
    #[serde(default)]
    rules: Option<i64>,
    #[serde(default, borrow)]
    players: HashMap<Cow<'a, str>, PlayerState>,
}

#[derive(Deserialize)]
struct PlayerState {
    #[serde(default)]
    seq: Option<u64>,
}

/// Spawns player tasks for ids `range` in waves.
pub async fn open_players(
    pool: &Pool,
    mon: &mut Monitor,
    range: std::ops::Range<usize>,
    wave: usize,
    wave_ms: u64,
    cfg: &Arc<PlayerCfg>,
) {
    open_waves(pool, mon, range, wave, wave_ms, &|idx| {
        let cfg = cfg.clone();
        Box::new(move |w: Rc<Worker>| {
            tokio::task::spawn_local(player(w, idx, cfg));
        })
    })
    .await;
}

/// Runs the scenario.
pub async fn run(spec: &RunSpec, p: &PlayParams) -> anyhow::Result<Run> {
    let (shared, pool, mut mon) = spec.start(Metric::InputToState)?;
    let cfg = Arc::new(PlayerCfg {
        mode: p.mode.clone(),
        input_period: Duration::from_secs_f64(1.0 / p.input_hz.max(0.01)),
        tick: Duration::from_secs_f64(p.tick_ms / 1000.0),
        gauges: Gauges::default(),
        epoch: Instant::now(),
    });
    let g = &cfg.gauges;
    let size = p.match_size.max(1);
    let mut f = Map::new();
    let cpu;
    let headline;
    if let Some(ramp) = &p.ramp {
        let mut steps = Vec::new();
        let mut best: Option<u64> = None;
        let mut current = 0usize;
        let mut target = ramp.start.max(size) / size * size;
        let cpu_meter = CpuMeter::start(spec.server.pid);
        loop {
            runner::ensure_players(&spec.auth, target).await?;
            open_players(&pool, &mut mon, current..target, p.wave, p.wave_ms, &cfg).await;
            current = target;
            let all_matched = settle(&mut mon, g, current as u64, p.match_timeout_s).await;
            mon.sleep(Duration::from_secs(2)).await;
            mon.mark();
            let (out0, in0) = (shared.count(Counter::Out), shared.count(Counter::In));
            let t = Instant::now();
            mon.sleep(Duration::from_secs_f64(ramp.step_s)).await;
            pool.fold().await;
            mon.tick();
            let dt = t.elapsed().as_secs_f64();
            let h = mon.window.get(Metric::InputToState);
            let judged = match ramp.metric {
                RampMetric::TickJitter => mon.window.get(Metric::TickJitter),
                RampMetric::InputToState => h,
            };
            let p99 = q_ms(judged, 0.99);
            let ccu = shared
                .count(Counter::Opened)
                .saturating_sub(shared.count(Counter::Dropped));
            let failed = shared.count(Counter::Failed) + shared.count(Counter::Dropped);
            let ok = all_matched && failed == 0 && p99.is_some_and(|v| v <= ramp.p99_bound_ms);
            eprintln!(
                "ramp step: ccu {ccu} {:?} p99 {} ms ({})",
                ramp.metric,
                p99.map_or("n/a".into(), |v| v.to_string()),
                if ok { "ok" } else { "over bound / failures" }
            );
            steps.push(serde_json::json!({
                "ccu": ccu,
                "in_match": g.in_match.load(Ordering::Relaxed),
                "input_to_state_p50_ms": q_ms(h, 0.5),
                "input_to_state_p99_ms": q_ms(h, 0.99),
                "judged_p99_ms": p99,
                "tick_jitter_p99_ms": q_ms(mon.window.get(Metric::TickJitter), 0.99),
                "msgs_out_per_s": ((shared.count(Counter::Out) - out0) as f64 / dt).round(),
                "msgs_in_per_s": ((shared.count(Counter::In) - in0) as f64 / dt).round(),
                "failed_or_dropped": failed,
                "all_matched": all_matched,
                "within_bound": ok,
            }));
            if !ok {
                break;
            }
            best = Some(ccu);
            if target >= ramp.max {
                break;
            }
            target = (target + ramp.step.max(size)) / size * size;
        }
        cpu = cpu_meter.stop();
        f.insert("p99_bound_ms".into(), ramp.p99_bound_ms.into());
        f.insert("ramp_metric".into(), serde_json::to_value(ramp.metric)?);
        put(&mut f, "max_ccu_within_bound", best);
        f.insert("steps".into(), Value::Array(steps));
        headline = format!(
            "{} ramp: highest CCU with {} p99 ≤ {} ms = {}",
            p.mode,
            serde_json::to_value(ramp.metric)?.as_str().unwrap_or("?"),
            ramp.p99_bound_ms,
            best.map_or("none".to_string(), |b| thousands(b as f64))
        );
    } else {
        let n = (p.players.max(size) / size) * size;
        open_players(&pool, &mut mon, 0..n, p.wave, p.wave_ms, &cfg).await;
        let all_matched = settle(&mut mon, g, n as u64, p.match_timeout_s).await;
        mon.sleep(Duration::from_secs(1)).await;
        mon.mark();
        let cpu_meter = CpuMeter::start(spec.server.pid);
        let (out0, in0, st0) = (
            shared.count(Counter::Out),
            shared.count(Counter::In),
            g.states.load(Ordering::Relaxed),
        );
        let t = Instant::now();
        mon.sleep(Duration::from_secs_f64(p.duration_s)).await;
        let dt = t.elapsed().as_secs_f64();
        let (out1, in1, st1) = (
            shared.count(Counter::Out),
            shared.count(Counter::In),
            g.states.load(Ordering::Relaxed),
        );
        cpu = cpu_meter.stop();
        pool.fold().await;
        mon.tick();
        let ccu = shared
            .count(Counter::Opened)
            .saturating_sub(shared.count(Counter::Dropped));
        f.insert("players".into(), (n as u64).into());
        f.insert("ccu".into(), ccu.into());
        f.insert("in_match".into(), g.in_match.load(Ordering::Relaxed).into());
        f.insert("all_matched".into(), all_matched.into());
        f.insert(
            "connections_failed".into(),
            shared.count(Counter::Failed).into(),
        );
        f.insert(
            "connections_dropped".into(),
            shared.count(Counter::Dropped).into(),
        );
        f.insert(
            "msgs_out_per_s".into(),
            ((out1 - out0) as f64 / dt).round().into(),
        );
        f.insert(
            "msgs_in_per_s".into(),
            ((in1 - in0) as f64 / dt).round().into(),
        );
        f.insert(
            "states_per_s".into(),
            ((st1 - st0) as f64 / dt).round().into(),
        );
        let h = mon.window.get(Metric::InputToState);
        for (k, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
            put(&mut f, &format!("input_to_state_{k}_ms"), q_ms(h, q));
        }
        put(
            &mut f,
            "input_to_state_max_ms",
            (!h.is_empty()).then(|| round3(h.max() as f64 / 1000.0)),
        );
        let j = mon.window.get(Metric::TickJitter);
        put(&mut f, "tick_jitter_p50_ms", q_ms(j, 0.5));
        put(&mut f, "tick_jitter_p99_ms", q_ms(j, 0.99));
        put(
            &mut f,
            "tick_jitter_max_ms",
            (!j.is_empty()).then(|| round3(j.max() as f64 / 1000.0)),
        );
        headline = format!(
            "{} CCU {} ({} Hz input): input→state p50 {} p99 {} ms, tick jitter p99 {} ms, matchmaking p99 {} ms, {} msg/s in",
            thousands(ccu as f64),
            p.mode,
            p.input_hz,
            q_ms(h, 0.5).map_or("n/a".into(), |v| v.to_string()),
            q_ms(h, 0.99).map_or("n/a".into(), |v| v.to_string()),
            q_ms(j, 0.99).map_or("n/a".into(), |v| v.to_string()),
            q_ms(mon.total.get(Metric::Matchmaking), 0.99).map_or("n/a".into(), |v| v.to_string()),
            thousands((in1 - in0) as f64 / dt)
        );
    }
    let mm = mon.total.get(Metric::Matchmaking);
    put(&mut f, "matchmaking_p50_ms", q_ms(mm, 0.5));
    put(&mut f, "matchmaking_p99_ms", q_ms(mm, 0.99));
    f.insert("matched".into(), g.matched.load(Ordering::Relaxed).into());
    f.insert(
        "matches_finished".into(),
        g.finished.load(Ordering::Relaxed).into(),
    );
    f.insert(
        "ticks_missed".into(),
        g.ticks_missed.load(Ordering::Relaxed).into(),
    );
    f.insert("error_frames".into(), shared.count(Counter::Errors).into());
    f.insert("reauth".into(), shared.count(Counter::Reauth).into());
    shared.set_phase(phase::STOP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    pool.stop();
    Ok(spec.finish(
        &shared,
        mon,
        cpu,
        f,
        &[
            (Metric::InputToState, "input_to_state"),
            (Metric::TickJitter, "tick_jitter"),
            (Metric::Matchmaking, "matchmaking"),
            (Metric::Connect, "connect"),
        ],
        headline,
    ))
}

/// Waits until `n` players are open and in a match; false on timeout.
pub async fn settle(mon: &mut Monitor, g: &Gauges, n: u64, timeout_s: f64) -> bool {
    let t = Duration::from_secs_f64(timeout_s);
    mon.wait_until(t, |s| {
        s.count(Counter::Opened) + s.count(Counter::Failed) >= n
    })
    .await;
    mon.wait_until(t, |s| {
        let open = s
            .count(Counter::Opened)
            .saturating_sub(s.count(Counter::Dropped));
        g.in_match.load(Ordering::Relaxed) >= open as i64
    })
    .await
}

/// One player's life: connect, queue, play until STOP, requeue when a match finishes.
pub async fn player(w: Rc<Worker>, idx: usize, cfg: Arc<PlayerCfg>) {
    let Some(mut s) = runner::open(&w, idx).await else {
        return;
    };
    let g = &cfg.gauges;
    if s.player_id.is_empty() {
        w.shared.note_error(
            "session.connected carried no player_id; input latency unmeasurable".into(),
        );
    }
    let me = s.player_id.clone();
    let mut buf = Vec::with_capacity(128);
    let mut cid = 10u64;
    let mut queue = |conn: &mut crate::conn::Conn, buf: &mut Vec<u8>| {
        cid += 1;
        proto::matchmaker_add(buf, cid, &cfg.mode);
        conn.queue_text(buf);
        Instant::now()
    };
    let mut queued_at = Some(queue(&mut s.conn, &mut buf));
    w.add(Counter::Out, 1);
    let mut in_match = false;
    let mut next_input = Instant::now();
    let mut seq = 0u64;
    let mut sent_inputs: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut last_state: Option<Instant> = None;
    let mut last_tick: Option<u64> = None;
    let mut seen_reload: i64 = 0;
    let frac = (idx as f64 * 0.618_033_988_75).fract();
    loop {
        let now = Instant::now();
        if w.phase_at_least(phase::STOP) {
            break;
        }
        if in_match && next_input <= now {
            seq += 1;
            let dx = if seq.is_multiple_of(2) { 1 } else { -1 };
            proto::match_input(&mut buf, seq, dx, 0);
            s.conn.queue_text(&buf);
            sent_inputs.push_back((seq, now));
            w.add(Counter::Out, 1);
            next_input += cfg.input_period;
            // After a stall, resume the schedule instead of firing a burst of stale inputs.
            if next_input + cfg.input_period < now {
                next_input = now + cfg.input_period;
            }
        }
        let wake = if in_match {
            next_input.min(now + Duration::from_millis(200))
        } else {
            now + Duration::from_millis(200)
        };
        let mut got = 0u64;
        let mut errors: Vec<String> = Vec::new();
        let mut became_matched = false;
        let mut finished = false;
        let mut t_now: Option<Instant> = None;
        let r = s
            .conn
            .pump(Some(wake), |msg| {
                got += 1;
                let Some(env) = proto::scan(msg) else { return };
                let t = *t_now.get_or_insert_with(Instant::now);
                match env.ty {
                    Some(b"match.state") => {
                        g.states.fetch_add(1, Ordering::Relaxed);
                        if !in_match {
                            became_matched = true;
                        }
                        if let Some(prev) = last_state {
                            let gap = t.saturating_duration_since(prev);
                            let jitter = gap.abs_diff(cfg.tick);
                            w.record_dur(Metric::TickJitter, jitter);
                        }
                        last_state = Some(t);
                        let Some(Ok(st)) = env.payload.map(serde_json::from_slice::<State<'_>>)
                        else {
                            return;
                        };
                        if let (Some(tick), Some(prev)) = (st.tick, last_tick) {
                            if tick > prev + 1 {
                                g.ticks_missed.fetch_add(tick - prev - 1, Ordering::Relaxed);
                            }
                        }
                        last_tick = st.tick.or(last_tick);
                        if let Some(my) = st.players.get(me.as_str()).and_then(|p| p.seq) {
                            while sent_inputs.front().is_some_and(|&(n, _)| n <= my) {
                                if let Some((_, at)) = sent_inputs.pop_front() {
                                    w.record_dur(
                                        Metric::InputToState,
                                        t.saturating_duration_since(at),
                                    );
                                }
                            }
                        }
                        let target = g.reload_target.load(Ordering::Acquire);
                        if target != 0 && seen_reload != target && st.rules == Some(target) {
                            seen_reload = target;
                            let saved = cfg.epoch
                                + Duration::from_nanos(g.reload_saved_ns.load(Ordering::Relaxed));
                            w.record_dur(Metric::Reload, t.saturating_duration_since(saved));
                            g.reload_seen.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Some(b"match.matched") => became_matched = !in_match,
                    Some(b"match.finished") => finished = true,
                    Some(b"error") => errors.push(proto::error_code(env.payload)),
                    _ => {}
                }
            })
            .await;
        w.add(Counter::In, got);
        if became_matched && !in_match {
            in_match = true;
            g.in_match.fetch_add(1, Ordering::Relaxed);
            g.matched.fetch_add(1, Ordering::Relaxed);
            if let Some(q) = queued_at.take() {
                w.record_dur(Metric::Matchmaking, q.elapsed());
            }
            next_input = Instant::now() + cfg.input_period.mul_f64(frac);
            last_state = None;
            last_tick = None;
        }
        if finished && in_match {
            in_match = false;
            g.in_match.fetch_sub(1, Ordering::Relaxed);
            g.finished.fetch_add(1, Ordering::Relaxed);
            sent_inputs.clear();
            last_state = None;
            last_tick = None;
            if !w.phase_at_least(phase::DRAIN) {
                queued_at = Some(queue(&mut s.conn, &mut buf));
                w.add(Counter::Out, 1);
            }
        }
        for e in errors {
            w.add(Counter::Errors, 1);
            w.shared.note_error(format!("error frame: {e}"));
        }
        if let Err(e) = r {
            runner::note_drop(&w, &e);
            if in_match {
                g.in_match.fetch_sub(1, Ordering::Relaxed);
            }
            return;
        }
    }
    if in_match {
        g.in_match.fetch_sub(1, Ordering::Relaxed);
    }
    s.conn.close().await;
}

/// Default players per match for the example game's modes.
pub fn default_match_size(mode: &str) -> usize {
    match mode {
        "brawl" => 8,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_payload_parses_with_and_without_optional_fields() {
        let st: State<'_> = serde_json::from_str(
            r#"{"tick":7,"rules":3,"players":{"p1":{"x":1,"y":2,"score":0,"seq":12},"p2":{"x":0}}}"#,
        )
        .unwrap();
        assert_eq!(st.tick, Some(7));
        assert_eq!(st.rules, Some(3));
        assert_eq!(st.players["p1"].seq, Some(12));
        assert_eq!(st.players["p2"].seq, None);
        let st: State<'_> = serde_json::from_str(r#"{"tick":1,"players":{}}"#).unwrap();
        assert!(st.rules.is_none() && st.players.is_empty());
    }

    #[test]
    fn match_sizes_of_the_example_modes() {
        assert_eq!(default_match_size("duel"), 2);
        assert_eq!(default_match_size("brawl"), 8);
    }
}
