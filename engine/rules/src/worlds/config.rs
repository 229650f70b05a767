//! A world script's shape, read from the globals asobi documents for worlds.

use serde_json::{Map, Value};

use super::grid::Grid;
use super::lifecycle::ZonePolicy;
use super::stripes::MAX_WORLD_SHARDS;

/// Largest `grid_size` accepted; larger values are clamped. Zones are created only where
/// something is (lazily), so the bound is on coordinates, not on memory: 4,096² zones of the
/// default 200 units is an 819 km square.
pub const MAX_GRID_SIZE: u32 = 4096;

/// Largest `view_radius` accepted: a player at radius 8 already watches 17 × 17 = 289 zones,
/// and every one of them costs a keyframe when it comes into view.
pub const MAX_VIEW_RADIUS: u32 = 8;

/// Largest `broadcast_interval` accepted (ticks between two `world.tick` frames of a zone).
const MAX_BROADCAST_INTERVAL: u32 = 1000;

/// The shape of a world mode (asobi's `world-server.md` option table, same defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct WorldConfig {
    /// `grid_size` (10): zones per axis.
    pub grid_size: u32,
    /// `zone_size` (200): units per zone side.
    pub zone_size: f64,
    /// `view_radius` (1): zones a player sees in each direction from their own.
    pub view_radius: u32,
    /// `broadcast_interval` (3): simulation ticks per `world.tick` delta.
    pub broadcast_interval: u32,
    /// `persistent` (false): keep the world alive with nobody in it.
    pub persistent: bool,
    /// `empty_grace_ms` (0): how long an empty, non-persistent world lingers before finishing.
    pub empty_grace_ms: u64,
    /// `player_ttl_ms` (0): how long a disconnected player's entity is held for a reconnect.
    pub player_ttl_ms: u64,
    /// `listed` (true for worlds): shown by `world.list` and `GET /api/v1/worlds`.
    pub listed: bool,
    /// `quick_play` (true for worlds): `world.find_or_create` may place players in it.
    pub quick_play: bool,
    /// `lazy_zones`, `zone_idle_timeout`, `max_active_zones`, `cold_tick_divisor`.
    pub zones: ZonePolicy,
    /// `world_shards` (1; asobi-rs): how many shards the world's zones are spread over, `0`
    /// for every shard. A split world runs one Lua VM per shard (see the worlds service).
    pub shards: usize,
    /// `border_band` (0, off): the fraction of `zone_size` along each zone edge mirrored to
    /// the neighbouring zones (`0 ..= 1`; anything else is 0).
    pub border_band: f64,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            grid_size: 10,
            zone_size: 200.0,
            view_radius: 1,
            broadcast_interval: 3,
            persistent: false,
            empty_grace_ms: 0,
            player_ttl_ms: 0,
            listed: true,
            quick_play: true,
            zones: ZonePolicy::default(),
            shards: 1,
            border_band: 0.0,
        }
    }
}

fn uint(globals: &Map<String, Value>, key: &str) -> Option<u64> {
    let v = globals.get(key)?;
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| *f >= 0.0 && f.is_finite())
            .map(|f| f as u64)
    })
}

/// `world_shards`: a count (`0` is every shard) or `"all"`; anything else is ignored.
fn world_shards(v: Option<&Value>) -> Option<usize> {
    match v? {
        Value::String(s) if s == "all" => Some(0),
        // Lua numbers may arrive as floats; a negative or fractional count is not one.
        Value::Number(n) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0)
                    .map(|f| f as u64)
            })
            .map(|n| {
                usize::try_from(n)
                    .unwrap_or(MAX_WORLD_SHARDS)
                    .min(MAX_WORLD_SHARDS)
            }),
        _ => None,
    }
}

