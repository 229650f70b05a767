//! `chat`: N members join one channel (`global:bench`); S of them send `chat.send`. The rate
//! steps through `--rates` (messages/s per sender), each step `--duration` seconds of sending
//! followed by a drain, so one run climbs to the server's saturation point. Per step it reports
//! messages/s in, deliveries/s out (`chat.message` frames received), the latency of each
//! delivery from its send, the fan-out latency of each message from its send to its **last**
//! member, and server and client CPU with the client's scheduling lag, so the reader can tell
//! which side is the bottleneck.
//!
//! The client is one process, so a send time written into the message (µs since a process-wide
//! epoch) is comparable with every receive time. Receivers find it in the raw frame by a short
//! backward scan, without a JSON parse, and tally each message in a preallocated table of
//! atomics indexed by its sequence number: at millions of deliveries per second the client's
//! own parsing or a lock would otherwise be the bottleneck. A member that only listens keeps
//! one pump future across frames (no timer or wake-up registration per frame).

use std::rc::Rc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::{open_waves, phase, put, q_ms, thousands, CpuMeter, RunSpec};
use crate::conn::Conn;
use crate::result::round3;
use crate::runner::{self, Counter, Metric, Worker};
use crate::ws::WsError;

/// Parameters of `chat`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChatParams {
    /// Members of the channel (one socket each).
    pub members: usize,
    /// Members that also send.
    pub senders: usize,
    /// Messages per second per sender, one step each, in order.
    pub rates: Vec<f64>,
    /// Seconds of sending per step.
    pub duration_s: f64,
    /// Connections per wave.
    pub wave: usize,
    /// Pause between waves (ms).
    pub wave_ms: u64,
}

const CHANNEL: &str = "global:bench";
/// Messages tracked one by one. Beyond this (hours of sending) deliveries are still counted,
/// but not per message.
const MAX_TRACKED: usize = 4 << 20;
/// How long a step waits for its last deliveries after sending stops.
const DRAIN_MAX: Duration = Duration::from_secs(10);
/// A drain ends early once no delivery arrived for this long.
const DRAIN_QUIET: Duration = Duration::from_millis(600);

fn epoch() -> std::time::Instant {
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

fn now_us() -> u64 {
    epoch().elapsed().as_micros() as u64
}

/// What the coordinator and every member share: the current rate, the next sequence number,
/// and per message how many members got it and its latest arrival (µs after its send).
struct Tally {
    delivered: AtomicU64,
    sent: AtomicU64,
    /// The current step's period between two sends of one sender, in nanoseconds.
    period_ns: AtomicU64,
    got: Box<[AtomicU32]>,
    last_us: Box<[AtomicU64]>,
}

impl Tally {
    fn new(tracked: usize) -> Tally {
        Tally {
            delivered: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            period_ns: AtomicU64::new(u64::MAX),
            got: (0..tracked).map(|_| AtomicU32::new(0)).collect(),
            last_us: (0..tracked).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn on_delivery(&self, seq: u64, lat_us: u64) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        let Ok(i) = usize::try_from(seq) else {
            return;
        };
        if let (Some(got), Some(last)) = (self.got.get(i), self.last_us.get(i)) {
            got.fetch_add(1, Ordering::Relaxed);
            last.fetch_max(lat_us, Ordering::Relaxed);
        }
    }

    fn set_rate(&self, per_sender: f64) {
        let ns = 1e9 / per_sender.max(0.001);
        self.period_ns.store(ns as u64, Ordering::Relaxed);
    }

    fn period(&self) -> Duration {
        Duration::from_nanos(self.period_ns.load(Ordering::Relaxed).max(1))
    }
}

/// Where `needle` last starts in `hay`.
fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut end = hay.len().checked_sub(needle.len())? + 1;
    while let Some(at) = hay.get(..end)?.iter().rposition(|&b| b == first) {
        if hay.get(at + 1..at + needle.len()) == Some(rest) {
            return Some(at);
        }
        end = at;
    }
    None
}

fn digits(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    b.iter().try_fold(0u64, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u64::from(c - b'0'))
    })
}

/// `(seq, sent_us)` from a `chat.message` frame whose content is `"<seq>:<sent_us>"`. The
/// content sits near the end of the frame (only `sent_at` follows it), so the scan runs
/// backwards.
fn stamp(frame: &[u8]) -> Option<(u64, u64)> {
    const KEY: &[u8] = b"\"content\":\"";
    let at = rfind(frame, KEY)? + KEY.len();
    let rest = frame.get(at..)?;
    let end = rest.iter().position(|&b| b == b'"')?;
    let text = rest.get(..end)?;
    let colon = text.iter().position(|&b| b == b':')?;
    Some((digits(text.get(..colon)?)?, digits(text.get(colon + 1..)?)?))
}

