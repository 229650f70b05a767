//! `game.<namespace>.<fn>(...)` and `game.emit(player_id, event, data)`.
//!
//! A binding call from a match script suspends its callback; the extension's function runs in
//! its own VM in a task on this shard and its envelope (`{ok = value}` / `{error = message}`,
//! asobi's shape for a binding) resumes the callback through `matches::answer_later`. An
//! extension that loops forever is aborted by its own budget and answers an error; the match
//! that called it keeps running, and so does the shard.
//!
//! `game.emit` is asobi's `asobi_extensions:emit/4` for a Lua extension: the event reaches the
//! player's session as a `module.event` frame `{module, event, data}`. It is only available
//! in extension code, where the emitting extension (and so the domain it owns) is known.

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use asobi_schema::envelope::encode_frame;
use asobi_script::{ExtScript, ServiceCall};

use crate::services::matches::Caller;
use crate::services::script::Answer;
use crate::services::Shard;
use crate::shard::mesh::Outbound;
use crate::wire::Frame;

/// Largest encoded `data` of one event, below asobi's 64 KiB frame cap (asobi's bound).
const MAX_EVENT_DATA_BYTES: usize = 64 * 1024;

/// A match callback's `game.<ns>.<fn>(...)`: answered later, from a task.
pub(crate) fn call(shard: &Rc<Shard>, from: Caller, call: &ServiceCall) -> Answer {
    let shard = shard.clone();
    let call = call.clone();
    shard.clone().rt.spawn(async move {
        let reply = binding_answer(&shard, &call).await;
        crate::services::matches::answer_later(&shard, from, reply, shard.rt.now());
    });
    Answer::Later
}

/// The envelope `game.<ns>.<fn>(...)` answers (`call.op` is `"<ns>.<fn>"`).
pub(crate) async fn binding_answer(shard: &Rc<Shard>, call: &ServiceCall) -> Value {
    let game = shard.game.borrow().clone();
    let Some((ext, func)) = game.extensions.binding(&call.op) else {
        return json!({ "error": format!("game.{} is not available in this runtime", call.op) });
    };
    let args = call.args.as_array().cloned().unwrap_or_default();
    match super::run(shard, ext, func, &args).await {
        Ok(returned) => returned.envelope(),
        Err(why) => json!({ "error": format!("game.{} failed: {why}", call.op) }),
    }
}

/// `game.emit` outside an extension (a match script, `rpc.lua`).
pub(crate) fn emit_outside() -> Value {
    json!({ "error": "game.emit is only available in extensions" })
}

/// `game.emit(player_id, event, data)` from extension `ext`: `{ok = true}` once the event is
/// accepted (delivered to the player's session if they have one, as asobi's presence send),
/// or `{error = code}` with asobi's `event.*` code.
pub(crate) fn emit(shard: &Rc<Shard>, ext: &Arc<ExtScript>, call: &ServiceCall) -> Value {
    let args = call.args.as_array().cloned().unwrap_or_default();
    let (Some(player), Some(event)) = (
        args.first().and_then(Value::as_str),
        args.get(1).and_then(Value::as_str),
    ) else {
        return json!({ "error": "emit requires (player_id, event, data)" });
    };
    if player.is_empty() || player.len() > 128 {
        return json!({ "error": "emit requires (player_id, event, data)" });
    }
    if let Err(code) = ext.may_emit(event) {
        return json!({ "error": code });
    }
    let data = match args.get(2) {
        Some(Value::Object(o)) => Value::Object(o.clone()),
        // An empty Lua table encodes as an empty array; `nil` means no data.
        Some(Value::Array(a)) if a.is_empty() => json!({}),
        None | Some(Value::Null) => json!({}),
        Some(_) => return json!({ "error": "event.invalid_data" }),
    };
    let size = serde_json::to_vec(&data)
        .map(|b| b.len())
        .unwrap_or(usize::MAX);
    if size >= MAX_EVENT_DATA_BYTES {
        return json!({ "error": "event.payload_too_large" });
    }
    let bytes: Bytes = encode_frame(
        "module.event",
        None,
        &json!({ "module": ext.name, "event": event, "data": data }),
    );
    if let Some(at) = shard.ctx.registry.session_of(player) {
        match Frame::json(bytes) {
            Some(frame) => shard.rt.deliver(at, Outbound::Frame(frame)),
            None => tracing::error!(extension = %ext.name, "module.event frame was not UTF-8"),
        }
    }
    json!({ "ok": true })
}
