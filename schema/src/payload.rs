//! Payloads of the WebSocket messages the server reads and writes.
//!
//! Field names follow asobi 1.0 exactly; optional fields are optional here too, so an SDK that
//! omits them is accepted.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `session.connect`.
#[derive(Debug, Deserialize)]
pub struct SessionConnect {
    /// The access token from REST auth.
    pub token: String,
    /// `"binary"` asks for asobi's binary `world.tick`; anything else (or nothing) is JSON.
    #[serde(default)]
    pub wire: Option<Value>,
    /// `true` asks for `world.tick` as QUIC datagrams (asobi-rs; QUIC sessions only).
    #[serde(default)]
    pub datagrams: Option<Value>,
}

/// `session.connected`.
#[derive(Debug, Serialize)]
pub struct SessionConnected<'a> {
    /// The authenticated player.
    pub player_id: &'a str,
    /// The wire granted for server pushes (asobi: `"json"` unless a binary wire was asked for
    /// and is served).
    pub wire: &'a str,
    /// Whether `world.tick` may arrive as QUIC datagrams; present only when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datagrams: Option<bool>,
}

/// The mode a request names when it names none: asobi's `"default"` (a `match.lua` game's only
/// mode).
pub fn default_mode() -> String {
    "default".to_owned()
}

/// `matchmaker.add`.
#[derive(Debug, Deserialize)]
pub struct MatchmakerAdd {
    /// The game mode to queue for (`"default"` when absent, as in asobi).
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Matching properties, e.g. `{"skill": 1200}`.
    #[serde(default)]
    pub properties: Option<Value>,
}

/// `matchmaker.queued`.
#[derive(Debug, Serialize, Deserialize)]
pub struct MatchmakerQueued {
    /// The ticket.
    pub ticket_id: String,
    /// Always `pending` when queued.
    pub status: String,
    /// How many more players the mode needs to fill a match.
    pub players_needed: u32,
    /// True when the player already had a live ticket for this mode.
    pub already_queued: bool,
}

/// `matchmaker.remove`.
#[derive(Debug, Deserialize)]
pub struct MatchmakerRemove {
    /// The ticket to cancel; when absent, every ticket of the player is cancelled.
    #[serde(default)]
    pub ticket_id: Option<String>,
}

/// `match.matched`.
#[derive(Debug, Serialize, Deserialize)]
pub struct MatchMatched {
    /// The match.
    pub match_id: String,
    /// Its mode.
    pub mode: String,
    /// Every player placed in it.
    pub players: Vec<String>,
}

/// `match.join`.
#[derive(Debug, Deserialize)]
pub struct MatchJoin {
    /// The match to join.
    pub match_id: String,
    /// Optional join context handed to the script's `join` callback.
    #[serde(default)]
    pub ctx: Option<Value>,
}

/// `match.find_or_create`.
#[derive(Debug, Deserialize)]
pub struct MatchFindOrCreate {
    /// The mode.
    pub mode: String,
    /// Optional join context.
    #[serde(default)]
    pub ctx: Option<Value>,
}

/// `match.list` request filters.
#[derive(Debug, Default, Deserialize)]
pub struct MatchListQuery {
    /// Only this mode.
    #[serde(default)]
    pub mode: Option<String>,
    /// Only matches with room for another player.
    #[serde(default)]
    pub has_capacity: Option<bool>,
    /// Only matches that are (`true`) or are not (`false`) open to joins.
    #[serde(default)]
    pub joinable: Option<bool>,
}

/// One match as lobby browsers see it (`match.list`, `match.joined`, `GET /matches/live`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MatchInfo {
    /// The match.
    pub match_id: String,
    /// Its mode.
    pub mode: String,
    /// `waiting`, `running` or `finished`.
    pub status: String,
    /// Players now in it.
    pub player_count: u32,
    /// Its capacity.
    pub max_players: u32,
    /// Whether joins are accepted.
    pub joinable: bool,
    /// Where the match is in its phase list (`status`, `phase`, `remaining_ms`,
    /// `start_condition`); absent for a match without phases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Value>,
}

/// `match.finished`.
#[derive(Debug, Serialize)]
pub struct MatchFinished<'a> {
    /// The match.
    pub match_id: &'a str,
    /// Whatever the script returned as its result.
    pub result: &'a Value,
}