/// Runs the scenario.
pub async fn run(spec: &RunSpec, p: &ChatParams) -> anyhow::Result<crate::result::Run> {
    let (shared, pool, mut mon) = spec.start(Metric::Rtt)?;
    let _ = epoch();
    let rates: Vec<f64> = if p.rates.is_empty() {
        vec![1.0]
    } else {
        p.rates.clone()
    };
    // Room for every message the steps can send, with margin for a late sender.
    let planned: f64 = rates
        .iter()
        .map(|r| r * p.senders as f64 * p.duration_s * 1.5)
        .sum();
    let tally = Arc::new(Tally::new((planned as usize + 1024).min(MAX_TRACKED)));
    let params = Arc::new(p.clone());
    open_waves(&pool, &mut mon, 0..p.members, p.wave, p.wave_ms, &|idx| {
        let params = params.clone();
        let tally = tally.clone();
        Box::new(move |w: Rc<Worker>| {
            tokio::task::spawn_local(member(w, idx, params, tally));
        })
    })
    .await;
    // Every member has joined (Finished counts joins) or failed.
    let want = p.members as u64;
    mon.wait_until(Duration::from_secs(600), |s| {
        s.count(Counter::Finished) + s.count(Counter::Failed) + s.count(Counter::Dropped) >= want
    })
    .await;
    let joined = shared.count(Counter::Finished);
    let dropped_at_join = shared.count(Counter::Dropped);
    let whole = CpuMeter::start(spec.server.pid);
    let mut steps = Vec::new();
    for &rate in &rates {
        let ctx = StepCtx {
            spec,
            p,
            tally: &tally,
            joined,
            dropped_at_join,
        };
        steps.push(step(&ctx, &shared, &pool, &mut mon, rate).await);
    }
    let cpu = whole.stop();
    pool.fold().await;
    mon.tick();
    shared.set_phase(phase::STOP);
    tokio::time::sleep(Duration::from_millis(500)).await;
    pool.stop();

    let rate_of = |s: &Map<String, Value>| {
        s.get("deliveries_per_s")
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    };
    // The headline figures are the step that delivered the most per second.
    let best = steps
        .iter()
        .max_by(|a, b| rate_of(a).total_cmp(&rate_of(b)))
        .cloned()
        .unwrap_or_default();
    let mut f = Map::new();
    f.insert("members_joined".into(), joined.into());
    f.insert(
        "messages_sent".into(),
        tally.sent.load(Ordering::Relaxed).into(),
    );
    for (k, v) in &best {
        f.insert(format!("best_{k}"), v.clone());
    }
    f.insert("deliveries_per_s".into(), rate_of(&best).into());
    let rtt = mon.total.get(Metric::Rtt);
    put(&mut f, "delivery_p50_ms", q_ms(rtt, 0.5));
    put(&mut f, "delivery_p99_ms", q_ms(rtt, 0.99));
    f.insert(
        "server_cores_busy".into(),
        json!(cpu.server_util.map(round3)),
    );
    let lines: Vec<String> = steps.iter().map(|s| step_line(s, p.senders)).collect();
    f.insert(
        "steps".into(),
        Value::Array(steps.into_iter().map(Value::Object).collect()),
    );
    let headline = format!(
        "{} members, {} senders: {}",
        thousands(joined as f64),
        p.senders,
        lines.join(" | ")
    );
    Ok(spec.finish(
        &shared,
        mon,
        cpu,
        f,
        &[(Metric::Rtt, "delivery"), (Metric::Connect, "connect")],
        headline,
    ))
}

/// What every step reads and does not change.
struct StepCtx<'a> {
    spec: &'a RunSpec,
    p: &'a ChatParams,
    tally: &'a Tally,
    joined: u64,
    dropped_at_join: u64,
}

