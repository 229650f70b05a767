//! In-app purchases: receipts from the App Store (StoreKit 2, verified offline, `apple.rs`) and
//! Google Play (verified against the Play Developer API, `google.rs`), recorded once per store
//! transaction and, unlike asobi (which only verifies), granted: the products file maps a
//! product id to a currency and amount, and the grant is made in the same storage transaction
//! that records the receipt (key `iap:<provider>:<transaction_id>`). A transaction id grants
//! once: the same player resubmitting gets `duplicate: true`, another player 409
//! `iap.transaction_already_claimed`.
//!
//! The products file: `ASOBI_IAP_FILE`, else `iap.json` in the game directory, else none (every
//! receipt is verified and recorded, nothing granted):
//! `{"products": {"com.example.gems_100": {"currency": "gems", "amount": 100}}}`.
//! An Apple `quantity` multiplies the grant; an expired subscription (`valid: false`) is
//! recorded but grants nothing.
//!
//! Refunds and revocations: App Store Server Notifications (V2) arrive at
//! `POST /iap/apple/notifications`, signed like transactions; a `REFUND` or `REVOKE` is recorded
//! and the grant taken back as far as the player's balance allows (what was spent stays spent;
//! storage's `revoke_iap`). Google's real-time developer notifications are not served yet.

pub(crate) mod apple;
pub(crate) mod error;
pub(crate) mod google;
pub(crate) mod rest;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Value};

use asobi_storage::{IapClaim, IapOutcome, IapRevocation, RevokeOutcome};

use super::Shard;
use error::Error;

/// The variable naming the products file.
pub(crate) const IAP_FILE_ENV: &str = "ASOBI_IAP_FILE";
/// The file looked for in the game directory when the variable is unset.
pub(crate) const DEFAULT_FILE: &str = "iap.json";

/// What a product grants.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Product {
    pub(crate) currency: String,
    pub(crate) amount: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductsFile {
    #[serde(default)]
    products: HashMap<String, Product>,
}

/// This shard's view of IAP: the store settings and the product map, read at start.
#[derive(Debug)]
pub(crate) struct Iap {
    apple: apple::AppleConfig,
    google: google::GoogleConfig,
    products: HashMap<String, Product>,
}

impl Iap {
    /// Reads the settings from the environment and the products file for the game in `dir`.
    pub(crate) fn load(dir: &Path) -> Result<Iap, String> {
        Ok(Iap {
            apple: apple::AppleConfig::from_env(),
            google: google::GoogleConfig::from_env()?,
            products: load_products(dir)?,
        })
    }
}

fn load_products(dir: &Path) -> Result<HashMap<String, Product>, String> {
    let path = match std::env::var_os(IAP_FILE_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            let p = dir.join(DEFAULT_FILE);
            if !p.exists() {
                return Ok(HashMap::new());
            }
            p
        }
    };
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("iap file {}: {e}", path.display()))?;
    let file: ProductsFile =
        serde_json::from_str(&text).map_err(|e| format!("iap file {}: {e}", path.display()))?;
    for (id, p) in &file.products {
        if p.currency.is_empty() || p.currency.len() > super::economy::MAX_TEXT {
            return Err(format!("iap file: product {id}: bad currency"));
        }
        if !(1..=super::economy::MAX_AMOUNT).contains(&p.amount) {
            return Err(format!("iap file: product {id}: amount must be positive"));
        }
    }
    Ok(file.products)
}

fn now_ms() -> i64 {
    crate::services::accounts::tokens::now_ms()
}

/// `"undefined"` where the store's payload has no value (asobi's convention).
fn or_undefined(v: Option<&Value>) -> Value {
    v.cloned()
        .filter(|v| !v.is_null())
        .unwrap_or_else(|| Value::String("undefined".into()))
}

/// What a verified receipt grants, if anything.
fn grant_for(
    shard: &Shard,
    product: Option<&str>,
    quantity: i64,
    valid: bool,
) -> Option<(String, i64)> {
    if !valid {
        return None;
    }
    let p = shard.iap.products.get(product?)?;
    let amount = p.amount.checked_mul(quantity.clamp(1, 1_000))?;
    (amount <= super::economy::MAX_AMOUNT).then(|| (p.currency.clone(), amount))
}

/// A verified receipt, ready to record.
struct Receipt {
    provider: &'static str,
    transaction_id: Option<String>,
    original: Option<String>,
    product: Option<String>,
    grant: Option<(String, i64)>,
    /// asobi's answer, to which `duplicate` and `granted` are added.
    result: Value,
}

