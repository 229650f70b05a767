//! The process-wide index of live worlds: which shard hosts each, what `world.list` and
//! `GET /api/v1/worlds` show of it, and which world each player is in. Written by the host
//! shard on create, roster change and finish; read by any shard to route a join or list.

use serde::Serialize;

use crate::shard::registry::Index;

/// Worlds one listing returns at most.
const LIST_LIMIT: usize = 200;

/// What a listing shows of a world (asobi's `world.list` entry).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WorldInfo {
    pub(crate) world_id: String,
    pub(crate) mode: String,
    pub(crate) status: String,
    pub(crate) player_count: u32,
    pub(crate) max_players: u32,
    pub(crate) grid_size: u32,
    pub(crate) started_at: i64,
    /// The world's phase as a non-member may see it (`status`, `phase`, `remaining_ms`,
    /// `start_condition`), when its script declares phases; as of the host's last update
    /// (every phase change and every 3 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) phase: Option<serde_json::Value>,
}

/// A live world as other shards see it.
#[derive(Debug, Clone)]
pub(crate) struct WorldEntry {
    pub(crate) shard: usize,
    pub(crate) info: WorldInfo,
    pub(crate) listed: bool,
    pub(crate) quick_play: bool,
    /// Who created it (counts against their `world_max_per_player`).
    pub(crate) creator: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Directory {
    worlds: Index<WorldEntry>,
    /// player → (world, host shard).
    seats: Index<(String, usize)>,
}

impl Directory {
    pub(crate) fn put(&self, id: &str, entry: WorldEntry) {
        self.worlds.put(id, entry);
    }

    pub(crate) fn remove(&self, id: &str) {
        self.worlds.remove(id);
    }

    pub(crate) fn get(&self, id: &str) -> Option<WorldEntry> {
        self.worlds.get(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.worlds.len()
    }

    /// Live worlds `player` created.
    pub(crate) fn created_by(&self, player: &str) -> usize {
        self.worlds.scan(|all| {
            all.values()
                .filter(|e| e.creator.as_deref() == Some(player))
                .count()
        })
    }

    /// Listed worlds, optionally of one mode and with room, by id.
    pub(crate) fn list(&self, mode: Option<&str>, has_capacity: bool) -> Vec<WorldInfo> {
        self.worlds.scan(|all| {
            let mut out: Vec<WorldInfo> = all
                .values()
                .filter(|e| e.listed)
                .filter(|e| mode.is_none_or(|m| e.info.mode == m))
                .filter(|e| !has_capacity || e.info.player_count < e.info.max_players)
                .map(|e| e.info.clone())
                .collect();
            out.sort_by(|a, b| a.world_id.cmp(&b.world_id));
            out.truncate(LIST_LIMIT);
            out
        })
    }

    /// A quick-play world of `mode` with room, the fullest first (so players gather).
    pub(crate) fn open_world(&self, mode: &str) -> Option<(String, usize)> {
        self.worlds.scan(|all| {
            all.values()
                .filter(|e| e.quick_play && e.info.mode == mode)
                .filter(|e| e.info.player_count < e.info.max_players)
                .max_by(|a, b| {
                    a.info
                        .player_count
                        .cmp(&b.info.player_count)
                        .then_with(|| b.info.world_id.cmp(&a.info.world_id))
                })
                .map(|e| (e.info.world_id.clone(), e.shard))
        })
    }

    pub(crate) fn seat(&self, player: &str, world: &str, shard: usize) {
        self.seats.put(player, (world.to_owned(), shard));
    }

    pub(crate) fn unseat(&self, player: &str, world: &str) {
        self.seats.remove_if(player, |(w, _)| w == world);
    }

    pub(crate) fn seat_of(&self, player: &str) -> Option<(String, usize)> {
        self.seats.get(player)
    }
}
