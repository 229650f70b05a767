//! `reload`: hot reload under load. Players play as in `play`; the scenario then rewrites
//! the `RULES_VERSION = N` line of the mode's Lua file to N+1 (a plain in-place write, as an
//! editor saving would do) and measures, per client, save → first `match.state` whose
//! `rules` is N+1. Sockets dropped during the reloads must be 0.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::play::{open_players, settle, Gauges, PlayerCfg};
use super::{phase, put, q_ms, thousands, CpuMeter, RunSpec};
use crate::result::{round3, Run};
use crate::runner::{Counter, Metric};

/// Parameters of `reload`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadParams {
    /// Players (rounded down to a multiple of the match size).
    pub players: usize,
    /// Mode to play.
    pub mode: String,
    /// Players per match.
    pub match_size: usize,
    /// Inputs per second per player.
    pub input_hz: f64,
    /// Server tick (ms).
    pub tick_ms: f64,
    /// Reloads to perform.
    pub reloads: usize,
    /// Seconds of play before the first reload.
    pub warmup_s: f64,
    /// Seconds to wait for every client to see a new version.
    pub timeout_s: f64,
    /// Seconds between reloads.
    pub gap_s: f64,
    /// The Lua file holding `RULES_VERSION` (in the directory the server watches).
    pub rules_file: PathBuf,
    /// Connections per wave.
    pub wave: usize,
    /// Pause between waves (ms).
    pub wave_ms: u64,
}

/// Splits a `[local ]RULES_VERSION = <int><tail>` line into (text before the number, the
/// number, text after it).
fn split_version_line(line: &str) -> Option<(&str, i64, &str)> {
    let t = line.trim_start();
    let t = t.strip_prefix("local ").map_or(t, str::trim_start);
    let rest = t
        .strip_prefix("RULES_VERSION")?
        .trim_start()
        .strip_prefix('=')?;
    let num = rest.trim_start();
    let len = num
        .char_indices()
        .take_while(|&(i, c)| c.is_ascii_digit() || (i == 0 && c == '-'))
        .count();
    let v = num[..len].parse().ok()?;
    let start = line.len() - num.len();
    Some((&line[..start], v, &num[len..]))
}

/// Reads the integer of the `[local ]RULES_VERSION = <int>` line in `src`.
pub fn rules_version(src: &str) -> Option<i64> {
    src.lines()
        .find_map(|l| split_version_line(l).map(|(_, v, _)| v))
}

/// `src` with the first `RULES_VERSION` line's value replaced by `v`, everything else kept.
pub fn with_rules_version(src: &str, v: i64) -> Option<String> {
    let mut done = false;
    let mut out = String::with_capacity(src.len() + 4);
    for line in src.split_inclusive('\n') {
        match split_version_line(line).filter(|_| !done) {
            Some((head, _, tail)) => {
                out.push_str(head);
                out.push_str(&v.to_string());
                out.push_str(tail);
                done = true;
            }
            None => out.push_str(line),
        }
    }
    done.then_some(out)
}

fn bump(path: &Path) -> anyhow::Result<i64> {
    let src =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let Some(v) = rules_version(&src) else {
        bail!("{} has no `RULES_VERSION = <int>` line", path.display());
    };
    let next = v + 1;
    let Some(new) = with_rules_version(&src, next) else {
        bail!("cannot rewrite RULES_VERSION in {}", path.display());
    };
    std::fs::write(path, new)?;
    Ok(next)
}

