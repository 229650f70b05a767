//! `/api/v1/parties`: the same operations as the `party.*` messages, for REST clients.
//! A REST-only member has no socket, so they get no pushes and no grace (they are never
//! "connected"); they can read the party with `GET /parties/:id`.

use serde::Deserialize;
use serde_json::{json, Value};

use asobi_net::http::Method;

use super::{CreateBody, Op};
use crate::services::rest::{handler, ok, Route};

pub(crate) const ROUTES: &[Route] = &[
    Route {
        method: Method::Post,
        path: "/parties",
        handler: create,
    },
    Route {
        method: Method::Get,
        path: "/parties/:id",
        handler: get,
    },
    Route {
        method: Method::Delete,
        path: "/parties/:id",
        handler: close,
    },
    Route {
        method: Method::Post,
        path: "/parties/:id/invite",
        handler: invite,
    },
    Route {
        method: Method::Post,
        path: "/parties/:id/accept",
        handler: accept,
    },
    Route {
        method: Method::Post,
        path: "/parties/:id/decline",
        handler: decline,
    },
    Route {
        method: Method::Post,
        path: "/parties/:id/join",
        handler: join,
    },
    Route {
        method: Method::Post,
        path: "/parties/:id/leave",
        handler: leave,
    },
    Route {
        method: Method::Post,
        path: "/parties/:id/kick",
        handler: kick,
    },
    Route {
        method: Method::Post,
        path: "/parties/:id/promote",
        handler: promote,
    },
    Route {
        method: Method::Post,
        path: "/parties/:id/queue",
        handler: queue,
    },
    Route {
        method: Method::Delete,
        path: "/parties/:id/queue",
        handler: cancel,
    },
];

#[derive(Deserialize)]
struct Target {
    player_id: String,
}

#[derive(Deserialize)]
struct QueueBody {
    #[serde(default = "asobi_schema::payload::default_mode")]
    mode: String,
    #[serde(default)]
    properties: Option<Value>,
}

/// An empty body reads as `{}`.
fn body_or_empty<T: serde::de::DeserializeOwned>(
    r: &crate::services::rest::Req<'_>,
) -> Result<T, asobi_schema::ApiError> {
    if r.body.iter().all(u8::is_ascii_whitespace) {
        serde_json::from_value(json!({})).map_err(|e| asobi_schema::ApiError::invalid_payload(&e))
    } else {
        r.json()
    }
}

handler!(create, |s, r| {
    let me = r.player(s)?;
    let body: CreateBody = body_or_empty(&r)?;
    ok(&super::create(s, &me, body).await?)
});

handler!(get, |s, r| {
    let me = r.player(s)?;
    ok(&super::op(s, r.param(0), &me, Op::View).await?)
});

handler!(close, |s, r| {
    let me = r.player(s)?;
    ok(&super::op(s, r.param(0), &me, Op::Close).await?)
});

handler!(invite, |s, r| {
    let me = r.player(s)?;
    let t: Target = r.json()?;
    ok(&super::op(s, r.param(0), &me, Op::Invite(t.player_id)).await?)
});

handler!(accept, |s, r| {
    let me = r.player(s)?;
    ok(&super::op(s, r.param(0), &me, Op::Accept).await?)
});

handler!(decline, |s, r| {
    let me = r.player(s)?;
    ok(&super::op(s, r.param(0), &me, Op::Decline).await?)
});

handler!(join, |s, r| {
    let me = r.player(s)?;
    ok(&super::op(s, r.param(0), &me, Op::Join).await?)
});

handler!(leave, |s, r| {
    let me = r.player(s)?;
    ok(&super::op(s, r.param(0), &me, Op::Leave).await?)
});

handler!(kick, |s, r| {
    let me = r.player(s)?;
    let t: Target = r.json()?;
    ok(&super::op(s, r.param(0), &me, Op::Kick(t.player_id)).await?)
});

handler!(promote, |s, r| {
    let me = r.player(s)?;
    let t: Target = r.json()?;
    ok(&super::op(s, r.param(0), &me, Op::Promote(t.player_id)).await?)
});

handler!(queue, |s, r| {
    let me = r.player(s)?;
    let b: QueueBody = body_or_empty(&r)?;
    let props = b.properties.unwrap_or(json!({}));
    ok(&super::queue(s, r.param(0), &me, &b.mode, props).await?)
});

handler!(cancel, |s, r| {
    let me = r.player(s)?;
    ok(&super::op(s, r.param(0), &me, Op::Cancel).await?)
});
