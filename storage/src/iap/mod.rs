//! In-app purchases: verified store transactions, each claimed by one player and granting once.
//!
//! A claim records the transaction and grants what its product is worth in one transaction,
//! under the economy key `iap:<provider>:<transaction_id>`: the same player submitting it again
//! gets `Duplicate` (nothing granted), another player `ClaimedByOther`. A refund or revocation
//! marks the row and takes the grant back as far as the balance allows (never below zero: what
//! was already spent stays spent), recording how much it took.

mod postgres;
mod sqlite;

use crate::backend::Reply;
use crate::{StoreError, StoreHandle, WalletReceipt};

/// A verified transaction to record.
#[derive(Clone, Debug)]
pub struct IapClaim {
    /// `apple` or `google`.
    pub provider: String,
    /// The store's transaction id (Apple `transactionId`, Google `orderId`).
    pub transaction_id: String,
    /// Who claims it.
    pub player_id: String,
    /// Apple's `originalTransactionId`, if any.
    pub original_transaction_id: Option<String>,
    /// The store's product id, if any.
    pub product_id: Option<String>,
    /// What to grant: currency and positive amount.
    pub grant: Option<(String, i64)>,
    /// Unix ms.
    pub now_ms: i64,
}

/// What a claim did.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum IapOutcome {
    /// Recorded now, with the grant's wallet change if it granted.
    Claimed {
        /// The grant.
        granted: Option<Box<WalletReceipt>>,
    },
    /// This player claimed it before; nothing changed.
    Duplicate,
    /// Another player claimed it.
    ClaimedByOther,
}

/// A refund or revocation the store reported.
#[derive(Clone, Debug)]
pub struct IapRevocation {
    /// `apple` or `google`.
    pub provider: String,
    /// The store's transaction id.
    pub transaction_id: String,
    /// `refunded` or `revoked`.
    pub status: String,
    /// Unix ms.
    pub now_ms: i64,
}

/// What a revocation did.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// No such transaction was ever claimed.
    NotFound,
    /// Recorded before; nothing changed.
    AlreadyRevoked,
    /// Recorded now; `reversed` of the grant was taken back (at most the balance).
    Revoked {
        /// Amount debited back.
        reversed: i64,
    },
}

/// The economy key an IAP grant is recorded under.
pub fn grant_key(provider: &str, transaction_id: &str) -> String {
    format!("iap:{provider}:{transaction_id}")
}

fn revoke_key(provider: &str, transaction_id: &str) -> String {
    format!("iap:{provider}:{transaction_id}:revoke")
}

/// The IAP operations one database implements.
pub(crate) trait Iap: Send + Sync {
    fn claim_iap(&self, c: IapClaim) -> Reply<'_, IapOutcome>;
    fn revoke_iap(&self, r: IapRevocation) -> Reply<'_, RevokeOutcome>;
}

impl StoreHandle {
    /// Records a verified transaction for a player and grants its product once.
    pub async fn claim_iap(&self, c: IapClaim) -> Result<IapOutcome, StoreError> {
        if c.grant.as_ref().is_some_and(|(_, a)| *a <= 0) {
            return Err(StoreError::Precondition("a grant must be positive".into()));
        }
        self.call(move |db| db.claim_iap(c)).await
    }

    /// Records a refund or revocation and takes the grant back where the balance allows.
    pub async fn revoke_iap(&self, r: IapRevocation) -> Result<RevokeOutcome, StoreError> {
        if r.status != "refunded" && r.status != "revoked" {
            return Err(StoreError::Precondition(
                "status is refunded or revoked".into(),
            ));
        }
        self.call(move |db| db.revoke_iap(r)).await
    }
}

fn grant_change(c: &IapClaim, currency: &str, amount: i64) -> crate::WalletChange {
    crate::WalletChange {
        player_id: c.player_id.clone(),
        currency: currency.to_owned(),
        amount,
        reason: "iap_purchase".to_owned(),
        reference_type: Some(format!("iap_{}", c.provider)),
        reference_id: Some(c.transaction_id.clone()),
        metadata: serde_json::json!({ "product_id": c.product_id }),
        idempotency_key: grant_key(&c.provider, &c.transaction_id),
        now_ms: c.now_ms,
    }
}

fn reversal_change(
    r: &IapRevocation,
    player: &str,
    currency: &str,
    amount: i64,
) -> crate::WalletChange {
    crate::WalletChange {
        player_id: player.to_owned(),
        currency: currency.to_owned(),
        amount: -amount,
        reason: format!("iap_{}", r.status),
        reference_type: Some(format!("iap_{}", r.provider)),
        reference_id: Some(r.transaction_id.clone()),
        metadata: serde_json::json!({}),
        idempotency_key: revoke_key(&r.provider, &r.transaction_id),
        now_ms: r.now_ms,
    }
}
