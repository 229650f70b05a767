//! Accounts on PostgreSQL. Read-modify-write paths lock the row (`FOR UPDATE`) so concurrent
//! calls serialise the way SQLite's single writer makes them.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{
    apply_patch, erased_username, new_player_row, upgraded, username_key, Accounts, GuestDevice,
    NewPlayer, NewRefreshToken, Player, PlayerPatch, RotateOutcome, Rotation, TokenState,
    PLAYER_COLUMNS,
};
use crate::backend::Reply;
use crate::error::parse_json_column;
use crate::postgres::{op, Fail, PgBackend};
use crate::StoreError;

pub(crate) fn read_player(r: &Row) -> Result<Player, Fail> {
    let metadata: String = r.try_get(4)?;
    Ok(Player {
        id: r.try_get(0)?,
        username: r.try_get(1)?,
        display_name: r.try_get(2)?,
        avatar_url: r.try_get(3)?,
        metadata: parse_json_column("metadata", &metadata)?,
        is_guest: r.try_get(5)?,
        created_at: r.try_get(6)?,
        updated_at: r.try_get(7)?,
        erased_at: r.try_get(8)?,
    })
}

/// Loads a player; `lock` adds FOR UPDATE so a read-modify-write cannot interleave.
async fn load_player(c: &impl GenericClient, id: &str, lock: bool) -> Result<Option<Player>, Fail> {
    let sql = format!(
        "SELECT {PLAYER_COLUMNS} FROM players p WHERE p.id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let stmt = c.prepare_cached(&sql).await?;
    c.query_opt(&stmt, &[&id])
        .await?
        .as_ref()
        .map(read_player)
        .transpose()
}

pub(crate) async fn insert_player(
    c: &impl GenericClient,
    p: &NewPlayer,
    is_guest: bool,
) -> Result<Player, Fail> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO players (id, username, username_lower, display_name, metadata, is_guest, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, '{}', $5, $6, $6)",
        )
        .await?;
    let key = username_key(&p.username);
    c.execute(
        &stmt,
        &[
            &p.id,
            &p.username,
            &key,
            &p.display_name,
            &is_guest,
            &p.now_ms,
        ],
    )
    .await?;
    if let Some(hash) = &p.password_hash {
        c.execute(
            "INSERT INTO player_credentials (player_id, password_hash, updated_at) VALUES ($1, $2, $3)",
            &[&p.id, hash, &p.now_ms],
        )
        .await?;
    }
    Ok(new_player_row(p, is_guest))
}

async fn insert_token(
    c: &impl GenericClient,
    t: &NewRefreshToken,
    player_id: &str,
    family_id: &str,
) -> Result<(), Fail> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO refresh_tokens (token_hash, player_id, family_id, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .await?;
    c.execute(
        &stmt,
        &[
            &t.token_hash,
            &player_id,
            &family_id,
            &t.expires_at_ms,
            &t.now_ms,
        ],
    )
    .await?;
    Ok(())
}

