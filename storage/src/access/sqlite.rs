//! Access control on SQLite. Every body runs on the connection thread (see `crate::sqlite`).

use rusqlite::{params, Connection, OptionalExtension};

use super::{
    audit_id, last_method, Access, AccessSnapshot, EraseOutcome, ImportInsert, ImportValue,
    ImportedPlayer, Revocation, RevokedToken, SignInState, ERASE_STATEMENTS, IDLE_GUESTS,
    INSERT_AUDIT, STILL_IDLE, UPSERT_REVOCATION,
};
use crate::accounts::{NewPlayer, Player};
use crate::backend::Reply;
use crate::sqlite::{write_tx, Fail, SqliteBackend};
use crate::StoreError;

/// The shared statements number their parameters `$n` (PostgreSQL's style). SQLite reads `$n`
/// as a *named* parameter numbered by first appearance, so they are rewritten to `?n`.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

fn audit(
    conn: &Connection,
    player_id: &str,
    action: &str,
    actor: &str,
    now_ms: i64,
) -> Result<(), Fail> {
    conn.execute(
        &numbered(INSERT_AUDIT),
        params![audit_id(), player_id, action, actor, "{}", now_ms],
    )?;
    Ok(())
}

fn revoke_all(
    conn: &Connection,
    player_id: &str,
    not_before: i64,
    reason: &str,
) -> Result<(), Fail> {
    conn.execute(
        &numbered(UPSERT_REVOCATION),
        params![player_id, not_before, reason],
    )?;
    conn.execute(
        "UPDATE refresh_tokens SET revoked_at = ?2 WHERE player_id = ?1 AND revoked_at IS NULL",
        params![player_id, not_before],
    )?;
    Ok(())
}

