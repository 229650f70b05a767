//! `game.notify`, `game.notify_many` and `game.chat.send` from a match script.
//!
//! `notify` and `notify_many` store rows, so they suspend the callback: the work runs in a task
//! on this shard and its answer resumes the callback (`matches::answer_later`). Answers are
//! asobi's: `notify` → `{ok = notification}`, `notify_many` → `{ok = ids reached}`, failures
//! `{error = reason}`. `chat.send(channel, sender, content)` hands the message to the channel's
//! owner and answers `true` at once, as asobi does (delivery and history are asynchronous; no
//! membership check on the sender).

use std::rc::Rc;

use serde_json::{json, Value};

use asobi_script::ServiceCall;

use super::chat::{self, MAX_CONTENT_BYTES};
use super::notify::{self, MAX_RECIPIENTS};
use crate::services::matches::Caller;
use crate::services::script::Answer;
use crate::services::Shard;

fn string(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_owned)
}

/// A checked `game.notify` / `game.notify_many` call.
struct Notify {
    many: bool,
    players: Vec<String>,
    kind: String,
    subject: String,
    data: Value,
}

fn parse_notify(call: &ServiceCall) -> Result<Notify, Value> {
    let args = call.args.as_array().cloned().unwrap_or_default();
    let many = call.op == "notify_many";
    let usage = if many {
        "notify_many requires (player_ids, type, subject[, data])"
    } else {
        "notify requires (player_id, type, subject[, data])"
    };
    let (Some(kind), Some(subject)) = (string(args.get(1)), string(args.get(2))) else {
        return Err(json!({ "error": usage }));
    };
    let data = args.get(3).cloned().unwrap_or(Value::Null);
    let players: Vec<String> = if many {
        match args.first() {
            // An empty Lua table arrives as an object or an array; either is "nobody".
            Some(Value::Array(ids)) => ids
                .iter()
                .filter_map(Value::as_str)
                .take(MAX_RECIPIENTS)
                .map(str::to_owned)
                .collect(),
            Some(Value::Object(o)) if o.is_empty() => Vec::new(),
            _ => return Err(json!({ "error": usage })),
        }
    } else {
        match string(args.first()) {
            Some(p) => vec![p],
            None => return Err(json!({ "error": usage })),
        }
    };
    Ok(Notify {
        many,
        players,
        kind,
        subject,
        data,
    })
}

async fn run_notify(s: &Rc<Shard>, n: Notify) -> Value {
    if n.many {
        // Ids that cannot be a player are skipped (asobi reports only those it reached).
        let valid: Vec<String> = n
            .players
            .into_iter()
            .filter(|p| !p.is_empty() && p.len() <= 128)
            .collect();
        match notify::notify_all(s, &valid, &n.kind, &n.subject, &n.data).await {
            Ok(rows) => {
                let reached: Vec<String> = rows.into_iter().map(|n| n.player_id).collect();
                json!({ "ok": reached })
            }
            Err(e) => json!({ "error": e.lua_reason() }),
        }
    } else {
        let p = n.players.into_iter().next().unwrap_or_default();
        match notify::notify(s, &p, &n.kind, &n.subject, n.data).await {
            Ok(n) => json!({ "ok": n }),
            Err(e) => json!({ "error": e.lua_reason() }),
        }
    }
}

/// Answers one `game.notify*` call from the match `from`.
pub(crate) fn notify_call(shard: &Rc<Shard>, from: Caller, call: &ServiceCall) -> Answer {
    let n = match parse_notify(call) {
        Ok(n) => n,
        Err(shape) => return Answer::Now(shape),
    };
    let s = shard.clone();
    shard.rt.spawn(async move {
        let reply = run_notify(&s, n).await;
        crate::services::matches::answer_later(&s, from, reply, s.rt.now());
    });
    Answer::Later
}

/// The answer to one `game.notify*` call, awaited in place (an RPC handler's call).
pub(crate) async fn notify_answer(shard: &Rc<Shard>, call: &ServiceCall) -> Value {
    match parse_notify(call) {
        Ok(n) => run_notify(shard, n).await,
        Err(shape) => shape,
    }
}

/// Answers one `game.chat.*` call.
pub(crate) fn chat_call(shard: &Rc<Shard>, _from: Caller, call: &ServiceCall) -> Answer {
    Answer::Now(chat_answer(shard, call))
}

/// The answer to one `game.chat.*` call (it never waits: the send is handed to the channel's
/// owner).
pub(crate) fn chat_answer(shard: &Rc<Shard>, call: &ServiceCall) -> Value {
    if call.op != "send" {
        return json!({
            "error": format!("game.chat.{} is not available in this runtime", call.op)
        });
    }
    let args = call.args.as_array().cloned().unwrap_or_default();
    let (Some(channel), Some(sender), Some(content)) = (
        string(args.first()),
        string(args.get(1)),
        string(args.get(2)),
    ) else {
        return json!({ "error": "send requires (channel_id, sender_id, content)" });
    };
    if content.len() > MAX_CONTENT_BYTES {
        return json!({ "error": "content_too_large" });
    }
    let kind = match chat::classify(&channel) {
        Ok(k) => k,
        Err(e) => return json!({ "error": e.lua_reason() }),
    };
    match chat::send(shard, &channel, &kind, &sender, &content) {
        Ok(()) => Value::Bool(true),
        Err(e) => json!({ "error": e.lua_reason() }),
    }
}
