//! Access control on PostgreSQL. Read-modify-write paths lock the player row (`FOR UPDATE`) so
//! concurrent calls serialise the way SQLite's single writer makes them.

use deadpool_postgres::GenericClient;

use super::{
    audit_id, last_method, Access, AccessSnapshot, EraseOutcome, ImportInsert, ImportValue,
    ImportedPlayer, Revocation, RevokedToken, SignInState, ERASE_STATEMENTS, IDLE_GUESTS,
    INSERT_AUDIT, STILL_IDLE, UPSERT_REVOCATION,
};
use crate::accounts::{NewPlayer, Player};
use crate::backend::Reply;
use crate::postgres::{op, Fail, PgBackend};
use crate::StoreError;

async fn audit(
    c: &impl GenericClient,
    player_id: &str,
    action: &str,
    actor: &str,
    now_ms: i64,
) -> Result<(), Fail> {
    c.execute(
        INSERT_AUDIT,
        &[&audit_id(), &player_id, &action, &actor, &"{}", &now_ms],
    )
    .await?;
    Ok(())
}

async fn revoke_all(
    c: &impl GenericClient,
    player_id: &str,
    not_before: i64,
    reason: &str,
) -> Result<(), Fail> {
    c.execute(UPSERT_REVOCATION, &[&player_id, &not_before, &reason])
        .await?;
    c.execute(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE player_id = $1 AND revoked_at IS NULL",
        &[&player_id, &not_before],
    )
    .await?;
    Ok(())
}

