//! The result file: one JSON document per invocation holding every run (baseline and/or the
//! server under test), the machine, the commit, the exact command, and the ratio of the
//! server to the baseline. Its shape is the contract `report` and the plot read back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::monitor::Sample;
use crate::sys::Machine;

/// Version tag of the result format.
pub const SCHEMA: &str = "asobi-loadtest/1";

/// Latency summary of one histogram, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

impl Percentiles {
    /// Summarises a histogram recorded in microseconds; `None` when empty.
    pub fn of(h: &Histogram<u64>) -> Option<Percentiles> {
        if h.is_empty() {
            return None;
        }
        let ms = |v: u64| round3(v as f64 / 1000.0);
        Some(Percentiles {
            count: h.len(),
            mean_ms: round3(h.mean() / 1000.0),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p90_ms: ms(h.value_at_quantile(0.9)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        })
    }
}

/// CPU time spent during the measured part of a run.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Cpu {
    /// Wall-clock seconds of the measured part.
    pub wall_s: f64,
    /// Server user+system CPU seconds (all threads), when its pid is known.
    pub server_cpu_s: Option<f64>,
    /// Client user+system CPU seconds (this process, all threads).
    pub client_cpu_s: f64,
    /// Server CPU ÷ wall (cores busy).
    pub server_util: Option<f64>,
    /// Client CPU ÷ wall (cores busy).
    pub client_util: f64,
    /// Whole-machine busy cores (all processes) over the same interval.
    pub machine_busy: Option<f64>,
    /// Busy cores not accounted for by server or client: other processes competing for
    /// the CPUs (and kernel work not charged to either); high values mean a noisy run.
    pub other_busy: Option<f64>,
    /// 1-minute load average when the measurement started.
    pub loadavg_at_start: Option<f64>,
}

/// The server a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerInfo {
    /// `baseline`, `asobi` or `external`.
    pub kind: String,
    /// Process id when known.
    pub pid: Option<u32>,
    /// How it was started (spawned servers).
    pub command: Option<String>,
    /// Cores it was pinned to (spawned servers).
    pub cores: Vec<usize>,
    /// The executable measured: path, size and modification time (UTC), so a result can be
    /// matched to the build it measured even when the checkout moved on.
    #[serde(default)]
    pub binary: Option<String>,
}

/// One scenario run against one server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// `baseline` or `target`.
    pub role: String,
    /// WebSocket URL.
    pub url: String,
    /// Server measured.
    pub server: ServerInfo,
    /// Client worker threads and their cores.
    pub client_cores: Vec<Option<usize>>,
    /// `none`, `placeholder` (baseline) or `players`.
    pub auth: String,
    /// CPU accounting.
    pub cpu: Cpu,
    /// Scenario figures (flat; numbers unless noted).
    pub figures: Map<String, Value>,
    /// Latency distributions by metric name.
    pub latency: BTreeMap<String, Percentiles>,
    /// Error kinds and counts.
    pub errors: Vec<(String, u64)>,
    /// Per-second samples.
    pub timeline: Vec<Sample>,
    /// One-line summary.
    pub headline: String,
}

/// A whole result file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultFile {
    /// [`SCHEMA`].
    pub schema: String,
    /// Scenario name.
    pub scenario: String,
    /// UTC time the run finished.
    pub timestamp: String,
    /// Exact command line.
    pub command: String,
    /// `git rev-parse HEAD`.
    pub git_commit: Option<String>,
    /// Machine description.
    pub machine: Machine,
    /// Scenario parameters.
    pub params: Value,
    /// Baseline first when compared, then the target; alternating when repeated.
    pub runs: Vec<Run>,
    /// With `--repeat`: per role, the median of every numeric figure over its runs.
    #[serde(default)]
    pub medians: Option<Map<String, Value>>,
    /// target ÷ baseline for every measured figure (of the medians when repeated).
    pub ratio: Option<Map<String, Value>>,
    /// With `--compare-wires`: per comparison (`fb_vs_json_ws`, `quic_vs_ws_json`, ...), the
    /// ratio of every figure, e.g. ws+fb ÷ ws+json.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire_ratios: Option<Map<String, Value>>,
    /// Per role, the headline of its representative (median) run.
    #[serde(default)]
    pub headlines: BTreeMap<String, String>,
    /// One-line summary for the README table.
    pub headline: String,
}

