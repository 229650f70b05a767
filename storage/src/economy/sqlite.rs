//! The economy on SQLite. Every body runs on the connection thread inside one IMMEDIATE
//! transaction (see `crate::sqlite`), so operations on the same wallet are serialised by
//! SQLite's single writer; a refusal drops the transaction, which rolls everything back.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{
    encode, fingerprint_change, fingerprint_consume, fingerprint_purchase, ledger_entry, new_id,
    new_item, purchase_debit, replay, Consume, ConsumeReceipt, Done, Economy, LedgerEntry,
    NewPurchase, Outcome, PlayerItem, PurchaseReceipt, Refusal, Wallet, WalletAudit, WalletChange,
    WalletReceipt, AUDIT_SQL, ITEM_COLUMNS, LEDGER_COLUMNS,
};
use crate::backend::Reply;
use crate::error::parse_json_column;
use crate::sqlite::{write_tx, Fail, SqliteBackend};

fn read_entry(r: &Row<'_>) -> Result<LedgerEntry, Fail> {
    let metadata: String = r.get(7)?;
    Ok(LedgerEntry {
        id: r.get(0)?,
        wallet_id: r.get(1)?,
        amount: r.get(2)?,
        balance_after: r.get(3)?,
        reason: r.get(4)?,
        reference_type: r.get(5)?,
        reference_id: r.get(6)?,
        metadata: parse_json_column("metadata", &metadata)?,
        idempotency_key: r.get(8)?,
        inserted_at: r.get(9)?,
    })
}

