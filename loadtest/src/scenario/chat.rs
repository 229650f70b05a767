//! `chat`: N members join one channel (`global:bench`); S of them send `chat.send` at a fixed
//! rate. Reports messages/s in, deliveries/s out (`chat.message` frames received), the latency
//! of each delivery from its send, and the fan-out latency of each message from its send to its
//! **last** member, plus server CPU.
//!
//! The client is one process, so a send time written into the message (µs since a process-wide
//! epoch) is comparable with every receive time. Receivers read it from the raw frame without a
//! JSON parse: at millions of deliveries per second the client's own parsing would otherwise
//! be the bottleneck.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::{open_waves, phase, put, q_ms, thousands, CpuMeter, RunSpec};
use crate::result::round3;
use crate::runner::{self, Counter, Metric, Worker};

/// Parameters of `chat`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChatParams {
    /// Members of the channel (one socket each).
    pub members: usize,
    /// Members that also send.
    pub senders: usize,
    /// Messages per second per sender.
    pub rate: f64,
    /// Seconds of sending.
    pub duration_s: f64,
    /// Connections per wave.
    pub wave: usize,
    /// Pause between waves (ms).
    pub wave_ms: u64,
}

const CHANNEL: &str = "global:bench";

fn epoch() -> std::time::Instant {
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

fn now_us() -> u64 {
    epoch().elapsed().as_micros() as u64
}

/// Deliveries received, and per message (by sequence number) how many members got it and the
/// latest arrival (µs after its send).
struct Tally {
    delivered: AtomicU64,
    sent: AtomicU64,
    per_message: Mutex<HashMap<u64, (u32, u64)>>,
}

fn tally() -> &'static Tally {
    static T: OnceLock<Tally> = OnceLock::new();
    T.get_or_init(|| Tally {
        delivered: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        per_message: Mutex::new(HashMap::new()),
    })
}

/// `(seq, sent_us)` from a `chat.message` frame whose content is `"<seq>:<sent_us>"`.
fn stamp(frame: &[u8]) -> Option<(u64, u64)> {
    const KEY: &[u8] = b"\"content\":\"";
    let at = frame.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = &frame[at..];
    let end = rest.iter().position(|&b| b == b'"')?;
    let text = std::str::from_utf8(&rest[..end]).ok()?;
    let (seq, sent) = text.split_once(':')?;
    Some((seq.parse().ok()?, sent.parse().ok()?))
}

