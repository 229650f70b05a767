//! Which zones of a world exist and how often each ticks: lazy creation, the idle reaper, the
//! active-zone ceiling and the cold-tick divisor (asobi's `large-worlds.md`, ADR 0016).
//!
//! Sans-IO: the runtime tells a [`Lifecycle`] what happened (a zone was needed, touched, lost
//! its last occupant) with the time, and asks it what to do (create or refuse a zone, tick a
//! zone this tick or not, which zones to stop at a sweep). It holds no entities and calls no
//! script.
//!
//! Method kinds, in the order the runtime uses them each world tick:
//! 1. [`Lifecycle::admit`] whenever something needs a zone (a join, a crossing, a view);
//!    [`Lifecycle::touch`] for every zone with subscribers; [`Lifecycle::release`] when a
//!    zone's last occupant leaves it;
//! 2. [`Lifecycle::should_tick`] for every live zone, with whether it has work;
//! 3. [`Lifecycle::poll_sweep`] once, which at each sweep deadline returns the zones to stop
//!    (the runtime stops those still empty and hands the others back through
//!    [`Lifecycle::decline`]); [`Lifecycle::next_sweep`] is its deadline.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::grid::{Grid, ZoneId};

/// Above this `grid_size` zones are created on demand; at or below it every zone is created
/// with the world (asobi's fixed threshold; `lazy_zones` overrides it).
pub const LAZY_GRID_THRESHOLD: u32 = 100;
/// A zone is reap-eligible this long after its last touch (asobi's default `zone_idle_timeout`).
pub const ZONE_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the reaper looks (asobi's fixed sweep).
pub const REAP_INTERVAL: Duration = Duration::from_secs(10);
/// Live zones one world may hold (asobi's hard ceiling; `max_active_zones` may only lower it).
pub const MAX_ACTIVE_ZONES: usize = 10_000;
/// A zone with nothing to simulate ticks once every this many world ticks (asobi's default
/// `cold_tick_divisor`).
pub const COLD_TICK_DIVISOR: u32 = 10;
/// Largest `cold_tick_divisor` accepted: past it a zone that gets work back waits too long.
const MAX_COLD_TICK_DIVISOR: u32 = 1000;

/// The lifecycle knobs of a world mode, read from its globals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZonePolicy {
    /// Create zones on demand (`lazy_zones`; default: `grid_size` above 100).
    pub lazy: bool,
    /// `zone_idle_timeout` (ms in the script).
    pub idle_timeout: Duration,
    /// `max_active_zones`, at most [`MAX_ACTIVE_ZONES`].
    pub max_active: usize,
    /// `cold_tick_divisor`; 1 turns cold ticking off.
    pub cold_divisor: u32,
}

impl ZonePolicy {
    /// Reads `lazy_zones`, `zone_idle_timeout`, `max_active_zones` and `cold_tick_divisor`
    /// (asobi keeps a positive integer and ignores anything else) for a grid of `grid_size`.
    pub fn from_globals(globals: &Map<String, Value>, grid_size: u32) -> ZonePolicy {
        let positive = |k: &str| globals.get(k).and_then(Value::as_u64).filter(|v| *v > 0);
        ZonePolicy {
            lazy: globals
                .get("lazy_zones")
                .and_then(Value::as_bool)
                .unwrap_or(grid_size > LAZY_GRID_THRESHOLD),
            idle_timeout: positive("zone_idle_timeout")
                .map_or(ZONE_IDLE_TIMEOUT, Duration::from_millis),
            max_active: positive("max_active_zones").map_or(MAX_ACTIVE_ZONES, |v| {
                usize::try_from(v).map_or(MAX_ACTIVE_ZONES, |v| v.min(MAX_ACTIVE_ZONES))
            }),
            cold_divisor: positive("cold_tick_divisor").map_or(COLD_TICK_DIVISOR, |v| {
                u32::try_from(v).map_or(MAX_COLD_TICK_DIVISOR, |v| v.min(MAX_COLD_TICK_DIVISOR))
            }),
        }
    }
}

impl Default for ZonePolicy {
    fn default() -> Self {
        ZonePolicy::from_globals(&Map::new(), 10)
    }
}

/// What [`Lifecycle::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// The zone is live already (and was touched).
    Live,
    /// Create it now (it is counted from here on).
    Create,
    /// The world is at its active-zone ceiling: the zone stays absent.
    Ceiling,
}

