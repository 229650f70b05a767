-- Player storage: key-value objects, cloud-save slots and per-player match stats.
-- No foreign key to players: scripts write for bots and players that were never stored
-- (as match_record_players and leaderboard_entries).

-- Key-value objects. owner_id '' is the global namespace (Lua game.storage.get/set); any other
-- value is the player who owns the row (REST /storage and Lua game.storage.player_*).
-- value is JSON text; version starts at 1 and moves by one on every write.
CREATE TABLE storage_objects (
    collection TEXT NOT NULL,
    object_key TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    value TEXT NOT NULL,
    version BIGINT NOT NULL,
    read_perm TEXT NOT NULL,
    write_perm TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (collection, object_key, owner_id)
);
CREATE INDEX storage_objects_owner ON storage_objects (owner_id);

-- Cloud saves: one row per player per slot.
CREATE TABLE cloud_saves (
    player_id TEXT NOT NULL,
    slot TEXT NOT NULL,
    data TEXT NOT NULL,
    version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (player_id, slot)
);

-- Wins, losses and games played, folded in from each finished match's result.
CREATE TABLE player_stats (
    player_id TEXT PRIMARY KEY,
    games_played BIGINT NOT NULL,
    wins BIGINT NOT NULL,
    losses BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Matches already folded into player_stats, so a repeated fold never counts a match twice.
CREATE TABLE player_stats_matches (
    match_id TEXT PRIMARY KEY,
    recorded_at BIGINT NOT NULL
);
