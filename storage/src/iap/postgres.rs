//! IAP on PostgreSQL: the transaction's row is inserted first (`ON CONFLICT DO NOTHING`), so two
//! concurrent claims of one transaction serialise on its key and exactly one grants; a
//! revocation locks the row (`FOR UPDATE`) and the wallet before it reads the balance.

use super::{
    grant_change, reversal_change, Iap, IapClaim, IapOutcome, IapRevocation, RevokeOutcome,
};
use crate::backend::Reply;
use crate::economy::postgres::{apply_change, claim_op, finish_op};
use crate::economy::{encode, fingerprint_change};
use crate::postgres::{op, Fail, PgBackend};
use crate::StoreError;

impl Iap for PgBackend {
    fn claim_iap(&self, c: IapClaim) -> Reply<'_, IapOutcome> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let grant_currency = c.grant.as_ref().map(|g| g.0.clone());
            let grant_amount = c.grant.as_ref().map(|g| g.1);
            let n = tx
                .execute(
                    "INSERT INTO iap_transactions (provider, transaction_id, player_id, \
                     original_transaction_id, product_id, granted_currency, granted_amount, inserted_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                    &[
                        &c.provider,
                        &c.transaction_id,
                        &c.player_id,
                        &c.original_transaction_id,
                        &c.product_id,
                        &grant_currency,
                        &grant_amount,
                        &c.now_ms,
                    ],
                )
                .await?;
            if n == 0 {
                let row = tx
                    .query_one(
                        "SELECT player_id FROM iap_transactions WHERE provider = $1 AND transaction_id = $2",
                        &[&c.provider, &c.transaction_id],
                    )
                    .await?;
                let owner: String = row.try_get(0)?;
                return Ok(if owner == c.player_id {
                    IapOutcome::Duplicate
                } else {
                    IapOutcome::ClaimedByOther
                });
            }
            let granted = match &c.grant {
                None => None,
                Some((currency, amount)) => {
                    let w = grant_change(&c, currency, *amount);
                    let request = fingerprint_change(&w);
                    if claim_op(&tx, &w.player_id, &w.idempotency_key, &request, w.now_ms)
                        .await?
                        .is_some()
                    {
                        return Err(Fail::Store(StoreError::Backend(
                            "an IAP grant key exists without its transaction".into(),
                        )));
                    }
                    let receipt = apply_change(&tx, &w).await?.map_err(|r| {
                        Fail::Store(StoreError::Backend(format!("grant refused: {r:?}")))
                    })?;
                    finish_op(&tx, &w.player_id, &w.idempotency_key, &encode(&receipt)?).await?;
                    Some(Box::new(receipt))
                }
            };
            tx.commit().await?;
            Ok(IapOutcome::Claimed { granted })
        })
    }

    fn revoke_iap(&self, r: IapRevocation) -> Reply<'_, RevokeOutcome> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let row = tx
                .query_opt(
                    "SELECT player_id, granted_currency, granted_amount, status FROM iap_transactions \
                     WHERE provider = $1 AND transaction_id = $2 FOR UPDATE",
                    &[&r.provider, &r.transaction_id],
                )
                .await?;
            let Some(row) = row else {
                return Ok(RevokeOutcome::NotFound);
            };
            let player: String = row.try_get(0)?;
            let currency: Option<String> = row.try_get(1)?;
            let amount: Option<i64> = row.try_get(2)?;
            let status: String = row.try_get(3)?;
            if status != "verified" {
                return Ok(RevokeOutcome::AlreadyRevoked);
            }
            let mut reversed = 0;
            if let (Some(currency), Some(amount)) = (currency, amount) {
                let balance: i64 = tx
                    .query_opt(
                        "SELECT balance FROM wallets WHERE player_id = $1 AND currency = $2 FOR UPDATE",
                        &[&player, &currency],
                    )
                    .await?
                    .map(|r| r.try_get(0))
                    .transpose()?
                    .unwrap_or(0);
                let take = amount.min(balance);
                if take > 0 {
                    let w = reversal_change(&r, &player, &currency, take);
                    let request = fingerprint_change(&w);
                    if claim_op(&tx, &w.player_id, &w.idempotency_key, &request, w.now_ms)
                        .await?
                        .is_none()
                    {
                        let receipt = apply_change(&tx, &w).await?.map_err(|e| {
                            Fail::Store(StoreError::Backend(format!("reversal refused: {e:?}")))
                        })?;
                        finish_op(&tx, &w.player_id, &w.idempotency_key, &encode(&receipt)?)
                            .await?;
                        reversed = take;
                    }
                }
            }
            tx.execute(
                "UPDATE iap_transactions SET status = $3, revoked_at = $4, reversed_amount = $5 \
                 WHERE provider = $1 AND transaction_id = $2",
                &[
                    &r.provider,
                    &r.transaction_id,
                    &r.status,
                    &r.now_ms,
                    &reversed,
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(RevokeOutcome::Revoked { reversed })
        })
    }
}