/// Runs the scenario.
pub async fn run(spec: &RunSpec, p: &ReloadParams) -> anyhow::Result<Run> {
    let original = std::fs::read_to_string(&p.rules_file)
        .with_context(|| format!("reading {}", p.rules_file.display()))?;
    if rules_version(&original).is_none() {
        bail!(
            "{} has no `RULES_VERSION = <int>` line",
            p.rules_file.display()
        );
    }
    let (shared, pool, mut mon) = spec.start(Metric::Reload)?;
    let cfg = Arc::new(PlayerCfg {
        mode: p.mode.clone(),
        input_period: Duration::from_secs_f64(1.0 / p.input_hz.max(0.01)),
        tick: Duration::from_secs_f64(p.tick_ms / 1000.0),
        gauges: Gauges::default(),
        epoch: Instant::now(),
    });
    let g = &cfg.gauges;
    let size = p.match_size.max(1);
    let n = (p.players.max(size) / size) * size;
    open_players(&pool, &mut mon, 0..n, p.wave, p.wave_ms, &cfg).await;
    let all_matched = settle(&mut mon, g, n as u64, 60.0).await;
    mon.sleep(Duration::from_secs_f64(p.warmup_s)).await;
    let dropped_before = shared.count(Counter::Dropped);
    let cpu_meter = CpuMeter::start(spec.server.pid);
    let mut per_reload = Vec::new();
    let mut missing_total = 0u64;
    let outcome: anyhow::Result<()> = async {
        for i in 0..p.reloads {
            let watchers = g.in_match.load(Ordering::Relaxed).max(0) as u64;
            g.reload_seen.store(0, Ordering::Relaxed);
            let saved = Instant::now();
            let version = bump(&p.rules_file)?;
            g.reload_saved_ns.store(
                saved.duration_since(cfg.epoch).as_nanos() as u64,
                Ordering::Relaxed,
            );
            g.reload_target.store(version, Ordering::Release);
            let seen_all = mon
                .wait_until(Duration::from_secs_f64(p.timeout_s), |_| {
                    g.reload_seen.load(Ordering::Relaxed) >= watchers
                })
                .await;
            let seen = g.reload_seen.load(Ordering::Relaxed);
            let missing = watchers.saturating_sub(seen);
            missing_total += missing;
            eprintln!(
                "reload {}: RULES_VERSION {version}: {seen}/{watchers} clients saw it{}",
                i + 1,
                if seen_all { "" } else { " (timed out)" }
            );
            per_reload.push(serde_json::json!({
                "version": version,
                "clients": watchers,
                "seen": seen,
                "missing": missing,
                "all_seen_s": seen_all.then(|| round3(saved.elapsed().as_secs_f64())),
            }));
            mon.sleep(Duration::from_secs_f64(p.gap_s)).await;
        }
        Ok(())
    }
    .await;
    let cpu = cpu_meter.stop();
    // Leave the game directory as it was, whatever happened.
    let _ = std::fs::write(&p.rules_file, &original);
    outcome?;
    pool.fold().await;
    mon.tick();
    let dropped = shared.count(Counter::Dropped) - dropped_before;
    shared.set_phase(phase::STOP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    pool.stop();

    let h = mon.total.get(Metric::Reload);
    let mut f = Map::new();
    f.insert("players".into(), (n as u64).into());
    f.insert("all_matched".into(), all_matched.into());
    f.insert("reloads".into(), (p.reloads as u64).into());
    put(&mut f, "reload_p50_ms", q_ms(h, 0.5));
    put(&mut f, "reload_p99_ms", q_ms(h, 0.99));
    put(
        &mut f,
        "reload_max_ms",
        (!h.is_empty()).then(|| round3(h.max() as f64 / 1000.0)),
    );
    f.insert("observations".into(), h.len().into());
    f.insert("clients_missing_new_rules".into(), missing_total.into());
    f.insert("sockets_dropped".into(), dropped.into());
    f.insert(
        "connections_failed".into(),
        shared.count(Counter::Failed).into(),
    );
    f.insert("error_frames".into(), shared.count(Counter::Errors).into());
    f.insert("per_reload".into(), Value::Array(per_reload));
    let headline = format!(
        "{} players, {} reloads: save → new rules in state p50 {} p99 {} ms; {} missed, {} sockets dropped",
        thousands(n as f64),
        p.reloads,
        q_ms(h, 0.5).map_or("n/a".into(), |v| v.to_string()),
        q_ms(h, 0.99).map_or("n/a".into(), |v| v.to_string()),
        missing_total,
        dropped
    );
    Ok(spec.finish(
        &shared,
        mon,
        cpu,
        f,
        &[
            (Metric::Reload, "reload"),
            (Metric::InputToState, "input_to_state"),
            (Metric::TickJitter, "tick_jitter"),
            (Metric::Matchmaking, "matchmaking"),
        ],
        headline,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_rewrites_the_version_line_only() {
        let src = "-- arena\nlocal x = 1\n  RULES_VERSION = 41 -- bump me\nfunction f() end\n";
        assert_eq!(rules_version(src), Some(41));
        let out = with_rules_version(src, 42).unwrap();
        assert_eq!(
            out,
            "-- arena\nlocal x = 1\n  RULES_VERSION = 42 -- bump me\nfunction f() end\n"
        );
        assert_eq!(rules_version(&out), Some(42));
        assert!(rules_version("RULES = 1").is_none());
        let local = "local RULES_VERSION = 1\nlocal STEP = 1\n";
        assert_eq!(rules_version(local), Some(1));
        assert_eq!(
            with_rules_version(local, 2).unwrap(),
            "local RULES_VERSION = 2\nlocal STEP = 1\n"
        );
        assert_eq!(rules_version("RULES_VERSION=-3"), Some(-3));
        assert!(with_rules_version("x = 1\n", 2).is_none());
    }

    #[test]
    fn bump_writes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("arena.lua");
        std::fs::write(&p, "RULES_VERSION=7\nreturn {}\n").unwrap();
        assert_eq!(bump(&p).unwrap(), 8);
        assert_eq!(
            rules_version(&std::fs::read_to_string(&p).unwrap()),
            Some(8)
        );
    }
}
