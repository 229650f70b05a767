//! Routes extensions declare (`routes = { { method, path, handler, security } }`), mounted
//! under `/api/v1/<extension>/...` after core's table found nothing for the path. A path no
//! extension declares stays core's 404 `not_found`; a declared path asked with another method
//! answers 405 `method_not_allowed`, as core's own routes do.
//!
//! The handler is called `handler(req, ctx)`: `req = {method, path, params, query, headers,
//! body, raw_body}` (`body` the decoded JSON or `nil`; `headers` lower-cased, without
//! `authorization` and `cookie`), `ctx = {player_id, extension, transport = "http",
//! security}`. It answers a table (the JSON body, status 200 or the 2xx after it) or
//! `nil, code[, details]` with a code its manifest declares.

use std::rc::Rc;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use asobi_net::http::{percent_decode, Head, Method, Response};
use asobi_schema::error::code;
use asobi_schema::ApiError;
use asobi_script::{RouteLookup, RouteMatch, Security};

use crate::services::rest::{authenticate, RestResult};
use crate::services::Shard;

/// Serves `segments` (the path below `/api/v1`) when an extension declares it.
pub(crate) async fn route(
    shard: &Rc<Shard>,
    head: &Head,
    body: Bytes,
    segments: &[&str],
) -> Option<RestResult> {
    let method = match head.method {
        Method::Get | Method::Head => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        _ => return None,
    };
    let game = shard.game.borrow().clone();
    match game.extensions.route(method, segments) {
        RouteLookup::Found(m) => Some(serve(shard, head, body, m).await),
        RouteLookup::WrongMethod => Some(Err(ApiError::new(
            405,
            code::METHOD_NOT_ALLOWED,
            format!("{} is not allowed on this path.", head.method.as_str()),
        ))),
        _ => None,
    }
}

fn query(head: &Head) -> Map<String, Value> {
    let mut out = Map::new();
    for pair in head.query.as_deref().unwrap_or("").split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(
            percent_decode(&k.replace('+', " ")),
            Value::String(percent_decode(&v.replace('+', " "))),
        );
    }
    out
}

async fn serve(shard: &Rc<Shard>, head: &Head, body: Bytes, m: RouteMatch<'_>) -> RestResult {
    let player = match m.route.security {
        Security::Player => Some(authenticate(shard, head)?),
        _ => None,
    };
    let headers: Map<String, Value> = head
        .headers
        .iter()
        .filter(|(n, _)| n != "authorization" && n != "cookie")
        .map(|(n, v)| (n.to_ascii_lowercase(), Value::String(v.clone())))
        .collect();
    let params: Map<String, Value> = m
        .params
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(percent_decode(v))))
        .collect();
    let decoded = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    let req = json!({
        "method": m.route.method,
        "path": head.path,
        "params": params,
        "query": query(head),
        "headers": headers,
        "body": decoded,
        "raw_body": String::from_utf8_lossy(&body),
    });
    let ctx = json!({
        "player_id": player,
        "extension": m.ext.name,
        "transport": "http",
        "security": match m.route.security { Security::Player => "player", _ => "webhook" },
    });
    let returned = super::run(shard, m.ext, &m.route.handler, &[req, ctx])
        .await
        .map_err(|_| ApiError::internal())?;
    let (value, status) = super::answer(m.ext, &m.route.handler, &returned)?;
    let bytes = serde_json::to_vec(&value).map_err(|_| ApiError::internal())?;
    Ok(Response::json(status, bytes))
}

#[cfg(test)]
mod tests {
    /// Every extension lives under `/api/v1/<name>`, and core's first path segments are
    /// reserved names: so no declared route can shadow a core route, or be shadowed by one.
    #[test]
    fn every_core_route_root_is_a_reserved_extension_name() {
        for r in crate::services::rest::table() {
            let Some(first) = r.path.split('/').find(|s| !s.is_empty()) else {
                continue;
            };
            assert!(
                asobi_script::RESERVED_NAMES.contains(&first),
                "core route {} starts with {first:?}, which an extension could claim",
                r.path
            );
        }
    }
}
