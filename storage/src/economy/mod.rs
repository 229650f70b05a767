//! Economy: wallets with an append-only ledger, player inventory, store purchases, and the
//! idempotency record that makes every money operation safe to retry.
//!
//! Money lives here, not in shard memory: the database transaction is the source of truth. A
//! balance is changed only by one statement that also refuses to go below zero, inside the
//! transaction that appends the ledger row and records the idempotency key, so a balance always
//! equals the sum of its ledger, never goes negative, and a retried request never applies twice
//! (a replay returns the first result; the same key for a different request is refused).
//!
//! Item definitions and store listings are configuration the engine holds; a purchase arrives
//! here already priced, naming the listing and the item definition by id.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::Reply;
use crate::error::parse_json_column;
use crate::{StoreError, StoreHandle};

/// Largest page of history or inventory one call returns (asobi clamps `limit` to 1–200).
pub const MAX_ECONOMY_LIST: u32 = 200;

/// A player's balance in one currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wallet {
    /// Currency name, e.g. `"gold"`.
    pub currency: String,
    /// Never negative.
    pub balance: i64,
}

/// One ledger row: a signed change and the balance it left.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Entry id (UUIDv7).
    pub id: String,
    /// The wallet it changed.
    pub wallet_id: String,
    /// Positive for a grant, negative for a debit or purchase.
    pub amount: i64,
    /// The wallet's balance right after this entry.
    pub balance_after: i64,
    /// Why (`"match_reward"`, `"purchase"`, ...).
    pub reason: String,
    /// What kind of thing caused it (`"store_listing"` for purchases).
    pub reference_type: Option<String>,
    /// Id of the thing that caused it.
    pub reference_id: Option<String>,
    /// Free-form JSON, `{}` by default.
    pub metadata: Value,
    /// The key that makes the operation idempotent.
    pub idempotency_key: String,
    /// Unix milliseconds.
    pub inserted_at: i64,
}

/// One item a player holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlayerItem {
    /// Item instance id (UUIDv7).
    pub id: String,
    /// The item definition it is an instance of.
    pub item_def_id: String,
    /// Owner.
    pub player_id: String,
    /// How many the stack holds; always at least 1 (a consumed-out stack is deleted).
    pub quantity: i64,
    /// Free-form JSON, `{}` by default.
    pub metadata: Value,
    /// Unix milliseconds.
    pub acquired_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// A grant (`amount > 0`) or debit (`amount < 0`) of one currency.
#[derive(Clone, Debug)]
pub struct WalletChange {
    /// Owner of the wallet; the wallet is created on first use.
    pub player_id: String,
    /// Currency name.
    pub currency: String,
    /// Signed, non-zero.
    pub amount: i64,
    /// Recorded on the ledger row.
    pub reason: String,
    /// Recorded on the ledger row.
    pub reference_type: Option<String>,
    /// Recorded on the ledger row.
    pub reference_id: Option<String>,
    /// Recorded on the ledger row; must be a JSON object.
    pub metadata: Value,
    /// Unique per player: a second call with the same key returns the first result.
    pub idempotency_key: String,
    /// Unix milliseconds.
    pub now_ms: i64,
}

/// A store purchase, priced by the caller from its catalogue.
#[derive(Clone, Debug)]
pub struct NewPurchase {
    /// Buyer.
    pub player_id: String,
    /// The listing bought (recorded as the ledger row's reference).
    pub listing_id: String,
    /// The item definition the buyer receives.
    pub item_def_id: String,
    /// Currency debited.
    pub currency: String,
    /// Total price (`unit price × quantity`), positive.
    pub price: i64,
    /// Stack size of the new inventory row, at least 1.
    pub quantity: i64,
    /// Unique per player: a second call with the same key returns the first result.
    pub idempotency_key: String,
    /// Unix milliseconds.
    pub now_ms: i64,
}

/// Using up part or all of an inventory stack.
#[derive(Clone, Debug)]
pub struct Consume {
    /// Who consumes; must own the item.
    pub player_id: String,
    /// Item instance id.
    pub item_id: String,
    /// How many, at least 1.
    pub quantity: i64,
    /// Optional: with a key, a retry returns the first result instead of consuming again.
    pub idempotency_key: Option<String>,
    /// Unix milliseconds.
    pub now_ms: i64,
}

/// What a wallet change did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WalletReceipt {
    /// The wallet afterwards.
    pub wallet: Wallet,
    /// The ledger row written.
    pub entry: LedgerEntry,
}

/// What a purchase did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PurchaseReceipt {
    /// The inventory row inserted.
    pub item: PlayerItem,
    /// The wallet afterwards.
    pub wallet: Wallet,
    /// The ledger row written.
    pub entry: LedgerEntry,
}

