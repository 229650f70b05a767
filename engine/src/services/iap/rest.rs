//! `POST /api/v1/iap/apple` (`{signed_transaction}`), `POST /api/v1/iap/google`
//! (`{product_id, purchase_token}`), both for a signed-in player, and (ours)
//! `POST /api/v1/iap/apple/notifications` (`{signedPayload}`, Apple's server-to-server call,
//! authenticated by its signature).

use serde_json::Value;

use asobi_net::http::Method;
use asobi_schema::error::code;
use asobi_schema::ApiError;

use super::error::Error;
use crate::services::rest::{handler, ok, Route};

pub(crate) const ROUTES: &[Route] = &[
    Route {
        method: Method::Post,
        path: "/iap/apple",
        handler: apple,
    },
    Route {
        method: Method::Post,
        path: "/iap/google",
        handler: google,
    },
    Route {
        method: Method::Post,
        path: "/iap/apple/notifications",
        handler: apple_notification,
    },
];

fn missing_field() -> ApiError {
    ApiError::new(400, code::MISSING_FIELD, "A required field is missing.")
}

handler!(apple, |s, r| {
    let player = r.player(s)?;
    let body: serde_json::Map<String, Value> = r.json()?;
    let jws = body
        .get("signed_transaction")
        .and_then(Value::as_str)
        .ok_or_else(missing_field)?;
    ok(&super::verify_apple(s, &player, jws).await?)
});

handler!(google, |s, r| {
    let player = r.player(s)?;
    let body: serde_json::Map<String, Value> = r.json()?;
    let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("");
    ok(&super::verify_google(s, &player, field("product_id"), field("purchase_token")).await?)
});

handler!(apple_notification, |s, r| {
    let body: serde_json::Map<String, Value> = r.json()?;
    let signed = body
        .get("signedPayload")
        .and_then(Value::as_str)
        .ok_or(Error::Verification("invalid_jws"))?;
    ok(&super::apple_notification(s, signed).await?)
});
