//! Wire types of the economy routes (`/wallets`, `/store`, `/inventory`): the request bodies
//! the server reads. Answers are built from the storage rows, in asobi's shapes.

use serde::Deserialize;
use serde_json::Value;

/// `POST /api/v1/store/purchase`.
#[derive(Debug, Deserialize)]
pub struct PurchaseRequest {
    /// The listing's `id` from `GET /store`.
    pub listing_id: String,
    /// How many (default 1); the new inventory row holds this many.
    #[serde(default)]
    pub quantity: Option<Value>,
    /// Makes a retry safe (ours; the `Idempotency-Key` header works too). Without one, every
    /// request is a new purchase, as on asobi.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `POST /api/v1/inventory/consume`.
#[derive(Debug, Deserialize)]
pub struct ConsumeRequest {
    /// The inventory item's `id`.
    pub item_id: String,
    /// A positive integer, at most 1,000,000; kept raw so a bad value gets asobi's own code.
    #[serde(default)]
    pub quantity: Option<Value>,
    /// Makes a retry safe (ours; the `Idempotency-Key` header works too).
    #[serde(default)]
    pub idempotency_key: Option<String>,
}
