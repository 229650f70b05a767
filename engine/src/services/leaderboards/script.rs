//! `game.leaderboard.*` from Lua, in asobi's shapes: `submit` answers a plain boolean, `top`
//! and `around` answer `{ok = entries}` with `{player_id, score, rank}` each, `rank` answers
//! `{ok = rank}` or `{error = "not_found"}`. A wrong argument list answers `{error = "..."}`
//! naming the shape wanted, at once. The board may live on another shard: the reply reaches
//! the waiting callback through `matches::answer_later`.

use std::rc::Rc;

use serde_json::{json, Value};

use asobi_script::ServiceCall;

use super::Cast;
use crate::services::matches::Caller;
use crate::services::script::Answer;
use crate::services::Shard;

/// Most entries `top` hands a script (asobi has no cap; REST caps at 100).
const MAX_SCRIPT_TOP: usize = 1000;
/// Most entries either side `around` hands a script.
const MAX_SCRIPT_RANGE: usize = 100;

fn count(v: &Value, cap: usize) -> Option<usize> {
    v.as_f64().map(|f| (f.max(0.0) as usize).min(cap))
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

/// What a script sees of entries: `{player_id, score, rank}` each.
fn script_entries(v: &Value) -> Value {
    let entries: Vec<Value> = v["entries"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| json!({ "player_id": e["player_id"], "score": e["score"], "rank": e["rank"] }))
                .collect()
        })
        .unwrap_or_default();
    json!({ "ok": entries })
}

enum Op {
    Submit {
        board: String,
        player: String,
        score: i64,
        sub: i64,
        metadata: Option<Value>,
    },
    Top {
        board: String,
        n: usize,
    },
    Rank {
        board: String,
        player: String,
    },
    Around {
        board: String,
        player: String,
        n: usize,
    },
}

fn parse(call: &ServiceCall) -> Result<Op, Value> {
    let args = call.args.as_array().map(Vec::as_slice).unwrap_or(&[]);
    let s = |i: usize| args.get(i).and_then(Value::as_str).map(str::to_owned);
    let n = |i: usize| args.get(i).filter(|v| v.is_number());
    let shape = |w: &str| json!({ "error": w });
    match call.op.as_str() {
        "submit" => match (s(0), s(1), n(2).and_then(int)) {
            (Some(board), Some(player), Some(score)) => Ok(Op::Submit {
                board,
                player,
                score,
                sub: n(3).and_then(int).unwrap_or(0),
                metadata: args.get(4).filter(|v| !v.is_null()).cloned(),
            }),
            _ => Err(shape("submit requires (board_id, player_id, score)")),
        },
        "top" => match (s(0), n(1).and_then(|v| count(v, MAX_SCRIPT_TOP))) {
            (Some(board), Some(n)) => Ok(Op::Top { board, n }),
            _ => Err(shape("top requires (board_id, count)")),
        },
        "rank" => match (s(0), s(1)) {
            (Some(board), Some(player)) => Ok(Op::Rank { board, player }),
            _ => Err(shape("rank requires (board_id, player_id)")),
        },
        "around" => match (s(0), s(1), n(2).and_then(|v| count(v, MAX_SCRIPT_RANGE))) {
            (Some(board), Some(player), Some(n)) => Ok(Op::Around { board, player, n }),
            _ => Err(shape("around requires (board_id, player_id, count)")),
        },
        other => Err(
            json!({ "error": format!("game.leaderboard.{other} is not available in this runtime") }),
        ),
    }
}

/// Answers one `game.leaderboard.*` call from the match `from`.
pub(crate) fn call(shard: &Rc<Shard>, from: Caller, call: &ServiceCall) -> Answer {
    let op = match parse(call) {
        Ok(Op::Submit {
            board,
            player,
            score,
            sub,
            metadata,
        }) => {
            let m = metadata.as_ref();
            match super::cast_submit(shard, &board, &player, score, sub, m) {
                Ok(Cast::Sent) => return Answer::Now(Value::Bool(true)),
                Err(_) => return Answer::Now(Value::Bool(false)),
                // The owner is behind: the match waits for room, like any waiting call.
                Ok(Cast::Full) => Op::Submit {
                    board,
                    player,
                    score,
                    sub,
                    metadata,
                },
            }
        }
        Ok(op) => op,
        Err(shape) => return Answer::Now(shape),
    };
    let shard = shard.clone();
    shard.clone().rt.spawn(async move {
        let reply = run(&shard, op).await;
        crate::services::matches::answer_later(&shard, from, reply, shard.rt.now());
    });
    Answer::Later
}

/// The answer to one `game.leaderboard.*` call, awaited in place (an RPC handler's call).
pub(crate) async fn answer(shard: &Rc<Shard>, call: &ServiceCall) -> Value {
    match parse(call) {
        Ok(op) => run(shard, op).await,
        Err(shape) => shape,
    }
}

/// `game.leaderboard.submit` is a cast to the board's owner, as asobi's is: `true` once the
/// score is on its way, `false` when it is refused (bad board id or metadata). When the owner's
/// queue is full the caller waits for room (backpressure, polled every [`ROOM_POLL`]) instead of
/// losing the score; after `service_wait` it gives up with `false`.
pub(super) async fn cast(
    s: &Rc<Shard>,
    board: &str,
    player: &str,
    score: i64,
    sub: i64,
    meta: Option<&Value>,
) -> Value {
    let deadline = s.rt.now() + s.ctx.budgets.service_wait;
    loop {
        match super::cast_submit(s, board, player, score, sub, meta) {
            Ok(Cast::Sent) => return Value::Bool(true),
            Ok(Cast::Full) if s.rt.now() < deadline => s.rt.sleep(ROOM_POLL).await,
            Ok(Cast::Full) | Err(_) => return Value::Bool(false),
        }
    }
}

/// How often a score waiting for room in a full owner's queue tries again.
const ROOM_POLL: std::time::Duration = std::time::Duration::from_millis(1);

async fn run(s: &Rc<Shard>, op: Op) -> Value {
    match op {
        Op::Submit {
            board,
            player,
            score,
            sub,
            metadata,
        } => cast(s, &board, &player, score, sub, metadata.as_ref()).await,
        Op::Top { board, n } => match super::top(s, &board, n).await {
            Ok(v) => script_entries(&v),
            Err(e) => json!({ "error": e.code }),
        },
        Op::Around { board, player, n } => match super::around(s, &board, &player, n).await {
            Ok(v) => script_entries(&v),
            Err(e) => json!({ "error": e.code }),
        },
        Op::Rank { board, player } => match super::rank(s, &board, &player).await {
            Ok(v) if v["rank"].is_u64() => json!({ "ok": v["rank"] }),
            Ok(_) => json!({ "error": "not_found" }),
            Err(e) => json!({ "error": e.code }),
        },
    }
}
