//! The REST API under `/api/v1`: routing, and the handlers that are not big enough for a module
//! of their own. Every failure is asobi's `{"error":{"code","message","details"}}`.

use std::rc::Rc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use asobi_net::http::{Head, Method, Response};
use asobi_schema::error::code;
use asobi_schema::ApiError;
use asobi_storage::StoreError;

use crate::conn::rest_error;
use crate::shard::Shard;

pub(crate) type RestResult = Result<Response, ApiError>;

pub(crate) async fn handle(shard: &Rc<Shard>, head: &Head, body: Bytes) -> Response {
    let result = route(shard, head, body).await;
    match result {
        Ok(r) => r,
        Err(e) => {
            if e.status >= 500 {
                tracing::warn!(path = %head.path, code = %e.code, "request failed: {}", e.message);
            }
            rest_error(&e)
        }
    }
}

async fn route(shard: &Rc<Shard>, head: &Head, body: Bytes) -> RestResult {
    let path = head.path.trim_end_matches('/');
    let Some(rest) = path.strip_prefix("/api/v1") else {
        return Err(not_found());
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let m = head.method;
    // HEAD is answered like GET without a body.
    let get = matches!(m, Method::Get | Method::Head);
    match segments.as_slice() {
        ["health"] if get => health(shard).await,
        ["auth", "register"] if m == Method::Post => {
            crate::rest_auth::register(shard, parse(&body)?).await
        }
        ["auth", "login"] if m == Method::Post => {
            crate::rest_auth::login(shard, parse(&body)?).await
        }
        ["auth", "refresh"] if m == Method::Post => {
            crate::rest_auth::refresh(shard, parse(&body)?).await
        }
        ["auth", "logout"] if m == Method::Post => {
            crate::rest_auth::logout(shard, parse(&body)?).await
        }
        ["auth", "guest"] if m == Method::Post => {
            crate::rest_auth::guest(shard, parse(&body)?).await
        }
        ["auth", "guest", "upgrade"] if m == Method::Post => {
            let me = authenticate(shard, head)?;
            crate::rest_auth::upgrade(shard, &me, parse(&body)?).await
        }
        ["players", "me", "erase"] if m == Method::Post => {
            let me = authenticate(shard, head)?;
            crate::rest_auth::erase(shard, &me).await
        }
        ["players", id] if get => {
            authenticate(shard, head)?;
            crate::rest_auth::get_player(shard, id).await
        }
        ["players", id] if m == Method::Put => {
            let me = authenticate(shard, head)?;
            crate::rest_auth::put_player(shard, &me, id, parse(&body)?).await
        }
        ["matchmaker"] if m == Method::Post => {
            let me = authenticate(shard, head)?;
            crate::queues::rest_add(shard, &me, parse(&body)?).await
        }
        ["matchmaker", ticket] if get => {
            let me = authenticate(shard, head)?;
            crate::queues::rest_status(shard, &me, ticket).await
        }
        ["matchmaker", ticket] if m == Method::Delete => {
            let me = authenticate(shard, head)?;
            crate::queues::rest_remove(shard, &me, ticket).await
        }
        ["matches", "live"] if get => {
            authenticate(shard, head)?;
            let has_capacity = head.query_param("has_capacity").as_deref() == Some("true");
            let mode = head.query_param("mode").filter(|m| m.len() <= 64);
            let list = shard
                .global
                .directory
                .list_matches(mode.as_deref(), has_capacity);
            ok(&json!({ "matches": list }))
        }
        ["matches", id] if get => {
            authenticate(shard, head)?;
            match_by_id(shard, id).await
        }
        ["matches"] if get => {
            authenticate(shard, head)?;
            let limit = head
                .query_param("limit")
                .and_then(|l| l.parse::<u32>().ok())
                .unwrap_or(50)
                .clamp(1, 200);
            let q = asobi_storage::MatchQuery {
                mode: head.query_param("mode"),
                status: head.query_param("status"),
                player_id: head.query_param("player_id"),
                limit,
            };
            let records = shard
                .global
                .store
                .list_match_records(q)
                .await
                .map_err(store_error)?;
            ok(&json!({ "matches": records }))
        }
        _ if known_path(&segments) => Err(ApiError::new(
            405,
            code::METHOD_NOT_ALLOWED,
            format!("{} is not allowed on this path.", m.as_str()),
        )),
        _ => Err(not_found()),
    }
}

fn known_path(segments: &[&str]) -> bool {
    matches!(
        segments,
        ["health"]
            | [
                "auth",
                "register" | "login" | "refresh" | "logout" | "guest"
            ]
            | ["auth", "guest", "upgrade"]
            | ["players", "me", "erase"]
            | ["players", _]
            | ["matchmaker"]
            | ["matchmaker", _]
            | ["matches"]
            | ["matches", _]
    )
}

fn not_found() -> ApiError {
    ApiError::new(404, code::NOT_FOUND, "No such endpoint.")
}

/// A 200 JSON response.
pub(crate) fn ok<T: serde::Serialize + ?Sized>(value: &T) -> RestResult {
    let body = serde_json::to_vec(value).map_err(|_| ApiError::internal())?;
    Ok(Response::json(200, body))
}

/// Decodes a JSON body; an empty body reads as `{}` so the missing field is named.
pub(crate) fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    let value: Value = serde_json::from_slice(text)
        .map_err(|_| ApiError::new(400, code::INVALID_JSON, "The body is not valid JSON."))?;
    if !value.is_object() {
        return Err(ApiError::new(
            400,
            code::INVALID_JSON,
            "The body must be a JSON object.",
        ));
    }
    serde_json::from_value(value).map_err(|e| ApiError::invalid_payload(&e))
}