fn read_item(r: &Row<'_>) -> Result<PlayerItem, Fail> {
    let metadata: String = r.get(4)?;
    Ok(PlayerItem {
        id: r.get(0)?,
        item_def_id: r.get(1)?,
        player_id: r.get(2)?,
        quantity: r.get(3)?,
        metadata: parse_json_column("metadata", &metadata)?,
        acquired_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

/// The stored request and result for a player's key, if it was applied before.
pub(crate) fn find_op(
    conn: &Connection,
    player: &str,
    key: &str,
) -> Result<Option<(String, String)>, Fail> {
    let mut stmt = conn.prepare_cached(
        "SELECT request, result FROM economy_operations WHERE player_id = ?1 AND idempotency_key = ?2",
    )?;
    Ok(stmt
        .query_row(params![player, key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

pub(crate) fn record_op(
    conn: &Connection,
    player: &str,
    key: &str,
    request: &str,
    result: &str,
    now_ms: i64,
) -> Result<(), Fail> {
    conn.prepare_cached(
        "INSERT INTO economy_operations (player_id, idempotency_key, request, result, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![player, key, request, result, now_ms])?;
    Ok(())
}

/// Moves the balance and appends the ledger row; refuses a debit below zero.
pub(crate) fn apply_change(
    conn: &Connection,
    c: &WalletChange,
) -> Result<Result<WalletReceipt, Refusal>, Fail> {
    let moved: Option<(String, i64)> = if c.amount > 0 {
        conn.prepare_cached(
            "INSERT INTO wallets (id, player_id, currency, balance, updated_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (player_id, currency) DO UPDATE \
             SET balance = wallets.balance + excluded.balance, updated_at = excluded.updated_at \
             RETURNING id, balance",
        )?
        .query_row(params![new_id(), c.player_id, c.currency, c.amount, c.now_ms], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?
    } else {
        conn.prepare_cached(
            "UPDATE wallets SET balance = balance + ?1, updated_at = ?2 \
             WHERE player_id = ?3 AND currency = ?4 AND balance >= -?1 RETURNING id, balance",
        )?
        .query_row(params![c.amount, c.now_ms, c.player_id, c.currency], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?
    };
    let Some((wallet_id, balance)) = moved else {
        let balance: Option<i64> = conn
            .prepare_cached("SELECT balance FROM wallets WHERE player_id = ?1 AND currency = ?2")?
            .query_row(params![c.player_id, c.currency], |r| r.get(0))
            .optional()?;
        return Ok(Err(Refusal::InsufficientFunds {
            balance: balance.unwrap_or(0),
        }));
    };
    let entry = ledger_entry(c, wallet_id, balance);
    conn.prepare_cached(
        "INSERT INTO wallet_ledger (id, wallet_id, amount, balance_after, reason, reference_type, \
         reference_id, metadata, idempotency_key, inserted_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        entry.id,
        entry.wallet_id,
        entry.amount,
        entry.balance_after,
        entry.reason,
        entry.reference_type,
        entry.reference_id,
        entry.metadata.to_string(),
        entry.idempotency_key,
        entry.inserted_at
    ])?;
    Ok(Ok(WalletReceipt {
        wallet: Wallet {
            currency: c.currency.clone(),
            balance,
        },
        entry,
    }))
}

impl Economy for SqliteBackend {
    fn wallets(&self, player_id: String) -> Reply<'_, Vec<Wallet>> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT currency, balance FROM wallets WHERE player_id = ?1 ORDER BY currency",
            )?;
            let rows = stmt.query_map(params![player_id], |r| {
                Ok(Wallet {
                    currency: r.get(0)?,
                    balance: r.get(1)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn wallet_history(
        &self,
        player_id: String,
        currency: String,
        limit: u32,
    ) -> Reply<'_, Vec<LedgerEntry>> {
        self.run(move |conn| {
            let sql = format!(
                "SELECT {LEDGER_COLUMNS} FROM wallet_ledger l JOIN wallets w ON w.id = l.wallet_id \
                 WHERE w.player_id = ?1 AND w.currency = ?2 \
                 ORDER BY l.inserted_at DESC, l.id DESC LIMIT ?3"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![player_id, currency, limit])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(read_entry(row)?);
            }
            Ok(out)
        })
    }

    fn change_wallet(&self, c: WalletChange) -> Reply<'_, Outcome<WalletReceipt>> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let request = fingerprint_change(&c);
            if let Some((stored, result)) = find_op(&tx, &c.player_id, &c.idempotency_key)? {
                return Ok(replay(&request, &stored, &result)?);
            }
            let receipt = match apply_change(&tx, &c)? {
                Ok(r) => r,
                Err(refused) => return Ok(Err(refused)),
            };
            let result = encode(&receipt)?;
            record_op(
                &tx,
                &c.player_id,
                &c.idempotency_key,
                &request,
                &result,
                c.now_ms,
            )?;
            tx.commit()?;
            Ok(Ok(Done {
                value: receipt,
                replayed: false,
            }))
        })
    }

    fn purchase(&self, p: NewPurchase) -> Reply<'_, Outcome<PurchaseReceipt>> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let request = fingerprint_purchase(&p);
            if let Some((stored, result)) = find_op(&tx, &p.player_id, &p.idempotency_key)? {
                return Ok(replay(&request, &stored, &result)?);
            }
            let debit = match apply_change(&tx, &purchase_debit(&p))? {
                Ok(r) => r,
                Err(refused) => return Ok(Err(refused)),
            };
            let item = new_item(&p);
            tx.prepare_cached(
                "INSERT INTO player_items (id, player_id, item_def_id, quantity, metadata, acquired_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            )?
            .execute(params![
                item.id,
                item.player_id,
                item.item_def_id,
                item.quantity,
                item.metadata.to_string(),
                item.acquired_at
            ])?;
            let receipt = PurchaseReceipt {
                item,
                wallet: debit.wallet,
                entry: debit.entry,
            };
            let result = encode(&receipt)?;
            record_op(&tx, &p.player_id, &p.idempotency_key, &request, &result, p.now_ms)?;
            tx.commit()?;
            Ok(Ok(Done {
                value: receipt,
                replayed: false,
            }))
        })
    }

    fn inventory(&self, player_id: String, limit: u32) -> Reply<'_, Vec<PlayerItem>> {
        self.run(move |conn| {
            let sql = format!(
                "SELECT {ITEM_COLUMNS} FROM player_items i WHERE i.player_id = ?1 \
                 ORDER BY i.acquired_at DESC, i.id DESC LIMIT ?2"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![player_id, limit])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(read_item(row)?);
            }
            Ok(out)
        })
    }

    fn consume_item(&self, c: Consume) -> Reply<'_, Outcome<ConsumeReceipt>> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let request = fingerprint_consume(&c);
            if let Some(key) = &c.idempotency_key {
                if let Some((stored, result)) = find_op(&tx, &c.player_id, key)? {
                    return Ok(replay(&request, &stored, &result)?);
                }
            }
            let held: Option<(String, i64)> = tx
                .prepare_cached("SELECT player_id, quantity FROM player_items WHERE id = ?1")?
                .query_row(params![c.item_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let remaining = match held {
                None => return Ok(Err(Refusal::ItemNotFound)),
                Some((owner, _)) if owner != c.player_id => return Ok(Err(Refusal::NotYourItem)),
                Some((_, have)) if have < c.quantity => {
                    return Ok(Err(Refusal::InsufficientQuantity { have }))
                }
                Some((_, have)) => have - c.quantity,
            };
            if remaining == 0 {
                tx.execute("DELETE FROM player_items WHERE id = ?1", params![c.item_id])?;
            } else {
                tx.execute(
                    "UPDATE player_items SET quantity = ?2, updated_at = ?3 WHERE id = ?1",
                    params![c.item_id, remaining, c.now_ms],
                )?;
            }
            let receipt = ConsumeReceipt { remaining };
            if let Some(key) = &c.idempotency_key {
                record_op(
                    &tx,
                    &c.player_id,
                    key,
                    &request,
                    &encode(&receipt)?,
                    c.now_ms,
                )?;
            }
            tx.commit()?;
            Ok(Ok(Done {
                value: receipt,
                replayed: false,
            }))
        })
    }

    fn audit_wallets(&self) -> Reply<'_, Vec<WalletAudit>> {
        self.run(|conn| {
            let mut stmt = conn.prepare(AUDIT_SQL)?;
            let rows = stmt.query_map([], |r| {
                Ok(WalletAudit {
                    player_id: r.get(0)?,
                    currency: r.get(1)?,
                    balance: r.get(2)?,
                    ledger_sum: r.get(3)?,
                    entries: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
}
