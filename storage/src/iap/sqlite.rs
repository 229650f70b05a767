//! IAP on SQLite: one savepoint per claim or revocation on the single writer.

use rusqlite::{params, OptionalExtension};

use super::{
    grant_change, reversal_change, Iap, IapClaim, IapOutcome, IapRevocation, RevokeOutcome,
};
use crate::backend::Reply;
use crate::economy::sqlite::{apply_change, record_op};
use crate::economy::{encode, fingerprint_change};
use crate::sqlite::{write_tx, Fail, SqliteBackend};
use crate::StoreError;

impl Iap for SqliteBackend {
    fn claim_iap(&self, c: IapClaim) -> Reply<'_, IapOutcome> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let owner: Option<String> = tx
                .prepare_cached(
                    "SELECT player_id FROM iap_transactions WHERE provider = ?1 AND transaction_id = ?2",
                )?
                .query_row(params![c.provider, c.transaction_id], |r| r.get(0))
                .optional()?;
            if let Some(owner) = owner {
                return Ok(if owner == c.player_id {
                    IapOutcome::Duplicate
                } else {
                    IapOutcome::ClaimedByOther
                });
            }
            tx.execute(
                "INSERT INTO iap_transactions (provider, transaction_id, player_id, \
                 original_transaction_id, product_id, granted_currency, granted_amount, inserted_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    c.provider,
                    c.transaction_id,
                    c.player_id,
                    c.original_transaction_id,
                    c.product_id,
                    c.grant.as_ref().map(|g| g.0.clone()),
                    c.grant.as_ref().map(|g| g.1),
                    c.now_ms
                ],
            )?;
            let granted = match &c.grant {
                None => None,
                Some((currency, amount)) => {
                    let w = grant_change(&c, currency, *amount);
                    let receipt = apply_change(&tx, &w)?.map_err(|r| {
                        Fail::Store(StoreError::Backend(format!("grant refused: {r:?}")))
                    })?;
                    record_op(
                        &tx,
                        &w.player_id,
                        &w.idempotency_key,
                        &fingerprint_change(&w),
                        &encode(&receipt)?,
                        w.now_ms,
                    )?;
                    Some(Box::new(receipt))
                }
            };
            tx.commit()?;
            Ok(IapOutcome::Claimed { granted })
        })
    }

    fn revoke_iap(&self, r: IapRevocation) -> Reply<'_, RevokeOutcome> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            type Row = (String, Option<String>, Option<i64>, String);
            let row: Option<Row> = tx
                .prepare_cached(
                    "SELECT player_id, granted_currency, granted_amount, status FROM iap_transactions \
                     WHERE provider = ?1 AND transaction_id = ?2",
                )?
                .query_row(params![r.provider, r.transaction_id], |x| {
                    Ok((x.get(0)?, x.get(1)?, x.get(2)?, x.get(3)?))
                })
                .optional()?;
            let Some((player, currency, amount, status)) = row else {
                return Ok(RevokeOutcome::NotFound);
            };
            if status != "verified" {
                return Ok(RevokeOutcome::AlreadyRevoked);
            }
            let mut reversed = 0;
            if let (Some(currency), Some(amount)) = (currency, amount) {
                let balance: i64 = tx
                    .prepare_cached(
                        "SELECT balance FROM wallets WHERE player_id = ?1 AND currency = ?2",
                    )?
                    .query_row(params![player, currency], |x| x.get(0))
                    .optional()?
                    .unwrap_or(0);
                let take = amount.min(balance);
                if take > 0 {
                    let w = reversal_change(&r, &player, &currency, take);
                    let receipt = apply_change(&tx, &w)?.map_err(|e| {
                        Fail::Store(StoreError::Backend(format!("reversal refused: {e:?}")))
                    })?;
                    record_op(
                        &tx,
                        &w.player_id,
                        &w.idempotency_key,
                        &fingerprint_change(&w),
                        &encode(&receipt)?,
                        w.now_ms,
                    )?;
                    reversed = take;
                }
            }
            tx.execute(
                "UPDATE iap_transactions SET status = ?3, revoked_at = ?4, reversed_amount = ?5 \
                 WHERE provider = ?1 AND transaction_id = ?2",
                params![r.provider, r.transaction_id, r.status, r.now_ms, reversed],
            )?;
            tx.commit()?;
            Ok(RevokeOutcome::Revoked { reversed })
        })
    }
}
