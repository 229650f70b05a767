//! The economy on PostgreSQL. Concurrent transactions on one wallet serialise on its row: a
//! grant is one upsert, a debit one conditional `UPDATE … WHERE balance >= amount`, both taking
//! the row lock until commit. A key is claimed first by inserting its operation row, so a
//! concurrent retry with the same key waits for the first to commit and then replays it (or, if
//! the first rolled back, goes ahead itself).

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{
    encode, fingerprint_change, fingerprint_consume, fingerprint_purchase, ledger_entry, new_id,
    new_item, purchase_debit, replay, Consume, ConsumeReceipt, Done, Economy, LedgerEntry,
    NewPurchase, Outcome, PlayerItem, PurchaseReceipt, Refusal, Wallet, WalletAudit, WalletChange,
    WalletReceipt, AUDIT_SQL, ITEM_COLUMNS, LEDGER_COLUMNS,
};
use crate::backend::Reply;
use crate::error::parse_json_column;
use crate::postgres::{op, Fail, PgBackend};

fn read_entry(r: &Row) -> Result<LedgerEntry, Fail> {
    let metadata: String = r.try_get(7)?;
    Ok(LedgerEntry {
        id: r.try_get(0)?,
        wallet_id: r.try_get(1)?,
        amount: r.try_get(2)?,
        balance_after: r.try_get(3)?,
        reason: r.try_get(4)?,
        reference_type: r.try_get(5)?,
        reference_id: r.try_get(6)?,
        metadata: parse_json_column("metadata", &metadata)?,
        idempotency_key: r.try_get(8)?,
        inserted_at: r.try_get(9)?,
    })
}

fn read_item(r: &Row) -> Result<PlayerItem, Fail> {
    let metadata: String = r.try_get(4)?;
    Ok(PlayerItem {
        id: r.try_get(0)?,
        item_def_id: r.try_get(1)?,
        player_id: r.try_get(2)?,
        quantity: r.try_get(3)?,
        metadata: parse_json_column("metadata", &metadata)?,
        acquired_at: r.try_get(5)?,
        updated_at: r.try_get(6)?,
    })
}

/// Claims the key for this transaction. `Some((request, result))` when it was applied before
/// (by a transaction that has committed: the insert waits for a concurrent holder).
pub(crate) async fn claim_op(
    c: &impl GenericClient,
    player: &str,
    key: &str,
    request: &str,
    now_ms: i64,
) -> Result<Option<(String, String)>, Fail> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO economy_operations (player_id, idempotency_key, request, result, created_at) \
             VALUES ($1, $2, $3, '', $4) ON CONFLICT DO NOTHING",
        )
        .await?;
    if c.execute(&stmt, &[&player, &key, &request, &now_ms])
        .await?
        == 1
    {
        return Ok(None);
    }
    let row = c
        .query_one(
            "SELECT request, result FROM economy_operations WHERE player_id = $1 AND idempotency_key = $2",
            &[&player, &key],
        )
        .await?;
    Ok(Some((row.try_get(0)?, row.try_get(1)?)))
}

pub(crate) async fn finish_op(
    c: &impl GenericClient,
    player: &str,
    key: &str,
    result: &str,
) -> Result<(), Fail> {
    c.execute(
        "UPDATE economy_operations SET result = $3 WHERE player_id = $1 AND idempotency_key = $2",
        &[&player, &key, &result],
    )
    .await?;
    Ok(())
}

