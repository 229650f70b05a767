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
        Some(record) => ok(&public_record(&record)),
        None => Err(Error::NoRecord.into()),
    }
});

/// A finished match as any signed-in player may read it: asobi's projection, without the
/// roster (who played whom is not public). The record is written when the match finishes, so
/// `inserted_at` is `finished_at`.
fn public_record(r: &asobi_storage::MatchRecord) -> Value {
    json!({
        "id": r.id,
        "mode": r.mode,
        "status": r.status,
        "result": r.result,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "inserted_at": r.finished_at,
    })
}

handler!(finished, |s, r| {
    let caller = r.player(s)?;
    let q = r.head;
    // Our filter (asobi has none): a player may list the matches they played, not someone
    // else's, since records do not show rosters.
    let player_id = q.query_param("player_id");
    if player_id.as_deref().is_some_and(|p| p != caller.as_str()) {
        return Err(Error::OthersHistory.into());
    }
    let limit = q
        .query_param("limit")
        .and_then(|l| l.parse::<u32>().ok())
        .unwrap_or(50)
        .clamp(1, 200);
    let query = asobi_storage::MatchQuery {
        mode: q.query_param("mode"),
        status: q.query_param("status"),
        player_id,
        limit,
    };
    let records = s
        .ctx
        .store
        .list_match_records(query)
        .await
        .map_err(store_error)?;
    let records: Vec<Value> = records.iter().map(public_record).collect();
    ok(&json!({ "matches": records }))
});
