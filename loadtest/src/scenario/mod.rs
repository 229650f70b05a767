//! Scenarios: what each connection does and what the coordinator measures. Every scenario
//! takes a [`RunSpec`] (which server, how to authenticate, which cores) and returns a
//! [`Run`](crate::result::Run); `main` runs it against the baseline and/or the target.

pub mod blast;
pub mod chat;
pub mod idle;
pub mod party;
pub mod play;
pub mod purchase;
pub mod reload;
pub mod world;

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::conn::{QuicPlan, Transport, Wire};
use crate::monitor::Monitor;
use crate::result::{round3, Cpu, Percentiles, Run, ServerInfo};
use crate::runner::{self, AuthMode, Counter, Hists, Job, Metric, Plan, Pool, Shared};
use crate::sys;
use crate::ws::Endpoint;

/// Phase values the scenarios use on [`Shared::phase`].
pub mod phase {
    /// Connections are opening.
    pub const OPEN: u32 = 0;
    /// All open: start the measured work.
    pub const GO: u32 = 1;
    /// Measurement over: stop sending, drain.
    pub const DRAIN: u32 = 2;
    /// Close sockets.
    pub const STOP: u32 = 3;
}

/// One run of a scenario against one server.
pub struct RunSpec {
    /// `baseline` or `target`.
    pub role: String,
    /// WebSocket URL.
    pub url: String,
    /// The server being measured.
    pub server: ServerInfo,
    /// How sockets authenticate.
    pub auth: AuthMode,
    /// Client worker cores (`None` = unpinned).
    pub client_cores: Vec<Option<usize>>,
    /// Loopback source addresses to spread sockets over.
    pub source_ips: usize,
    /// Time allowed to open one connection.
    pub connect_timeout: Duration,
    /// Progress-line label.
    pub label: String,
    /// Suppress progress output.
    pub quiet: bool,
    /// Wire encoding.
    pub wire: Wire,
    /// QUIC instead of WebSocket when set.
    pub quic: Option<QuicPlan>,
}

impl RunSpec {
    /// Name of the auth mode for the result.
    pub fn auth_name(&self) -> &'static str {
        match self.auth {
            AuthMode::None => "none",
            AuthMode::Placeholder => "placeholder",
            AuthMode::Players(_) => "players",
        }
    }

    /// Starts the worker threads and the monitor for this run.
    pub fn start(&self, primary: Metric) -> anyhow::Result<(Arc<Shared>, Pool, Monitor)> {
        let ep = Endpoint::parse(&self.url)?;
        let sources = runner::loopback_sources(&ep, self.source_ips);
        let plan = Plan {
            ep,
            sources,
            auth: self.auth.clone(),
            connect_timeout: self.connect_timeout,
            wire: self.wire,
            quic: self.quic.clone(),
        };
        let shared = Shared::new(plan, self.client_cores.len().max(1));
        let cores = if self.client_cores.is_empty() {
            vec![None]
        } else {
            self.client_cores.clone()
        };
        let pool = Pool::start(&shared, &cores)?;
        let mon =
            Monitor::new(shared.clone(), &self.label, primary, self.server.pid).quiet(self.quiet);
        Ok((shared, pool, mon))
    }

    /// Assembles the run record.
    pub fn finish(
        &self,
        shared: &Shared,
        mon: Monitor,
        cpu: Cpu,
        figures: Map<String, Value>,
        metrics: &[(Metric, &str)],
        headline: String,
    ) -> Run {
        let mut figures = figures;
        let lag = mon.total.get(Metric::ClientLag);
        put(&mut figures, "client_lag_p50_ms", q_ms(lag, 0.5));
        put(&mut figures, "client_lag_p99_ms", q_ms(lag, 0.99));
        put(
            &mut figures,
            "client_lag_max_ms",
            (!lag.is_empty()).then(|| round3(lag.max() as f64 / 1000.0)),
        );
        wire_figures(&mut figures, shared, self.wire, self.quic.is_some());
        let mut metrics = metrics.to_vec();
        metrics.push((Metric::ClientLag, "client_lag"));
        let metrics = &metrics[..];
        Run {
            role: self.role.clone(),
            url: self.url.clone(),
            server: self.server.clone(),
            client_cores: self.client_cores.clone(),
            auth: self.auth_name().to_string(),
            cpu,
            figures,
            latency: latency_map(&mon.total, metrics),
            errors: shared.errors(),
            timeline: mon.timeline,
            headline,
        }
    }
}

/// Wire, transport and wire bytes per message each way (frames the scenario counted; the
/// few `session.connect` frames are in the bytes but not the message counts).
fn wire_figures(f: &mut Map<String, Value>, shared: &Shared, wire: Wire, quic: bool) {
    let transport = if quic { Transport::Quic } else { Transport::Ws };
    f.insert("wire".into(), wire.name().into());
    f.insert("transport".into(), transport.name().into());
    let (bo, bi) = (
        shared.count(Counter::BytesOut),
        shared.count(Counter::BytesIn),
    );
    let (mo, mi) = (shared.count(Counter::Out), shared.count(Counter::In));
    f.insert("wire_bytes_out".into(), bo.into());
    f.insert("wire_bytes_in".into(), bi.into());
    if mo > 0 {
        f.insert(
            "bytes_per_msg_out".into(),
            round3(bo as f64 / mo as f64).into(),
        );
    }
    if mi > 0 {
        f.insert(
            "bytes_per_msg_in".into(),
            round3(bi as f64 / mi as f64).into(),
        );
    }
}