/// `module.message` / `game.message`: a message from the script to one player.
#[derive(Debug, Serialize)]
pub struct ModuleMessage<'a> {
    /// The extension that produced it; always `lua` here.
    pub module: &'a str,
    /// The script's value, already encoded.
    pub message: &'a serde_json::value::RawValue,
}

/// `{"success": true}` replies (`match.left`, `matchmaker.removed`, ...).
#[derive(Debug, Serialize)]
pub struct Success {
    /// Always true: failures are `error` frames.
    pub success: bool,
}

/// Validates a join context against asobi's bounds: a flat object of at most 8 keys, keys up to
/// 64 bytes, string values up to 256 bytes, integers and booleans.
pub fn check_join_ctx(ctx: &Value) -> Result<(), &'static str> {
    use crate::error::code;
    let Value::Object(map) = ctx else {
        return Err(code::INVALID_JOIN_CTX);
    };
    if map.len() > 8 {
        return Err(code::JOIN_CTX_TOO_MANY_KEYS);
    }
    for (k, v) in map {
        if k.len() > 64 {
            return Err(code::JOIN_CTX_KEY_TOO_LONG);
        }
        match v {
            Value::String(s) if s.len() > 256 => return Err(code::JOIN_CTX_VALUE_TOO_LONG),
            Value::String(_) | Value::Bool(_) => {}
            Value::Number(n) if n.is_i64() || n.is_u64() => {}
            _ => return Err(code::INVALID_JOIN_CTX_VALUE),
        }
    }
    Ok(())
}

/// A legacy `{data: "<text>"}` input whose text is not a JSON object: asobi refuses it, and
/// [`unwrap_match_input`] leaves it wrapped.
pub fn is_unusable_legacy_input(input: &Value) -> bool {
    input
        .as_object()
        .is_some_and(|m| m.len() == 1 && m.get("data").is_some_and(|d| !d.is_object()))
}

/// Unwraps `match.input` payloads: the payload is the input map, but older SDKs send the
/// single-key wrapper `{"data": {...}}` or `{"data": "<json>"}`, which asobi also accepts.
pub fn unwrap_match_input(payload: Value) -> Value {
    match payload {
        Value::Object(mut map) if map.len() == 1 && map.contains_key("data") => {
            match map.remove("data") {
                Some(Value::Object(inner)) => Value::Object(inner),
                Some(Value::String(text)) => match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => {
                        map.insert("data".into(), Value::String(text));
                        Value::Object(map)
                    }
                },
                Some(other) => {
                    map.insert("data".into(), other);
                    Value::Object(map)
                }
                None => Value::Object(map),
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn join_ctx_bounds() {
        assert!(check_join_ctx(&json!({"code":"AB12","n":3,"b":true})).is_ok());
        assert_eq!(check_join_ctx(&json!([1])), Err("invalid_join_ctx"));
        let many: serde_json::Map<String, Value> =
            (0..9).map(|i| (format!("k{i}"), json!(1))).collect();
        assert_eq!(
            check_join_ctx(&Value::Object(many)),
            Err("join_ctx_too_many_keys")
        );
        assert_eq!(
            check_join_ctx(&json!({ "k".repeat(65): 1 })),
            Err("join_ctx_key_too_long")
        );
        assert_eq!(
            check_join_ctx(&json!({"k": "v".repeat(257)})),
            Err("join_ctx_value_too_long")
        );
        assert_eq!(
            check_join_ctx(&json!({"k": {"nested": 1}})),
            Err("invalid_join_ctx_value")
        );
        assert_eq!(
            check_join_ctx(&json!({"k": 1.5})),
            Err("invalid_join_ctx_value")
        );
    }

    #[test]
    fn match_input_unwraps_legacy_wrappers() {
        assert_eq!(unwrap_match_input(json!({"x":1})), json!({"x":1}));
        assert_eq!(unwrap_match_input(json!({"data":{"x":1}})), json!({"x":1}));
        assert_eq!(
            unwrap_match_input(json!({"data":"{\"x\":1}"})),
            json!({"x":1})
        );
        // A real field called data that is not a wrapper is left alone.
        assert_eq!(
            unwrap_match_input(json!({"data":"hello"})),
            json!({"data":"hello"})
        );
        assert_eq!(
            unwrap_match_input(json!({"data":{"x":1},"y":2})),
            json!({"data":{"x":1},"y":2})
        );
    }
}
