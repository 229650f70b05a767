//! `GET /api/v1/tournaments`, `GET /api/v1/tournaments/:id`, `POST /api/v1/tournaments/:id/join`
//! with asobi's shapes: `{tournaments: [...]}` (`?status=`, `?limit=` 1–200, default 50), the
//! tournament itself, `{success: true, tournament_id}` (plus, ours, the `fee` charged).

use serde_json::json;

use asobi_net::http::Method;

use crate::services::rest::{handler, ok, Route};

pub(crate) const ROUTES: &[Route] = &[
    Route {
        method: Method::Get,
        path: "/tournaments",
        handler: list,
    },
    Route {
        method: Method::Get,
        path: "/tournaments/:id",
        handler: show,
    },
    Route {
        method: Method::Post,
        path: "/tournaments/:id/join",
        handler: join,
    },
];

handler!(list, |s, r| {
    r.player(s)?;
    // asobi's integer query: not a number reads as the default; a number is clamped.
    let limit = r
        .head
        .query_param("limit")
        .and_then(|l| l.trim().parse::<i64>().ok())
        .map_or(50, |l| {
            l.clamp(1, i64::from(asobi_storage::MAX_TOURNAMENT_LIST)) as u32
        });
    let status = r.head.query_param("status");
    let list = super::list(s, status.as_deref(), limit).await?;
    ok(&json!({ "tournaments": list }))
});

handler!(show, |s, r| {
    r.player(s)?;
    let id = asobi_net::http::percent_decode(r.param(0));
    ok(&super::get(s, &id).await?)
});

handler!(join, |s, r| {
    let player = r.player(s)?;
    let id = asobi_net::http::percent_decode(r.param(0));
    ok(&super::join(s, &id, &player).await?)
});
