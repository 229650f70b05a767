//! `blast`: asobi's WebSocket benchmark. C connections open in waves; once all are open each
//! sends M `session.heartbeat` frames back to back (pipelined, written in large batches) and
//! drains the replies. Reported the way asobi reports it (replies ÷ elapsed including the
//! connects; per-connection "RTT" = elapsed ÷ M) and also as steady state (from the moment
//! all are connected) with true per-message latency.
//!
//! With `--rate R` each connection instead sends R heartbeats per second on a fixed schedule
//! for a duration; latency is then a true round trip, matched by `cid`, measured both from
//! the write and from the scheduled send time (so a stalled client cannot hide latency).

use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::time::Instant;

use super::{
    memory_figures, open_waves, phase, put, q_ms, server_rss, thousands, CpuMeter, RunSpec,
};
use crate::proto;
use crate::result::{round3, Run};
use crate::runner::{self, Counter, Metric, Worker};

/// Queue more frames when fewer than this many bytes are waiting for the kernel.
const WRITE_LOW: usize = 32 << 10;
/// Stop queueing at this many pending bytes: enough for one large write, bounded memory.
const WRITE_HIGH: usize = 64 << 10;

/// Parameters of `blast`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BlastParams {
    /// Connections.
    pub connections: usize,
    /// Heartbeats per connection (burst mode).
    pub messages: u64,
    /// Connections per wave.
    pub wave: usize,
    /// Pause between waves (ms).
    pub wave_ms: u64,
    /// Heartbeats per second per connection (paced mode).
    pub rate: Option<f64>,
    /// Paced mode: seconds of sending.
    pub duration_s: f64,
    /// Give up on a connection after this long without a reply (s), like asobi's 15 s.
    pub idle_timeout_s: f64,
    /// Send `rpc.call` of this method instead of heartbeats (the `rpc` scenario); replies are
    /// `rpc.ok` (an `rpc.error` counts as a reply and an error frame).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc_method: Option<String>,
    /// The `leaderboard` scenario: scores each RPC call submits (`bench.lb_submit` in
    /// examples/rpc-bench submits 50); reported as `submits_per_s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub submits_per_call: Option<u64>,
}

impl BlastParams {
    /// One request frame with `cid`.
    fn request(&self, buf: &mut Vec<u8>, cid: u64) {
        match &self.rpc_method {
            Some(m) => proto::rpc_call(buf, cid, m),
            None => proto::heartbeat(buf, cid),
        }
    }

    /// The reply type a request is answered with.
    fn reply_kind(&self) -> &'static str {
        if self.rpc_method.is_some() {
            "rpc.ok"
        } else {
            "session.heartbeat"
        }
    }
}

