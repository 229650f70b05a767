//! Player storage on PostgreSQL. A permission-checked write takes a transaction-scoped advisory
//! lock on its collection and key (a save write on its player), so the rows it decided on cannot
//! change before it writes; reads need no lock.

use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Row as PgRow;

use super::{
    decide_delete, decide_read, decide_write, object, Checked, CloudSave, MatchStats, ObjectWrite,
    PlayerStats, Row, SaveSlot, SaveWrite, Storage, StorageRefusal, StoredObject, WritePlan,
};
use crate::backend::Reply;
use crate::error::parse_json_column;
use crate::postgres::{op, Fail, PgBackend};

const OBJECT_COLUMNS: &str =
    "collection, object_key, owner_id, value, version, read_perm, write_perm, updated_at";

fn read_object_row(r: &PgRow) -> Result<StoredObject, Fail> {
    let value: String = r.try_get(3)?;
    Ok(object(
        r.try_get(0)?,
        r.try_get(1)?,
        r.try_get(2)?,
        &value,
        r.try_get(4)?,
        r.try_get(5)?,
        r.try_get(6)?,
        r.try_get(7)?,
    )?)
}

/// Serialises permission-checked writers of one lock name until their transaction ends.
async fn lock(tx: &impl GenericClient, name: String) -> Result<(), Fail> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&name],
    )
    .await?;
    Ok(())
}

fn object_lock(collection: &str, key: &str) -> String {
    // Hashed to 64 bits: a collision only makes two unrelated writers wait for each other.
    format!("storage\u{1f}{collection}\u{1f}{key}")
}

async fn player_rows(
    c: &impl GenericClient,
    collection: &str,
    key: &str,
) -> Result<Vec<Row>, Fail> {
    let rows = c
        .query(
            "SELECT owner_id, version, read_perm, write_perm FROM storage_objects \
             WHERE collection = $1 AND object_key = $2 AND owner_id <> ''",
            &[&collection, &key],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Row {
                owner: r.try_get(0)?,
                version: r.try_get(1)?,
                read_perm: r.try_get(2)?,
                write_perm: r.try_get(3)?,
            })
        })
        .collect()
}

async fn one_object(
    c: &impl GenericClient,
    collection: &str,
    key: &str,
    owner: &str,
) -> Result<Option<StoredObject>, Fail> {
    let sql = format!(
        "SELECT {OBJECT_COLUMNS} FROM storage_objects \
         WHERE collection = $1 AND object_key = $2 AND owner_id = $3"
    );
    c.query_opt(&sql, &[&collection, &key, &owner])
        .await?
        .as_ref()
        .map(read_object_row)
        .transpose()
}

