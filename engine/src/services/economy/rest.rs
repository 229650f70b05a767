//! `GET /api/v1/wallets`, `GET /api/v1/wallets/:currency/history`, `GET /api/v1/store`,
//! `POST /api/v1/store/purchase`, `GET /api/v1/inventory`, `POST /api/v1/inventory/consume`.
//! Shapes and codes are asobi's; an idempotency key may come as `idempotency_key` in the body or
//! as the `Idempotency-Key` header (ours), and a retry with it gets the first answer again.

use serde_json::json;

use asobi_net::http::Method;
use asobi_schema::economy::{ConsumeRequest, PurchaseRequest};

use super::error::Error;
use crate::services::rest::{handler, ok, Req, Route};

pub(crate) const ROUTES: &[Route] = &[
    Route {
        method: Method::Get,
        path: "/wallets",
        handler: wallets,
    },
    Route {
        method: Method::Get,
        path: "/wallets/:currency/history",
        handler: history,
    },
    Route {
        method: Method::Get,
        path: "/store",
        handler: store,
    },
    Route {
        method: Method::Post,
        path: "/store/purchase",
        handler: purchase,
    },
    Route {
        method: Method::Get,
        path: "/inventory",
        handler: inventory,
    },
    Route {
        method: Method::Post,
        path: "/inventory/consume",
        handler: consume,
    },
];

/// `?limit=`, default 50, clamped to 1–200 (storage clamps too).
fn limit(r: &Req<'_>) -> u32 {
    r.head
        .query_param("limit")
        .and_then(|l| l.parse::<u32>().ok())
        .unwrap_or(50)
        .clamp(1, asobi_storage::MAX_ECONOMY_LIST)
}

fn key(r: &Req<'_>, body: Option<String>) -> Option<String> {
    body.or_else(|| r.head.header("idempotency-key").map(str::to_owned))
}

handler!(wallets, |s, r| {
    let player = r.player(s)?;
    let wallets = super::wallets(s, &player).await?;
    ok(&json!({ "wallets": wallets }))
});

handler!(history, |s, r| {
    let player = r.player(s)?;
    let currency = asobi_net::http::percent_decode(r.param(0));
    let entries = super::history(s, &player, &currency, limit(&r)).await?;
    ok(&json!({ "transactions": entries }))
});

handler!(store, |s, r| {
    r.player(s)?;
    let currency = r.head.query_param("currency");
    let catalog = &s.economy.catalog;
    // asobi's listing shape, plus (ours) the item definition it sells under `item`.
    let listings: Vec<_> = catalog
        .listings
        .iter()
        .filter(|l| l.active && currency.as_ref().is_none_or(|c| *c == l.currency))
        .map(|l| {
            let mut v = json!(l);
            v["item"] = json!(catalog.item(&l.item_def_id));
            v
        })
        .collect();
    ok(&json!({ "listings": listings }))
});

handler!(purchase, |s, r| {
    let player = r.player(s)?;
    let body: PurchaseRequest = r.json()?;
    let quantity = match &body.quantity {
        None => 1,
        Some(q) => super::whole(q).ok_or(Error::InvalidQuantity)?,
    };
    let key = key(&r, body.idempotency_key);
    let done = super::purchase(s, &player, &body.listing_id, quantity, key).await?;
    ok(&json!({ "success": true, "item": done.value.item }))
});

handler!(inventory, |s, r| {
    let player = r.player(s)?;
    let items = super::inventory(s, &player, limit(&r)).await?;
    ok(&json!({ "items": items }))
});

handler!(consume, |s, r| {
    let player = r.player(s)?;
    let body: ConsumeRequest = r.json()?;
    let quantity = body
        .quantity
        .as_ref()
        .and_then(super::whole)
        .ok_or(Error::InvalidQuantity)?;
    let key = key(&r, body.idempotency_key);
    let done = super::consume(s, &player, &body.item_id, quantity, key).await?;
    ok(&json!({ "success": true, "remaining_quantity": done.value.remaining }))
});