/// Moves the balance and appends the ledger row; refuses a debit below zero.
pub(crate) async fn apply_change(
    c: &impl GenericClient,
    w: &WalletChange,
) -> Result<Result<WalletReceipt, Refusal>, Fail> {
    let moved = if w.amount > 0 {
        let stmt = c
            .prepare_cached(
                "INSERT INTO wallets (id, player_id, currency, balance, updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (player_id, currency) DO UPDATE \
                 SET balance = wallets.balance + excluded.balance, updated_at = excluded.updated_at \
                 RETURNING id, balance",
            )
            .await?;
        c.query_opt(
            &stmt,
            &[&new_id(), &w.player_id, &w.currency, &w.amount, &w.now_ms],
        )
        .await?
    } else {
        let stmt = c
            .prepare_cached(
                "UPDATE wallets SET balance = balance + $1, updated_at = $2 \
                 WHERE player_id = $3 AND currency = $4 AND balance >= -CAST($1 AS BIGINT) RETURNING id, balance",
            )
            .await?;
        c.query_opt(&stmt, &[&w.amount, &w.now_ms, &w.player_id, &w.currency])
            .await?
    };
    let Some(row) = moved else {
        let balance: Option<i64> = c
            .query_opt(
                "SELECT balance FROM wallets WHERE player_id = $1 AND currency = $2",
                &[&w.player_id, &w.currency],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        return Ok(Err(Refusal::InsufficientFunds {
            balance: balance.unwrap_or(0),
        }));
    };
    let (wallet_id, balance): (String, i64) = (row.try_get(0)?, row.try_get(1)?);
    let entry = ledger_entry(w, wallet_id, balance);
    let stmt = c
        .prepare_cached(
            "INSERT INTO wallet_ledger (id, wallet_id, amount, balance_after, reason, reference_type, \
             reference_id, metadata, idempotency_key, inserted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .await?;
    c.execute(
        &stmt,
        &[
            &entry.id,
            &entry.wallet_id,
            &entry.amount,
            &entry.balance_after,
            &entry.reason,
            &entry.reference_type,
            &entry.reference_id,
            &entry.metadata.to_string(),
            &entry.idempotency_key,
            &entry.inserted_at,
        ],
    )
    .await?;
    Ok(Ok(WalletReceipt {
        wallet: Wallet {
            currency: w.currency.clone(),
            balance,
        },
        entry,
    }))
}

impl Economy for PgBackend {
    fn wallets(&self, player_id: String) -> Reply<'_, Vec<Wallet>> {
        op(async move {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT currency, balance FROM wallets WHERE player_id = $1 ORDER BY currency",
                )
                .await?;
            client
                .query(&stmt, &[&player_id])
                .await?
                .iter()
                .map(|r| {
                    Ok(Wallet {
                        currency: r.try_get(0)?,
                        balance: r.try_get(1)?,
                    })
                })
                .collect()
        })
    }

    fn wallet_history(
        &self,
        player_id: String,
        currency: String,
        limit: u32,
    ) -> Reply<'_, Vec<LedgerEntry>> {
        op(async move {
            let client = self.client().await?;
            let sql = format!(
                "SELECT {LEDGER_COLUMNS} FROM wallet_ledger l JOIN wallets w ON w.id = l.wallet_id \
                 WHERE w.player_id = $1 AND w.currency = $2 \
                 ORDER BY l.inserted_at DESC, l.id DESC LIMIT $3"
            );
            let stmt = client.prepare_cached(&sql).await?;
            let limit = i64::from(limit);
            client
                .query(&stmt, &[&player_id, &currency, &limit])
                .await?
                .iter()
                .map(read_entry)
                .collect()
        })
    }

    fn change_wallet(&self, w: WalletChange) -> Reply<'_, Outcome<WalletReceipt>> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let request = fingerprint_change(&w);
            let key = &w.idempotency_key;
            if let Some((stored, result)) =
                claim_op(&tx, &w.player_id, key, &request, w.now_ms).await?
            {
                return Ok(replay(&request, &stored, &result)?);
            }
            let receipt = match apply_change(&tx, &w).await? {
                Ok(r) => r,
                Err(refused) => return Ok(Err(refused)),
            };
            finish_op(&tx, &w.player_id, key, &encode(&receipt)?).await?;
            tx.commit().await?;
            Ok(Ok(Done {
                value: receipt,
                replayed: false,
            }))
        })
    }

    fn purchase(&self, p: NewPurchase) -> Reply<'_, Outcome<PurchaseReceipt>> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let request = fingerprint_purchase(&p);
            let key = &p.idempotency_key;
            if let Some((stored, result)) =
                claim_op(&tx, &p.player_id, key, &request, p.now_ms).await?
            {
                return Ok(replay(&request, &stored, &result)?);
            }
            let debit = match apply_change(&tx, &purchase_debit(&p)).await? {
                Ok(r) => r,
                Err(refused) => return Ok(Err(refused)),
            };
            let item = new_item(&p);
            tx.execute(
                "INSERT INTO player_items (id, player_id, item_def_id, quantity, metadata, acquired_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6)",
                &[
                    &item.id,
                    &item.player_id,
                    &item.item_def_id,
                    &item.quantity,
                    &item.metadata.to_string(),
                    &item.acquired_at,
                ],
            )
            .await?;
            let receipt = PurchaseReceipt {
                item,
                wallet: debit.wallet,
                entry: debit.entry,
            };
            finish_op(&tx, &p.player_id, key, &encode(&receipt)?).await?;
            tx.commit().await?;
            Ok(Ok(Done {
                value: receipt,
                replayed: false,
            }))
        })
    }

    fn inventory(&self, player_id: String, limit: u32) -> Reply<'_, Vec<PlayerItem>> {
        op(async move {
            let client = self.client().await?;
            let sql = format!(
                "SELECT {ITEM_COLUMNS} FROM player_items i WHERE i.player_id = $1 \
                 ORDER BY i.acquired_at DESC, i.id DESC LIMIT $2"
            );
            let stmt = client.prepare_cached(&sql).await?;
            let limit = i64::from(limit);
            client
                .query(&stmt, &[&player_id, &limit])
                .await?
                .iter()
                .map(read_item)
                .collect()
        })
    }

    fn consume_item(&self, c: Consume) -> Reply<'_, Outcome<ConsumeReceipt>> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let request = fingerprint_consume(&c);
            if let Some(key) = &c.idempotency_key {
                if let Some((stored, result)) =
                    claim_op(&tx, &c.player_id, key, &request, c.now_ms).await?
                {
                    return Ok(replay(&request, &stored, &result)?);
                }
            }
            let held = tx
                .query_opt(
                    "SELECT player_id, quantity FROM player_items WHERE id = $1 FOR UPDATE",
                    &[&c.item_id],
                )
                .await?;
            let held: Option<(String, i64)> = match held {
                Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
                None => None,
            };
            let remaining = match held {
                None => return Ok(Err(Refusal::ItemNotFound)),
                Some((owner, _)) if owner != c.player_id => return Ok(Err(Refusal::NotYourItem)),
                Some((_, have)) if have < c.quantity => {
                    return Ok(Err(Refusal::InsufficientQuantity { have }))
                }
                Some((_, have)) => have - c.quantity,
            };
            if remaining == 0 {
                tx.execute("DELETE FROM player_items WHERE id = $1", &[&c.item_id])
                    .await?;
            } else {
                tx.execute(
                    "UPDATE player_items SET quantity = $2, updated_at = $3 WHERE id = $1",
                    &[&c.item_id, &remaining, &c.now_ms],
                )
                .await?;
            }
            let receipt = ConsumeReceipt { remaining };
            if let Some(key) = &c.idempotency_key {
                finish_op(&tx, &c.player_id, key, &encode(&receipt)?).await?;
            }
            tx.commit().await?;
            Ok(Ok(Done {
                value: receipt,
                replayed: false,
            }))
        })
    }

    fn audit_wallets(&self) -> Reply<'_, Vec<WalletAudit>> {
        op(async move {
            let client = self.client().await?;
            client
                .query(AUDIT_SQL, &[])
                .await?
                .iter()
                .map(|r| {
                    Ok(WalletAudit {
                        player_id: r.try_get(0)?,
                        currency: r.try_get(1)?,
                        balance: r.try_get(2)?,
                        ledger_sum: r.try_get(3)?,
                        entries: r.try_get(4)?,
                    })
                })
                .collect()
        })
    }
}
