//! The coordinator's clock: once a second it collects what the workers recorded, prints a
//! progress line on stderr (connections, msgs/s, current p99, CPU of server and client) and
//! appends a sample to the run's timeline, which ends up in the JSON result and the plot.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::runner::{Counter, Hists, Metric, Shared};
use crate::sys;

/// One sample period (a second unless the scenario chose shorter) of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub t: f64,
    /// Connections open at the end of the second.
    pub conns: u64,
    /// Frames sent per second.
    pub out_per_s: f64,
    /// Frames received per second.
    pub in_per_s: f64,
    /// Primary latency metric over the second (ms); 0 when nothing was recorded.
    pub p50_ms: f64,
    /// 90th percentile (ms).
    pub p90_ms: f64,
    /// 99th percentile (ms).
    pub p99_ms: f64,
    /// Maximum (ms).
    pub max_ms: f64,
    /// Latency samples in the second.
    pub n: u64,
    /// Server CPU use in cores (1.0 = one core busy), when the server pid is known.
    pub server_cpu: Option<f64>,
    /// Client CPU use in cores.
    pub client_cpu: f64,
    /// Whole-machine busy cores (all processes).
    #[serde(default)]
    pub machine_cpu: Option<f64>,
    /// p99 of the client's own scheduling delay over the period (ms).
    #[serde(default)]
    pub client_lag_p99_ms: f64,
}

/// Collects samples for one run.
pub struct Monitor {
    shared: Arc<Shared>,
    label: String,
    primary: Metric,
    server_pid: Option<u32>,
    /// When the run started.
    pub start: Instant,
    last_at: Instant,
    last_out: u64,
    last_in: u64,
    last_server_cpu: Option<f64>,
    last_client_cpu: f64,
    last_machine_cpu: Option<f64>,
    /// Everything recorded so far.
    pub total: Hists,
    /// Histograms since [`Monitor::mark`].
    pub window: Hists,
    /// One sample per period.
    pub timeline: Vec<Sample>,
    quiet: bool,
    period: Duration,
    last_print: Option<Instant>,
}

impl Monitor {
    /// Starts the clock. `primary` is the latency shown live and plotted.
    pub fn new(
        shared: Arc<Shared>,
        label: &str,
        primary: Metric,
        server_pid: Option<u32>,
    ) -> Monitor {
        let now = Instant::now();
        Monitor {
            shared,
            label: label.to_string(),
            primary,
            server_pid,
            start: now,
            last_at: now,
            last_out: 0,
            last_in: 0,
            last_server_cpu: server_pid.and_then(sys::proc_cpu_seconds),
            last_client_cpu: sys::self_cpu_seconds(),
            last_machine_cpu: sys::system_busy_seconds(),
            total: Hists::new(),
            window: Hists::new(),
            timeline: Vec::new(),
            quiet: false,
            period: Duration::from_secs(1),
            last_print: None,
        }
    }

    /// Samples every `period` instead of every second (short runs); progress is still
    /// printed at most once a second.
    pub fn period(mut self, period: Duration) -> Monitor {
        self.period = period.max(Duration::from_millis(50));
        self
    }

    /// Suppresses the stderr progress line (tests).
    pub fn quiet(mut self, q: bool) -> Monitor {
        self.quiet = q;
        self
    }

    /// Restarts the window histograms (e.g. at the start of a ramp step).
    pub fn mark(&mut self) {
        self.window = Hists::new();
    }

    /// Collects the interval now and appends a sample.
    pub fn tick(&mut self) {
        let now = Instant::now();
        let dt = now.duration_since(self.last_at).as_secs_f64().max(1e-6);
        let interval = self.shared.take_interval();
        self.total.add(&interval);
        self.window.add(&interval);
        let out = self.shared.count(Counter::Out);
        let inn = self.shared.count(Counter::In);
        let h = interval.get(self.primary);
        let ms = |v: u64| v as f64 / 1000.0;
        let (p50, p90, p99, max) = if h.is_empty() {
            (0.0, 0.0, 0.0, 0.0)
        } else {
            (
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.9)),
                ms(h.value_at_quantile(0.99)),
                ms(h.max()),
            )
        };
        let server_cpu_now = self.server_pid.and_then(sys::proc_cpu_seconds);
        let server_cpu = match (server_cpu_now, self.last_server_cpu) {
            (Some(a), Some(b)) => Some((a - b) / dt),
            _ => None,
        };
        let client_now = sys::self_cpu_seconds();
        let client_cpu = (client_now - self.last_client_cpu) / dt;
        let machine_now = sys::system_busy_seconds();
        let machine_cpu = match (machine_now, self.last_machine_cpu) {
            (Some(a), Some(b)) => Some((a - b) / dt),
            _ => None,
        };
        let conns = self
            .shared
            .count(Counter::Opened)
            .saturating_sub(self.shared.count(Counter::Dropped));
        let lag = interval.get(Metric::ClientLag);
        let client_lag_p99_ms = if lag.is_empty() {
            0.0
        } else {
            ms(lag.value_at_quantile(0.99))
        };
        let s = Sample {
            t: now.duration_since(self.start).as_secs_f64(),
            conns,
            out_per_s: (out - self.last_out) as f64 / dt,
            in_per_s: (inn - self.last_in) as f64 / dt,
            p50_ms: p50,
            p90_ms: p90,
            p99_ms: p99,
            max_ms: max,
            n: h.len(),
            server_cpu,
            client_cpu,
            machine_cpu,
            client_lag_p99_ms,
        };
        let print = self
            .last_print
            .is_none_or(|p| now.duration_since(p) >= Duration::from_millis(990));
        if !self.quiet && print {
            self.last_print = Some(now);
            let failed = self.shared.count(Counter::Failed);
            let dropped = self.shared.count(Counter::Dropped);
            eprintln!(
                "[{} {:>6.1}s] conns {:>6} (failed {}, dropped {}) out {:>9.0}/s in {:>9.0}/s p99 {:>8.2} ms max {:>8.2} ms client lag p99 {:.1} ms cpu server {} client {:.0}% machine {}",
                self.label,
                s.t,
                s.conns,
                failed,
                dropped,
                s.out_per_s,
                s.in_per_s,
                s.p99_ms,
                s.max_ms,
                s.client_lag_p99_ms,
                s.server_cpu.map_or("n/a".to_string(), |c| format!("{:.0}%", c * 100.0)),
                s.client_cpu * 100.0,
                s.machine_cpu.map_or("n/a".to_string(), |c| format!("{:.0}%", c * 100.0))
            );
        }
        self.timeline.push(s);
        self.last_at = now;
        self.last_out = out;
        self.last_in = inn;
        self.last_server_cpu = server_cpu_now;
        self.last_client_cpu = client_now;
        self.last_machine_cpu = machine_now;
    }

    /// Ticks if a sample period has passed since the last sample.
    pub fn maybe_tick(&mut self) {
        if self.last_at.elapsed() >= self.period {
            self.tick();
        }
    }

    /// Sleeps for `d`, sampling meanwhile.
    pub async fn sleep(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            let next_tick = self.last_at + self.period;
            tokio::time::sleep_until(next_tick.min(until)).await;
            self.maybe_tick();
        }
    }

    /// Waits until `cond` holds (checked every 10 ms) or `timeout` passes; returns whether
    /// it held.
    pub async fn wait_until(
        &mut self,
        timeout: Duration,
        mut cond: impl FnMut(&Shared) -> bool,
    ) -> bool {
        let until = Instant::now() + timeout;
        loop {
            if cond(&self.shared) {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            self.maybe_tick();
        }
    }
}