/// The sign-in state; `lock` takes the player row for the rest of the transaction.
async fn state(
    c: &impl GenericClient,
    player_id: &str,
    lock: bool,
) -> Result<Option<SignInState>, Fail> {
    let sql = format!(
        "SELECT banned_at, is_guest FROM players WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let Some(row) = c.query_opt(&sql, &[&player_id]).await? else {
        return Ok(None);
    };
    let password_hash: Option<String> = c
        .query_opt(
            "SELECT password_hash FROM player_credentials WHERE player_id = $1",
            &[&player_id],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    let providers = c
        .query(
            "SELECT provider FROM player_identities WHERE player_id = $1 ORDER BY provider",
            &[&player_id],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<Vec<String>, _>>()?;
    Ok(Some(SignInState {
        banned_at: row.try_get(0)?,
        password_hash,
        providers,
        is_guest: row.try_get(1)?,
    }))
}

impl Access for PgBackend {
    fn access_snapshot(&self, since_ms: i64) -> Reply<'_, AccessSnapshot> {
        op(async move {
            let c = self.client().await?;
            let players = c
                .query(
                    "SELECT player_id, not_before FROM access_revocations WHERE not_before > $1",
                    &[&since_ms],
                )
                .await?
                .iter()
                .map(|r| {
                    Ok(Revocation {
                        player_id: r.try_get(0)?,
                        not_before_ms: r.try_get(1)?,
                    })
                })
                .collect::<Result<_, tokio_postgres::Error>>()?;
            let tokens = c
                .query(
                    "SELECT token_id, player_id, expires_at FROM revoked_access_tokens WHERE expires_at > $1",
                    &[&since_ms],
                )
                .await?
                .iter()
                .map(|r| {
                    Ok(RevokedToken {
                        token_id: r.try_get(0)?,
                        player_id: r.try_get(1)?,
                        expires_at_ms: r.try_get(2)?,
                    })
                })
                .collect::<Result<_, tokio_postgres::Error>>()?;
            Ok(AccessSnapshot { players, tokens })
        })
    }

    fn revoke_player_access(
        &self,
        player_id: String,
        not_before_ms: i64,
        reason: String,
        actor: String,
    ) -> Reply<'_, ()> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            revoke_all(&tx, &player_id, not_before_ms, &reason).await?;
            audit(&tx, &player_id, &reason, &actor, not_before_ms).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn revoke_access_token(&self, t: RevokedToken, now_ms: i64) -> Reply<'_, ()> {
        op(async move {
            let c = self.client().await?;
            c.execute(
                "INSERT INTO revoked_access_tokens (token_id, player_id, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (token_id) DO NOTHING",
                &[&t.token_id, &t.player_id, &t.expires_at_ms],
            )
            .await?;
            // Rows past their expiry protect nothing; each logout sweeps a few.
            c.execute(
                "DELETE FROM revoked_access_tokens WHERE token_id IN \
                 (SELECT token_id FROM revoked_access_tokens WHERE expires_at < $1 LIMIT 64)",
                &[&now_ms],
            )
            .await?;
            Ok(())
        })
    }

    fn set_ban(
        &self,
        player_id: String,
        banned: bool,
        actor: String,
        now_ms: i64,
    ) -> Reply<'_, ()> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let at = banned.then_some(now_ms);
            let changed = tx
                .execute(
                    "UPDATE players SET banned_at = $2, updated_at = $3 WHERE id = $1",
                    &[&player_id, &at, &now_ms],
                )
                .await?;
            if changed == 0 {
                return Err(StoreError::NotFound.into());
            }
            if banned {
                revoke_all(&tx, &player_id, now_ms, "banned").await?;
            }
            audit(
                &tx,
                &player_id,
                if banned { "ban" } else { "unban" },
                &actor,
                now_ms,
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn sign_in_state(&self, player_id: String) -> Reply<'_, Option<SignInState>> {
        op(async move {
            let c = self.client().await?;
            state(&c, &player_id, false).await
        })
    }

    fn replace_password(
        &self,
        player_id: String,
        expected: Option<String>,
        new_hash: String,
        now_ms: i64,
    ) -> Reply<'_, bool> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let Some(st) = state(&tx, &player_id, true).await? else {
                return Err(StoreError::NotFound.into());
            };
            if st.password_hash != expected {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO player_credentials (player_id, password_hash, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (player_id) DO UPDATE SET password_hash = excluded.password_hash, updated_at = excluded.updated_at",
                &[&player_id, &new_hash, &now_ms],
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn identity_player(&self, provider: String, uid: String) -> Reply<'_, Option<String>> {
        op(async move {
            let c = self.client().await?;
            Ok(c.query_opt(
                "SELECT player_id FROM player_identities WHERE provider = $1 AND provider_uid = $2",
                &[&provider, &uid],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()?)
        })
    }

    fn create_identity_player(
        &self,
        p: NewPlayer,
        provider: String,
        uid: String,
    ) -> Reply<'_, Player> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let player = crate::accounts::pg_insert_player(&tx, &p, false).await?;
            tx.execute(
                "INSERT INTO player_identities (provider, provider_uid, player_id, created_at) VALUES ($1, $2, $3, $4)",
                &[&provider, &uid, &p.id, &p.now_ms],
            )
            .await?;
            tx.commit().await?;
            Ok(player)
        })
    }

    fn link_identity(
        &self,
        player_id: String,
        provider: String,
        uid: String,
        now_ms: i64,
    ) -> Reply<'_, ()> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            if state(&tx, &player_id, true).await?.is_none() {
                return Err(StoreError::NotFound.into());
            }
            let owner: Option<String> = tx
                .query_opt(
                    "SELECT player_id FROM player_identities WHERE provider = $1 AND provider_uid = $2",
                    &[&provider, &uid],
                )
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
            match owner {
                Some(o) if o == player_id => return Ok(()),
                Some(_) => {
                    return Err(
                        StoreError::Conflict("identity linked to another player".into()).into(),
                    )
                }
                None => {}
            }
            tx.execute(
                "INSERT INTO player_identities (provider, provider_uid, player_id, created_at) VALUES ($1, $2, $3, $4)",
                &[&provider, &uid, &player_id, &now_ms],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn unlink_identity(&self, player_id: String, provider: String) -> Reply<'_, ()> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let Some(st) = state(&tx, &player_id, true).await? else {
                return Err(StoreError::NotFound.into());
            };
            if !st.providers.contains(&provider) {
                return Err(StoreError::NotFound.into());
            }
            if last_method(&st, &provider) {
                return Err(StoreError::Precondition("last sign-in method".into()).into());
            }
            tx.execute(
                "DELETE FROM player_identities WHERE player_id = $1 AND provider = $2",
                &[&player_id, &provider],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn spend_steam_ticket(&self, ticket_hash: String, now_ms: i64) -> Reply<'_, bool> {
        op(async move {
            let c = self.client().await?;
            let n = c
                .execute(
                    "INSERT INTO spent_steam_tickets (ticket_hash, spent_at) VALUES ($1, $2) ON CONFLICT (ticket_hash) DO NOTHING",
                    &[&ticket_hash, &now_ms],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn erase_account(
        &self,
        player_id: String,
        expected_hash: Option<String>,
        actor: String,
        now_ms: i64,
    ) -> Reply<'_, EraseOutcome> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let Some(st) = state(&tx, &player_id, true).await? else {
                return Ok(EraseOutcome::NotFound);
            };
            if expected_hash.is_some() && st.password_hash != expected_hash {
                return Ok(EraseOutcome::CredentialsChanged);
            }
            for sql in ERASE_STATEMENTS {
                tx.execute(*sql, &[&player_id]).await?;
            }
            tx.execute(UPSERT_REVOCATION, &[&player_id, &now_ms, &"erased"])
                .await?;
            audit(&tx, &player_id, "erase", &actor, now_ms).await?;
            tx.commit().await?;
            Ok(EraseOutcome::Erased)
        })
    }

    fn count_guests(&self) -> Reply<'_, i64> {
        op(async move {
            let c = self.client().await?;
            let row = c
                .query_one("SELECT COUNT(*) FROM players WHERE is_guest", &[])
                .await?;
            Ok(row.try_get(0)?)
        })
    }

    fn touch_guest(&self, device_id: String, now_ms: i64) -> Reply<'_, ()> {
        op(async move {
            let c = self.client().await?;
            c.execute(
                "UPDATE guest_devices SET last_seen = $2 WHERE device_id = $1",
                &[&device_id, &now_ms],
            )
            .await?;
            Ok(())
        })
    }

    fn idle_guests(&self, seen_before_ms: i64, limit: i64) -> Reply<'_, Vec<String>> {
        op(async move {
            let c = self.client().await?;
            let rows = c.query(IDLE_GUESTS, &[&seen_before_ms, &limit]).await?;
            Ok(rows
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<Vec<String>, _>>()?)
        })
    }

    fn reap_guest(&self, player_id: String, seen_before_ms: i64, now_ms: i64) -> Reply<'_, bool> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            if state(&tx, &player_id, true).await?.is_none() {
                return Ok(false);
            }
            let idle: i64 = tx
                .query_one(STILL_IDLE, &[&player_id, &seen_before_ms])
                .await?
                .try_get(0)?;
            if idle == 0 {
                return Ok(false);
            }
            for sql in ERASE_STATEMENTS {
                tx.execute(*sql, &[&player_id]).await?;
            }
            tx.execute(UPSERT_REVOCATION, &[&player_id, &now_ms, &"reaped"])
                .await?;
            audit(&tx, &player_id, "reap", "reaper", now_ms).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn import_player(&self, p: ImportedPlayer) -> Reply<'_, bool> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let metadata = p.metadata.to_string();
            let n = tx
                .execute(
                    "INSERT INTO players (id, username, username_lower, display_name, avatar_url, metadata, is_guest, created_at, updated_at, banned_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $10, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
                    &[
                        &p.id,
                        &p.username,
                        &p.username.to_lowercase(),
                        &p.display_name,
                        &p.avatar_url,
                        &metadata,
                        &p.created_at,
                        &p.updated_at,
                        &p.banned_at,
                        &p.is_guest,
                    ],
                )
                .await?;
            if n == 0 {
                return Ok(false);
            }
            if let Some(hash) = &p.password_hash {
                tx.execute(
                    "INSERT INTO player_credentials (player_id, password_hash, updated_at) VALUES ($1, $2, $3)",
                    &[&p.id, hash, &p.updated_at],
                )
                .await?;
            }
            for (provider, uid) in &p.identities {
                tx.execute(
                    "INSERT INTO player_identities (provider, provider_uid, player_id, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT DO NOTHING",
                    &[provider, uid, &p.id, &p.created_at],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    fn import_rows(&self, rows: Vec<ImportInsert>) -> Reply<'_, Vec<bool>> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let mut written = Vec::with_capacity(rows.len());
            for row in &rows {
                if row
                    .only_if
                    .is_some_and(|i| !written.get(i).copied().unwrap_or(false))
                {
                    written.push(false);
                    continue;
                }
                let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = row
                    .values
                    .iter()
                    .map(|v| -> &(dyn tokio_postgres::types::ToSql + Sync) {
                        match v {
                            ImportValue::Text(t) => t,
                            ImportValue::Int(i) => i,
                            ImportValue::Bool(b) => b,
                        }
                    })
                    .collect();
                let n = tx.execute(row.sql, &params).await?;
                written.push(n > 0);
            }
            tx.commit().await?;
            Ok(written)
        })
    }
}
