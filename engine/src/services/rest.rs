//! The REST API under `/api/v1`: the route table built from each feature's `ROUTES`, matching,
//! and the helpers every handler shares. Every failure is asobi's
//! `{"error":{"code","message","details"}}`.

use std::rc::Rc;
use std::sync::OnceLock;

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;

use asobi_net::http::{Head, Method, Response};
use asobi_schema::error::code;
use asobi_schema::ApiError;

use super::Shard;

pub(crate) type RestResult = Result<Response, ApiError>;

/// Declares a route handler: `handler!(name, |shard, req| async body returning RestResult)`.
macro_rules! handler {
    ($name:ident, |$s:ident, $r:ident| $body:expr) => {
        fn $name<'a>(
            $s: &'a std::rc::Rc<$crate::services::Shard>,
            $r: $crate::services::rest::Req<'a>,
        ) -> futures::future::LocalBoxFuture<'a, $crate::services::rest::RestResult> {
            #[allow(unused_variables)]
            let ($s, $r) = ($s, $r);
            Box::pin(async move { $body })
        }
    };
}
pub(crate) use handler;

/// One request as a handler sees it: the head, the body, and the path's `:name` segments in order.
pub(crate) struct Req<'a> {
    pub(crate) head: &'a Head,
    pub(crate) body: Bytes,
    pub(crate) params: Vec<&'a str>,
}

impl Req<'_> {
    /// The `n`th `:param` of the route's path.
    pub(crate) fn param(&self, n: usize) -> &str {
        self.params.get(n).copied().unwrap_or("")
    }

    /// Decodes the JSON body.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        parse(&self.body)
    }

    /// The player id of the bearer token.
    pub(crate) fn player(&self, shard: &Shard) -> Result<String, ApiError> {
        authenticate(shard, self.head)
    }
}

pub(crate) type Handler = for<'a> fn(&'a Rc<Shard>, Req<'a>) -> LocalBoxFuture<'a, RestResult>;

/// A route: method, path under `/api/v1` with `:name` segments, handler. `GET` routes answer
/// `HEAD` too, without a body.
pub(crate) struct Route {
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    pub(crate) handler: Handler,
}

/// Every route, from each feature's list.
pub(crate) fn table() -> &'static [Route] {
    static TABLE: OnceLock<Vec<Route>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let lists: [&[Route]; 16] = [
            super::health::rest::ROUTES,
            super::accounts::rest::ROUTES,
            super::matchmaker::rest::ROUTES,
            super::matches::rest::ROUTES,
            super::economy::rest::ROUTES,
            super::leaderboards::rest::ROUTES,
            super::social::rest::ROUTES,
            super::storage::rest::ROUTES,
            super::rpc::rest::ROUTES,
            super::tournaments::rest::ROUTES,
            super::iap::rest::ROUTES,
            super::ops::rest::ROUTES,
            super::votes::rest::ROUTES,
            super::ops::views::ROUTES,
            super::parties::rest::ROUTES,
            super::worlds::rest::ROUTES,
        ];
        let mut all = Vec::new();
        for list in lists {
            for r in list {
                all.push(Route {
                    method: r.method,
                    path: r.path,
                    handler: r.handler,
                });
            }
        }
        all
    })
}

/// How well a route's path fits the request's segments: `None` when it does not; otherwise the
/// number of literal segments, so `/matches/live` wins over `/matches/:id`.
fn fit<'a>(pattern: &str, segments: &[&'a str]) -> Option<(usize, Vec<&'a str>)> {
    let parts: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut literals = 0;
    let mut params = Vec::new();
    for (p, s) in parts.iter().zip(segments) {
        if p.starts_with(':') {
            params.push(*s);
        } else if p == s {
            literals += 1;
        } else {
            return None;
        }
    }
    Some((literals, params))
}

pub(crate) async fn handle(
    shard: &Rc<Shard>,
    head: &Head,
    body: Bytes,
    peer: std::net::IpAddr,
) -> Response {
    let origins = &shard.ctx.settings.cors_origins;
    if head.method == Method::Options {
        return super::cors::preflight(origins, head);
    }
    let quota = match super::accounts::limits::admit(shard, head, peer) {
        Ok(q) => q,
        Err(mut refused) => {
            super::cors::decorate(origins, head, &mut refused);
            return refused;
        }
    };
    super::ops::metrics::bump(&shard.ops.metrics.http_requests);
    let response = match route(shard, head, body).await {
        Ok(r) => r,
        Err(e) => {
            if e.status >= 500 {
                tracing::warn!(path = %head.path, code = %e.code, "request failed: {}", e.message);
            }
            error_response(&e)
        }
    };
    let mut response = match quota {
        Some(q) => q.decorate(response),
        None => response,
    };
    super::cors::decorate(origins, head, &mut response);
    response
}

/// The probes asobi serves at the root, answered as their `/api/v1` twins.
const ROOT_PROBES: &[&str] = &["/health", "/ready", "/live"];

async fn route(shard: &Rc<Shard>, head: &Head, body: Bytes) -> RestResult {
    let path = head.path.trim_end_matches('/');
    let path = path.split('?').next().unwrap_or(path);
    let rest = match path.strip_prefix("/api/v1") {
        Some(rest) => rest,
        None if ROOT_PROBES.contains(&path) => path,
        None => return super::ops::rest::root(shard, head, body).await,
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let wanted = match head.method {
        Method::Head => Method::Get,
        m => m,
    };
    let mut best: Option<(usize, &Route, Vec<&str>)> = None;
    let mut path_known = false;
    for r in table() {
        let Some((score, params)) = fit(r.path, &segments) else {
            continue;
        };
        path_known = true;
        if r.method == wanted && best.as_ref().is_none_or(|(b, _, _)| score > *b) {
            best = Some((score, r, params));
        }
    }
    match best {
        Some((_, r, params)) => (r.handler)(shard, Req { head, body, params }).await,
        None if path_known => Err(ApiError::new(
            405,
            code::METHOD_NOT_ALLOWED,
            format!("{} is not allowed on this path.", head.method.as_str()),
        )),
        None => super::ext::rest::route(shard, head, body, &segments)
            .await
            .unwrap_or_else(|| Err(not_found())),
    }
}

fn not_found() -> ApiError {
    ApiError::new(404, code::NOT_FOUND, "No such endpoint.")
}

/// The REST error body for an [`ApiError`].
pub(crate) fn error_response(e: &ApiError) -> Response {
    Response::json(e.status, e.to_rest_body())
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
        .and_then(|t| super::accounts::access::verify(shard, t))
        .map(|a| a.player_id)
        .ok_or_else(ApiError::unauthenticated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_segments_win_and_params_are_collected() {
        assert_eq!(
            fit("/matches/:id", &["matches", "live"]),
            Some((1, vec!["live"]))
        );
        assert_eq!(
            fit("/matches/live", &["matches", "live"]),
            Some((2, vec![]))
        );
        assert_eq!(fit("/matches/:id", &["matches"]), None);
        assert_eq!(fit("/players/me/erase", &["players", "x", "erase"]), None);
    }

    #[test]
    fn every_route_path_is_unique_per_method() {
        let t = table();
        for (i, a) in t.iter().enumerate() {
            for b in &t[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} registered twice",
                    a.method.as_str(),
                    a.path
                );
            }
        }
    }
}