/// Runs the scenario.
pub async fn run(spec: &RunSpec, p: &ChatParams) -> anyhow::Result<crate::result::Run> {
    let (shared, pool, mut mon) = spec.start(Metric::Rtt)?;
    let _ = epoch();
    let t = tally();
    t.delivered.store(0, Ordering::Relaxed);
    t.sent.store(0, Ordering::Relaxed);
    t.per_message
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    let params = Rc::new(p.clone());
    open_waves(&pool, &mut mon, 0..p.members, p.wave, p.wave_ms, &|idx| {
        let params = (*params).clone();
        Box::new(move |w: Rc<Worker>| {
            tokio::task::spawn_local(member(w, idx, params));
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
    let cpu = CpuMeter::start(spec.server.pid);
    let delivered0 = t.delivered.load(Ordering::Relaxed);
    shared.set_phase(phase::GO);
    mon.sleep(Duration::from_secs_f64(p.duration_s)).await;
    shared.set_phase(phase::DRAIN);
    // Deliveries of the last messages still in flight.
    mon.sleep(Duration::from_secs(2)).await;
    let cpu = cpu.stop();
    let delivered = t.delivered.load(Ordering::Relaxed) - delivered0;
    let sent = t.sent.load(Ordering::Relaxed);
    pool.fold().await;
    mon.tick();
    shared.set_phase(phase::STOP);
    tokio::time::sleep(Duration::from_millis(500)).await;
    pool.stop();

    let mut last = Histogram::<u64>::new(3)?;
    last.auto(true);
    let mut complete = 0u64;
    let per_message = std::mem::take(&mut *t.per_message.lock().unwrap_or_else(|e| e.into_inner()));
    for (got, max_us) in per_message.into_values() {
        if u64::from(got) >= joined {
            complete += 1;
            let _ = last.record(max_us.max(1));
        }
    }
    let wall = cpu.wall_s.max(1e-9);
    let mut f = Map::new();
    f.insert("members_joined".into(), joined.into());
    f.insert("messages_sent".into(), sent.into());
    f.insert("messages_complete".into(), complete.into());
    f.insert("deliveries".into(), delivered.into());
    f.insert(
        "messages_in_per_s".into(),
        (sent as f64 / p.duration_s).round().into(),
    );
    f.insert(
        "deliveries_per_s".into(),
        (delivered as f64 / wall).round().into(),
    );
    f.insert("expected_deliveries".into(), (sent * joined).into());
    let rtt = mon.total.get(Metric::Rtt);
    put(&mut f, "delivery_p50_ms", q_ms(rtt, 0.5));
    put(&mut f, "delivery_p99_ms", q_ms(rtt, 0.99));
    put(&mut f, "fanout_last_member_p50_ms", q_ms(&last, 0.5));
    put(&mut f, "fanout_last_member_p99_ms", q_ms(&last, 0.99));
    f.insert(
        "server_cores_busy".into(),
        json!(cpu.server_util.map(round3)),
    );
    let ms = |v: Option<&Value>| v.and_then(Value::as_f64).unwrap_or(f64::NAN);
    let headline = format!(
        "{} members, {} senders × {}/s: {} msg/s in, {} deliveries/s out; send→last member p50 {:.3} p99 {:.3} ms; {} of {} messages reached everyone",
        thousands(joined as f64),
        p.senders,
        p.rate,
        thousands(sent as f64 / p.duration_s),
        thousands(delivered as f64 / wall),
        ms(f.get("fanout_last_member_p50_ms")),
        ms(f.get("fanout_last_member_p99_ms")),
        complete,
        sent
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

async fn member(w: Rc<Worker>, idx: usize, p: ChatParams) {
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
    let period = Duration::from_secs_f64(1.0 / p.rate.max(0.001));
    let mut stop = w.shared.phase.subscribe();
    let mut next = None::<Instant>;
    let t = tally();
    let mut on_message = |m: &[u8]| {
        if let Some((seq, sent)) = stamp(m) {
            let lat = now_us().saturating_sub(sent);
            t.delivered.fetch_add(1, Ordering::Relaxed);
            w.record(Metric::Rtt, lat);
            let mut per = t.per_message.lock().unwrap_or_else(|e| e.into_inner());
            let e = per.entry(seq).or_insert((0, 0));
            e.0 += 1;
            e.1 = e.1.max(lat);
        }
    };
    loop {
        let phase = *stop.borrow_and_update();
        if phase >= phase::STOP {
            s.conn.close().await;
            return;
        }
        if sender && phase == phase::GO {
            let now = Instant::now();
            let due = *next.get_or_insert(now);
            if now >= due {
                let seq = t.sent.fetch_add(1, Ordering::Relaxed);
                let msg = json!({"type": "chat.send", "payload": {
                    "channel_id": CHANNEL,
                    "content": format!("{seq}:{}", now_us()),
                }});
                s.conn.queue_text(msg.to_string().as_bytes());
                next = Some(due + period);
            }
        }
        let deadline = if sender && phase == phase::GO {
            next
        } else {
            Some(Instant::now() + Duration::from_millis(100))
        };
        tokio::select! {
            _ = stop.changed() => {}
            r = s.conn.pump(deadline, &mut on_message) => {
                if let Err(e) = r {
                    runner::note_drop(&w, &e);
                    return;
                }
            }
        }
    }
}