#[derive(Debug, Clone, Copy)]
struct ZoneLife {
    touched: Instant,
    /// Its last occupant left: eligible at the next sweep whatever its idle time.
    released: bool,
    cold: bool,
}

/// Counters for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LifecycleStats {
    /// Zones created.
    pub created: u64,
    /// Zones stopped by the reaper.
    pub reaped: u64,
    /// Zones refused at the ceiling.
    pub refused: u64,
    /// Zone ticks skipped because the zone was cold.
    pub cold_skips: u64,
}

/// One world's live zones, their idle clocks and hot/cold state.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    policy: ZonePolicy,
    zones: BTreeMap<ZoneId, ZoneLife>,
    next_sweep: Instant,
    stats: LifecycleStats,
}

impl Lifecycle {
    /// A world created at `now` with no zone yet.
    pub fn new(policy: ZonePolicy, now: Instant) -> Lifecycle {
        Lifecycle {
            policy,
            zones: BTreeMap::new(),
            next_sweep: now + REAP_INTERVAL,
            stats: LifecycleStats::default(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> ZonePolicy {
        self.policy
    }

    /// Live zones.
    pub fn active(&self) -> usize {
        self.zones.len()
    }

    /// Live zones that are cold now.
    pub fn cold(&self) -> usize {
        self.zones.values().filter(|z| z.cold).count()
    }

    /// Whether `z` is live.
    pub fn is_live(&self, z: ZoneId) -> bool {
        self.zones.contains_key(&z)
    }

    /// Counters.
    pub fn stats(&self) -> LifecycleStats {
        self.stats
    }

    /// The zones to create with the world: the whole grid unless zones are lazy (capped at the
    /// ceiling). The runtime then calls [`Lifecycle::admit`] for each.
    pub fn prewarm(&self, grid: &Grid) -> Vec<ZoneId> {
        if self.policy.lazy {
            return Vec::new();
        }
        let n = grid.size();
        (0..n)
            .flat_map(|y| (0..n).map(move |x| ZoneId::new(x, y)))
            .take(self.policy.max_active)
            .collect()
    }

    /// Something needs zone `z` at `now`.
    pub fn admit(&mut self, z: ZoneId, now: Instant) -> Admit {
        if let Some(life) = self.zones.get_mut(&z) {
            life.touched = now;
            life.released = false;
            return Admit::Live;
        }
        if self.zones.len() >= self.policy.max_active {
            self.stats.refused += 1;
            return Admit::Ceiling;
        }
        self.zones.insert(
            z,
            ZoneLife {
                touched: now,
                released: false,
                cold: false,
            },
        );
        self.stats.created += 1;
        Admit::Create
    }

    /// `z` is in use (it has subscribers or an occupant): its idle clock restarts.
    pub fn touch(&mut self, z: ZoneId, now: Instant) {
        if let Some(life) = self.zones.get_mut(&z) {
            life.touched = now;
            life.released = false;
        }
    }

    /// `z`'s last occupant left: it may go at the next sweep.
    pub fn release(&mut self, z: ZoneId) {
        if let Some(life) = self.zones.get_mut(&z) {
            life.released = true;
        }
    }

    /// Whether `z` ticks at world tick `tick`. `idle`: nothing to simulate (no entity, no
    /// queued input); `keep_hot`: the script asked to stay hot (`_keep_hot`). A zone with work
    /// is hot and ticks every tick; an idle one is cold and ticks once every `cold_divisor`
    /// ticks, at a phase of its own so cold zones spread over the ticks instead of all waking
    /// together.
    pub fn should_tick(&mut self, z: ZoneId, tick: u64, idle: bool, keep_hot: bool) -> bool {
        let divisor = u64::from(self.policy.cold_divisor.max(1));
        let Some(life) = self.zones.get_mut(&z) else {
            return false;
        };
        life.cold = idle && !keep_hot && divisor > 1;
        if !life.cold {
            return true;
        }
        let phase = (u64::from(z.x).wrapping_mul(31) + u64::from(z.y)) % divisor;
        let due = tick % divisor == phase;
        if !due {
            self.stats.cold_skips += 1;
        }
        due
    }

    /// When the next sweep is due.
    pub fn next_sweep(&self) -> Instant {
        self.next_sweep
    }

    /// At a sweep deadline: the zones eligible to stop (released, or untouched for
    /// `idle_timeout`), forgotten here. The runtime stops each that is empty and hands the
    /// others back with [`Lifecycle::decline`] (a reap is a proposal, as in asobi). Before the
    /// deadline: nothing.
    pub fn poll_sweep(&mut self, now: Instant) -> Vec<ZoneId> {
        if now < self.next_sweep {
            return Vec::new();
        }
        while self.next_sweep <= now {
            self.next_sweep += REAP_INTERVAL;
        }
        let timeout = self.policy.idle_timeout;
        let due: Vec<ZoneId> = self
            .zones
            .iter()
            .filter(|(_, l)| l.released || now.saturating_duration_since(l.touched) > timeout)
            .map(|(z, _)| *z)
            .collect();
        for z in &due {
            self.zones.remove(z);
        }
        self.stats.reaped += due.len() as u64;
        due
    }

    /// A zone the sweep proposed still holds entities: it stays, its clock restarted.
    pub fn decline(&mut self, z: ZoneId, now: Instant) {
        self.stats.reaped = self.stats.reaped.saturating_sub(1);
        self.zones.insert(
            z,
            ZoneLife {
                touched: now,
                released: false,
                cold: false,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn globals(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn policy_defaults_follow_the_grid_threshold_and_read_asobis_keys() {
        let small = ZonePolicy::from_globals(&Map::new(), 100);
        assert!(!small.lazy);
        assert_eq!(small.idle_timeout, ZONE_IDLE_TIMEOUT);
        assert_eq!(small.max_active, MAX_ACTIVE_ZONES);
        assert_eq!(small.cold_divisor, COLD_TICK_DIVISOR);
        assert!(ZonePolicy::from_globals(&Map::new(), 101).lazy);
        let p = ZonePolicy::from_globals(
            &globals(json!({"lazy_zones": true, "zone_idle_timeout": 500,
                            "max_active_zones": 99_999, "cold_tick_divisor": 4})),
            10,
        );
        assert_eq!(
            (p.lazy, p.idle_timeout, p.max_active, p.cold_divisor),
            (true, 500 * MS, MAX_ACTIVE_ZONES, 4)
        );
        // Non-positive or mistyped values keep the default, as asobi's loader does.
        let p = ZonePolicy::from_globals(
            &globals(json!({"lazy_zones": "yes", "zone_idle_timeout": 0,
                            "max_active_zones": -3, "cold_tick_divisor": 1.5})),
            2000,
        );
        assert_eq!(p, ZonePolicy::from_globals(&Map::new(), 2000));
        assert!(p.lazy);
    }

    #[test]
    fn prewarm_is_the_whole_grid_unless_lazy() {
        let t0 = Instant::now();
        let grid = Grid::new(4, 10.0);
        let eager = Lifecycle::new(ZonePolicy::from_globals(&Map::new(), 4), t0);
        assert_eq!(eager.prewarm(&grid).len(), 16);
        let lazy = Lifecycle::new(
            ZonePolicy::from_globals(&globals(json!({"lazy_zones": true})), 4),
            t0,
        );
        assert!(lazy.prewarm(&grid).is_empty());
        let capped = Lifecycle::new(
            ZonePolicy::from_globals(&globals(json!({"max_active_zones": 5})), 4),
            t0,
        );
        assert_eq!(capped.prewarm(&grid).len(), 5);
    }

    #[test]
    fn admit_counts_against_the_ceiling() {
        let t0 = Instant::now();
        let p = ZonePolicy::from_globals(&globals(json!({"max_active_zones": 2})), 2000);
        let mut l = Lifecycle::new(p, t0);
        assert_eq!(l.admit(ZoneId::new(0, 0), t0), Admit::Create);
        assert_eq!(l.admit(ZoneId::new(0, 0), t0), Admit::Live);
        assert_eq!(l.admit(ZoneId::new(1, 0), t0), Admit::Create);
        assert_eq!(l.admit(ZoneId::new(2, 0), t0), Admit::Ceiling);
        assert_eq!(l.active(), 2);
        assert_eq!(l.stats().refused, 1);
    }

    #[test]
    fn idle_zones_are_reaped_at_the_sweep_after_the_timeout_and_touched_ones_stay() {
        let t0 = Instant::now();
        let mut l = Lifecycle::new(ZonePolicy::from_globals(&Map::new(), 2000), t0);
        let (a, b, c) = (ZoneId::new(0, 0), ZoneId::new(1, 0), ZoneId::new(2, 0));
        for z in [a, b, c] {
            l.admit(z, t0);
        }
        // Nothing before the first sweep; the first sweep finds nobody idle for 30 s.
        assert!(l.poll_sweep(t0 + 9_999 * MS).is_empty());
        assert!(l.poll_sweep(t0 + REAP_INTERVAL).is_empty());
        assert_eq!(l.next_sweep(), t0 + 2 * REAP_INTERVAL);
        // `a` is watched every tick; `b`'s last occupant leaves at 12 s; `c` is left alone.
        let mut now = t0;
        let mut reaped = Vec::new();
        while now < t0 + Duration::from_secs(50) {
            now += 50 * MS;
            l.touch(a, now);
            if now == t0 + Duration::from_secs(12) {
                l.release(b);
            }
            for z in l.poll_sweep(now) {
                reaped.push((z, now.duration_since(t0)));
            }
        }
        assert_eq!(
            reaped,
            vec![
                (b, Duration::from_secs(20)),
                // Untouched since 0: eligible past 30 s, taken at the sweep after (40 s).
                (c, Duration::from_secs(40)),
            ]
        );
        assert!(l.is_live(a) && !l.is_live(b) && !l.is_live(c));
        assert_eq!(l.stats().reaped, 2);
    }

    #[test]
    fn a_zone_that_declines_stays_and_is_proposed_again_after_another_timeout() {
        let t0 = Instant::now();
        let p = ZonePolicy::from_globals(&globals(json!({"zone_idle_timeout": 1000})), 2000);
        let mut l = Lifecycle::new(p, t0);
        let z = ZoneId::new(5, 5);
        l.admit(z, t0);
        let first = t0 + REAP_INTERVAL;
        assert_eq!(l.poll_sweep(first), vec![z]);
        l.decline(z, first);
        assert!(l.is_live(z));
        assert_eq!(l.stats().reaped, 0);
        assert_eq!(l.poll_sweep(first + REAP_INTERVAL), vec![z]);
        // A late poll catches up without a burst of sweeps.
        assert!(l.poll_sweep(first + 5 * REAP_INTERVAL).is_empty());
        assert_eq!(l.next_sweep(), first + 6 * REAP_INTERVAL);
    }

    #[test]
    fn cold_zones_tick_once_per_divisor_at_their_own_phase_and_work_makes_them_hot() {
        let t0 = Instant::now();
        let mut l = Lifecycle::new(ZonePolicy::from_globals(&Map::new(), 2000), t0);
        let zones: Vec<ZoneId> = (0..10).map(|i| ZoneId::new(i, 0)).collect();
        for z in &zones {
            l.admit(*z, t0);
        }
        // 100 ticks with nothing to do: each zone ticks 10 times, and no tick wakes them all.
        let mut per_tick = Vec::new();
        let mut per_zone = vec![0; zones.len()];
        for tick in 1..=100u64 {
            let mut n = 0;
            for (i, z) in zones.iter().enumerate() {
                if l.should_tick(*z, tick, true, false) {
                    per_zone[i] += 1;
                    n += 1;
                }
            }
            per_tick.push(n);
        }
        assert!(per_zone.iter().all(|n| *n == 10), "{per_zone:?}");
        assert!(per_tick.iter().all(|n| *n <= 1), "{per_tick:?}");
        assert_eq!(l.cold(), 10);
        assert_eq!(l.stats().cold_skips, 900);
        // Work (or `_keep_hot`) ticks at once, every tick.
        assert!((101..=110).all(|t| l.should_tick(zones[3], t, false, false)));
        assert!((101..=110).all(|t| l.should_tick(zones[4], t, true, true)));
        assert_eq!(l.cold(), 8);
        // Divisor 1: nothing is ever cold.
        let p = ZonePolicy::from_globals(&globals(json!({"cold_tick_divisor": 1})), 2000);
        let mut l = Lifecycle::new(p, t0);
        l.admit(zones[0], t0);
        assert!((1..=20).all(|t| l.should_tick(zones[0], t, true, false)));
        assert_eq!(l.cold(), 0);
        // A zone that is not live never ticks.
        assert!(!l.should_tick(zones[9], 1, false, false));
    }
}
