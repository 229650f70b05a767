//! Reading players out of an asobi PostgreSQL database (its `players` and `player_identities`
//! tables, as asobi's kura migrations create them), for `asobi import`.
//!
//! Only what the import needs is read; times become unix milliseconds and UUIDs text. Guest
//! identities are not carried over (their verifiers are keyed by asobi's pepper map in a format
//! of its own); the players they belong to are reported as skipped.

use std::collections::HashMap;

use super::ImportedPlayer;
use crate::{StoreError, StoreOptions};

/// What was read from asobi.
#[derive(Debug, Default)]
pub struct AsobiExport {
    /// Players to create, with their password hashes and provider identities.
    pub players: Vec<ImportedPlayer>,
    /// Players left out, with why.
    pub skipped: Vec<(String, String)>,
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Reads every player of the asobi database at `url` (libpq URL; `sslmode` as for ours).
pub async fn read_asobi_players(url: &str) -> Result<AsobiExport, StoreError> {
    let (config, tls) = crate::pg_tls::parse(url, &StoreOptions::default())?;
    let (client, conn) = config
        .connect(tls.connector()?)
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot reach the asobi database: {e}")))?;
    let driver = tokio::spawn(conn);
    let ms = |col: &str| format!("(EXTRACT(EPOCH FROM {col}) * 1000)::BIGINT");
    let sql = format!(
        "SELECT id::text, username, display_name, avatar_url, hashed_password, \
         COALESCE(metadata::text, '{{}}'), {}, {}, {} FROM players ORDER BY inserted_at, id",
        ms("banned_at"),
        ms("inserted_at"),
        ms("updated_at")
    );
    let rows = client.query(&sql, &[]).await.map_err(pg)?;
    let mut identities: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for r in client
        .query(
            "SELECT player_id::text, provider, provider_uid FROM player_identities ORDER BY inserted_at",
            &[],
        )
        .await
        .map_err(pg)?
    {
        let player: String = r.try_get(0).map_err(pg)?;
        identities
            .entry(player)
            .or_default()
            .push((r.try_get(1).map_err(pg)?, r.try_get(2).map_err(pg)?));
    }
    let mut out = AsobiExport::default();
    for r in rows {
        let id: String = r.try_get(0).map_err(pg)?;
        let metadata: String = r.try_get(5).map_err(pg)?;
        let ids = identities.remove(&id).unwrap_or_default();
        let password_hash: Option<String> = r.try_get(4).map_err(pg)?;
        let (guest, linked): (Vec<_>, Vec<_>) = ids.into_iter().partition(|(p, _)| p == "guest");
        if password_hash.is_none() && linked.is_empty() {
            let why = if guest.is_empty() {
                "no password and no provider identity"
            } else {
                "guest (device verifiers are not carried over)"
            };
            out.skipped.push((id, why.to_owned()));
            continue;
        }
        out.players.push(ImportedPlayer {
            username: r.try_get(1).map_err(pg)?,
            display_name: r.try_get(2).map_err(pg)?,
            avatar_url: r.try_get(3).map_err(pg)?,
            metadata: serde_json::from_str(&metadata)
                .ok()
                .filter(serde_json::Value::is_object)
                .unwrap_or_else(|| serde_json::json!({})),
            password_hash,
            banned_at: r.try_get(6).map_err(pg)?,
            created_at: r.try_get(7).map_err(pg)?,
            updated_at: r.try_get(8).map_err(pg)?,
            identities: linked,
            id,
        });
    }
    drop(client);
    let _ = driver.await;
    Ok(out)
}
