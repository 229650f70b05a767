//! `GET /api/v1/leaderboards/:id`, `GET /api/v1/leaderboards/:id/around/:player_id` and
//! `POST /api/v1/leaderboards/:id` (off for clients unless a setting opts the board in).

use serde_json::Value;

use asobi_net::http::Method;

use super::error::Error;
use super::{MAX_RANGE, MAX_TOP};
use crate::services::rest::{handler, ok, Route};

pub(crate) const ROUTES: &[Route] = &[
    Route {
        method: Method::Get,
        path: "/leaderboards/:id",
        handler: top,
    },
    Route {
        method: Method::Post,
        path: "/leaderboards/:id",
        handler: submit,
    },
    Route {
        method: Method::Get,
        path: "/leaderboards/:id/around/:player_id",
        handler: around,
    },
];

/// asobi's query integers: a value that is not a number falls back to the default; a number is
/// clamped into `lo..=hi`.
fn query_int(
    r: &crate::services::rest::Req<'_>,
    name: &str,
    default: usize,
    lo: usize,
    hi: usize,
) -> usize {
    r.head
        .query_param(name)
        .and_then(|v| v.trim().parse::<i64>().ok())
        .map_or(default, |n| n.clamp(lo as i64, hi as i64) as usize)
}

/// A JSON number as an integer score (fractions truncated, as asobi's Lua API does); anything
/// else is 0, as asobi's controller reads a missing or non-numeric score.
fn int_of(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or(0),
        _ => 0,
    }
}

handler!(top, |s, r| {
    let _me = r.player(s)?;
    let limit = query_int(&r, "limit", MAX_TOP, 1, MAX_TOP);
    ok(&super::top(s, r.param(0), limit).await?)
});

handler!(around, |s, r| {
    let _me = r.player(s)?;
    let range = query_int(&r, "range", 5, 1, MAX_RANGE);
    ok(&super::around(s, r.param(0), r.param(1), range).await?)
});

handler!(submit, |s, r| {
    let me = r.player(s)?;
    let board = r.param(0);
    if !s.ctx.settings.leaderboards.client_may_submit(board) {
        return Err(Error::ClientSubmitDisabled.into());
    }
    let body: serde_json::Map<String, Value> = r.json()?;
    let score = int_of(body.get("score"));
    let sub_score = int_of(body.get("sub_score"));
    ok(&super::submit(s, board, &me, score, sub_score, body.get("metadata")).await?)
});