impl Storage for PgBackend {
    fn read_object(
        &self,
        collection: String,
        key: String,
        caller: String,
    ) -> Reply<'_, Checked<StoredObject>> {
        op(async move {
            let client = self.client().await?;
            let rows = player_rows(&client, &collection, &key).await?;
            let owner = match decide_read(&rows, &caller) {
                Ok(owner) => owner,
                Err(refusal) => return Ok(Err(refusal)),
            };
            Ok(one_object(&client, &collection, &key, &owner)
                .await?
                .ok_or(StorageRefusal::NotFound))
        })
    }

    fn write_object(&self, w: ObjectWrite) -> Reply<'_, Checked<StoredObject>> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock(&tx, object_lock(&w.collection, &w.key)).await?;
            let rows = player_rows(&tx, &w.collection, &w.key).await?;
            let plan = match decide_write(&rows, &w.caller, w.expected_version) {
                Ok(plan) => plan,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let value = w.value.to_string();
            let (read, write) = (w.read_perm.as_str(), w.write_perm.as_str());
            let owner =
                match plan {
                    WritePlan::Insert => {
                        tx.execute(
                        "INSERT INTO storage_objects (collection, object_key, owner_id, value, \
                         version, read_perm, write_perm, updated_at) \
                         VALUES ($1, $2, $3, $4, 1, $5, $6, $7)",
                        &[&w.collection, &w.key, &w.caller, &value, &read, &write, &w.now_ms],
                    )
                    .await?;
                        w.caller.clone()
                    }
                    WritePlan::Update {
                        owner,
                        version,
                        set_perms,
                    } => {
                        if set_perms {
                            tx.execute(
                                "UPDATE storage_objects SET value = $4, version = version + 1, \
                             read_perm = $5, write_perm = $6, updated_at = $7 \
                             WHERE collection = $1 AND object_key = $2 AND owner_id = $3 \
                             AND version = $8",
                                &[
                                    &w.collection,
                                    &w.key,
                                    &owner,
                                    &value,
                                    &read,
                                    &write,
                                    &w.now_ms,
                                    &version,
                                ],
                            )
                            .await?;
                        } else {
                            tx.execute(
                                "UPDATE storage_objects SET value = $4, version = version + 1, \
                             updated_at = $5 \
                             WHERE collection = $1 AND object_key = $2 AND owner_id = $3 \
                             AND version = $6",
                                &[&w.collection, &w.key, &owner, &value, &w.now_ms, &version],
                            )
                            .await?;
                        }
                        owner
                    }
                };
            let stored = one_object(&tx, &w.collection, &w.key, &owner).await?;
            tx.commit().await?;
            Ok(stored.ok_or(StorageRefusal::NotFound))
        })
    }

    fn delete_object(
        &self,
        collection: String,
        key: String,
        caller: String,
        expected_version: Option<i64>,
    ) -> Reply<'_, Checked<()>> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock(&tx, object_lock(&collection, &key)).await?;
            let rows = player_rows(&tx, &collection, &key).await?;
            let owner = match decide_delete(&rows, &caller, expected_version) {
                Ok(owner) => owner,
                Err(refusal) => return Ok(Err(refusal)),
            };
            tx.execute(
                "DELETE FROM storage_objects \
                 WHERE collection = $1 AND object_key = $2 AND owner_id = $3",
                &[&collection, &key, &owner],
            )
            .await?;
            tx.commit().await?;
            Ok(Ok(()))
        })
    }

    fn list_objects(
        &self,
        collection: String,
        caller: String,
        limit: u32,
    ) -> Reply<'_, Vec<StoredObject>> {
        op(async move {
            let client = self.client().await?;
            let sql = format!(
                "SELECT {OBJECT_COLUMNS} FROM storage_objects WHERE collection = $1 \
                 AND owner_id <> '' AND (read_perm = 'public' \
                 OR (read_perm = 'owner' AND owner_id = $2)) \
                 ORDER BY object_key, owner_id LIMIT $3"
            );
            client
                .query(&sql, &[&collection, &caller, &i64::from(limit)])
                .await?
                .iter()
                .map(read_object_row)
                .collect()
        })
    }

    fn server_object(
        &self,
        collection: String,
        key: String,
        owner: String,
    ) -> Reply<'_, Option<StoredObject>> {
        op(async move {
            let client = self.client().await?;
            one_object(&client, &collection, &key, &owner).await
        })
    }

    fn server_write_object(
        &self,
        collection: String,
        key: String,
        owner: String,
        value: Value,
        now_ms: i64,
    ) -> Reply<'_, StoredObject> {
        op(async move {
            let client = self.client().await?;
            let sql = format!(
                "INSERT INTO storage_objects (collection, object_key, owner_id, value, version, \
                 read_perm, write_perm, updated_at) VALUES ($1, $2, $3, $4, 1, 'owner', 'owner', $5) \
                 ON CONFLICT (collection, object_key, owner_id) DO UPDATE SET \
                 value = excluded.value, version = storage_objects.version + 1, \
                 updated_at = excluded.updated_at RETURNING {OBJECT_COLUMNS}"
            );
            let row = client
                .query_one(
                    &sql,
                    &[&collection, &key, &owner, &value.to_string(), &now_ms],
                )
                .await?;
            read_object_row(&row)
        })
    }

    fn save_slots(&self, player_id: String) -> Reply<'_, Vec<SaveSlot>> {
        op(async move {
            let client = self.client().await?;
            client
                .query(
                    "SELECT slot, version, updated_at FROM cloud_saves WHERE player_id = $1 \
                     ORDER BY slot",
                    &[&player_id],
                )
                .await?
                .iter()
                .map(|r| {
                    Ok(SaveSlot {
                        slot: r.try_get(0)?,
                        version: r.try_get(1)?,
                        updated_at: r.try_get(2)?,
                    })
                })
                .collect()
        })
    }

    fn cloud_save(&self, player_id: String, slot: String) -> Reply<'_, Option<CloudSave>> {
        op(async move {
            let client = self.client().await?;
            let Some(r) = client
                .query_opt(
                    "SELECT data, version, updated_at FROM cloud_saves \
                     WHERE player_id = $1 AND slot = $2",
                    &[&player_id, &slot],
                )
                .await?
            else {
                return Ok(None);
            };
            let data: String = r.try_get(0)?;
            Ok(Some(CloudSave {
                data: parse_json_column("cloud_saves.data", &data)?,
                version: r.try_get(1)?,
                updated_at: r.try_get(2)?,
                player_id,
                slot,
            }))
        })
    }

    fn write_save(&self, w: SaveWrite) -> Reply<'_, Checked<CloudSave>> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock(&tx, format!("save\u{1f}{}", w.player_id)).await?;
            let current: Option<i64> = tx
                .query_opt(
                    "SELECT version FROM cloud_saves WHERE player_id = $1 AND slot = $2",
                    &[&w.player_id, &w.slot],
                )
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
            let data = w.data.to_string();
            let version = match current {
                Some(v) => {
                    if w.expected_version.is_some_and(|e| e != v) {
                        return Ok(Err(StorageRefusal::VersionConflict { current_version: v }));
                    }
                    tx.execute(
                        "UPDATE cloud_saves SET data = $3, version = $4, updated_at = $5 \
                         WHERE player_id = $1 AND slot = $2",
                        &[&w.player_id, &w.slot, &data, &(v + 1), &w.now_ms],
                    )
                    .await?;
                    v + 1
                }
                None => {
                    let used: i64 = tx
                        .query_one(
                            "SELECT COUNT(*) FROM cloud_saves WHERE player_id = $1",
                            &[&w.player_id],
                        )
                        .await?
                        .try_get(0)?;
                    if used >= i64::from(w.max_slots) {
                        return Ok(Err(StorageRefusal::SlotLimitReached));
                    }
                    tx.execute(
                        "INSERT INTO cloud_saves (player_id, slot, data, version, updated_at) \
                         VALUES ($1, $2, $3, 1, $4)",
                        &[&w.player_id, &w.slot, &data, &w.now_ms],
                    )
                    .await?;
                    1
                }
            };
            tx.commit().await?;
            Ok(Ok(CloudSave {
                player_id: w.player_id,
                slot: w.slot,
                data: w.data,
                version,
                updated_at: w.now_ms,
            }))
        })
    }

    fn record_match_stats(&self, m: MatchStats) -> Reply<'_, bool> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let fresh = tx
                .execute(
                    "INSERT INTO player_stats_matches (match_id, recorded_at) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                    &[&m.match_id, &m.now_ms],
                )
                .await?;
            if fresh == 0 {
                return Ok(false);
            }
            let players: Vec<&str> = m.players.iter().map(|p| p.0.as_str()).collect();
            let wins: Vec<i64> = m.players.iter().map(|p| i64::from(p.1)).collect();
            let losses: Vec<i64> = m.players.iter().map(|p| i64::from(p.2)).collect();
            tx.execute(
                "INSERT INTO player_stats (player_id, games_played, wins, losses, updated_at) \
                 SELECT p, 1, w, l, $4 FROM UNNEST($1::text[], $2::bigint[], $3::bigint[]) \
                 AS t(p, w, l) ON CONFLICT (player_id) DO UPDATE SET \
                 games_played = player_stats.games_played + 1, \
                 wins = player_stats.wins + excluded.wins, \
                 losses = player_stats.losses + excluded.losses, \
                 updated_at = excluded.updated_at",
                &[&players, &wins, &losses, &m.now_ms],
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn player_stats(&self, player_id: String) -> Reply<'_, Option<PlayerStats>> {
        op(async move {
            let client = self.client().await?;
            let Some(r) = client
                .query_opt(
                    "SELECT games_played, wins, losses, updated_at FROM player_stats \
                     WHERE player_id = $1",
                    &[&player_id],
                )
                .await?
            else {
                return Ok(None);
            };
            Ok(Some(PlayerStats {
                games_played: r.try_get(0)?,
                wins: r.try_get(1)?,
                losses: r.try_get(2)?,
                updated_at: r.try_get(3)?,
                player_id,
            }))
        })
    }
}