impl Accounts for PgBackend {
    fn create_player(&self, p: NewPlayer) -> Reply<'_, Player> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let player = insert_player(&tx, &p, p.is_guest).await?;
            tx.commit().await?;
            Ok(player)
        })
    }

    fn player(&self, id: String) -> Reply<'_, Option<Player>> {
        op(async move { load_player(&self.client().await?, &id, false).await })
    }

    fn player_by_username(&self, username: String) -> Reply<'_, Option<(Player, Option<String>)>> {
        op(async move {
            let client = self.client().await?;
            let sql = format!(
                "SELECT {PLAYER_COLUMNS}, c.password_hash FROM players p \
                 LEFT JOIN player_credentials c ON c.player_id = p.id \
                 WHERE p.username_lower = $1 AND p.erased_at IS NULL"
            );
            let stmt = client.prepare_cached(&sql).await?;
            match client.query_opt(&stmt, &[&username_key(&username)]).await? {
                Some(row) => Ok(Some((read_player(&row)?, row.try_get(9)?))),
                None => Ok(None),
            }
        })
    }

    fn update_player(&self, id: String, patch: PlayerPatch) -> Reply<'_, Option<Player>> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let Some(current) = load_player(&tx, &id, true).await? else {
                return Ok(None);
            };
            let player = apply_patch(current, patch)?;
            tx.execute(
                "UPDATE players SET display_name = $2, avatar_url = $3, metadata = $4, updated_at = $5 WHERE id = $1",
                &[&id, &player.display_name, &player.avatar_url, &player.metadata.to_string(), &player.updated_at],
            )
            .await?;
            tx.commit().await?;
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
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let Some(current) = load_player(&tx, &id, true).await? else {
                return Err(StoreError::NotFound.into());
            };
            let player = upgraded(current, username, now_ms)?;
            tx.execute(
                "UPDATE players SET username = $2, username_lower = $3, is_guest = FALSE, updated_at = $4 WHERE id = $1",
                &[&id, &player.username, &username_key(&player.username), &now_ms],
            )
            .await?;
            tx.execute(
                "INSERT INTO player_credentials (player_id, password_hash, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (player_id) DO UPDATE SET password_hash = excluded.password_hash, updated_at = excluded.updated_at",
                &[&id, &hash, &now_ms],
            )
            .await?;
            tx.execute("DELETE FROM guest_devices WHERE player_id = $1", &[&id])
                .await?;
            tx.commit().await?;
            Ok(player)
        })
    }

    fn erase_player(&self, id: String, now_ms: i64) -> Reply<'_, ()> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let changed = tx
                .execute(
                    "UPDATE players SET username = $2, username_lower = NULL, display_name = NULL, avatar_url = NULL, \
                     metadata = '{}', erased_at = COALESCE(erased_at, $3), updated_at = $3 WHERE id = $1",
                    &[&id, &erased_username(&id), &now_ms],
                )
                .await?;
            if changed == 0 {
                return Err(StoreError::NotFound.into());
            }
            tx.execute(
                "DELETE FROM player_credentials WHERE player_id = $1",
                &[&id],
            )
            .await?;
            tx.execute("DELETE FROM guest_devices WHERE player_id = $1", &[&id])
                .await?;
            tx.execute(
                "UPDATE refresh_tokens SET revoked_at = $2 WHERE player_id = $1 AND revoked_at IS NULL",
                &[&id, &now_ms],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn guest_device(&self, device_id: String) -> Reply<'_, Option<GuestDevice>> {
        op(async move {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT device_id, player_id, verifier, revoked FROM guest_devices WHERE device_id = $1",
                )
                .await?;
            let Some(r) = client.query_opt(&stmt, &[&device_id]).await? else {
                return Ok(None);
            };
            Ok(Some(GuestDevice {
                device_id: r.try_get(0)?,
                player_id: r.try_get(1)?,
                verifier: r.try_get(2)?,
                revoked: r.try_get(3)?,
            }))
        })
    }

    fn create_guest(&self, p: NewPlayer, device_id: String, verifier: String) -> Reply<'_, Player> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let player = insert_player(&tx, &p, true).await?;
            tx.execute(
                "INSERT INTO guest_devices (device_id, player_id, verifier, revoked, created_at) VALUES ($1, $2, $3, FALSE, $4)",
                &[&device_id, &p.id, &verifier, &p.now_ms],
            )
            .await?;
            tx.commit().await?;
            Ok(player)
        })
    }

    fn insert_refresh_token(&self, t: NewRefreshToken) -> Reply<'_, ()> {
        op(async move { insert_token(&self.client().await?, &t, &t.player_id, &t.family_id).await })
    }

    fn rotate_refresh_token(
        &self,
        old_hash: String,
        new: NewRefreshToken,
        now_ms: i64,
    ) -> Reply<'_, RotateOutcome> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // FOR UPDATE: two racing rotations of one token serialise here, and the loser sees
            // it used and revokes the family, which is exactly the reuse signal we want.
            let row = tx
                .query_opt(
                    "SELECT player_id, family_id, expires_at, used_at IS NOT NULL OR revoked_at IS NOT NULL \
                     FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
                    &[&old_hash],
                )
                .await?;
            let Some(row) = row else {
                return Ok(RotateOutcome::Unknown);
            };
            let old = TokenState {
                player_id: row.try_get(0)?,
                family_id: row.try_get(1)?,
                expires_at: row.try_get(2)?,
                spent: row.try_get(3)?,
            };
            match old.decide(now_ms) {
                Rotation::Expired => Ok(RotateOutcome::Expired),
                Rotation::RevokeFamily => {
                    tx.execute(
                        "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
                        &[&old.family_id, &now_ms],
                    )
                    .await?;
                    tx.commit().await?;
                    Ok(RotateOutcome::Reused)
                }
                Rotation::Rotate => {
                    tx.execute(
                        "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1",
                        &[&old_hash, &now_ms],
                    )
                    .await?;
                    insert_token(&tx, &new, &old.player_id, &old.family_id).await?;
                    tx.commit().await?;
                    Ok(RotateOutcome::Rotated {
                        player_id: old.player_id,
                    })
                }
            }
        })
    }

    fn revoke_refresh_family_of(&self, token_hash: String, now_ms: i64) -> Reply<'_, bool> {
        op(async move {
            let changed = self
                .client()
                .await?
                .execute(
                    "UPDATE refresh_tokens SET revoked_at = $2 WHERE revoked_at IS NULL AND family_id = \
                     (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)",
                    &[&token_hash, &now_ms],
                )
                .await?;
            Ok(changed > 0)
        })
    }

    fn revoke_player_tokens(&self, player_id: String, now_ms: i64) -> Reply<'_, ()> {
        op(async move {
            self.client()
                .await?
                .execute(
                    "UPDATE refresh_tokens SET revoked_at = $2 WHERE player_id = $1 AND revoked_at IS NULL",
                    &[&player_id, &now_ms],
                )
                .await?;
            Ok(())
        })
    }
}
