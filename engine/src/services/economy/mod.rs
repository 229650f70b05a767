//! The economy: wallets and their ledger, the store, and player inventory — one function per
//! operation, called alike from REST (`rest.rs`) and Lua (`script.rs`).
//!
//! Where money lives: in the database, not in shard memory. Every operation is one request to
//! the storage bridge (`StoreHandle`), whose transaction is the source of truth: it moves the
//! balance, refuses to go below zero, appends the ledger row and records the idempotency key
//! together. A shard-owned wallet cache would have to agree with that transaction anyway (and
//! with other shards, and with a restart), so it would add a second truth without removing a
//! round trip. The shard holds only the catalogue (`catalog.rs`), which is read-only.
//!
//! Validation happens here once: amounts, quantities and text lengths, currencies against the
//! catalogue, listings priced from the catalogue, and an idempotency key for every money
//! operation (the caller's, or a fresh one, so that every ledger row carries one).

pub(crate) mod catalog;
pub(crate) mod error;
pub(crate) mod rest;
pub(crate) mod script;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use asobi_script::Game;
use asobi_storage::{
    Consume, ConsumeReceipt, Done, LedgerEntry, NewPurchase, PlayerItem, PurchaseReceipt, Wallet,
    WalletChange, WalletReceipt,
};
use serde_json::Value;

pub(crate) use catalog::Catalog;
use error::Error;

use super::Shard;

/// Largest grant or debit in one operation: far above any game's prices, far below where a
/// few thousand grants could overflow a 64-bit balance.
pub(crate) const MAX_AMOUNT: i64 = 1_000_000_000_000;
/// Largest quantity one purchase buys (the price is multiplied by it).
pub(crate) const MAX_PURCHASE_QUANTITY: i64 = 1_000;
/// Largest quantity one consume takes (asobi's cap).
pub(crate) const MAX_CONSUME_QUANTITY: i64 = 1_000_000;
/// Longest currency name, reason or idempotency key accepted.
pub(crate) const MAX_TEXT: usize = 128;

/// This shard's view of the economy: the catalogue, shared by every shard.
pub(crate) struct Economy {
    pub(crate) catalog: Arc<Catalog>,
}

impl Economy {
    /// Reads the economy file for `game` (see `catalog`).
    pub(crate) fn load(game: &Game) -> Result<Economy, String> {
        Ok(Economy {
            catalog: Arc::new(Catalog::load(&game.dir)?),
        })
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn text(field: &'static str, value: &str) -> Result<(), Error> {
    if value.is_empty() || value.len() > MAX_TEXT {
        return Err(Error::InvalidField(field));
    }
    Ok(())
}

/// The caller's key, checked, or a fresh one: every money operation is recorded under a key.
fn key_or_new(key: Option<String>) -> Result<String, Error> {
    match key {
        Some(k) => {
            text("idempotency_key", &k)?;
            Ok(k)
        }
        None => Ok(format!("auto:{}", uuid::Uuid::now_v7())),
    }
}

fn currency(shard: &Shard, currency: &str) -> Result<(), Error> {
    text("currency", currency)?;
    if !shard.economy.catalog.knows_currency(currency) {
        return Err(Error::UnknownCurrency(currency.to_owned()));
    }
    Ok(())
}

/// A JSON number as a whole count: integers, and floats with no fraction (Lua numbers).
pub(crate) fn whole(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    })
}

/// The player's wallets.
pub(crate) async fn wallets(shard: &Shard, player: &str) -> Result<Vec<Wallet>, Error> {
    Ok(shard.ctx.store.wallets(player).await?)
}

/// One wallet's ledger, newest first.
pub(crate) async fn history(
    shard: &Shard,
    player: &str,
    cur: &str,
    limit: u32,
) -> Result<Vec<LedgerEntry>, Error> {
    currency(shard, cur)?;
    Ok(shard.ctx.store.wallet_history(player, cur, limit).await?)
}

/// What a grant or debit asks for.
pub(crate) struct Change {
    pub(crate) player: String,
    pub(crate) currency: String,
    /// Positive; [`grant`] adds it, [`debit`] takes it.
    pub(crate) amount: i64,
    pub(crate) reason: Option<String>,
    pub(crate) key: Option<String>,
}

/// Adds `c.amount` (reason `admin_grant` by default, as on asobi).
pub(crate) async fn grant(shard: &Shard, c: Change) -> Result<Done<WalletReceipt>, Error> {
    apply(shard, c, 1, "admin_grant").await
}

/// Takes `c.amount`; refused below zero (reason `purchase` by default, as on asobi).
pub(crate) async fn debit(shard: &Shard, c: Change) -> Result<Done<WalletReceipt>, Error> {
    apply(shard, c, -1, "purchase").await
}

async fn apply(
    shard: &Shard,
    c: Change,
    sign: i64,
    default_reason: &str,
) -> Result<Done<WalletReceipt>, Error> {
    currency(shard, &c.currency)?;
    if !(1..=MAX_AMOUNT).contains(&c.amount) {
        return Err(Error::InvalidAmount);
    }
    let reason = c.reason.unwrap_or_else(|| default_reason.to_owned());
    text("reason", &reason)?;
    let change = WalletChange {
        player_id: c.player,
        currency: c.currency,
        amount: sign * c.amount,
        reason,
        reference_type: None,
        reference_id: None,
        metadata: Value::Object(Default::default()),
        idempotency_key: key_or_new(c.key)?,
        now_ms: now_ms(),
    };
    Ok(shard.ctx.store.change_wallet(change).await??)
}

/// Buys `quantity` of a listing: debit and item in one transaction.
pub(crate) async fn purchase(
    shard: &Shard,
    player: &str,
    listing_id: &str,
    quantity: i64,
    key: Option<String>,
) -> Result<Done<PurchaseReceipt>, Error> {
    if !(1..=MAX_PURCHASE_QUANTITY).contains(&quantity) {
        return Err(Error::InvalidQuantity);
    }
    let catalog = shard.economy.catalog.clone();
    let listing = catalog.listing(listing_id).ok_or(Error::ListingNotFound)?;
    if !listing.active {
        return Err(Error::ListingInactive);
    }
    let purchase = NewPurchase {
        player_id: player.to_owned(),
        listing_id: listing.id.clone(),
        item_def_id: listing.item_def_id.clone(),
        currency: listing.currency.clone(),
        price: listing
            .price
            .checked_mul(quantity)
            .ok_or(Error::InvalidQuantity)?,
        quantity,
        idempotency_key: key_or_new(key)?,
        now_ms: now_ms(),
    };
    Ok(shard.ctx.store.purchase(purchase).await??)
}

/// The player's items, newest first.
pub(crate) async fn inventory(
    shard: &Shard,
    player: &str,
    limit: u32,
) -> Result<Vec<PlayerItem>, Error> {
    Ok(shard.ctx.store.inventory(player, limit).await?)
}

/// Uses up `quantity` of one of the player's items.
pub(crate) async fn consume(
    shard: &Shard,
    player: &str,
    item_id: &str,
    quantity: i64,
    key: Option<String>,
) -> Result<Done<ConsumeReceipt>, Error> {
    if !(1..=MAX_CONSUME_QUANTITY).contains(&quantity) {
        return Err(Error::InvalidQuantity);
    }
    text("item_id", item_id)?;
    if let Some(k) = &key {
        text("idempotency_key", k)?;
    }
    let c = Consume {
        player_id: player.to_owned(),
        item_id: item_id.to_owned(),
        quantity,
        idempotency_key: key,
        now_ms: now_ms(),
    };
    Ok(shard.ctx.store.consume_item(c).await??)
}