impl WorldConfig {
    /// Reads the world globals out of `globals` (the mode's globals as JSON); a value of the
    /// wrong type or out of range falls back to its default or is clamped, as asobi's loader
    /// is lenient.
    pub fn from_globals(globals: &Map<String, Value>) -> WorldConfig {
        let d = WorldConfig::default();
        let clamp32 = |v: u64, lo: u32, hi: u32| u32::try_from(v).unwrap_or(hi).clamp(lo, hi);
        let grid_size =
            uint(globals, "grid_size").map_or(d.grid_size, |v| clamp32(v, 1, MAX_GRID_SIZE));
        WorldConfig {
            grid_size,
            zones: ZonePolicy::from_globals(globals, grid_size),
            zone_size: globals
                .get("zone_size")
                .and_then(Value::as_f64)
                .filter(|z| z.is_finite() && *z > 0.0)
                .unwrap_or(d.zone_size),
            view_radius: uint(globals, "view_radius")
                .map_or(d.view_radius, |v| clamp32(v, 0, MAX_VIEW_RADIUS)),
            broadcast_interval: uint(globals, "broadcast_interval")
                .map_or(d.broadcast_interval, |v| {
                    clamp32(v, 1, MAX_BROADCAST_INTERVAL)
                }),
            persistent: globals
                .get("persistent")
                .and_then(Value::as_bool)
                .unwrap_or(d.persistent),
            empty_grace_ms: uint(globals, "empty_grace_ms").unwrap_or(d.empty_grace_ms),
            player_ttl_ms: uint(globals, "player_ttl_ms").unwrap_or(d.player_ttl_ms),
            listed: globals
                .get("listed")
                .and_then(Value::as_bool)
                .unwrap_or(d.listed),
            quick_play: globals
                .get("quick_play")
                .and_then(Value::as_bool)
                .unwrap_or(d.quick_play),
            shards: world_shards(globals.get("world_shards")).unwrap_or(d.shards),
            border_band: globals
                .get("border_band")
                .and_then(Value::as_f64)
                .map_or(d.border_band, super::border::band_fraction),
        }
    }

    /// The world's zone grid.
    pub fn grid(&self) -> Grid {
        Grid::new(self.grid_size, self.zone_size)
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

    #[test]
    fn defaults_are_asobis() {
        let c = WorldConfig::from_globals(&Map::new());
        assert_eq!(c, WorldConfig::default());
        assert_eq!(
            (c.grid_size, c.view_radius, c.broadcast_interval),
            (10, 1, 3)
        );
        assert!(c.listed && c.quick_play && !c.persistent);
    }

    #[test]
    fn values_are_read_and_bounded() {
        let c = WorldConfig::from_globals(&globals(json!({
            "grid_size": 1, "zone_size": 1200, "view_radius": 0, "empty_grace_ms": 10000,
            "broadcast_interval": 1, "persistent": true, "listed": false
        })));
        assert_eq!((c.grid_size, c.zone_size, c.view_radius), (1, 1200.0, 0));
        assert_eq!((c.broadcast_interval, c.empty_grace_ms), (1, 10_000));
        assert!(c.persistent && !c.listed && c.quick_play);
        assert_eq!(c.border_band, 0.0);
        let with_band =
            |v: Value| WorldConfig::from_globals(&globals(json!({ "border_band": v }))).border_band;
        assert_eq!(with_band(json!(0.15)), 0.15);
        assert_eq!(with_band(json!(50)), 0.0);
        assert_eq!(with_band(json!("wide")), 0.0);
        let c = WorldConfig::from_globals(&globals(json!({
            "grid_size": 1e12, "zone_size": -5, "view_radius": 99, "broadcast_interval": 0,
            "persistent": "yes"
        })));
        assert_eq!(c.grid_size, MAX_GRID_SIZE);
        assert_eq!(c.zone_size, 200.0);
        assert_eq!(c.view_radius, MAX_VIEW_RADIUS);
        assert_eq!(c.broadcast_interval, 1);
        assert!(!c.persistent);
    }

    #[test]
    fn world_shards_is_a_count_or_all() {
        let read =
            |v: Value| WorldConfig::from_globals(&globals(json!({ "world_shards": v }))).shards;
        assert_eq!(WorldConfig::from_globals(&Map::new()).shards, 1);
        assert_eq!(read(json!(4)), 4);
        assert_eq!(read(json!("all")), 0);
        assert_eq!(read(json!(1e9)), MAX_WORLD_SHARDS);
        assert_eq!(read(json!("some")), 1);
        assert_eq!(read(json!(-2)), 1);
    }
}
