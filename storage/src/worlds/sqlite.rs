//! World snapshots on SQLite.

use rusqlite::{params, Row};

use super::{
    new_zone_row_id, zone_from_columns, WorldRecord, WorldSnapshot, Worlds, ZoneSnapshot,
    WORLD_COLUMNS, ZONE_COLUMNS,
};
use crate::backend::Reply;
use crate::sqlite::{write_tx, Fail, SqliteBackend};

fn read_world(r: &Row<'_>) -> Result<WorldRecord, Fail> {
    Ok(WorldRecord {
        world_id: r.get(0)?,
        mode: r.get(1)?,
        creator: r.get(2)?,
        started_at: r.get(3)?,
        tick: r.get(4)?,
        snapshot_at: r.get(5)?,
    })
}

fn read_zone(r: &Row<'_>) -> Result<ZoneSnapshot, Fail> {
    let c = (
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    );
    Ok(zone_from_columns(c)?)
}

impl Worlds for SqliteBackend {
    fn save_world_snapshot(&self, s: WorldSnapshot) -> Reply<'_, ()> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let w = &s.world;
            tx.execute(
                &format!(
                    "INSERT INTO world_snapshots ({WORLD_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     ON CONFLICT (world_id) DO UPDATE SET mode = excluded.mode, \
                     tick = excluded.tick, snapshot_at = excluded.snapshot_at"
                ),
                params![w.world_id, w.mode, w.creator, w.started_at, w.tick, w.snapshot_at],
            )?;
            {
                let mut upsert = tx.prepare_cached(&format!(
                    "INSERT INTO zone_snapshots (id, world_id, {ZONE_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                     ON CONFLICT (world_id, zone_x, zone_y) DO UPDATE SET \
                     entities = excluded.entities, zone_state = excluded.zone_state, \
                     entity_timers = excluded.entity_timers, \
                     spawner_state = excluded.spawner_state, tick = excluded.tick, \
                     snapshot_at = excluded.snapshot_at"
                ))?;
                for z in &s.zones {
                    upsert.execute(params![
                        new_zone_row_id(),
                        w.world_id,
                        z.zone_x,
                        z.zone_y,
                        z.entities.to_string(),
                        z.zone_state.to_string(),
                        z.entity_timers.to_string(),
                        z.spawner_state.to_string(),
                        z.tick,
                        z.snapshot_at
                    ])?;
                }
                let mut delete = tx.prepare_cached(
                    "DELETE FROM zone_snapshots WHERE world_id = ?1 AND zone_x = ?2 AND zone_y = ?3",
                )?;
                for (x, y) in &s.removed {
                    delete.execute(params![w.world_id, x, y])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn persistent_worlds(&self, limit: u32) -> Reply<'_, Vec<WorldRecord>> {
        self.run(move |conn| {
            let sql = format!(
                "SELECT {WORLD_COLUMNS} FROM world_snapshots \
                 ORDER BY started_at, world_id LIMIT ?1"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![limit])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(read_world(row)?);
            }
            Ok(out)
        })
    }

    fn world_snapshot(
        &self,
        world_id: String,
    ) -> Reply<'_, Option<(WorldRecord, Vec<ZoneSnapshot>)>> {
        self.run(move |conn| {
            // Jobs run inside the bridge's batch transaction, so the world row and its zones
            // are read from one state of the database.
            let tx = &*conn;
            let world = {
                let sql =
                    format!("SELECT {WORLD_COLUMNS} FROM world_snapshots WHERE world_id = ?1");
                let mut stmt = tx.prepare_cached(&sql)?;
                let mut rows = stmt.query(params![world_id])?;
                match rows.next()? {
                    Some(row) => read_world(row)?,
                    None => return Ok(None),
                }
            };
            let mut zones = Vec::new();
            {
                let sql = format!(
                    "SELECT {ZONE_COLUMNS} FROM zone_snapshots WHERE world_id = ?1 \
                     ORDER BY zone_x, zone_y"
                );
                let mut stmt = tx.prepare_cached(&sql)?;
                let mut rows = stmt.query(params![world_id])?;
                while let Some(row) = rows.next()? {
                    zones.push(read_zone(row)?);
                }
            }
            Ok(Some((world, zones)))
        })
    }

    fn delete_world_snapshot(&self, world_id: String) -> Reply<'_, bool> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            tx.execute(
                "DELETE FROM zone_snapshots WHERE world_id = ?1",
                params![world_id],
            )?;
            let n = tx.execute(
                "DELETE FROM world_snapshots WHERE world_id = ?1",
                params![world_id],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
    }
}
