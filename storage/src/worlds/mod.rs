//! Persistent worlds' snapshots: which worlds to bring back after a restart (one
//! `world_snapshots` row each) and each zone's entities and zone state (asobi's
//! `zone_snapshots` rows).
//!
//! A snapshot is written whole: the world's row, every zone it carries and the removal of the
//! zones it drops, in one transaction. A reader therefore sees one world tick's state or the
//! one before, never a mix (an entity that crossed a border in between is in exactly one
//! zone).
//!
//! Types, the [`Worlds`] trait both backends implement (`sqlite.rs`, `postgres.rs`) and the
//! [`StoreHandle`] methods that ship each call to the bridge.

mod postgres;
mod sqlite;

use serde_json::Value;

use crate::backend::Reply;
use crate::error::parse_json_column;
use crate::{StoreError, StoreHandle};

/// A persistent world as stored: enough to start it again.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct WorldRecord {
    /// The world's id (kept across restarts).
    pub world_id: String,
    /// The world mode it runs.
    pub mode: String,
    /// The player who created it, if one did.
    pub creator: Option<String>,
    /// When the world was first created (unix milliseconds).
    pub started_at: i64,
    /// The world tick of the latest snapshot.
    pub tick: i64,
    /// When the latest snapshot was taken (unix milliseconds).
    pub snapshot_at: i64,
}

/// One zone's snapshot (asobi's `zone_snapshots` columns).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ZoneSnapshot {
    /// Zone column.
    pub zone_x: i64,
    /// Zone row.
    pub zone_y: i64,
    /// The zone's entities by id.
    pub entities: Value,
    /// The zone's Lua zone state.
    pub zone_state: Value,
    /// asobi's entity timers (`{}` when the runtime has none).
    pub entity_timers: Value,
    /// asobi's spawner state (`{}` when the runtime has none).
    pub spawner_state: Value,
    /// The world tick the zone was taken at.
    pub tick: i64,
    /// When it was taken (unix milliseconds).
    pub snapshot_at: i64,
}

/// One world's snapshot as written: its row, the zones whose rows are replaced, and the zones
/// whose rows are removed (a zone that holds nothing to keep any more).
#[derive(Clone, Debug, PartialEq)]
pub struct WorldSnapshot {
    /// The world's row.
    pub world: WorldRecord,
    /// Zones to insert or replace.
    pub zones: Vec<ZoneSnapshot>,
    /// Zones (x, y) to remove.
    pub removed: Vec<(i64, i64)>,
}

/// Most persistent worlds [`StoreHandle::persistent_worlds`] returns: the server runs at most
/// 1,000 live worlds (asobi's `world_max`), so more rows than that cannot all come back.
pub const MAX_PERSISTENT_WORLDS: u32 = 1000;

/// The world snapshot operations one database implements.
pub(crate) trait Worlds: Send + Sync {
    fn save_world_snapshot(&self, s: WorldSnapshot) -> Reply<'_, ()>;
    fn persistent_worlds(&self, limit: u32) -> Reply<'_, Vec<WorldRecord>>;
    fn world_snapshot(
        &self,
        world_id: String,
    ) -> Reply<'_, Option<(WorldRecord, Vec<ZoneSnapshot>)>>;
    fn delete_world_snapshot(&self, world_id: String) -> Reply<'_, bool>;
}

impl StoreHandle {
    /// Writes one world's snapshot atomically: the world row replaced, `zones` inserted or
    /// replaced (one row per zone), `removed` deleted. Either all of it lands or none.
    pub async fn save_world_snapshot(&self, s: WorldSnapshot) -> Result<(), StoreError> {
        self.call(move |db| db.save_world_snapshot(s)).await
    }

    /// The persistent worlds to bring back, oldest first (`started_at`, then id), at most
    /// `limit` clamped to `1..=`[`MAX_PERSISTENT_WORLDS`].
    pub async fn persistent_worlds(&self, limit: u32) -> Result<Vec<WorldRecord>, StoreError> {
        let limit = limit.clamp(1, MAX_PERSISTENT_WORLDS);
        self.call(move |db| db.persistent_worlds(limit)).await
    }

    /// A world's row and all of its zones (by `zone_x`, then `zone_y`), read together.
    pub async fn world_snapshot(
        &self,
        world_id: &str,
    ) -> Result<Option<(WorldRecord, Vec<ZoneSnapshot>)>, StoreError> {
        let world_id = world_id.to_owned();
        self.call(move |db| db.world_snapshot(world_id)).await
    }

    /// Forgets a world and its zones; whether it was stored.
    pub async fn delete_world_snapshot(&self, world_id: &str) -> Result<bool, StoreError> {
        let world_id = world_id.to_owned();
        self.call(move |db| db.delete_world_snapshot(world_id))
            .await
    }
}

/// Columns every world SELECT uses, in the order the readers take them.
const WORLD_COLUMNS: &str = "world_id, mode, creator, started_at, tick, snapshot_at";

/// Columns every zone SELECT uses, in the order [`zone_from_columns`] reads (the row `id` is
/// written, never read: a zone is addressed by its world and coordinates).
const ZONE_COLUMNS: &str =
    "zone_x, zone_y, entities, zone_state, entity_timers, spawner_state, tick, snapshot_at";

/// The raw columns of a zone row as both backends read them (JSON still as text).
type ZoneColumns = (i64, i64, String, String, String, String, i64, i64);

fn zone_from_columns(c: ZoneColumns) -> Result<ZoneSnapshot, StoreError> {
    let (zone_x, zone_y, entities, zone_state, entity_timers, spawner_state, tick, snapshot_at) = c;
    Ok(ZoneSnapshot {
        zone_x,
        zone_y,
        entities: parse_json_column("entities", &entities)?,
        zone_state: parse_json_column("zone_state", &zone_state)?,
        entity_timers: parse_json_column("entity_timers", &entity_timers)?,
        spawner_state: parse_json_column("spawner_state", &spawner_state)?,
        tick,
        snapshot_at,
    })
}

/// A fresh row id for a zone row inserted for the first time (asobi's ids are UUIDs).
fn new_zone_row_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
