//! Accounts on SQLite. Every body runs on the connection thread (see `crate::sqlite`).

use rusqlite::{params, Connection, Row};

use super::{
    apply_patch, erased_username, new_player_row, upgraded, username_key, Accounts, GuestDevice,
    NewPlayer, NewRefreshToken, Player, PlayerPatch, RotateOutcome, Rotation, TokenState,
    PLAYER_COLUMNS,
};
use crate::backend::Reply;
use crate::error::parse_json_column;
use crate::sqlite::{write_tx, Fail, SqliteBackend};
use crate::StoreError;

pub(crate) fn read_player(r: &Row<'_>) -> Result<Player, Fail> {
    let metadata: String = r.get(4)?;
    Ok(Player {
        id: r.get(0)?,
        username: r.get(1)?,
        display_name: r.get(2)?,
        avatar_url: r.get(3)?,
        metadata: parse_json_column("metadata", &metadata)?,
        is_guest: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
        erased_at: r.get(8)?,
    })
}

fn load_player(conn: &Connection, id: &str) -> Result<Option<Player>, Fail> {
    let sql = format!("SELECT {PLAYER_COLUMNS} FROM players p WHERE p.id = ?1");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![id])?;
    rows.next()?.map(read_player).transpose()
}

pub(crate) fn insert_player(
    conn: &Connection,
    p: &NewPlayer,
    is_guest: bool,
) -> Result<Player, Fail> {
    conn.execute(
        "INSERT INTO players (id, username, username_lower, display_name, metadata, is_guest, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, '{}', ?5, ?6, ?6)",
        params![p.id, p.username, username_key(&p.username), p.display_name, is_guest, p.now_ms],
    )?;
    if let Some(hash) = &p.password_hash {
        conn.execute(
            "INSERT INTO player_credentials (player_id, password_hash, updated_at) VALUES (?1, ?2, ?3)",
            params![p.id, hash, p.now_ms],
        )?;
    }
    Ok(new_player_row(p, is_guest))
}

fn insert_token(
    conn: &Connection,
    t: &NewRefreshToken,
    player_id: &str,
    family_id: &str,
) -> Result<(), Fail> {
    conn.execute(
        "INSERT INTO refresh_tokens (token_hash, player_id, family_id, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![t.token_hash, player_id, family_id, t.expires_at_ms, t.now_ms],
    )?;
    Ok(())
}

