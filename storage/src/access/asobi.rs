//! Reading an asobi PostgreSQL database (the tables asobi's kura migrations create), for
//! `asobi import`: players and their identities, guest devices, wallets and their ledgers,
//! inventories, leaderboard entries, friendships, groups and memberships, cloud saves, storage
//! objects and match stats.
//!
//! Times become unix milliseconds and UUIDs text. Every other row becomes an [`ImportInsert`]
//! that never overwrites a row already here, grouped per player (one transaction each) plus one
//! batch of rows that belong to no player (groups, global storage objects).

use std::collections::{HashMap, HashSet};

use super::{ImportInsert, ImportValue, ImportedPlayer};
use crate::{StoreError, StoreOptions};

/// What was read from asobi.
#[derive(Debug, Default)]
pub struct AsobiExport {
    /// Players to create, with their password hashes and provider identities.
    pub players: Vec<ImportedPlayer>,
    /// Players left out, with why.
    pub skipped: Vec<(String, String)>,
    /// Each player's other rows, keyed by player id; written in one transaction per player.
    pub rows: HashMap<String, Vec<ImportInsert>>,
    /// Rows that belong to no player (groups, global storage objects); one transaction.
    pub shared: Vec<ImportInsert>,
    /// Rows that cannot be carried over, as (what, why).
    pub unmapped: Vec<(String, String)>,
}

/// `col` (a kura `utc_datetime`) as unix milliseconds.
fn ms(col: &str) -> String {
    format!("(EXTRACT(EPOCH FROM {col}) * 1000)::BIGINT")
}

