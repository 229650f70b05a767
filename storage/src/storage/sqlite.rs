//! Player storage on SQLite. One connection serialises every call, so a decision and its write
//! inside one savepoint cannot interleave with another writer's.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use super::{
    decide_delete, decide_read, decide_write, object, Checked, CloudSave, MatchStats, ObjectWrite,
    PlayerStats, Row, SaveSlot, SaveWrite, Storage, StorageRefusal, StoredObject, WritePlan,
};
use crate::backend::Reply;
use crate::error::parse_json_column;
use crate::sqlite::{write_tx, Fail, SqliteBackend};

const OBJECT_COLUMNS: &str =
    "collection, object_key, owner_id, value, version, read_perm, write_perm, updated_at";

fn read_object_row(r: &rusqlite::Row<'_>) -> Result<StoredObject, Fail> {
    let value: String = r.get(3)?;
    Ok(object(
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        &value,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    )?)
}

fn player_rows(conn: &Connection, collection: &str, key: &str) -> Result<Vec<Row>, Fail> {
    let mut stmt = conn.prepare_cached(
        "SELECT owner_id, version, read_perm, write_perm FROM storage_objects \
         WHERE collection = ?1 AND object_key = ?2 AND owner_id <> ''",
    )?;
    let mut rows = stmt.query(params![collection, key])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(Row {
            owner: r.get(0)?,
            version: r.get(1)?,
            read_perm: r.get(2)?,
            write_perm: r.get(3)?,
        });
    }
    Ok(out)
}

fn one_object(
    conn: &Connection,
    collection: &str,
    key: &str,
    owner: &str,
) -> Result<Option<StoredObject>, Fail> {
    let sql = format!(
        "SELECT {OBJECT_COLUMNS} FROM storage_objects \
         WHERE collection = ?1 AND object_key = ?2 AND owner_id = ?3"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![collection, key, owner])?;
    match rows.next()? {
        Some(r) => Ok(Some(read_object_row(r)?)),
        None => Ok(None),
    }
}

fn json_text(v: &Value) -> String {
    v.to_string()
}

fn save_of(
    player_id: String,
    slot: String,
    data: &str,
    version: i64,
    updated_at: i64,
) -> Result<CloudSave, Fail> {
    Ok(CloudSave {
        player_id,
        slot,
        data: parse_json_column("cloud_saves.data", data)?,
        version,
        updated_at,
    })
}

