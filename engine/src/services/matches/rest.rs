//! `GET /api/v1/matches/live`, `GET /api/v1/matches/:id`, `GET /api/v1/matches`.

use serde_json::{json, Value};

use super::error::Error;
use asobi_net::http::Method;

use crate::services::error::store_error;
use crate::services::matchmaker::MAX_MODE_NAME;
use crate::services::rest::{handler, ok, Route};

pub(crate) const ROUTES: &[Route] = &[
    Route {
        method: Method::Get,
        path: "/matches/live",
        handler: live,
    },
    Route {
        method: Method::Get,
        path: "/matches/:id",
        handler: by_id,
    },
    Route {
        method: Method::Get,
        path: "/matches",
        handler: finished,
    },
];

handler!(live, |s, r| {
    r.player(s)?;
    let has_capacity = r.head.query_param("has_capacity").as_deref() == Some("true");
    let mode = r
        .head
        .query_param("mode")
        .filter(|m| m.len() <= MAX_MODE_NAME);
    let joinable = match r.head.query_param("joinable").as_deref() {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => None,
    };
    ok(&json!({ "matches": s.ctx.matches.list(mode.as_deref(), has_capacity, joinable) }))
});

handler!(by_id, |s, r| {
    r.player(s)?;
    let id = r.param(0);
    if let Some(entry) = s.ctx.matches.get(id) {
        let mut v = serde_json::to_value(&entry.info).unwrap_or(Value::Null);
        v["started_at"] = json!(entry.started_at);
        return ok(&v);
    }
    match s.ctx.store.match_record(id).await.map_err(store_error)? {
        Some(record) => ok(&record),
        None => Err(Error::NoRecord.into()),
    }
});

handler!(finished, |s, r| {
    r.player(s)?;
    let q = r.head;
    let limit = q
        .query_param("limit")
        .and_then(|l| l.parse::<u32>().ok())
        .unwrap_or(50)
        .clamp(1, 200);
    let query = asobi_storage::MatchQuery {
        mode: q.query_param("mode"),
        status: q.query_param("status"),
        player_id: q.query_param("player_id"),
        limit,
    };
    let records = s
        .ctx
        .store
        .list_match_records(query)
        .await
        .map_err(store_error)?;
    ok(&json!({ "matches": records }))
});