/// Reads a query's rows as import values: BIGINT columns as integers, BOOLEAN as booleans,
/// everything else (cast to text by the query) as text.
async fn values(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<Vec<Vec<ImportValue>>, StoreError> {
    use tokio_postgres::types::Type;
    let mut out = Vec::new();
    for r in client.query(sql, &[]).await.map_err(pg)? {
        let mut row = Vec::with_capacity(r.len());
        for (i, c) in r.columns().iter().enumerate() {
            row.push(match *c.type_() {
                Type::INT8 => ImportValue::Int(r.try_get(i).map_err(pg)?),
                Type::BOOL => ImportValue::Bool(
                    r.try_get::<_, Option<bool>>(i)
                        .map_err(pg)?
                        .unwrap_or(false),
                ),
                _ => ImportValue::Text(r.try_get(i).map_err(pg)?),
            });
        }
        out.push(row);
    }
    Ok(out)
}

fn text(v: &ImportValue) -> Option<&str> {
    match v {
        ImportValue::Text(t) => t.as_deref(),
        _ => None,
    }
}

fn int(v: &ImportValue) -> i64 {
    match v {
        ImportValue::Int(i) => i.unwrap_or(0),
        _ => 0,
    }
}

/// One per-player copy: asobi's query (first column the owning player, the rest the insert's
/// parameters in order) and our insert.
struct Copy {
    kind: &'static str,
    read: String,
    write: &'static str,
}

fn copies() -> Vec<Copy> {
    vec![
        Copy {
            kind: "inventory items",
            read: format!(
                "SELECT pi.player_id::text, pi.id::text, pi.player_id::text, d.slug, pi.quantity::bigint, \
                 COALESCE(pi.metadata::text, '{{}}'), {}, {} FROM player_items pi \
                 JOIN item_defs d ON d.id = pi.item_def_id WHERE pi.quantity > 0 ORDER BY pi.acquired_at, pi.id",
                ms("pi.acquired_at"),
                ms("pi.updated_at")
            ),
            write: "INSERT INTO player_items (id, player_id, item_def_id, quantity, metadata, acquired_at, updated_at) \
                    VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        },
        Copy {
            kind: "leaderboard entries",
            read: format!(
                "SELECT player_id::text, leaderboard_id, player_id::text, score::bigint, COALESCE(sub_score, 0)::bigint, \
                 (ROW_NUMBER() OVER (PARTITION BY leaderboard_id ORDER BY updated_at, id))::bigint, metadata::text, {} \
                 FROM leaderboard_entries",
                ms("updated_at")
            ),
            write: "INSERT INTO leaderboard_entries (board_id, player_id, score, sub_score, seq, metadata, updated_at) \
                    VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        },
        Copy {
            kind: "friendships",
            read: format!(
                "SELECT player_id::text, id::text, player_id::text, friend_id::text, status, {}, {} FROM friendships",
                ms("inserted_at"),
                ms("updated_at")
            ),
            write: "INSERT INTO friendships (id, player_id, friend_id, status, inserted_at, updated_at) \
                    VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        },
        Copy {
            kind: "group memberships",
            read: format!(
                "SELECT player_id::text, group_id::text, player_id::text, role, {} FROM group_members",
                ms("joined_at")
            ),
            write: "INSERT INTO group_members (group_id, player_id, role, joined_at) VALUES ($1, $2, $3, $4) \
                    ON CONFLICT DO NOTHING",
        },
        Copy {
            kind: "cloud saves",
            read: format!(
                "SELECT player_id::text, player_id::text, slot, COALESCE(data::text, '{{}}'), version::bigint, {} FROM cloud_saves",
                ms("updated_at")
            ),
            write: "INSERT INTO cloud_saves (player_id, slot, data, version, updated_at) VALUES ($1, $2, $3, $4, $5) \
                    ON CONFLICT DO NOTHING",
        },
        Copy {
            kind: "storage objects",
            read: format!(
                "SELECT COALESCE(player_id::text, ''), collection, key, COALESCE(player_id::text, ''), \
                 COALESCE(value::text, '{{}}'), version::bigint, read_perm, write_perm, {} FROM storage",
                ms("updated_at")
            ),
            write: "INSERT INTO storage_objects (collection, object_key, owner_id, value, version, read_perm, write_perm, updated_at) \
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        },
        Copy {
            kind: "match stats",
            read: format!(
                "SELECT player_id::text, player_id::text, games_played::bigint, wins::bigint, losses::bigint, {} FROM player_stats",
                ms("updated_at")
            ),
            write: "INSERT INTO player_stats (player_id, games_played, wins, losses, updated_at) VALUES ($1, $2, $3, $4, $5) \
                    ON CONFLICT DO NOTHING",
        },
    ]
}

const INSERT_WALLET: &str = "INSERT INTO wallets (id, player_id, currency, balance, updated_at) \
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
const INSERT_LEDGER: &str =
    "INSERT INTO wallet_ledger (id, wallet_id, amount, balance_after, reason, \
    reference_type, reference_id, metadata, idempotency_key, inserted_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING";
const INSERT_GROUP: &str = "INSERT INTO social_groups (id, name, description, max_members, open, creator_id, \
    metadata, inserted_at, updated_at) VALUES ($1, $2, $3, $4, CAST($5 AS BIGINT), $6, $7, $8, $9) ON CONFLICT DO NOTHING";
const INSERT_DEVICE: &str =
    "INSERT INTO guest_devices (device_id, player_id, verifier, revoked, created_at) \
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";

/// The reason written on the ledger entry that makes an imported wallet's ledger add up to its
/// balance when asobi's `transactions` do not.
pub(crate) const IMPORT_ADJUSTMENT_REASON: &str = "asobi_import";

/// A guest device's asobi verifier (`provider_metadata`: salt, key_id, verifier, revoked) in
/// the form our guest login checks: `asobi$<base64 salt>$<base64 HMAC>`. None if malformed.
fn guest_verifier(metadata: &serde_json::Value) -> Option<(String, bool)> {
    let salt = metadata.get("salt")?.as_str()?;
    let mac = metadata.get("verifier")?.as_str()?;
    let revoked = metadata
        .get("revoked")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    Some((format!("asobi${salt}${mac}"), revoked))
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Backend(format!("asobi database: {}", db.message())),
        None => StoreError::Backend(e.to_string()),
    }
}

/// Reads every player of the asobi database at `url` (libpq URL; `sslmode` as for ours), with
/// the rows of the other features.
pub async fn read_asobi_players(url: &str) -> Result<AsobiExport, StoreError> {
    let (config, tls) = crate::pg_tls::parse(url, &StoreOptions::default())?;
    let (client, conn) = config
        .connect(tls.connector()?)
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot reach the asobi database: {e}")))?;
    let driver = tokio::spawn(conn);
    let out = read_all(&client).await;
    drop(client);
    let _ = driver.await;
    out
}

async fn read_all(client: &tokio_postgres::Client) -> Result<AsobiExport, StoreError> {
    let sql = format!(
        "SELECT id::text, username, display_name, avatar_url, hashed_password, \
         COALESCE(metadata::text, '{{}}'), {}, {}, {} FROM players ORDER BY inserted_at, id",
        ms("banned_at"),
        ms("inserted_at"),
        ms("updated_at")
    );
    let rows = client.query(&sql, &[]).await.map_err(pg)?;
    let mut identities: HashMap<String, Vec<(String, String, String, i64)>> = HashMap::new();
    let ident_sql = format!(
        "SELECT player_id::text, provider, provider_uid, COALESCE(provider_metadata::text, '{{}}'), {} \
         FROM player_identities ORDER BY inserted_at",
        ms("inserted_at")
    );
    for r in client.query(&ident_sql, &[]).await.map_err(pg)? {
        let player: String = r.try_get(0).map_err(pg)?;
        identities.entry(player).or_default().push((
            r.try_get(1).map_err(pg)?,
            r.try_get(2).map_err(pg)?,
            r.try_get(3).map_err(pg)?,
            r.try_get::<_, Option<i64>>(4).map_err(pg)?.unwrap_or(0),
        ));
    }
    let mut out = AsobiExport::default();
    for r in rows {
        let id: String = r.try_get(0).map_err(pg)?;
        let metadata: String = r.try_get(5).map_err(pg)?;
        let ids = identities.remove(&id).unwrap_or_default();
        let password_hash: Option<String> = r.try_get(4).map_err(pg)?;
        let (guest, linked): (Vec<_>, Vec<_>) = ids.into_iter().partition(|i| i.0 == "guest");
        let mut devices = Vec::new();
        for (_, device_id, meta, created) in &guest {
            let meta: serde_json::Value = serde_json::from_str(meta).unwrap_or_default();
            match guest_verifier(&meta) {
                Some((verifier, revoked)) => devices.push(ImportInsert {
                    kind: "guest devices",
                    sql: INSERT_DEVICE,
                    values: vec![
                        ImportValue::Text(Some(device_id.clone())),
                        ImportValue::Text(Some(id.clone())),
                        ImportValue::Text(Some(verifier)),
                        ImportValue::Bool(revoked),
                        ImportValue::Int(Some(*created)),
                    ],
                    only_if: None,
                }),
                None => out.unmapped.push((
                    format!("guest device {device_id}"),
                    "no salt/verifier in its provider_metadata".to_owned(),
                )),
            }
        }
        let is_guest = password_hash.is_none() && linked.is_empty();
        if is_guest && devices.is_empty() {
            out.skipped.push((
                id,
                "no password, no provider identity and no guest device".to_owned(),
            ));
            continue;
        }
        if !devices.is_empty() {
            out.rows.insert(id.clone(), devices);
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
            identities: linked.into_iter().map(|(p, uid, _, _)| (p, uid)).collect(),
            is_guest,
            id,
        });
    }
    let players: HashSet<String> = out.players.iter().map(|p| p.id.clone()).collect();
    read_wallets(client, &players, &mut out).await?;
    for copy in copies() {
        for row in values(client, &copy.read).await? {
            let Some((owner, params)) = row.split_first() else {
                continue;
            };
            let owner = text(owner).unwrap_or_default().to_owned();
            let insert = ImportInsert {
                kind: copy.kind,
                sql: copy.write,
                values: params.to_vec(),
                only_if: None,
            };
            if owner.is_empty() {
                out.shared.push(insert);
            } else if !players.contains(&owner) {
                out.unmapped.push((
                    format!("{} of {owner}", copy.kind),
                    "the player is not imported".to_owned(),
                ));
            } else if copy.kind == "friendships"
                && !params
                    .get(2)
                    .and_then(text)
                    .is_some_and(|f| players.contains(f))
            {
                out.unmapped.push((
                    format!("friendship of {owner}"),
                    "the friend is not imported".to_owned(),
                ));
            } else {
                out.rows.entry(owner).or_default().push(insert);
            }
        }
    }
    let groups = format!(
        "SELECT id::text, name, description, COALESCE(max_members, 50)::bigint, \
         (CASE WHEN open THEN 1 ELSE 0 END)::bigint, COALESCE(creator_id::text, ''), \
         COALESCE(metadata::text, '{{}}'), {}, {} FROM groups",
        ms("inserted_at"),
        ms("updated_at")
    );
    for row in values(client, &groups).await? {
        out.shared.push(ImportInsert {
            kind: "groups",
            sql: INSERT_GROUP,
            values: row,
            only_if: None,
        });
    }
    let unsupported = client
        .query(
            "SELECT (SELECT COUNT(*) FROM player_items WHERE quantity <= 0)::bigint",
            &[],
        )
        .await
        .map_err(pg)?;
    if let Some(n) = unsupported
        .first()
        .and_then(|r| r.try_get::<_, i64>(0).ok())
    {
        if n > 0 {
            out.unmapped.push((
                format!("{n} inventory item(s)"),
                "quantity 0 or below (ours keeps only items a player holds)".to_owned(),
            ));
        }
    }
    Ok(out)
}

/// Wallets with their ledgers: a wallet and its entries go in one player's batch, each entry
/// written only if the wallet was created by that batch (so a re-run never doubles a ledger).
/// Where asobi's `transactions` do not add up to the balance, one adjustment entry
/// ([`IMPORT_ADJUSTMENT_REASON`]) makes them, since our ledger always sums to the balance.
async fn read_wallets(
    client: &tokio_postgres::Client,
    players: &HashSet<String>,
    out: &mut AsobiExport,
) -> Result<(), StoreError> {
    let wallets = format!(
        "SELECT w.player_id::text, w.id::text, w.player_id::text, w.currency, w.balance::bigint, {}, \
         COALESCE((SELECT SUM(t.amount) FROM transactions t WHERE t.wallet_id = w.id), 0)::bigint \
         FROM wallets w ORDER BY w.inserted_at, w.id",
        ms("w.updated_at")
    );
    let entries = format!(
        "SELECT t.wallet_id::text, t.id::text, t.wallet_id::text, t.amount::bigint, t.balance_after::bigint, \
         t.reason, t.reference_type, t.reference_id, COALESCE(t.metadata::text, '{{}}'), \
         'asobi:' || t.id::text, {} FROM transactions t ORDER BY t.inserted_at, t.id",
        ms("t.inserted_at")
    );
    let mut ledger: HashMap<String, Vec<Vec<ImportValue>>> = HashMap::new();
    for row in values(client, &entries).await? {
        if let Some((wallet, params)) = row.split_first() {
            let wallet = text(wallet).unwrap_or_default().to_owned();
            ledger.entry(wallet).or_default().push(params.to_vec());
        }
    }
    for row in values(client, &wallets).await? {
        let [owner, id, player, currency, balance, updated, sum] = row.as_slice() else {
            continue;
        };
        let owner = text(owner).unwrap_or_default().to_owned();
        let wallet_id = text(id).unwrap_or_default().to_owned();
        let entries = ledger.remove(&wallet_id).unwrap_or_default();
        if !players.contains(&owner) {
            out.unmapped.push((
                format!("wallet {wallet_id} of {owner}"),
                "the player is not imported".to_owned(),
            ));
            continue;
        }
        let batch = out.rows.entry(owner).or_default();
        let at = batch.len();
        batch.push(ImportInsert {
            kind: "wallets",
            sql: INSERT_WALLET,
            values: vec![
                id.clone(),
                player.clone(),
                currency.clone(),
                balance.clone(),
                updated.clone(),
            ],
            only_if: None,
        });
        for values in entries {
            batch.push(ImportInsert {
                kind: "ledger entries",
                sql: INSERT_LEDGER,
                values,
                only_if: Some(at),
            });
        }
        let gap = int(balance) - int(sum);
        if gap != 0 {
            batch.push(ImportInsert {
                kind: "ledger entries",
                sql: INSERT_LEDGER,
                values: vec![
                    ImportValue::Text(Some(format!("{wallet_id}-import"))),
                    id.clone(),
                    ImportValue::Int(Some(gap)),
                    balance.clone(),
                    ImportValue::Text(Some(IMPORT_ADJUSTMENT_REASON.to_owned())),
                    ImportValue::Text(None),
                    ImportValue::Text(None),
                    ImportValue::Text(Some("{}".to_owned())),
                    ImportValue::Text(Some(format!("asobi-import:{wallet_id}"))),
                    updated.clone(),
                ],
                only_if: Some(at),
            });
        }
    }
    Ok(())
}