/// The player id of the request's bearer token.
pub(crate) fn authenticate(shard: &Shard, head: &Head) -> Result<String, ApiError> {
    head.bearer()
        .and_then(|t| shard.global.tokens.verify_access(t))
        .ok_or_else(ApiError::unauthenticated)
}

/// Maps a storage failure to what a client sees; the cause goes to the log.
pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(why) => {
            tracing::warn!("storage unavailable: {why}");
            ApiError::new(
                503,
                code::STORAGE_UNAVAILABLE,
                "The database is unavailable; try again shortly.",
            )
        }
        other => {
            tracing::error!("storage error: {other}");
            ApiError::internal()
        }
    }
}

async fn health(shard: &Rc<Shard>) -> RestResult {
    let g = &shard.global;
    let reachable = g.store.ping().await.is_ok();
    let shards: Vec<Value> = g
        .directory
        .shards
        .iter()
        .enumerate()
        .map(|(i, s)| {
            use std::sync::atomic::Ordering::Relaxed;
            json!({
                "id": i,
                "connections": s.connections.load(Relaxed),
                "sessions": s.sessions.load(Relaxed),
                "matches": s.matches.load(Relaxed),
            })
        })
        .collect();
    let body = json!({
        "status": if reachable { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "storage": { "backend": g.store.backend_name(), "reachable": reachable },
        "shards": shards,
        "served_by": shard.id,
        "game": { "version": shard.game.borrow().version, "modes": shard.game.borrow().modes.keys().collect::<Vec<_>>() },
    });
    let status = if reachable { 200 } else { 503 };
    Ok(Response::json(
        status,
        serde_json::to_vec(&body).unwrap_or_default(),
    ))
}

async fn match_by_id(shard: &Rc<Shard>, id: &str) -> RestResult {
    if let Some(entry) = shard.global.directory.match_entry(id) {
        let mut v = serde_json::to_value(&entry.info).unwrap_or(Value::Null);
        v["started_at"] = json!(entry.started_at);
        return ok(&v);
    }
    match shard
        .global
        .store
        .match_record(id)
        .await
        .map_err(store_error)?
    {
        Some(record) => ok(&record),
        None => Err(ApiError::new(
            404,
            code::MATCH_NOT_FOUND,
            "No match with this id.",
        )),
    }
}

/// Bodies shared by several auth routes.
#[derive(Debug, Deserialize)]
pub(crate) struct Credentials {
    pub(crate) username: String,
    pub(crate) password: String,
    #[serde(default)]
    pub(crate) display_name: Option<String>,
}
