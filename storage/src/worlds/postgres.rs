//! World snapshots on PostgreSQL.

use tokio_postgres::Row;

use super::{
    new_zone_row_id, zone_from_columns, WorldRecord, WorldSnapshot, Worlds, ZoneSnapshot,
    WORLD_COLUMNS, ZONE_COLUMNS,
};
use crate::backend::Reply;
use crate::postgres::{op, Fail, PgBackend};

fn read_world(r: &Row) -> Result<WorldRecord, Fail> {
    Ok(WorldRecord {
        world_id: r.try_get(0)?,
        mode: r.try_get(1)?,
        creator: r.try_get(2)?,
        started_at: r.try_get(3)?,
        tick: r.try_get(4)?,
        snapshot_at: r.try_get(5)?,
    })
}

fn read_zone(r: &Row) -> Result<ZoneSnapshot, Fail> {
    let x: i32 = r.try_get(0)?;
    let y: i32 = r.try_get(1)?;
    let c = (
        i64::from(x),
        i64::from(y),
        r.try_get(2)?,
        r.try_get(3)?,
        r.try_get(4)?,
        r.try_get(5)?,
        r.try_get(6)?,
        r.try_get(7)?,
    );
    Ok(zone_from_columns(c)?)
}

/// A zone coordinate as the `INTEGER` column takes it; coordinates are grid indices (at most
/// a few thousand), so one outside `i32` is a caller bug refused as bad data.
fn coord(v: i64) -> Result<i32, Fail> {
    i32::try_from(v).map_err(|_| {
        Fail::Store(crate::StoreError::Backend(format!(
            "zone coordinate {v} out of range"
        )))
    })
}

impl Worlds for PgBackend {
    fn save_world_snapshot(&self, s: WorldSnapshot) -> Reply<'_, ()> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let w = &s.world;
            tx.execute(
                &format!(
                    "INSERT INTO world_snapshots ({WORLD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (world_id) DO UPDATE SET mode = excluded.mode, \
                     tick = excluded.tick, snapshot_at = excluded.snapshot_at"
                ),
                &[
                    &w.world_id,
                    &w.mode,
                    &w.creator,
                    &w.started_at,
                    &w.tick,
                    &w.snapshot_at,
                ],
            )
            .await?;
            let upsert = tx
                .prepare(&format!(
                    "INSERT INTO zone_snapshots (id, world_id, {ZONE_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (world_id, zone_x, zone_y) DO UPDATE SET \
                     entities = excluded.entities, zone_state = excluded.zone_state, \
                     entity_timers = excluded.entity_timers, \
                     spawner_state = excluded.spawner_state, tick = excluded.tick, \
                     snapshot_at = excluded.snapshot_at"
                ))
                .await?;
            for z in &s.zones {
                tx.execute(
                    &upsert,
                    &[
                        &new_zone_row_id(),
                        &w.world_id,
                        &coord(z.zone_x)?,
                        &coord(z.zone_y)?,
                        &z.entities.to_string(),
                        &z.zone_state.to_string(),
                        &z.entity_timers.to_string(),
                        &z.spawner_state.to_string(),
                        &z.tick,
                        &z.snapshot_at,
                    ],
                )
                .await?;
            }
            if !s.removed.is_empty() {
                let delete = tx
                    .prepare(
                        "DELETE FROM zone_snapshots \
                         WHERE world_id = $1 AND zone_x = $2 AND zone_y = $3",
                    )
                    .await?;
                for (x, y) in &s.removed {
                    tx.execute(&delete, &[&w.world_id, &coord(*x)?, &coord(*y)?])
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn persistent_worlds(&self, limit: u32) -> Reply<'_, Vec<WorldRecord>> {
        op(async move {
            let client = self.client().await?;
            let sql = format!(
                "SELECT {WORLD_COLUMNS} FROM world_snapshots \
                 ORDER BY started_at, world_id LIMIT $1"
            );
            let stmt = client.prepare_cached(&sql).await?;
            let rows = client.query(&stmt, &[&i64::from(limit)]).await?;
            rows.iter().map(read_world).collect()
        })
    }

    fn world_snapshot(
        &self,
        world_id: String,
    ) -> Reply<'_, Option<(WorldRecord, Vec<ZoneSnapshot>)>> {
        op(async move {
            let mut client = self.client().await?;
            // REPEATABLE READ: the world row and its zones come from one snapshot of the
            // database, even with a write committing between the two reads.
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let sql = format!("SELECT {WORLD_COLUMNS} FROM world_snapshots WHERE world_id = $1");
            let Some(row) = tx.query_opt(&sql, &[&world_id]).await? else {
                return Ok(None);
            };
            let world = read_world(&row)?;
            let sql = format!(
                "SELECT {ZONE_COLUMNS} FROM zone_snapshots WHERE world_id = $1 \
                 ORDER BY zone_x, zone_y"
            );
            let rows = tx.query(&sql, &[&world_id]).await?;
            let zones = rows.iter().map(read_zone).collect::<Result<Vec<_>, _>>()?;
            tx.commit().await?;
            Ok(Some((world, zones)))
        })
    }

    fn delete_world_snapshot(&self, world_id: String) -> Reply<'_, bool> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            tx.execute(
                "DELETE FROM zone_snapshots WHERE world_id = $1",
                &[&world_id],
            )
            .await?;
            let n = tx
                .execute(
                    "DELETE FROM world_snapshots WHERE world_id = $1",
                    &[&world_id],
                )
                .await?;
            tx.commit().await?;
            Ok(n > 0)
        })
    }
}