/// CPU time of server and client between `start` and `stop`.
pub struct CpuMeter {
    pid: Option<u32>,
    server0: Option<f64>,
    client0: f64,
    machine0: Option<f64>,
    loadavg: Option<f64>,
    t0: Instant,
}

impl CpuMeter {
    /// Starts measuring; `pid` is the server's when known.
    pub fn start(pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            pid,
            server0: pid.and_then(sys::proc_cpu_seconds),
            client0: sys::self_cpu_seconds(),
            machine0: sys::system_busy_seconds(),
            loadavg: sys::loadavg_1m(),
            t0: Instant::now(),
        }
    }

    /// CPU used since `start`.
    pub fn stop(&self) -> Cpu {
        let wall = self.t0.elapsed().as_secs_f64().max(1e-9);
        let server = match (self.pid.and_then(sys::proc_cpu_seconds), self.server0) {
            (Some(a), Some(b)) => Some(round3(a - b)),
            _ => None,
        };
        let client = round3(sys::self_cpu_seconds() - self.client0);
        let machine = match (sys::system_busy_seconds(), self.machine0) {
            (Some(a), Some(b)) => Some(round3((a - b) / wall)),
            _ => None,
        };
        let other =
            machine.map(|m| round3((m - client / wall - server.unwrap_or(0.0) / wall).max(0.0)));
        Cpu {
            wall_s: round3(wall),
            server_cpu_s: server,
            client_cpu_s: client,
            server_util: server.map(|s| round3(s / wall)),
            client_util: round3(client / wall),
            machine_busy: machine,
            other_busy: other,
            loadavg_at_start: self.loadavg,
        }
    }
}

/// Percentile summaries of the named metrics that have samples.
pub fn latency_map(h: &Hists, metrics: &[(Metric, &str)]) -> BTreeMap<String, Percentiles> {
    metrics
        .iter()
        .filter_map(|(m, name)| Percentiles::of(h.get(*m)).map(|p| ((*name).to_string(), p)))
        .collect()
}

/// Hands connections `ids` to the workers in waves of `wave` every `wave_ms`, sampling
/// progress meanwhile.
pub async fn open_waves(
    pool: &Pool,
    mon: &mut Monitor,
    ids: Range<usize>,
    wave: usize,
    wave_ms: u64,
    make: &dyn Fn(usize) -> Job,
) {
    let wave = wave.max(1);
    let mut next = ids.start;
    while next < ids.end {
        let end = (next + wave).min(ids.end);
        for idx in next..end {
            pool.submit(idx, make(idx));
        }
        next = end;
        if next < ids.end {
            mon.sleep(Duration::from_millis(wave_ms)).await;
        }
    }
}

/// Server RSS in KiB, when the pid is known.
pub fn server_rss(pid: Option<u32>) -> Option<u64> {
    pid.and_then(sys::proc_rss_kib)
}

/// Inserts `k = v` when `v` is present.
pub fn put<T: Into<Value>>(m: &mut Map<String, Value>, k: &str, v: Option<T>) {
    if let Some(v) = v {
        m.insert(k.to_string(), v.into());
    }
}

/// Milliseconds with 3 decimals from a microsecond histogram quantile.
pub fn q_ms(h: &hdrhistogram::Histogram<u64>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| round3(h.value_at_quantile(q) as f64 / 1000.0))
}

/// Memory figures: server RSS before, with all connections open, and at the end; and the
/// per-connection cost (RSS delta ÷ connections) in bytes.
pub fn memory_figures(
    m: &mut Map<String, Value>,
    before: Option<u64>,
    connected: Option<u64>,
    after: Option<u64>,
    conns: u64,
) {
    put(m, "server_rss_before_kib", before);
    put(m, "server_rss_connected_kib", connected);
    put(m, "server_rss_after_kib", after);
    if let (Some(b), Some(c)) = (before, connected) {
        if conns > 0 {
            let per = (c.saturating_sub(b) as f64 * 1024.0) / conns as f64;
            m.insert("server_mem_per_conn_bytes".into(), Value::from(per.round()));
        }
    }
    if let (Some(b), Some(a)) = (before, after) {
        if conns > 0 {
            let per = (a.saturating_sub(b) as f64 * 1024.0) / conns as f64;
            m.insert(
                "server_mem_per_conn_after_bytes".into(),
                Value::from(per.round()),
            );
        }
    }
}

/// Formats a count with thousands separators.
pub fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(83_000.4), "83,000");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(7_044_000.0), "7,044,000");
        assert_eq!(thousands(-1234.0), "-1,234");
    }

    #[test]
    fn memory_per_connection_from_rss_delta() {
        let mut m = Map::new();
        memory_figures(
            &mut m,
            Some(10_000),
            Some(10_000 + 3500 * 15),
            Some(20_000),
            3500,
        );
        assert_eq!(m["server_mem_per_conn_bytes"], 15.0 * 1024.0);
        assert!(m.contains_key("server_mem_per_conn_after_bytes"));
        let mut m = Map::new();
        memory_figures(&mut m, None, None, None, 10);
        assert!(m.is_empty());
    }
}
