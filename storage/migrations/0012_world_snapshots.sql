-- Persistent worlds (asobi's `persistent = true` world modes) and their zone snapshots.
--
-- world_snapshots: one row per persistent world that should come back after a restart: which
-- mode to start it with, who created it, and the world tick of its latest snapshot. A world
-- that finishes on its own (its script set `_finished`) loses its rows; one stopped by a
-- shutdown keeps them.
--
-- zone_snapshots: asobi's table of the same name and columns (its `jsonb` columns as text, its
-- `utc_datetime` as unix milliseconds, as in the other tables here): a zone's entities, its
-- zone state, and asobi's entity timers and spawner state (kept `{}` by asobi-rs, which has
-- neither, so rows read the same in both). One row per (world, zone), replaced in place.
--
-- A world's snapshot (its row and all of its zones' rows) is written in one transaction, so
-- an entity that crossed a zone border between two snapshots is never in both zones, or in
-- neither, after a restart.
CREATE TABLE world_snapshots (
    world_id TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    creator TEXT,
    started_at BIGINT NOT NULL,
    tick BIGINT NOT NULL,
    snapshot_at BIGINT NOT NULL
);
CREATE TABLE zone_snapshots (
    id TEXT PRIMARY KEY,
    world_id TEXT NOT NULL,
    zone_x INTEGER NOT NULL,
    zone_y INTEGER NOT NULL,
    entities TEXT NOT NULL,
    zone_state TEXT NOT NULL,
    entity_timers TEXT NOT NULL,
    spawner_state TEXT NOT NULL,
    tick BIGINT NOT NULL,
    snapshot_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX zone_snapshots_world_id_zone_x_zone_y_index
    ON zone_snapshots (world_id, zone_x, zone_y);