impl ResultFile {
    /// The run measuring the server under test (the last one).
    pub fn target(&self) -> Option<&Run> {
        self.runs
            .iter()
            .rev()
            .find(|r| r.role == "target")
            .or(self.runs.last())
    }

    /// The baseline run, if any.
    pub fn baseline(&self) -> Option<&Run> {
        self.runs.iter().find(|r| r.role == "baseline")
    }
}

/// Figures that are inputs of the scenario (equal in both runs by construction), left out of
/// the ratio.
const NOT_RATIOS: &[&str] = &[
    "connections",
    "connections_opened",
    "messages_per_conn",
    "sent",
    "replies",
    "rate_per_conn",
    "offered_msg_s",
    "players",
    "reloads",
    "p99_bound_ms",
    "background_cores_before",
];

/// target ÷ baseline for every measured figure that is a non-zero number in both.
pub fn ratios(baseline: &Run, target: &Run) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, tv) in &target.figures {
        if NOT_RATIOS.contains(&k.as_str()) {
            continue;
        }
        let (Some(t), Some(b)) = (tv.as_f64(), baseline.figures.get(k).and_then(Value::as_f64))
        else {
            continue;
        };
        if b != 0.0 {
            out.insert(k.clone(), Value::from(round3(t / b)));
        }
    }
    out
}

/// Rounds to 3 decimals for readable JSON.
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Writes `<dir>/<scenario>-<stamp>.json` and the plot beside it; returns the JSON path.
pub fn write(dir: &Path, stamp: &str, result: &ResultFile) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let base = dir.join(format!("{}-{stamp}", result.scenario));
    let json = base.with_extension("json");
    std::fs::write(&json, serde_json::to_vec_pretty(result)?)?;
    std::fs::write(base.with_extension("svg"), crate::svg::plot(result))?;
    Ok(json)
}

/// Reads every result file in `dir` (files that are not results are skipped).
pub fn read_all(dir: &Path) -> Vec<(PathBuf, ResultFile)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "json") {
            if let Some(r) = std::fs::read(&p)
                .ok()
                .and_then(|b| serde_json::from_slice::<ResultFile>(&b).ok())
                .filter(|r| r.schema == SCHEMA)
            {
                out.push((p, r));
            }
        }
    }
    out.sort_by(|a, b| a.1.timestamp.cmp(&b.1.timestamp).then(a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(role: &str, figures: Value) -> Run {
        Run {
            role: role.into(),
            url: "ws://x/ws".into(),
            server: ServerInfo {
                kind: "baseline".into(),
                pid: None,
                command: None,
                cores: vec![],
                binary: None,
            },
            client_cores: vec![Some(1)],
            auth: "none".into(),
            cpu: Cpu::default(),
            figures: figures.as_object().cloned().unwrap_or_default(),
            latency: BTreeMap::new(),
            errors: vec![],
            timeline: vec![],
            headline: String::new(),
        }
    }

    #[test]
    fn ratio_covers_shared_nonzero_numbers_only() {
        let b = run(
            "baseline",
            serde_json::json!({"tput": 100.0, "rtt": 2.0, "zero": 0.0, "s": "x", "only_b": 1}),
        );
        let t = run(
            "target",
            serde_json::json!({"tput": 50.0, "rtt": 3.0, "zero": 5.0, "s": "y"}),
        );
        let r = ratios(&b, &t);
        assert_eq!(r["tput"], 0.5);
        assert_eq!(r["rtt"], 1.5);
        assert!(!r.contains_key("zero") && !r.contains_key("s") && !r.contains_key("only_b"));
        assert!(!r.contains_key("connections"));
    }

    #[test]
    fn percentiles_in_milliseconds() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let p = Percentiles::of(&h).unwrap();
        assert_eq!(p.count, 1000);
        assert!((p.p50_ms - 500.0).abs() < 1.0);
        assert!((p.p99_ms - 990.0).abs() < 1.0);
        assert!((p.max_ms - 1000.0).abs() < 1.0);
        assert!(Percentiles::of(&Histogram::<u64>::new(3).unwrap()).is_none());
    }
}