impl Storage for SqliteBackend {
    fn read_object(
        &self,
        collection: String,
        key: String,
        caller: String,
    ) -> Reply<'_, Checked<StoredObject>> {
        self.run(move |conn| {
            let rows = player_rows(conn, &collection, &key)?;
            let owner = match decide_read(&rows, &caller) {
                Ok(owner) => owner,
                Err(refusal) => return Ok(Err(refusal)),
            };
            Ok(one_object(conn, &collection, &key, &owner)?.ok_or(StorageRefusal::NotFound))
        })
    }

    fn write_object(&self, w: ObjectWrite) -> Reply<'_, Checked<StoredObject>> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let rows = player_rows(&tx, &w.collection, &w.key)?;
            let plan = match decide_write(&rows, &w.caller, w.expected_version) {
                Ok(plan) => plan,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let value = json_text(&w.value);
            let owner = match plan {
                WritePlan::Insert => {
                    tx.execute(
                        "INSERT INTO storage_objects (collection, object_key, owner_id, value, \
                         version, read_perm, write_perm, updated_at) \
                         VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?7)",
                        params![
                            w.collection,
                            w.key,
                            w.caller,
                            value,
                            w.read_perm.as_str(),
                            w.write_perm.as_str(),
                            w.now_ms
                        ],
                    )?;
                    w.caller.clone()
                }
                WritePlan::Update {
                    owner,
                    version,
                    set_perms,
                } => {
                    if set_perms {
                        tx.execute(
                            "UPDATE storage_objects SET value = ?4, version = version + 1, \
                             read_perm = ?5, write_perm = ?6, updated_at = ?7 \
                             WHERE collection = ?1 AND object_key = ?2 AND owner_id = ?3 \
                             AND version = ?8",
                            params![
                                w.collection,
                                w.key,
                                owner,
                                value,
                                w.read_perm.as_str(),
                                w.write_perm.as_str(),
                                w.now_ms,
                                version
                            ],
                        )?;
                    } else {
                        tx.execute(
                            "UPDATE storage_objects SET value = ?4, version = version + 1, \
                             updated_at = ?5 \
                             WHERE collection = ?1 AND object_key = ?2 AND owner_id = ?3 \
                             AND version = ?6",
                            params![w.collection, w.key, owner, value, w.now_ms, version],
                        )?;
                    }
                    owner
                }
            };
            let stored = one_object(&tx, &w.collection, &w.key, &owner)?;
            tx.commit()?;
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
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let rows = player_rows(&tx, &collection, &key)?;
            let owner = match decide_delete(&rows, &caller, expected_version) {
                Ok(owner) => owner,
                Err(refusal) => return Ok(Err(refusal)),
            };
            tx.execute(
                "DELETE FROM storage_objects \
                 WHERE collection = ?1 AND object_key = ?2 AND owner_id = ?3",
                params![collection, key, owner],
            )?;
            tx.commit()?;
            Ok(Ok(()))
        })
    }

    fn list_objects(
        &self,
        collection: String,
        caller: String,
        limit: u32,
    ) -> Reply<'_, Vec<StoredObject>> {
        self.run(move |conn| {
            let sql = format!(
                "SELECT {OBJECT_COLUMNS} FROM storage_objects WHERE collection = ?1 \
                 AND owner_id <> '' AND (read_perm = 'public' \
                 OR (read_perm = 'owner' AND owner_id = ?2)) \
                 ORDER BY object_key, owner_id LIMIT ?3"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![collection, caller, limit])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(read_object_row(r)?);
            }
            Ok(out)
        })
    }

    fn server_object(
        &self,
        collection: String,
        key: String,
        owner: String,
    ) -> Reply<'_, Option<StoredObject>> {
        self.run(move |conn| one_object(conn, &collection, &key, &owner))
    }

    fn server_write_object(
        &self,
        collection: String,
        key: String,
        owner: String,
        value: Value,
        now_ms: i64,
    ) -> Reply<'_, StoredObject> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            tx.execute(
                "INSERT INTO storage_objects (collection, object_key, owner_id, value, version, \
                 read_perm, write_perm, updated_at) VALUES (?1, ?2, ?3, ?4, 1, 'owner', 'owner', ?5) \
                 ON CONFLICT (collection, object_key, owner_id) DO UPDATE SET \
                 value = excluded.value, version = storage_objects.version + 1, \
                 updated_at = excluded.updated_at",
                params![collection, key, owner, json_text(&value), now_ms],
            )?;
            let stored = one_object(&tx, &collection, &key, &owner)?;
            tx.commit()?;
            stored.ok_or_else(|| {
                Fail::Store(crate::StoreError::Backend("written object vanished".into()))
            })
        })
    }

    fn save_slots(&self, player_id: String) -> Reply<'_, Vec<SaveSlot>> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT slot, version, updated_at FROM cloud_saves WHERE player_id = ?1 \
                 ORDER BY slot",
            )?;
            let mut rows = stmt.query(params![player_id])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(SaveSlot {
                    slot: r.get(0)?,
                    version: r.get(1)?,
                    updated_at: r.get(2)?,
                });
            }
            Ok(out)
        })
    }

    fn cloud_save(&self, player_id: String, slot: String) -> Reply<'_, Option<CloudSave>> {
        self.run(move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT data, version, updated_at FROM cloud_saves \
                     WHERE player_id = ?1 AND slot = ?2",
                )?
                .query_row(params![player_id, slot], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .optional()?;
            match row {
                Some((data, version, updated_at)) => {
                    Ok(Some(save_of(player_id, slot, &data, version, updated_at)?))
                }
                None => Ok(None),
            }
        })
    }

    fn write_save(&self, w: SaveWrite) -> Reply<'_, Checked<CloudSave>> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let current: Option<i64> = tx
                .prepare_cached(
                    "SELECT version FROM cloud_saves WHERE player_id = ?1 AND slot = ?2",
                )?
                .query_row(params![w.player_id, w.slot], |r| r.get(0))
                .optional()?;
            let data = json_text(&w.data);
            let version = match current {
                Some(v) => {
                    if w.expected_version.is_some_and(|e| e != v) {
                        return Ok(Err(StorageRefusal::VersionConflict { current_version: v }));
                    }
                    tx.execute(
                        "UPDATE cloud_saves SET data = ?3, version = ?4, updated_at = ?5 \
                         WHERE player_id = ?1 AND slot = ?2",
                        params![w.player_id, w.slot, data, v + 1, w.now_ms],
                    )?;
                    v + 1
                }
                None => {
                    let used: i64 = tx
                        .prepare_cached("SELECT COUNT(*) FROM cloud_saves WHERE player_id = ?1")?
                        .query_row(params![w.player_id], |r| r.get(0))?;
                    if used >= i64::from(w.max_slots) {
                        return Ok(Err(StorageRefusal::SlotLimitReached));
                    }
                    tx.execute(
                        "INSERT INTO cloud_saves (player_id, slot, data, version, updated_at) \
                         VALUES (?1, ?2, ?3, 1, ?4)",
                        params![w.player_id, w.slot, data, w.now_ms],
                    )?;
                    1
                }
            };
            tx.commit()?;
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
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let fresh = tx.execute(
                "INSERT INTO player_stats_matches (match_id, recorded_at) VALUES (?1, ?2) \
                 ON CONFLICT DO NOTHING",
                params![m.match_id, m.now_ms],
            )?;
            if fresh == 0 {
                return Ok(false);
            }
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO player_stats (player_id, games_played, wins, losses, updated_at) \
                     VALUES (?1, 1, ?2, ?3, ?4) ON CONFLICT (player_id) DO UPDATE SET \
                     games_played = player_stats.games_played + 1, \
                     wins = player_stats.wins + excluded.wins, \
                     losses = player_stats.losses + excluded.losses, \
                     updated_at = excluded.updated_at",
                )?;
                for (player, won, lost) in &m.players {
                    stmt.execute(params![player, i64::from(*won), i64::from(*lost), m.now_ms])?;
                }
            }
            tx.commit()?;
            Ok(true)
        })
    }

    fn player_stats(&self, player_id: String) -> Reply<'_, Option<PlayerStats>> {
        self.run(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT games_played, wins, losses, updated_at FROM player_stats \
                     WHERE player_id = ?1",
                )?
                .query_row(params![player_id], |r| {
                    Ok(PlayerStats {
                        player_id: player_id.clone(),
                        games_played: r.get(0)?,
                        wins: r.get(1)?,
                        losses: r.get(2)?,
                        updated_at: r.get(3)?,
                    })
                })
                .optional()?)
        })
    }
}