/// What a consume did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumeReceipt {
    /// What the stack holds now (0: the row was deleted).
    pub remaining: i64,
}

/// A completed operation: its result, and whether it was applied now or earlier under the same
/// idempotency key (then nothing changed this time).
#[derive(Clone, Debug, PartialEq)]
pub struct Done<T> {
    /// The result (the first one, for a replay).
    pub value: T,
    /// True when the key had already been applied.
    pub replayed: bool,
}

/// Why an economy operation changed nothing. These are answers, not failures of the database.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The wallet holds less than the debit or price.
    InsufficientFunds {
        /// The balance when refused.
        balance: i64,
    },
    /// No inventory item with this id.
    ItemNotFound,
    /// The item belongs to another player.
    NotYourItem,
    /// The stack holds fewer than asked.
    InsufficientQuantity {
        /// What the stack holds.
        have: i64,
    },
    /// The idempotency key was already used by this player for a different request.
    KeyReused,
}

/// The result of a money or item operation: done (now or earlier), or refused.
pub type Outcome<T> = Result<Done<T>, Refusal>;

/// One wallet checked against its ledger (for audits and the concurrency proof).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletAudit {
    /// Owner.
    pub player_id: String,
    /// Currency.
    pub currency: String,
    /// The stored balance.
    pub balance: i64,
    /// The sum of the wallet's ledger amounts; equal to `balance` in a sound database.
    pub ledger_sum: i64,
    /// Ledger rows.
    pub entries: i64,
}

/// The economy operations one database implements.
pub(crate) trait Economy: Send + Sync {
    fn wallets(&self, player_id: String) -> Reply<'_, Vec<Wallet>>;
    fn wallet_history(
        &self,
        player_id: String,
        currency: String,
        limit: u32,
    ) -> Reply<'_, Vec<LedgerEntry>>;
    fn change_wallet(&self, c: WalletChange) -> Reply<'_, Outcome<WalletReceipt>>;
    fn purchase(&self, p: NewPurchase) -> Reply<'_, Outcome<PurchaseReceipt>>;
    fn inventory(&self, player_id: String, limit: u32) -> Reply<'_, Vec<PlayerItem>>;
    fn consume_item(&self, c: Consume) -> Reply<'_, Outcome<ConsumeReceipt>>;
    fn audit_wallets(&self) -> Reply<'_, Vec<WalletAudit>>;
}

impl StoreHandle {
    /// Every wallet the player has, by currency name.
    pub async fn wallets(&self, player_id: &str) -> Result<Vec<Wallet>, StoreError> {
        let player_id = player_id.to_owned();
        self.call(move |db| db.wallets(player_id)).await
    }

    /// The wallet's ledger, newest first, at most `limit` rows (clamped to 1–200); empty when
    /// the player has no wallet in that currency.
    pub async fn wallet_history(
        &self,
        player_id: &str,
        currency: &str,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let (player_id, currency) = (player_id.to_owned(), currency.to_owned());
        let limit = clamp_limit(limit);
        self.call(move |db| db.wallet_history(player_id, currency, limit))
            .await
    }

    /// Grants (`amount > 0`) or debits (`amount < 0`) in one transaction with its ledger row.
    /// A debit larger than the balance is refused ([`Refusal::InsufficientFunds`]).
    /// [`StoreError::Precondition`] for a zero amount or non-object metadata.
    pub async fn change_wallet(
        &self,
        c: WalletChange,
    ) -> Result<Outcome<WalletReceipt>, StoreError> {
        if c.amount == 0 {
            return Err(StoreError::Precondition("amount must not be zero".into()));
        }
        if !c.metadata.is_object() {
            return Err(StoreError::Precondition(
                "metadata must be an object".into(),
            ));
        }
        self.call(move |db| db.change_wallet(c)).await
    }

    /// Debits `p.price` and inserts the item row in one transaction.
    /// [`StoreError::Precondition`] for a non-positive price or quantity.
    pub async fn purchase(&self, p: NewPurchase) -> Result<Outcome<PurchaseReceipt>, StoreError> {
        if p.price <= 0 || p.quantity <= 0 {
            return Err(StoreError::Precondition(
                "price and quantity must be positive".into(),
            ));
        }
        self.call(move |db| db.purchase(p)).await
    }

    /// The player's items, newest acquisition first, at most `limit` (clamped to 1–200).
    pub async fn inventory(
        &self,
        player_id: &str,
        limit: u32,
    ) -> Result<Vec<PlayerItem>, StoreError> {
        let player_id = player_id.to_owned();
        let limit = clamp_limit(limit);
        self.call(move |db| db.inventory(player_id, limit)).await
    }