impl Accounts for SqliteBackend {
    fn create_player(&self, p: NewPlayer) -> Reply<'_, Player> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let player = insert_player(&tx, &p, p.is_guest)?;
            tx.commit()?;
            Ok(player)
        })
    }

    fn player(&self, id: String) -> Reply<'_, Option<Player>> {
        self.run(move |conn| load_player(conn, &id))
    }

    fn player_by_username(&self, username: String) -> Reply<'_, Option<(Player, Option<String>)>> {
        self.run(move |conn| {
            let sql = format!(
                "SELECT {PLAYER_COLUMNS}, c.password_hash FROM players p \
                 LEFT JOIN player_credentials c ON c.player_id = p.id \
                 WHERE p.username_lower = ?1 AND p.erased_at IS NULL"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![username_key(&username)])?;
            match rows.next()? {
                Some(row) => Ok(Some((read_player(row)?, row.get(9)?))),
                None => Ok(None),
            }
        })
    }

    fn update_player(&self, id: String, patch: PlayerPatch) -> Reply<'_, Option<Player>> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let Some(current) = load_player(&tx, &id)? else { return Ok(None) };
            let player = apply_patch(current, patch)?;
            tx.execute(
                "UPDATE players SET display_name = ?2, avatar_url = ?3, metadata = ?4, updated_at = ?5 WHERE id = ?1",
                params![id, player.display_name, player.avatar_url, player.metadata.to_string(), player.updated_at],
            )?;
            tx.commit()?;
            Ok(Some(player))
        })
    }

    fn upgrade_guest(
        &self,
        id: String,
        username: String,
        hash: String,
        now_ms: i64,
    ) -> Reply<'_, Player> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let Some(current) = load_player(&tx, &id)? else { return Err(StoreError::NotFound.into()) };
            let player = upgraded(current, username, now_ms)?;
            tx.execute(
                "UPDATE players SET username = ?2, username_lower = ?3, is_guest = FALSE, updated_at = ?4 WHERE id = ?1",
                params![id, player.username, username_key(&player.username), now_ms],
            )?;
            tx.execute(
                "INSERT INTO player_credentials (player_id, password_hash, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (player_id) DO UPDATE SET password_hash = excluded.password_hash, updated_at = excluded.updated_at",
                params![id, hash, now_ms],
            )?;
            tx.execute("DELETE FROM guest_devices WHERE player_id = ?1", params![id])?;
            tx.commit()?;
            Ok(player)
        })
    }

    fn erase_player(&self, id: String, now_ms: i64) -> Reply<'_, ()> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let changed = tx.execute(
                "UPDATE players SET username = ?2, username_lower = NULL, display_name = NULL, avatar_url = NULL, \
                 metadata = '{}', erased_at = COALESCE(erased_at, ?3), updated_at = ?3 WHERE id = ?1",
                params![id, erased_username(&id), now_ms],
            )?;
            if changed == 0 {
                return Err(StoreError::NotFound.into());
            }
            tx.execute("DELETE FROM player_credentials WHERE player_id = ?1", params![id])?;
            tx.execute("DELETE FROM guest_devices WHERE player_id = ?1", params![id])?;
            tx.execute(
                "UPDATE refresh_tokens SET revoked_at = ?2 WHERE player_id = ?1 AND revoked_at IS NULL",
                params![id, now_ms],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn guest_device(&self, device_id: String) -> Reply<'_, Option<GuestDevice>> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT device_id, player_id, verifier, revoked FROM guest_devices WHERE device_id = ?1",
            )?;
            let mut rows = stmt.query(params![device_id])?;
            let Some(r) = rows.next()? else { return Ok(None) };
            Ok(Some(GuestDevice {
                device_id: r.get(0)?,
                player_id: r.get(1)?,
                verifier: r.get(2)?,
                revoked: r.get(3)?,
            }))
        })
    }

    fn create_guest(&self, p: NewPlayer, device_id: String, verifier: String) -> Reply<'_, Player> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let player = insert_player(&tx, &p, true)?;
            tx.execute(
                "INSERT INTO guest_devices (device_id, player_id, verifier, revoked, created_at) VALUES (?1, ?2, ?3, FALSE, ?4)",
                params![device_id, p.id, verifier, p.now_ms],
            )?;
            tx.commit()?;
            Ok(player)
        })
    }

    fn insert_refresh_token(&self, t: NewRefreshToken) -> Reply<'_, ()> {
        self.run(move |conn| insert_token(conn, &t, &t.player_id, &t.family_id))
    }

    fn rotate_refresh_token(
        &self,
        old_hash: String,
        new: NewRefreshToken,
        now_ms: i64,
    ) -> Reply<'_, RotateOutcome> {
        self.run(move |conn| {
            // IMMEDIATE (write_tx): two racing rotations of one token serialise here, and the
            // loser sees it used and revokes the family, which is exactly the reuse signal.
            let tx = write_tx(conn)?;
            let old = {
                let mut stmt = tx.prepare_cached(
                    "SELECT player_id, family_id, expires_at, used_at IS NOT NULL OR revoked_at IS NOT NULL \
                     FROM refresh_tokens WHERE token_hash = ?1",
                )?;
                let mut rows = stmt.query(params![old_hash])?;
                match rows.next()? {
                    None => None,
                    Some(r) => Some(TokenState {
                        player_id: r.get(0)?,
                        family_id: r.get(1)?,
                        expires_at: r.get(2)?,
                        spent: r.get(3)?,
                    }),
                }
            };
            let Some(old) = old else { return Ok(RotateOutcome::Unknown) };
            match old.decide(now_ms) {
                Rotation::Expired => Ok(RotateOutcome::Expired),
                Rotation::RevokeFamily => {
                    tx.execute(
                        "UPDATE refresh_tokens SET revoked_at = ?2 WHERE family_id = ?1 AND revoked_at IS NULL",
                        params![old.family_id, now_ms],
                    )?;
                    tx.commit()?;
                    Ok(RotateOutcome::Reused)
                }
                Rotation::Rotate => {
                    tx.execute("UPDATE refresh_tokens SET used_at = ?2 WHERE token_hash = ?1", params![old_hash, now_ms])?;
                    insert_token(&tx, &new, &old.player_id, &old.family_id)?;
                    tx.commit()?;
                    Ok(RotateOutcome::Rotated { player_id: old.player_id })
                }
            }
        })
    }

    fn revoke_refresh_family_of(&self, token_hash: String, now_ms: i64) -> Reply<'_, bool> {
        self.run(move |conn| {
            let changed = conn.execute(
                "UPDATE refresh_tokens SET revoked_at = ?2 WHERE revoked_at IS NULL AND family_id = \
                 (SELECT family_id FROM refresh_tokens WHERE token_hash = ?1)",
                params![token_hash, now_ms],
            )?;
            Ok(changed > 0)
        })
    }

    fn revoke_player_tokens(&self, player_id: String, now_ms: i64) -> Reply<'_, ()> {
        self.run(move |conn| {
            conn.execute(
                "UPDATE refresh_tokens SET revoked_at = ?2 WHERE player_id = ?1 AND revoked_at IS NULL",
                params![player_id, now_ms],
            )?;
            Ok(())
        })
    }
}
