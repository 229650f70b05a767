//! `POST /api/v1/rpc/:method` with `{"params": {...}}`: the socket's envelope
//! (`{"type": "rpc.ok" | "rpc.error", "payload": ...}`) with status 200, or the error code's own.

use serde_json::{json, Value};

use asobi_net::http::{percent_decode, Method, Response};
use asobi_schema::error::code;
use asobi_schema::ApiError;

use super::Transport;
use crate::services::rest::{handler, Route};

pub(crate) const ROUTES: &[Route] = &[Route {
    method: Method::Post,
    path: "/rpc/:method",
    handler: rpc,
}];

fn envelope(status: u16, body: &Value) -> Response {
    Response::json(status, serde_json::to_vec(body).unwrap_or_default())
}

fn error(e: &ApiError) -> Response {
    envelope(
        e.status,
        &json!({ "type": "rpc.error", "payload": { "error": {
            "code": e.code, "message": e.message, "details": e.details } } }),
    )
}

handler!(rpc, |s, r| {
    let player = r.player(s)?;
    let method = percent_decode(r.param(0));
    let params = if r.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice::<Value>(&r.body) {
            Ok(Value::Object(mut m)) => m.remove("params").unwrap_or_else(|| json!({})),
            Ok(_) => {
                return Ok(error(&ApiError::new(
                    400,
                    code::INVALID_FIELD,
                    "The body must be a JSON object.",
                )))
            }
            Err(_) => {
                return Ok(error(&ApiError::new(
                    400,
                    code::INVALID_JSON,
                    "The body is not valid JSON.",
                )))
            }
        }
    };
    Ok(
        match super::call(s, &player, &method, params, Transport::Http).await {
            Ok(result) => envelope(
                200,
                &json!({ "type": "rpc.ok", "payload": { "result": result } }),
            ),
            Err(e) => error(&e),
        },
    )
});