/// One rate step: `duration` seconds of sending, then a drain until the step's messages have
/// reached everyone or deliveries stop. Throughput and CPU are measured over the sending
/// window (what the server sustains while the rate is offered); latencies over the step and
/// its drain.
async fn step(
    c: &StepCtx<'_>,
    shared: &runner::Shared,
    pool: &runner::Pool,
    mon: &mut crate::monitor::Monitor,
    rate: f64,
) -> Map<String, Value> {
    let t = c.tally;
    pool.fold().await;
    mon.tick();
    mon.mark();
    let seq0 = t.sent.load(Ordering::Relaxed);
    let delivered0 = t.delivered.load(Ordering::Relaxed);
    t.set_rate(rate);
    let meter = CpuMeter::start(c.spec.server.pid);
    shared.set_phase(phase::GO);
    mon.sleep(Duration::from_secs_f64(c.p.duration_s)).await;
    shared.set_phase(phase::DRAIN);
    let cpu = meter.stop();
    let in_window = t.delivered.load(Ordering::Relaxed) - delivered0;
    let drain_start = Instant::now();
    let (mut seen, mut seen_at) = (in_window, drain_start);
    loop {
        mon.sleep(Duration::from_millis(100)).await;
        let got = t.delivered.load(Ordering::Relaxed) - delivered0;
        let sent = t.sent.load(Ordering::Relaxed) - seq0;
        let now = Instant::now();
        if got >= sent * c.joined || now - drain_start >= DRAIN_MAX {
            break;
        }
        if got != seen {
            (seen, seen_at) = (got, now);
        } else if now - seen_at >= DRAIN_QUIET {
            break;
        }
    }
    let drain_s = drain_start.elapsed().as_secs_f64();
    pool.fold().await;
    mon.tick();
    let seq1 = t.sent.load(Ordering::Relaxed);
    let sent = seq1 - seq0;
    let delivered = t.delivered.load(Ordering::Relaxed) - delivered0;
    let dropped = shared.count(Counter::Dropped) - c.dropped_at_join;
    let alive = c.joined.saturating_sub(dropped);
    let mut last = Histogram::<u64>::new(3).expect("3 significant figures is valid");
    last.auto(true);
    let mut complete = 0u64;
    for i in seq0..seq1 {
        let Ok(i) = usize::try_from(i) else { break };
        let (Some(got), Some(max_us)) = (t.got.get(i), t.last_us.get(i)) else {
            break;
        };
        if u64::from(got.load(Ordering::Relaxed)) >= alive {
            complete += 1;
            let _ = last.record(max_us.load(Ordering::Relaxed).max(1));
        }
    }
    let wall = cpu.wall_s.max(1e-9);
    let mut f = Map::new();
    f.insert("rate_per_sender".into(), rate.into());
    f.insert(
        "messages_in_per_s".into(),
        round3(sent as f64 / c.p.duration_s).into(),
    );
    f.insert("messages_sent".into(), sent.into());
    f.insert("messages_complete".into(), complete.into());
    f.insert(
        "deliveries_per_s".into(),
        (in_window as f64 / wall).round().into(),
    );
    f.insert("deliveries_in_window".into(), in_window.into());
    f.insert("deliveries".into(), delivered.into());
    f.insert("expected_deliveries".into(), (sent * c.joined).into());
    f.insert("members_dropped".into(), dropped.into());
    f.insert("drain_s".into(), round3(drain_s).into());
    put(&mut f, "fanout_last_member_p50_ms", q_ms(&last, 0.5));
    put(&mut f, "fanout_last_member_p99_ms", q_ms(&last, 0.99));
    let rtt = mon.window.get(Metric::Rtt);
    put(&mut f, "delivery_p50_ms", q_ms(rtt, 0.5));
    put(&mut f, "delivery_p99_ms", q_ms(rtt, 0.99));
    let lag = mon.window.get(Metric::ClientLag);
    put(&mut f, "client_lag_p50_ms", q_ms(lag, 0.5));
    put(&mut f, "client_lag_p99_ms", q_ms(lag, 0.99));
    put(&mut f, "server_cores_busy", cpu.server_util);
    f.insert("client_cores_busy".into(), cpu.client_util.into());
    put(&mut f, "other_cores_busy", cpu.other_busy);
    if let Some(s) = cpu.server_cpu_s.filter(|_| in_window > 0) {
        f.insert(
            "server_cpu_ns_per_delivery".into(),
            (s * 1e9 / in_window as f64).round().into(),
        );
    }
    if in_window > 0 {
        f.insert(
            "client_cpu_ns_per_delivery".into(),
            (cpu.client_cpu_s * 1e9 / in_window as f64).round().into(),
        );
    }
    if !c.spec.quiet {
        eprintln!("chat step: {}", step_line(&f, c.p.senders));
    }
    f
}

/// One step as a line of the headline.
fn step_line(s: &Map<String, Value>, senders: usize) -> String {
    let n = |k: &str| s.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    format!(
        "{}×{}/s: {} msg/s in, {} deliveries/s, last member p50 {:.1} p99 {:.1} ms, server {:.2} cores ({:.0} ns/delivery), client {:.2} cores, {}/{} complete",
        senders,
        n("rate_per_sender"),
        thousands(n("messages_in_per_s")),
        thousands(n("deliveries_per_s")),
        n("fanout_last_member_p50_ms"),
        n("fanout_last_member_p99_ms"),
        n("server_cores_busy"),
        n("server_cpu_ns_per_delivery"),
        n("client_cores_busy"),
        n("messages_complete"),
        n("messages_sent"),
    )
}