/// Runs the scenario.
pub async fn run(spec: &RunSpec, p: &BlastParams) -> anyhow::Result<Run> {
    let (shared, pool, mon) = spec.start(Metric::Rtt)?;
    // A burst lasts seconds; sample 4× a second so the plot shows its shape.
    let mut mon = if p.rate.is_none() {
        mon.period(Duration::from_millis(250))
    } else {
        mon
    };
    let pid = spec.server.pid;
    let rss_before = server_rss(pid);
    let cpu_total = CpuMeter::start(pid);
    let t0 = Instant::now();
    let params = Arc::new(p.clone());
    open_waves(
        &pool,
        &mut mon,
        0..p.connections,
        p.wave,
        p.wave_ms,
        &|idx| {
            let params = params.clone();
            Box::new(move |w: Rc<Worker>| {
                tokio::task::spawn_local(connection(w, idx, params));
            })
        },
    )
    .await;
    let want = p.connections as u64;
    mon.wait_until(Duration::from_secs(300), |s| {
        s.count(Counter::Opened) + s.count(Counter::Failed) >= want
    })
    .await;
    let opened = shared.count(Counter::Opened);
    let t_connected = Instant::now();
    let rss_connected = server_rss(pid);
    let cpu_steady = CpuMeter::start(pid);
    // The leaderboard run reads the owning shard's own latency from /metrics around the window.
    let base = crate::scrape::http_base(&spec.url);
    let metrics0 = p
        .submits_per_call
        .and_then(|_| crate::scrape::fetch(&base).ok());
    shared.set_phase(phase::GO);

    let mut in_at_go = 0;
    let mut in_at_end = 0;
    if let Some(rate) = p.rate {
        in_at_go = shared.count(Counter::In);
        mon.sleep(Duration::from_secs_f64(p.duration_s)).await;
        in_at_end = shared.count(Counter::In);
        shared.set_phase(phase::DRAIN);
        let _ = rate;
    }
    let budget = if p.rate.is_some() {
        Duration::from_secs_f64(p.idle_timeout_s + 5.0)
    } else {
        Duration::from_secs_f64(600.0_f64.max(p.idle_timeout_s * 4.0))
    };
    let all_done = mon
        .wait_until(budget, |s| s.count(Counter::Finished) >= opened)
        .await;
    let t_end = Instant::now();
    let rss_after = server_rss(pid);
    let cpu = cpu_steady.stop();
    let cpu_all = cpu_total.stop();
    pool.fold().await;
    mon.tick();
    shared.set_phase(phase::STOP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    pool.stop();

    let replies = shared.count(Counter::In);
    let sent = shared.count(Counter::Out);
    let elapsed = t_end.duration_since(t0).as_secs_f64();
    let steady = t_end.duration_since(t_connected).as_secs_f64();
    let mut f = Map::new();
    f.insert("connections".into(), want.into());
    f.insert("connections_opened".into(), opened.into());
    f.insert(
        "connections_failed".into(),
        shared.count(Counter::Failed).into(),
    );
    f.insert(
        "connections_dropped".into(),
        shared.count(Counter::Dropped).into(),
    );
    f.insert("sent".into(), sent.into());
    f.insert("replies".into(), replies.into());
    f.insert("lost".into(), shared.count(Counter::Lost).into());
    f.insert("error_frames".into(), shared.count(Counter::Errors).into());
    f.insert("reauth".into(), shared.count(Counter::Reauth).into());
    f.insert("all_finished".into(), all_done.into());
    f.insert(
        "connect_phase_s".into(),
        round3(t_connected.duration_since(t0).as_secs_f64()).into(),
    );
    f.insert("elapsed_s".into(), round3(elapsed).into());
    f.insert("steady_s".into(), round3(steady).into());
    let h = &mon.total;
    let rtt = h.get(Metric::Rtt);
    let headline;
    if let Some(rate) = p.rate {
        let achieved = (in_at_end - in_at_go) as f64 / p.duration_s;
        f.insert("rate_per_conn".into(), rate.into());
        f.insert(
            "offered_msg_s".into(),
            (rate * opened as f64).round().into(),
        );
        f.insert("achieved_msg_s".into(), achieved.round().into());
        for (k, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
            put(&mut f, &format!("rtt_{k}_ms"), q_ms(rtt, q));
        }
        put(
            &mut f,
            "rtt_max_ms",
            (!rtt.is_empty()).then(|| round3(rtt.max() as f64 / 1000.0)),
        );
        put(
            &mut f,
            "rtt_sched_p99_ms",
            q_ms(h.get(Metric::RttScheduled), 0.99),
        );
        headline = format!(
            "{} conns × {rate}/s: {} msg/s achieved of {} offered; RTT p50 {} p99 {} p999 {} max {} ms; lost {}",
            thousands(opened as f64),
            thousands(achieved),
            thousands(rate * opened as f64),
            fmt_opt(q_ms(rtt, 0.5)),
            fmt_opt(q_ms(rtt, 0.99)),
            fmt_opt(q_ms(rtt, 0.999)),
            fmt_opt((!rtt.is_empty()).then(|| round3(rtt.max() as f64 / 1000.0))),
            shared.count(Counter::Lost)
        );
    } else {
        let tput = replies as f64 / elapsed;
        let steady_tput = replies as f64 / steady;
        f.insert("messages_per_conn".into(), p.messages.into());
        f.insert("throughput_msg_s".into(), tput.round().into());
        f.insert("steady_throughput_msg_s".into(), steady_tput.round().into());
        if let Some(k) = p.submits_per_call {
            f.insert(
                "submits_per_s".into(),
                (steady_tput * k as f64).round().into(),
            );
            server_side_latency(&mut f, &base, metrics0.as_deref());
        }
        let conn_rtt = h.get(Metric::ConnRtt);
        put(&mut f, "conn_rtt_p50_ms", q_ms(conn_rtt, 0.5));
        put(&mut f, "conn_rtt_p99_ms", q_ms(conn_rtt, 0.99));
        put(&mut f, "msg_latency_p50_ms", q_ms(rtt, 0.5));
        put(&mut f, "msg_latency_p99_ms", q_ms(rtt, 0.99));
        headline = format!(
            "{}×{}: {} msg/s (asobi method), {} msg/s steady; per-conn RTT p50 {} p99 {} ms; lost {}",
            thousands(opened as f64),
            thousands(p.messages as f64),
            thousands(tput),
            thousands(steady_tput),
            fmt_opt(q_ms(conn_rtt, 0.5)),
            fmt_opt(q_ms(conn_rtt, 0.99)),
            shared.count(Counter::Lost)
        );
    }
    memory_figures(&mut f, rss_before, rss_connected, rss_after, opened);
    if replies > 0 {
        put(
            &mut f,
            "server_cpu_us_per_reply",
            cpu.server_cpu_s.map(|s| round3(s * 1e6 / replies as f64)),
        );
        f.insert(
            "client_cpu_us_per_reply".into(),
            round3(cpu.client_cpu_s * 1e6 / replies as f64).into(),
        );
    }
    f.insert("client_cpu_total_s".into(), cpu_all.client_cpu_s.into());
    put(&mut f, "server_cpu_total_s", cpu_all.server_cpu_s);
    put(&mut f, "connect_p50_ms", q_ms(h.get(Metric::Connect), 0.5));
    put(&mut f, "connect_p99_ms", q_ms(h.get(Metric::Connect), 0.99));
    let headline = match f.get("server_mem_per_conn_bytes").and_then(Value::as_f64) {
        Some(b) => format!("{headline}; {:.1} KiB/conn", b / 1024.0),
        None => headline,
    };
    Ok(spec.finish(
        &shared,
        mon,
        cpu,
        f,
        &[
            (Metric::Rtt, "rtt"),
            (Metric::RttScheduled, "rtt_scheduled"),
            (Metric::ConnRtt, "conn_rtt"),
            (Metric::Connect, "connect"),
        ],
        headline,
    ))
}

/// The owning shard's submit latency during the window, from the server's `/metrics`
/// (histogram bucket bounds: each quantile is an upper bound, as fine as the buckets).
fn server_side_latency(f: &mut Map<String, Value>, base: &str, before: Option<&str>) {
    use crate::scrape::Buckets;
    let (Some(before), Ok(after)) = (before, crate::scrape::fetch(base)) else {
        return;
    };
    for op in ["submit", "top", "around", "rank"] {
        let name = format!("leaderboard_{op}_seconds");
        let w = Buckets::parse(&after, &name).since(&Buckets::parse(before, &name));
        if w.count() == 0 {
            continue;
        }
        f.insert(format!("server_{op}_count"), w.count().into());
        for (q, label) in [(0.5, "p50"), (0.99, "p99"), (0.999, "p999")] {
            let v = w.quantile(q).map(|s| round3(s * 1e6));
            put(
                f,
                &format!("server_{op}_{label}_us"),
                v.filter(|v| v.is_finite()),
            );
        }
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |x| format!("{x}"))
}

/// One connection's life: open, wait for GO, blast or pace, close at STOP.
async fn connection(w: Rc<Worker>, idx: usize, p: Arc<BlastParams>) {
    let Some(mut s) = runner::open(&w, idx).await else {
        return;
    };
    w.wait_phase(phase::GO).await;
    let ok = match p.rate {
        None => burst(&w, &mut s.conn, &p).await,
        Some(rate) => paced(&w, &mut s.conn, idx, rate, p.idle_timeout_s).await,
    };
    w.add(Counter::Finished, 1);
    if ok {
        w.wait_phase(phase::STOP).await;
        s.conn.close().await;
    }
}

/// Sends `m` heartbeats as fast as the socket takes them while draining replies. Returns
/// false when the connection broke.
async fn burst(w: &Worker, conn: &mut crate::conn::Conn, p: &BlastParams) -> bool {
    let (m, reply_kind) = (p.messages, p.reply_kind());
    let idle = Duration::from_secs_f64(p.idle_timeout_s);
    let start = Instant::now();
    let mut buf = Vec::with_capacity(96);
    // (first cid of a batch, when the batch was queued): replies arrive in order, so a
    // reply's send time is that of the last batch starting at or before its cid.
    let mut batches: VecDeque<(u64, Instant)> = VecDeque::new();
    let (mut sent, mut received) = (0u64, 0u64);
    let mut last_progress = Instant::now();
    let mut alive = true;
    while received < m {
        if sent < m && conn.pending_write() < WRITE_LOW {
            batches.push_back((sent, Instant::now()));
            let before = sent;
            while sent < m && conn.pending_write() < WRITE_HIGH {
                p.request(&mut buf, sent);
                conn.queue_text(&buf);
                sent += 1;
            }
            w.add(Counter::Out, sent - before);
        }
        let mut got = 0u64;
        let mut errors = 0u64;
        let mut now: Option<Instant> = None;
        let r = conn
            .pump(Some(last_progress + idle), |msg| {
                let Some(env) = proto::scan(msg) else { return };
                if env.is("rpc.error") {
                    // Answered, but not the answer wanted: counted so the blast ends.
                    got += 1;
                    errors += 1;
                } else if env.is(reply_kind) {
                    got += 1;
                    if let Some(cid) = env.cid_u64() {
                        while batches.len() > 1 && batches[1].0 <= cid {
                            batches.pop_front();
                        }
                        if let Some(&(_, at)) = batches.front() {
                            let t = *now.get_or_insert_with(Instant::now);
                            w.record_dur(Metric::Rtt, t.saturating_duration_since(at));
                        }
                    }
                } else if env.is("error") {
                    errors += 1;
                }
            })
            .await;
        received += got;
        w.add(Counter::In, got);
        w.add(Counter::Errors, errors);
        match r {
            Ok(true) => {
                if got > 0 {
                    last_progress = Instant::now();
                }
            }
            Ok(false) => break,
            Err(e) => {
                runner::note_drop(w, &e);
                alive = false;
                break;
            }
        }
    }
    let elapsed = start.elapsed();
    w.record(Metric::ConnRtt, (elapsed.as_micros() as u64) / m.max(1));
    w.add(Counter::Lost, m - received.min(m));
    alive
}

/// Sends `rate` heartbeats per second on a schedule until DRAIN, then waits for the
/// outstanding replies. Returns false when the connection broke.
async fn paced(
    w: &Worker,
    conn: &mut crate::conn::Conn,
    idx: usize,
    rate: f64,
    idle_timeout_s: f64,
) -> bool {
    let period = Duration::from_secs_f64(1.0 / rate.max(1e-3));
    // Spread connections evenly over one period (golden-ratio sequence) so the load is
    // smooth rather than 3,500 sends on the same millisecond.
    let frac = (idx as f64 * 0.618_033_988_75).fract();
    let mut next = Instant::now() + period.mul_f64(frac);
    let mut buf = Vec::with_capacity(96);
    // (cid, scheduled time, write time) of requests awaiting replies, in send order.
    let mut pending: VecDeque<(u64, Instant, Instant)> = VecDeque::new();
    let mut seq = 0u64;
    let mut drain_deadline: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if drain_deadline.is_none() && w.phase_at_least(phase::DRAIN) {
            drain_deadline = Some(now + Duration::from_secs_f64(idle_timeout_s));
        }
        match drain_deadline {
            Some(d) if pending.is_empty() || now >= d => break,
            Some(_) => {}
            None => {
                let mut n = 0;
                while next <= now {
                    proto::heartbeat(&mut buf, seq);
                    conn.queue_text(&buf);
                    pending.push_back((seq, next, now));
                    seq += 1;
                    n += 1;
                    next += period;
                }
                w.add(Counter::Out, n);
            }
        }
        // Wake for the next send, or periodically while draining to check the deadline.
        let wake = match drain_deadline {
            Some(d) => d,
            None => next.min(now + Duration::from_millis(100)),
        };
        let mut got = 0u64;
        let mut errors = 0u64;
        let mut skipped = 0u64;
        let mut t: Option<Instant> = None;
        let r = conn
            .pump(Some(wake), |msg| {
                let Some(env) = proto::scan(msg) else { return };
                if env.is("session.heartbeat") {
                    got += 1;
                    let Some(cid) = env.cid_u64() else { return };
                    while pending.front().is_some_and(|&(c, _, _)| c < cid) {
                        pending.pop_front();
                        skipped += 1;
                    }
                    if pending.front().is_some_and(|&(c, _, _)| c == cid) {
                        if let Some((_, sched, wrote)) = pending.pop_front() {
                            let now = *t.get_or_insert_with(Instant::now);
                            w.record_dur(Metric::Rtt, now.saturating_duration_since(wrote));
                            w.record_dur(
                                Metric::RttScheduled,
                                now.saturating_duration_since(sched),
                            );
                        }
                    }
                } else if env.is("error") {
                    errors += 1;
                }
            })
            .await;
        w.add(Counter::In, got);
        w.add(Counter::Errors, errors);
        w.add(Counter::Lost, skipped);
        if let Err(e) = r {
            runner::note_drop(w, &e);
            w.add(Counter::Lost, pending.len() as u64);
            return false;
        }
    }
    w.add(Counter::Lost, pending.len() as u64);
    true
}
