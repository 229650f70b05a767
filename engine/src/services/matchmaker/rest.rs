//! `POST /api/v1/matchmaker`, `GET` and `DELETE /api/v1/matchmaker/:ticket_id`, and
//! `POST /api/v1/matchmaker/tickets`, an alias of the first that the seed's quick start uses
//! (asobi has no such route; accepting it costs nothing and makes that walk-through work).

use serde::Deserialize;
use serde_json::{json, Value};

use asobi_net::http::Method;

use crate::services::rest::{handler, ok, Route};

pub(crate) const ROUTES: &[Route] = &[
    Route {
        method: Method::Post,
        path: "/matchmaker",
        handler: add,
    },
    Route {
        method: Method::Post,
        path: "/matchmaker/tickets",
        handler: add,
    },
    Route {
        method: Method::Get,
        path: "/matchmaker/:ticket_id",
        handler: status,
    },
    Route {
        method: Method::Delete,
        path: "/matchmaker/:ticket_id",
        handler: remove,
    },
];

#[derive(Deserialize)]
struct AddBody {
    /// asobi's default when a client names no mode.
    #[serde(default = "asobi_schema::payload::default_mode")]
    mode: String,
    #[serde(default)]
    properties: Option<Value>,
}

handler!(add, |s, r| {
    let me = r.player(s)?;
    let body: AddBody = r.json()?;
    let queued = super::add(s, &body.mode, &me, body.properties.unwrap_or(json!({}))).await?;
    ok(&queued)
});

handler!(status, |s, r| {
    let me = r.player(s)?;
    ok(&super::status(s, r.param(0), &me).await?)
});

handler!(remove, |s, r| {
    let me = r.player(s)?;
    super::remove(s, r.param(0), &me).await?;
    ok(&json!({ "success": true }))
});