async fn member(w: Rc<Worker>, idx: usize, p: Arc<ChatParams>, t: Arc<Tally>) {
    let Some(mut s) = runner::open(&w, idx).await else {
        return;
    };
    let join = json!({"type": "chat.join", "cid": "j", "payload": {"channel_id": CHANNEL}});
    s.conn.queue_text(join.to_string().as_bytes());
    // Wait for the join.
    let mut joined = false;
    while !joined {
        let r = s
            .conn
            .pump(Some(Instant::now() + Duration::from_secs(30)), |m| {
                if m.windows(11).any(|x| x == b"chat.joined") {
                    joined = true;
                }
            })
            .await;
        match r {
            Ok(true) => {}
            Ok(false) => {
                w.add(Counter::Failed, 1);
                return;
            }
            Err(e) => {
                runner::note_drop(&w, &e);
                return;
            }
        }
    }
    w.add(Counter::Finished, 1);
    let sender = idx < p.senders;
    let mut stop = w.shared.phase.subscribe();
    let mut next = None::<Instant>;
    let (rec, tally) = (w.clone(), t.clone());
    let mut on_message = move |m: &[u8]| {
        if let Some((seq, sent)) = stamp(m) {
            let lat = now_us().saturating_sub(sent);
            rec.record(Metric::Rtt, lat);
            rec.add(Counter::In, 1);
            tally.on_delivery(seq, lat);
        }
    };
    loop {
        let phase = *stop.borrow_and_update();
        if phase >= phase::STOP {
            s.conn.close().await;
            return;
        }
        let r = if sender && phase == phase::GO {
            let now = Instant::now();
            let period = t.period();
            // Senders start spread over one period, so the channel sees a steady stream.
            let spread = idx as f64 / p.senders.max(1) as f64;
            let due = *next.get_or_insert_with(|| now + period.mul_f64(spread));
            if now >= due {
                let seq = t.sent.fetch_add(1, Ordering::Relaxed);
                let msg = format!(
                    r#"{{"type":"chat.send","payload":{{"channel_id":"{CHANNEL}","content":"{seq}:{}"}}}}"#,
                    now_us()
                );
                s.conn.queue_text(msg.as_bytes());
                w.add(Counter::Out, 1);
                next = Some(due + period);
                continue;
            }
            tokio::select! {
                _ = stop.changed() => Ok(()),
                r = s.conn.pump(Some(due), &mut on_message) => r.map(drop),
            }
        } else {
            next = None;
            tokio::select! {
                _ = stop.changed() => Ok(()),
                r = listen(&mut s.conn, &mut on_message) => r,
            }
        };
        if let Err(e) = r {
            runner::note_drop(&w, &e);
            return;
        }
    }
}

/// Pumps until the connection fails: one future for as long as the phase holds, so a
/// listening member registers no timer and no phase watch per frame.
async fn listen(conn: &mut Conn, on_message: &mut impl FnMut(&[u8])) -> Result<(), WsError> {
    loop {
        conn.pump(None, &mut *on_message).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_read_from_the_raw_frame() {
        let f = br#"{"type":"chat.message","payload":{"channel_id":"global:bench","sender_id":"p-1","content":"42:1234567","sent_at":1764212345678}}"#;
        assert_eq!(stamp(f), Some((42, 1_234_567)));
        assert_eq!(stamp(br#"{"content":"x:1"}"#), None);
        assert_eq!(stamp(br#"{"content":"1:2"#), None);
        assert_eq!(stamp(b"content"), None);
        assert_eq!(stamp(b""), None);
        assert_eq!(rfind(b"abcabc", b"bc"), Some(4));
        assert_eq!(rfind(b"ab", b"abc"), None);
    }

    #[test]
    fn the_tally_counts_each_message_and_keeps_its_latest_arrival() {
        let t = Tally::new(4);
        t.on_delivery(1, 10);
        t.on_delivery(1, 30);
        t.on_delivery(1, 20);
        t.on_delivery(9, 5);
        assert_eq!(t.delivered.load(Ordering::Relaxed), 4);
        assert_eq!(t.got[1].load(Ordering::Relaxed), 3);
        assert_eq!(t.last_us[1].load(Ordering::Relaxed), 30);
        t.set_rate(200.0);
        assert_eq!(t.period(), Duration::from_millis(5));
    }
}