fn state(conn: &Connection, player_id: &str) -> Result<Option<SignInState>, Fail> {
    let row: Option<(Option<i64>, bool)> = conn
        .query_row(
            "SELECT banned_at, is_guest FROM players WHERE id = ?1",
            params![player_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((banned_at, is_guest)) = row else {
        return Ok(None);
    };
    let password_hash: Option<String> = conn
        .query_row(
            "SELECT password_hash FROM player_credentials WHERE player_id = ?1",
            params![player_id],
            |r| r.get(0),
        )
        .optional()?;
    let mut stmt = conn.prepare_cached(
        "SELECT provider FROM player_identities WHERE player_id = ?1 ORDER BY provider",
    )?;
    let providers = stmt
        .query_map(params![player_id], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(Some(SignInState {
        banned_at,
        password_hash,
        providers,
        is_guest,
    }))
}

impl Access for SqliteBackend {
    fn access_snapshot(&self, since_ms: i64) -> Reply<'_, AccessSnapshot> {
        self.run(move |conn| {
            let mut snap = AccessSnapshot::default();
            let mut stmt = conn.prepare_cached(
                "SELECT player_id, not_before FROM access_revocations WHERE not_before > ?1",
            )?;
            snap.players = stmt
                .query_map(params![since_ms], |r| {
                    Ok(Revocation {
                        player_id: r.get(0)?,
                        not_before_ms: r.get(1)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let mut stmt = conn.prepare_cached(
                "SELECT token_id, player_id, expires_at FROM revoked_access_tokens WHERE expires_at > ?1",
            )?;
            snap.tokens = stmt
                .query_map(params![since_ms], |r| {
                    Ok(RevokedToken {
                        token_id: r.get(0)?,
                        player_id: r.get(1)?,
                        expires_at_ms: r.get(2)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(snap)
        })
    }

    fn revoke_player_access(
        &self,
        player_id: String,
        not_before_ms: i64,
        reason: String,
        actor: String,
    ) -> Reply<'_, ()> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            revoke_all(&tx, &player_id, not_before_ms, &reason)?;
            audit(&tx, &player_id, &reason, &actor, not_before_ms)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn revoke_access_token(&self, t: RevokedToken, now_ms: i64) -> Reply<'_, ()> {
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO revoked_access_tokens (token_id, player_id, expires_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (token_id) DO NOTHING",
                params![t.token_id, t.player_id, t.expires_at_ms],
            )?;
            // Rows past their expiry protect nothing; each logout sweeps a few.
            conn.execute(
                "DELETE FROM revoked_access_tokens WHERE token_id IN \
                 (SELECT token_id FROM revoked_access_tokens WHERE expires_at < ?1 LIMIT 64)",
                params![now_ms],
            )?;
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
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let at = banned.then_some(now_ms);
            let changed = tx.execute(
                "UPDATE players SET banned_at = ?2, updated_at = ?3 WHERE id = ?1",
                params![player_id, at, now_ms],
            )?;
            if changed == 0 {
                return Err(StoreError::NotFound.into());
            }
            if banned {
                revoke_all(&tx, &player_id, now_ms, "banned")?;
            }
            audit(
                &tx,
                &player_id,
                if banned { "ban" } else { "unban" },
                &actor,
                now_ms,
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn sign_in_state(&self, player_id: String) -> Reply<'_, Option<SignInState>> {
        self.run(move |conn| state(conn, &player_id))
    }

    fn replace_password(
        &self,
        player_id: String,
        expected: Option<String>,
        new_hash: String,
        now_ms: i64,
    ) -> Reply<'_, bool> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let Some(st) = state(&tx, &player_id)? else {
                return Err(StoreError::NotFound.into());
            };
            if st.password_hash != expected {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO player_credentials (player_id, password_hash, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (player_id) DO UPDATE SET password_hash = excluded.password_hash, updated_at = excluded.updated_at",
                params![player_id, new_hash, now_ms],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn identity_player(&self, provider: String, uid: String) -> Reply<'_, Option<String>> {
        self.run(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT player_id FROM player_identities WHERE provider = ?1 AND provider_uid = ?2",
                    params![provider, uid],
                    |r| r.get(0),
                )
                .optional()?)
        })
    }

    fn create_identity_player(
        &self,
        p: NewPlayer,
        provider: String,
        uid: String,
    ) -> Reply<'_, Player> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let player = crate::accounts::sqlite_insert_player(&tx, &p, false)?;
            tx.execute(
                "INSERT INTO player_identities (provider, provider_uid, player_id, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![provider, uid, p.id, p.now_ms],
            )?;
            tx.commit()?;
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
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let owner: Option<String> = tx
                .query_row(
                    "SELECT player_id FROM player_identities WHERE provider = ?1 AND provider_uid = ?2",
                    params![provider, uid],
                    |r| r.get(0),
                )
                .optional()?;
            match owner {
                Some(o) if o == player_id => return Ok(()),
                Some(_) => return Err(StoreError::Conflict("identity linked to another player".into()).into()),
                None => {}
            }
            tx.execute(
                "INSERT INTO player_identities (provider, provider_uid, player_id, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![provider, uid, player_id, now_ms],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn unlink_identity(&self, player_id: String, provider: String) -> Reply<'_, ()> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let Some(st) = state(&tx, &player_id)? else {
                return Err(StoreError::NotFound.into());
            };
            if !st.providers.contains(&provider) {
                return Err(StoreError::NotFound.into());
            }
            if last_method(&st, &provider) {
                return Err(StoreError::Precondition("last sign-in method".into()).into());
            }
            tx.execute(
                "DELETE FROM player_identities WHERE player_id = ?1 AND provider = ?2",
                params![player_id, provider],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn spend_steam_ticket(&self, ticket_hash: String, now_ms: i64) -> Reply<'_, bool> {
        self.run(move |conn| {
            let n = conn.execute(
                "INSERT INTO spent_steam_tickets (ticket_hash, spent_at) VALUES (?1, ?2) ON CONFLICT (ticket_hash) DO NOTHING",
                params![ticket_hash, now_ms],
            )?;
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
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let Some(st) = state(&tx, &player_id)? else {
                return Ok(EraseOutcome::NotFound);
            };
            if expected_hash.is_some() && st.password_hash != expected_hash {
                return Ok(EraseOutcome::CredentialsChanged);
            }
            for sql in ERASE_STATEMENTS {
                tx.execute(&numbered(sql), params![player_id])?;
            }
            tx.execute(
                &numbered(UPSERT_REVOCATION),
                params![player_id, now_ms, "erased"],
            )?;
            audit(&tx, &player_id, "erase", &actor, now_ms)?;
            tx.commit()?;
            Ok(EraseOutcome::Erased)
        })
    }

    fn count_guests(&self) -> Reply<'_, i64> {
        self.run(|conn| {
            Ok(
                conn.query_row("SELECT COUNT(*) FROM players WHERE is_guest", [], |r| {
                    r.get(0)
                })?,
            )
        })
    }

    fn touch_guest(&self, device_id: String, now_ms: i64) -> Reply<'_, ()> {
        self.run(move |conn| {
            conn.execute(
                "UPDATE guest_devices SET last_seen = ?2 WHERE device_id = ?1",
                params![device_id, now_ms],
            )?;
            Ok(())
        })
    }

    fn idle_guests(&self, seen_before_ms: i64, limit: i64) -> Reply<'_, Vec<String>> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(&numbered(IDLE_GUESTS))?;
            let ids = stmt
                .query_map(params![seen_before_ms, limit], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(ids)
        })
    }

    fn reap_guest(&self, player_id: String, seen_before_ms: i64, now_ms: i64) -> Reply<'_, bool> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let idle: i64 = tx.query_row(
                &numbered(STILL_IDLE),
                params![player_id, seen_before_ms],
                |r| r.get(0),
            )?;
            if idle == 0 {
                return Ok(false);
            }
            for sql in ERASE_STATEMENTS {
                tx.execute(&numbered(sql), params![player_id])?;
            }
            tx.execute(
                &numbered(UPSERT_REVOCATION),
                params![player_id, now_ms, "reaped"],
            )?;
            audit(&tx, &player_id, "reap", "reaper", now_ms)?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn import_player(&self, p: ImportedPlayer) -> Reply<'_, bool> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let metadata = p.metadata.to_string();
            let n = tx.execute(
                "INSERT INTO players (id, username, username_lower, display_name, avatar_url, metadata, is_guest, created_at, updated_at, banned_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?10, ?7, ?8, ?9) ON CONFLICT (id) DO NOTHING",
                params![
                    p.id,
                    p.username,
                    p.username.to_lowercase(),
                    p.display_name,
                    p.avatar_url,
                    metadata,
                    p.created_at,
                    p.updated_at,
                    p.banned_at,
                    p.is_guest
                ],
            )?;
            if n == 0 {
                return Ok(false);
            }
            if let Some(hash) = &p.password_hash {
                tx.execute(
                    "INSERT INTO player_credentials (player_id, password_hash, updated_at) VALUES (?1, ?2, ?3)",
                    params![p.id, hash, p.updated_at],
                )?;
            }
            for (provider, uid) in &p.identities {
                tx.execute(
                    "INSERT INTO player_identities (provider, provider_uid, player_id, created_at) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT DO NOTHING",
                    params![provider, uid, p.id, p.created_at],
                )?;
            }
            tx.commit()?;
            Ok(true)
        })
    }

    fn import_rows(&self, rows: Vec<ImportInsert>) -> Reply<'_, Vec<bool>> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let mut written = Vec::with_capacity(rows.len());
            for row in &rows {
                if row
                    .only_if
                    .is_some_and(|i| !written.get(i).copied().unwrap_or(false))
                {
                    written.push(false);
                    continue;
                }
                let values: Vec<rusqlite::types::Value> = row
                    .values
                    .iter()
                    .map(|v| match v {
                        ImportValue::Text(t) => t
                            .clone()
                            .map_or(rusqlite::types::Value::Null, rusqlite::types::Value::Text),
                        ImportValue::Int(i) => i.map_or(
                            rusqlite::types::Value::Null,
                            rusqlite::types::Value::Integer,
                        ),
                        ImportValue::Bool(b) => rusqlite::types::Value::Integer(i64::from(*b)),
                    })
                    .collect();
                let n = tx.execute(&numbered(row.sql), rusqlite::params_from_iter(values))?;
                written.push(n > 0);
            }
            tx.commit()?;
            Ok(written)
        })
    }
}