/// Records a verified receipt and grants it once; answers `result` plus `duplicate` and
/// (ours) `granted`.
async fn record(shard: &Shard, player: &str, r: Receipt) -> Result<Value, Error> {
    let Receipt {
        provider,
        transaction_id,
        original,
        product,
        grant,
        mut result,
    } = r;
    let transaction_id = transaction_id.ok_or(Error::MissingTransactionId)?;
    let outcome = shard
        .ctx
        .store
        .claim_iap(IapClaim {
            provider: provider.to_owned(),
            transaction_id,
            player_id: player.to_owned(),
            original_transaction_id: original,
            product_id: product,
            grant,
            now_ms: now_ms(),
        })
        .await?;
    match outcome {
        IapOutcome::Claimed { granted } => {
            result["duplicate"] = json!(false);
            result["granted"] = match granted {
                Some(r) => json!({ "currency": r.wallet.currency, "amount": r.entry.amount,
                                   "balance": r.wallet.balance }),
                None => Value::Null,
            };
            Ok(result)
        }
        IapOutcome::Duplicate => {
            result["duplicate"] = json!(true);
            result["granted"] = Value::Null;
            Ok(result)
        }
        IapOutcome::ClaimedByOther => Err(Error::AlreadyClaimed),
        other => Err(Error::Record(format!("unmapped outcome {other:?}"))),
    }
}

/// `POST /iap/apple`: verifies a StoreKit 2 signed transaction, records and grants it.
pub(crate) async fn verify_apple(shard: &Shard, player: &str, jws: &str) -> Result<Value, Error> {
    let payload = apple::verify(&shard.iap.apple, jws, now_ms()).map_err(Error::Verification)?;
    let expires = payload.get("expiresDate").and_then(Value::as_i64);
    let valid = expires.is_none_or(|e| e > now_ms());
    let quantity = payload.get("quantity").and_then(Value::as_i64).unwrap_or(1);
    let product = apple::text(&payload, "productId");
    let result = json!({
        "product_id": or_undefined(payload.get("productId")),
        "transaction_id": or_undefined(payload.get("transactionId")),
        "original_transaction_id": or_undefined(payload.get("originalTransactionId")),
        "purchase_date": or_undefined(payload.get("purchaseDate")),
        "expires_date": or_undefined(payload.get("expiresDate")),
        "quantity": quantity,
        "type": payload.get("type").cloned().unwrap_or_else(|| json!("unknown")),
        "valid": valid,
    });
    let grant = grant_for(shard, product.as_deref(), quantity, valid);
    let receipt = Receipt {
        provider: "apple",
        transaction_id: apple::text(&payload, "transactionId"),
        original: apple::text(&payload, "originalTransactionId"),
        product,
        grant,
        result,
    };
    record(shard, player, receipt).await
}

/// `POST /iap/google`: asks Google about a purchase, records and grants it.
pub(crate) async fn verify_google(
    shard: &Shard,
    player: &str,
    product: &str,
    token: &str,
) -> Result<Value, Error> {
    if product.is_empty()
        || token.is_empty()
        || product.len() > google::MAX_FIELD
        || token.len() > google::MAX_FIELD
    {
        return Err(Error::Verification("missing_required_fields"));
    }
    let result = google::verify(&shard.iap.google, product, token)
        .await
        .map_err(Error::Verification)?;
    let order = result
        .get("order_id")
        .and_then(Value::as_str)
        .filter(|o| *o != "undefined")
        .map(str::to_owned);
    let quantity = result.get("quantity").and_then(Value::as_i64).unwrap_or(1);
    let receipt = Receipt {
        provider: "google",
        transaction_id: order,
        original: None,
        product: Some(product.to_owned()),
        grant: grant_for(shard, Some(product), quantity, true),
        result,
    };
    record(shard, player, receipt).await
}

/// `POST /iap/apple/notifications`: an App Store Server Notification V2 (`signedPayload`).
/// A `REFUND` or `REVOKE` of a transaction we recorded is recorded and the grant taken back as
/// far as the balance allows; other notification types are acknowledged and ignored.
pub(crate) async fn apple_notification(shard: &Shard, signed: &str) -> Result<Value, Error> {
    let now = now_ms();
    let outer = apple::verify_jws(&shard.iap.apple, signed, now).map_err(Error::Verification)?;
    let data = outer.get("data").cloned().unwrap_or(Value::Null);
    if data.get("bundleId").and_then(Value::as_str) != apple::bundle_id(&shard.iap.apple) {
        return Err(Error::Verification("bundle_id_mismatch"));
    }
    let kind = outer
        .get("notificationType")
        .and_then(Value::as_str)
        .unwrap_or("");
    let status = match kind {
        "REFUND" => "refunded",
        "REVOKE" => "revoked",
        _ => return Ok(json!({ "handled": false, "notification_type": kind })),
    };
    let info = data
        .get("signedTransactionInfo")
        .and_then(Value::as_str)
        .ok_or(Error::Verification("invalid_jws"))?;
    // The inner transaction is signed too, and must be ours.
    let txn = apple::verify(&shard.iap.apple, info, now).map_err(Error::Verification)?;
    let id = apple::text(&txn, "transactionId").ok_or(Error::MissingTransactionId)?;
    let out = shard
        .ctx
        .store
        .revoke_iap(IapRevocation {
            provider: "apple".into(),
            transaction_id: id.clone(),
            status: status.into(),
            now_ms: now,
        })
        .await?;
    let (recorded, reversed) = match out {
        RevokeOutcome::Revoked { reversed } => (true, reversed),
        _ => (false, 0),
    };
    Ok(
        json!({ "handled": true, "notification_type": kind, "transaction_id": id,
               "status": status, "recorded": recorded, "reversed": reversed }),
    )
}
