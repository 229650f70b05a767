//! `GET /api/v1/worlds`, `GET /api/v1/worlds/:id`, `POST /api/v1/worlds`.

use serde::Deserialize;
use serde_json::json;

use asobi_net::http::{Method, Response};

use super::error::Error;
use crate::services::matchmaker::MAX_MODE_NAME;
use crate::services::rest::{handler, ok, Route};

pub(crate) const ROUTES: &[Route] = &[
    Route {
        method: Method::Get,
        path: "/worlds",
        handler: list,
    },
    Route {
        method: Method::Get,
        path: "/worlds/:id",
        handler: by_id,
    },
    Route {
        method: Method::Post,
        path: "/worlds",
        handler: create,
    },
];

handler!(list, |s, r| {
    r.player(s)?;
    let has_capacity = r.head.query_param("has_capacity").as_deref() == Some("true");
    let mode = r
        .head
        .query_param("mode")
        .filter(|m| m.len() <= MAX_MODE_NAME);
    ok(&json!({ "worlds": s.ctx.worlds.list(mode.as_deref(), has_capacity) }))
});

handler!(by_id, |s, r| {
    r.player(s)?;
    match s.ctx.worlds.get(r.param(0)) {
        Some(entry) => ok(&entry.info),
        None => Err(Error::NotFound.into()),
    }
});

#[derive(Deserialize)]
struct CreateBody {
    mode: String,
}

handler!(create, |s, r| {
    let player = r.player(s)?;
    let body: CreateBody = r.json()?;
    crate::services::matchmaker::check_mode(s, &body.mode)?;
    let id = super::create(s, &body.mode, Some(&player))?;
    let info = s
        .ctx
        .worlds
        .get(&id)
        .map(|e| e.info)
        .ok_or(Error::NotFound)?;
    let body = serde_json::to_vec(&info).map_err(|_| asobi_schema::ApiError::internal())?;
    Ok(Response::json(201, body))
});
