//! `GET /api/v1/saves`, `GET|PUT /api/v1/saves/:slot`, `GET /api/v1/storage/:collection`,
//! `GET|PUT|DELETE /api/v1/storage/:collection/:key`, and (ours) `GET /api/v1/players/:id/stats`.
//! Shapes and codes are asobi's. Ours: an optional `version` on a storage PUT (and as
//! `?version=` on DELETE) for optimistic concurrency, and the `none` permission.

use serde_json::{json, Map, Value};

use asobi_net::http::{percent_decode, Method};
use asobi_schema::error::code;
use asobi_schema::ApiError;

use super::error::Error;
use super::Put;
use crate::services::rest::{handler, ok, Req, Route};

pub(crate) const ROUTES: &[Route] = &[
    Route {
        method: Method::Get,
        path: "/saves",
        handler: list_saves,
    },
    Route {
        method: Method::Get,
        path: "/saves/:slot",
        handler: get_save,
    },
    Route {
        method: Method::Put,
        path: "/saves/:slot",
        handler: put_save,
    },
    Route {
        method: Method::Get,
        path: "/storage/:collection",
        handler: list_objects,
    },
    Route {
        method: Method::Get,
        path: "/storage/:collection/:key",
        handler: get_object,
    },
    Route {
        method: Method::Put,
        path: "/storage/:collection/:key",
        handler: put_object,
    },
    Route {
        method: Method::Delete,
        path: "/storage/:collection/:key",
        handler: delete_object,
    },
    Route {
        method: Method::Get,
        path: "/players/:id/stats",
        handler: player_stats,
    },
];

/// The body as a JSON object; anything else is asobi's `storage.invalid_request`.
fn object_body(r: &Req<'_>) -> Result<Map<String, Value>, ApiError> {
    if r.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let value: Value = serde_json::from_slice(&r.body)
        .map_err(|_| ApiError::new(400, code::INVALID_JSON, "The body is not valid JSON."))?;
    match value {
        Value::Object(m) => Ok(m),
        _ => Err(Error::InvalidRequest("body").into()),
    }
}

/// `?limit=`, default 50, clamped to 1–200.
fn limit(r: &Req<'_>) -> u32 {
    r.head
        .query_param("limit")
        .and_then(|l| l.parse::<u32>().ok())
        .unwrap_or(50)
}

handler!(list_saves, |s, r| {
    let player = r.player(s)?;
    let saves = super::saves(s, &player).await?;
    ok(&json!({ "saves": saves }))
});

handler!(get_save, |s, r| {
    let player = r.player(s)?;
    let slot = percent_decode(r.param(0));
    ok(&super::get_save(s, &player, &slot).await?)
});

handler!(put_save, |s, r| {
    let player = r.player(s)?;
    let slot = percent_decode(r.param(0));
    let mut body = object_body(&r)?;
    let version = super::version(body.get("version"))?;
    // asobi stores `{}` when `data` is absent.
    let data = body.remove("data").unwrap_or_else(|| json!({}));
    ok(&super::put_save(s, &player, &slot, data, version).await?)
});

handler!(list_objects, |s, r| {
    let player = r.player(s)?;
    let collection = percent_decode(r.param(0));
    let objects = super::list_objects(s, &player, &collection, limit(&r)).await?;
    ok(&json!({ "objects": objects }))
});

handler!(get_object, |s, r| {
    let player = r.player(s)?;
    let (collection, key) = (percent_decode(r.param(0)), percent_decode(r.param(1)));
    ok(&super::get_object(s, &player, &collection, &key).await?)
});

handler!(put_object, |s, r| {
    let player = r.player(s)?;
    let (collection, key) = (percent_decode(r.param(0)), percent_decode(r.param(1)));
    let mut body = object_body(&r)?;
    let put = Put {
        collection,
        key,
        read_perm: super::perm(body.get("read_perm"))?,
        write_perm: super::perm(body.get("write_perm"))?,
        version: super::version(body.get("version"))?,
        // asobi stores `{}` when `value` is absent.
        value: body.remove("value").unwrap_or_else(|| json!({})),
    };
    ok(&super::put_object(s, &player, put).await?)
});

handler!(delete_object, |s, r| {
    let player = r.player(s)?;
    let (collection, key) = (percent_decode(r.param(0)), percent_decode(r.param(1)));
    let version = match r.head.query_param("version") {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or(Error::InvalidRequest("version"))?,
        ),
    };
    super::delete_object(s, &player, &collection, &key, version).await?;
    ok(&json!({ "success": true }))
});

handler!(player_stats, |s, r| {
    r.player(s)?;
    let id = percent_decode(r.param(0));
    ok(&super::stats::read(s, &id).await?)
});
