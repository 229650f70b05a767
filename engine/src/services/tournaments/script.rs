//! `game.tournament.create(spec)` from a match script or an RPC handler (ours: asobi's Lua API
//! has no tournament calls; its tournaments come from code or the database). `spec` is a table
//! in the tournaments file's shape (`id`, `name`, `leaderboard_id`, `start_at`, `end_at`, and
//! optionally `max_entries`, `entry_fee`, `rewards`, `metadata`; times as unix ms or UTC text).
//! It calls the same [`super::create`] as `POST /api/v1/ops/tournaments`: the tournament is
//! stored and its window kept by its owning shard, which pays it at its end.
//!
//! Answers `{ok = tournament}` (the REST shape), or `{error = code, message = why}`:
//! `validation_failed` for a bad spec or a taken id.

use std::rc::Rc;

use serde_json::{json, Value};

use asobi_script::ServiceCall;

use crate::services::matches::Caller;
use crate::services::script::Answer;
use crate::services::Shard;

fn parse(call: &ServiceCall) -> Result<Value, Value> {
    match call.op.as_str() {
        "create" => match call.args.get(0) {
            Some(spec @ Value::Object(_)) => Ok(spec.clone()),
            _ => Err(json!({ "error": "create requires (spec_table)" })),
        },
        other => Err(
            json!({ "error": format!("game.tournament.{other} is not available in this runtime") }),
        ),
    }
}

async fn run(shard: &Rc<Shard>, spec: Value) -> Value {
    match super::create(shard, spec).await {
        Ok(t) => json!({ "ok": t }),
        Err(e) => json!({ "error": e.code, "message": e.message }),
    }
}

/// Answers one `game.tournament.*` call from the match `from` (the reply resumes it later).
pub(crate) fn call(shard: &Rc<Shard>, from: Caller, call: &ServiceCall) -> Answer {
    let spec = match parse(call) {
        Ok(spec) => spec,
        Err(shape) => return Answer::Now(shape),
    };
    let shard = shard.clone();
    shard.clone().rt.spawn(async move {
        let reply = run(&shard, spec).await;
        crate::services::matches::answer_later(&shard, from, reply, shard.rt.now());
    });
    Answer::Later
}

/// The answer to one `game.tournament.*` call, awaited in place (an RPC handler's call).
pub(crate) async fn answer(shard: &Rc<Shard>, call: &ServiceCall) -> Value {
    match parse(call) {
        Ok(spec) => run(shard, spec).await,
        Err(shape) => shape,
    }
}
