//! Server-side figures from asobi's `/metrics` (OpenMetrics text): a histogram's buckets, summed
//! over shards, read before and after a measured window, give that window's server-side
//! quantiles without any client-side clock in them.

use std::collections::BTreeMap;

/// Cumulative bucket counts of one histogram, summed over every label set, keyed by the upper
/// bound in seconds (`+Inf` as `f64::INFINITY`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets(BTreeMap<u64, (f64, u64)>);

impl Buckets {
    /// The buckets of `asobi_<name>` in `text`.
    pub fn parse(text: &str, name: &str) -> Buckets {
        let prefix = format!("asobi_{name}_bucket{{");
        let mut out: BTreeMap<u64, (f64, u64)> = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(&prefix) else {
                continue;
            };
            let Some((labels, value)) = rest.split_once("} ") else {
                continue;
            };
            let Some(le) = labels.split(',').find_map(|l| l.strip_prefix("le=\"")) else {
                continue;
            };
            let le = le.trim_end_matches('"');
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                match le.parse::<f64>() {
                    Ok(b) => b,
                    Err(_) => continue,
                }
            };
            let Ok(count) = value.trim().parse::<u64>() else {
                continue;
            };
            let slot = out.entry(bound.to_bits()).or_insert((bound, 0));
            slot.1 += count;
        }
        Buckets(out)
    }

    /// Observations in this window: `self` (after) minus `before`, bucket by bucket.
    pub fn since(&self, before: &Buckets) -> Buckets {
        let mut out = self.clone();
        for (k, v) in out.0.iter_mut() {
            let b = before.0.get(k).map_or(0, |x| x.1);
            v.1 = v.1.saturating_sub(b);
        }
        out
    }

    /// Total observations.
    pub fn count(&self) -> u64 {
        self.sorted().last().map_or(0, |b| b.1)
    }

    fn sorted(&self) -> Vec<(f64, u64)> {
        let mut v: Vec<(f64, u64)> = self.0.values().copied().collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    }

    /// The upper bound (seconds) of the bucket holding quantile `q`: an upper bound of the true
    /// quantile, as precise as the server's buckets. `None` with no observations; infinite when
    /// the quantile lies past the last finite bucket.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let buckets = self.sorted();
        let total = buckets.last()?.1;
        if total == 0 {
            return None;
        }
        let want = (q * total as f64).ceil().max(1.0) as u64;
        buckets.iter().find(|b| b.1 >= want).map(|b| b.0)
    }
}

/// `GET <base>/metrics` (base = `http://host:port`).
pub fn fetch(base: &str) -> anyhow::Result<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent.get(&format!("{base}/metrics")).call()?;
    Ok(resp.body_mut().read_to_string()?)
}

/// The HTTP base of a `ws://host:port/...` URL.
pub fn http_base(ws_url: &str) -> String {
    let rest = ws_url
        .strip_prefix("ws://")
        .or_else(|| ws_url.strip_prefix("wss://"))
        .unwrap_or(ws_url);
    let host = rest.split('/').next().unwrap_or(rest);
    let scheme = if ws_url.starts_with("wss://") {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# TYPE asobi_tick_lateness_seconds histogram
asobi_tick_lateness_seconds_bucket{le=\"0.001\",shard=\"0\"} 5
asobi_tick_lateness_seconds_bucket{le=\"0.01\",shard=\"0\"} 9
asobi_tick_lateness_seconds_bucket{le=\"+Inf\",shard=\"0\"} 10
asobi_tick_lateness_seconds_bucket{le=\"0.001\",shard=\"1\"} 5
asobi_tick_lateness_seconds_bucket{le=\"0.01\",shard=\"1\"} 10
asobi_tick_lateness_seconds_bucket{le=\"+Inf\",shard=\"1\"} 10
asobi_tick_lateness_seconds_count{shard=\"0\"} 10
asobi_other_seconds_bucket{le=\"0.001\",shard=\"0\"} 77
";

    #[test]
    fn sums_shards_and_reads_quantiles() {
        let b = Buckets::parse(TEXT, "tick_lateness_seconds");
        assert_eq!(b.count(), 20);
        assert_eq!(b.quantile(0.5), Some(0.001));
        assert_eq!(b.quantile(0.9), Some(0.01));
        assert_eq!(b.quantile(0.99), Some(f64::INFINITY));
    }

    #[test]
    fn a_window_is_the_difference() {
        let before = Buckets::parse(TEXT, "tick_lateness_seconds");
        let after = Buckets::parse(
            &TEXT.replace("} 10\n", "} 30\n").replace("} 9\n", "} 29\n"),
            "tick_lateness_seconds",
        );
        let w = after.since(&before);
        // Shard 0: +20 in the 0.01 bucket (9 → 29) and +Inf (10 → 30); shard 1: 0.01 and +Inf
        // 10 → 30 as well.
        assert_eq!(w.count(), 40);
        assert_eq!(w.quantile(0.5), Some(0.01));
        assert_eq!(Buckets::default().quantile(0.5), None);
    }

    #[test]
    fn http_base_of_a_ws_url() {
        assert_eq!(http_base("ws://127.0.0.1:8080/ws"), "http://127.0.0.1:8080");
        assert_eq!(http_base("wss://h:1/ws"), "https://h:1");
    }
}
