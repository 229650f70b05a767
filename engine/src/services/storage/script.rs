//! `game.storage.get/set/player_get/player_set` from a script, through the suspend-and-resume
//! seam: parsed here, the storage operation runs in a task on this shard, and its answer
//! resumes the waiting callback.
//!
//! Arguments and answers are asobi's: `get(collection, key)` and `player_get(player_id,
//! collection, key)` → `{ok = value}`; `set(collection, key, value)` and `player_set(player_id,
//! collection, key, value)` → `{ok = object}`; failures `{error = reason}` (`not_found`, ...).
//! The server ignores permissions: `get`/`set` use the global namespace, `player_*` the
//! player's own row.

use std::rc::Rc;

use serde_json::{json, Value};

use asobi_script::ServiceCall;

use super::error::Error;
use crate::services::matches::Caller;
use crate::services::script::Answer;
use crate::services::Shard;

/// What one call asks for, once its arguments are checked.
pub(crate) struct Op {
    owner: Option<String>,
    collection: String,
    key: String,
    /// `Some` for a write.
    value: Option<Value>,
}

fn string(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_owned)
}

/// Checks a call's arguments (asobi's usage messages on a mismatch).
pub(crate) fn parse(call: &ServiceCall) -> Result<Op, String> {
    let args = call.args.as_array().cloned().unwrap_or_default();
    let (player, rest) = match call.op.as_str() {
        "get" | "set" => (None, &args[..]),
        "player_get" | "player_set" => match string(args.first()) {
            Some(p) => (Some(p), args.get(1..).unwrap_or(&[])),
            None => (None, &[][..]),
        },
        other => {
            return Err(format!(
                "game.storage.{other} is not available in this runtime"
            ))
        }
    };
    let usage = || {
        let shape = match call.op.as_str() {
            "get" => "collection, key",
            "set" => "collection, key, value",
            "player_get" => "player_id, collection, key",
            _ => "player_id, collection, key, value",
        };
        format!("{} requires ({shape})", call.op)
    };
    if call.op.starts_with("player_") && player.is_none() {
        return Err(usage());
    }
    let (Some(collection), Some(key)) = (string(rest.first()), string(rest.get(1))) else {
        return Err(usage());
    };
    let value = if call.op.ends_with("set") {
        Some(rest.get(2).cloned().unwrap_or(Value::Null))
    } else {
        None
    };
    Ok(Op {
        owner: player,
        collection,
        key,
        value,
    })
}

/// Runs one parsed call: `{ok = ...}` or `{error = reason}`.
pub(crate) async fn run(shard: &Shard, op: Op) -> Value {
    let owner = op.owner.as_deref();
    let done = match op.value {
        None => super::server_get(shard, owner, &op.collection, &op.key)
            .await
            .map(|o| o.value),
        Some(v) => super::server_set(shard, owner, &op.collection, &op.key, v)
            .await
            .map(|o| json!(o)),
    };
    match done {
        Ok(v) => json!({ "ok": v }),
        Err(e) => {
            if let Error::Storage(s) = &e {
                tracing::warn!(error = %s, "game.storage call failed in storage");
            }
            json!({ "error": e.lua_reason() })
        }
    }
}

/// Answers one `game.storage.*` call from the match `from`.
pub(crate) fn call(shard: &Rc<Shard>, from: Caller, call: &ServiceCall) -> Answer {
    let op = match parse(call) {
        Ok(op) => op,
        Err(message) => return Answer::Now(json!({ "error": message })),
    };
    let shard = shard.clone();
    shard.clone().rt.spawn(async move {
        let reply = run(&shard, op).await;
        crate::services::matches::answer_later(&shard, from, reply, shard.rt.now());
    });
    Answer::Later
}
