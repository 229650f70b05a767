//! `idle`: open N authenticated sockets that then stay quiet, hold them, and report the
//! server's memory per connection and how long opening took. Idle sockets still read, so a
//! server ping is answered and a server-side close is noticed and counted.

use std::rc::Rc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::time::Instant;

use super::{
    memory_figures, open_waves, phase, put, q_ms, server_rss, thousands, CpuMeter, RunSpec,
};
use crate::result::{round3, Run};
use crate::runner::{self, Counter, Metric, Worker};
use crate::sys;

/// Parameters of `idle`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IdleParams {
    /// Sockets to open.
    pub connections: usize,
    /// Connections per wave.
    pub wave: usize,
    /// Pause between waves (ms).
    pub wave_ms: u64,
    /// Seconds to hold all sockets open before measuring again.
    pub hold_s: f64,
}

/// Runs the scenario.
pub async fn run(spec: &RunSpec, p: &IdleParams) -> anyhow::Result<Run> {
    let (shared, pool, mut mon) = spec.start(Metric::Connect)?;
    let pid = spec.server.pid;
    let me = std::process::id();
    let rss_before = server_rss(pid);
    let client_rss_before = sys::proc_rss_kib(me);
    let cpu = CpuMeter::start(pid);
    let t0 = Instant::now();
    open_waves(
        &pool,
        &mut mon,
        0..p.connections,
        p.wave,
        p.wave_ms,
        &|idx| {
            Box::new(move |w: Rc<Worker>| {
                tokio::task::spawn_local(connection(w, idx));
            })
        },
    )
    .await;
    let want = p.connections as u64;
    mon.wait_until(Duration::from_secs(600), |s| {
        s.count(Counter::Opened) + s.count(Counter::Failed) >= want
    })
    .await;
    let open_time = t0.elapsed().as_secs_f64();
    let opened = shared.count(Counter::Opened);
    let rss_connected = server_rss(pid);
    let client_rss_connected = sys::proc_rss_kib(me);
    mon.sleep(Duration::from_secs_f64(p.hold_s)).await;
    let rss_held = server_rss(pid);
    let cpu = cpu.stop();
    pool.fold().await;
    mon.tick();
    let still_open = opened.saturating_sub(shared.count(Counter::Dropped));
    shared.set_phase(phase::STOP);
    tokio::time::sleep(Duration::from_millis(500)).await;
    pool.stop();

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
    f.insert("still_open_after_hold".into(), still_open.into());
    f.insert("open_time_s".into(), round3(open_time).into());
    f.insert(
        "open_rate_per_s".into(),
        (opened as f64 / open_time).round().into(),
    );
    f.insert("reauth".into(), shared.count(Counter::Reauth).into());
    memory_figures(&mut f, rss_before, rss_connected, rss_held, opened);
    if let (Some(a), Some(b)) = (client_rss_before, client_rss_connected) {
        if opened > 0 {
            f.insert(
                "client_mem_per_conn_bytes".into(),
                ((b.saturating_sub(a) as f64 * 1024.0) / opened as f64)
                    .round()
                    .into(),
            );
        }
    }
    let c = mon.total.get(Metric::Connect);
    put(&mut f, "connect_p50_ms", q_ms(c, 0.5));
    put(&mut f, "connect_p99_ms", q_ms(c, 0.99));
    let mem = f
        .get("server_mem_per_conn_bytes")
        .and_then(Value::as_f64)
        .map_or("n/a".to_string(), |b| format!("{:.1} KiB", b / 1024.0));
    let headline = format!(
        "{} idle sockets opened in {:.1} s ({}/s), {} per connection on the server; {} failed, {} dropped",
        thousands(opened as f64),
        open_time,
        thousands(opened as f64 / open_time),
        mem,
        shared.count(Counter::Failed),
        shared.count(Counter::Dropped)
    );
    Ok(spec.finish(
        &shared,
        mon,
        cpu,
        f,
        &[(Metric::Connect, "connect")],
        headline,
    ))
}

async fn connection(w: Rc<Worker>, idx: usize) {
    let Some(mut s) = runner::open(&w, idx).await else {
        return;
    };
    let mut stop = w.shared.phase.subscribe();
    loop {
        tokio::select! {
            _ = stop.wait_for(|p| *p >= phase::STOP) => {
                s.conn.close().await;
                return;
            }
            r = s.conn.pump(None, |_| {}) => {
                if let Err(e) = r {
                    runner::note_drop(&w, &e);
                    return;
                }
            }
        }
    }
}