    /// Takes `c.quantity` from the stack; consuming all of it deletes the row.
    /// [`StoreError::Precondition`] for a non-positive quantity.
    pub async fn consume_item(&self, c: Consume) -> Result<Outcome<ConsumeReceipt>, StoreError> {
        if c.quantity <= 0 {
            return Err(StoreError::Precondition("quantity must be positive".into()));
        }
        self.call(move |db| db.consume_item(c)).await
    }

    /// Every wallet with the sum of its ledger. Reads the whole table: for audits and tests.
    pub async fn audit_wallets(&self) -> Result<Vec<WalletAudit>, StoreError> {
        self.call(|db| db.audit_wallets()).await
    }
}

fn clamp_limit(limit: u32) -> u32 {
    limit.clamp(1, MAX_ECONOMY_LIST)
}

/// A new row id: UUIDv7, so ids sort by creation like the rows' times.
fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// What an idempotency key is bound to: a retry must repeat the same request.
pub(crate) fn fingerprint_change(c: &WalletChange) -> String {
    serde_json::json!(["wallet", c.currency, c.amount, c.reason]).to_string()
}

fn fingerprint_purchase(p: &NewPurchase) -> String {
    serde_json::json!(["purchase", p.listing_id, p.quantity]).to_string()
}

fn fingerprint_consume(c: &Consume) -> String {
    serde_json::json!(["consume", c.item_id, c.quantity]).to_string()
}

/// An existing operation row read back: the first result if the request matches, else refusal.
pub(crate) fn replay<T: serde::de::DeserializeOwned>(
    fingerprint: &str,
    stored_request: &str,
    stored_result: &str,
) -> Result<Outcome<T>, StoreError> {
    if stored_request != fingerprint {
        return Ok(Err(Refusal::KeyReused));
    }
    let value = parse_json_column("result", stored_result)?;
    Ok(Ok(Done {
        value,
        replayed: true,
    }))
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("encode result: {e}")))
}

const LEDGER_COLUMNS: &str = "l.id, l.wallet_id, l.amount, l.balance_after, l.reason, \
     l.reference_type, l.reference_id, l.metadata, l.idempotency_key, l.inserted_at";

const ITEM_COLUMNS: &str =
    "i.id, i.item_def_id, i.player_id, i.quantity, i.metadata, i.acquired_at, i.updated_at";

const AUDIT_SQL: &str = "SELECT w.player_id, w.currency, w.balance, \
     CAST(COALESCE(SUM(l.amount), 0) AS BIGINT), COUNT(l.id) \
     FROM wallets w LEFT JOIN wallet_ledger l ON l.wallet_id = w.id \
     GROUP BY w.id, w.player_id, w.currency, w.balance ORDER BY w.player_id, w.currency";

/// The ledger row a change writes, before it is inserted.
fn ledger_entry(c: &WalletChange, wallet_id: String, balance_after: i64) -> LedgerEntry {
    LedgerEntry {
        id: new_id(),
        wallet_id,
        amount: c.amount,
        balance_after,
        reason: c.reason.clone(),
        reference_type: c.reference_type.clone(),
        reference_id: c.reference_id.clone(),
        metadata: c.metadata.clone(),
        idempotency_key: c.idempotency_key.clone(),
        inserted_at: c.now_ms,
    }
}

/// The change a purchase makes to the buyer's wallet.
fn purchase_debit(p: &NewPurchase) -> WalletChange {
    WalletChange {
        player_id: p.player_id.clone(),
        currency: p.currency.clone(),
        amount: -p.price,
        reason: "purchase".to_owned(),
        reference_type: Some("store_listing".to_owned()),
        reference_id: Some(p.listing_id.clone()),
        metadata: Value::Object(Default::default()),
        idempotency_key: p.idempotency_key.clone(),
        now_ms: p.now_ms,
    }
}

fn new_item(p: &NewPurchase) -> PlayerItem {
    PlayerItem {
        id: new_id(),
        item_def_id: p.item_def_id.clone(),
        player_id: p.player_id.clone(),
        quantity: p.quantity,
        metadata: Value::Object(Default::default()),
        acquired_at: p.now_ms,
        updated_at: p.now_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_clamp() {
        assert_eq!(clamp_limit(0), 1);
        assert_eq!(clamp_limit(50), 50);
        assert_eq!(clamp_limit(10_000), MAX_ECONOMY_LIST);
    }

    #[test]
    fn a_key_replays_only_the_same_request() {
        let stored = encode(&ConsumeReceipt { remaining: 3 }).unwrap();
        let same: Outcome<ConsumeReceipt> = replay("a", "a", &stored).unwrap();
        assert_eq!(
            same,
            Ok(Done {
                value: ConsumeReceipt { remaining: 3 },
                replayed: true
            })
        );
        let other: Outcome<ConsumeReceipt> = replay("b", "a", &stored).unwrap();
        assert_eq!(other, Err(Refusal::KeyReused));
    }
}
