//! `game.economy.grant/debit/balance/purchase` from a match script, through the
//! suspend-and-resume seam: the call is parsed here, the storage operation runs in a task on
//! this shard, and its answer resumes the waiting callback (`matches::answer_later`). The match
//! runs nothing else meanwhile; its neighbours keep ticking.
//!
//! Arguments and answers are asobi's: `grant/debit(player_id, currency, amount[, reason])` →
//! `{ok = {player_id, currency, balance}}`, `balance(player_id)` → `{ok = {{currency, balance},
//! …}}`, `purchase(player_id, listing_id)` → `{ok = item}`, failures `{error = reason}` with
//! asobi's reasons (`insufficient_funds`, `listing_inactive`, `not_found`). Ours: an optional
//! last argument, an idempotency key, so a script can make a grant safe to repeat.

use std::rc::Rc;

use serde_json::{json, Value};

use asobi_script::ServiceCall;

use super::error::Error;
use super::Change;
use crate::services::matches::Caller;
use crate::services::script::Answer;
use crate::services::Shard;

/// What one call asks for, once its arguments are checked.
enum Op {
    Grant(Change),
    Debit(Change),
    Balance(String),
    Purchase {
        player: String,
        listing: String,
        key: Option<String>,
    },
}

fn string(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_owned)
}

/// An optional trailing string argument: absent or nil is `None`, anything else must be text.
fn optional(v: Option<&Value>) -> Result<Option<String>, ()> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(()),
    }
}

fn parse(call: &ServiceCall) -> Result<Op, String> {
    let args = call.args.as_array().cloned().unwrap_or_default();
    let usage = |s: &str| format!("{} requires ({s})", call.op);
    match call.op.as_str() {
        "grant" | "debit" => {
            let u = || usage("player_id, currency, amount[, reason]");
            let (Some(player), Some(currency)) = (string(args.first()), string(args.get(1))) else {
                return Err(u());
            };
            // asobi truncates a fractional amount; so do we.
            let amount = args.get(2).and_then(Value::as_f64).ok_or_else(u)?;
            let amount = amount.trunc().clamp(i64::MIN as f64, i64::MAX as f64) as i64;
            let reason = optional(args.get(3)).map_err(|()| u())?;
            let key = optional(args.get(4)).map_err(|()| u())?;
            let c = Change {
                player,
                currency,
                amount,
                reason,
                key,
            };
            Ok(if call.op == "grant" {
                Op::Grant(c)
            } else {
                Op::Debit(c)
            })
        }
        "balance" => string(args.first())
            .map(Op::Balance)
            .ok_or_else(|| usage("player_id")),
        "purchase" => {
            let u = || usage("player_id, listing_id");
            let (Some(player), Some(listing)) = (string(args.first()), string(args.get(1))) else {
                return Err(u());
            };
            let key = optional(args.get(2)).map_err(|()| u())?;
            Ok(Op::Purchase {
                player,
                listing,
                key,
            })
        }
        other => Err(format!(
            "game.economy.{other} is not available in this runtime"
        )),
    }
}

/// Answers one `game.economy.*` call from the match `from`.
pub(crate) fn call(shard: &Rc<Shard>, from: Caller, call: &ServiceCall) -> Answer {
    let op = match parse(call) {
        Ok(op) => op,
        Err(message) => return Answer::Now(json!({ "error": message })),
    };
    let shard = shard.clone();
    shard.clone().rt.spawn(async move {
        let reply = envelope(run(&shard, op).await);
        crate::services::matches::answer_later(&shard, from, reply, shard.rt.now());
    });
    Answer::Later
}

/// The answer to one `game.economy.*` call, awaited in place (an RPC handler's call).
pub(crate) async fn answer(shard: &Rc<Shard>, call: &ServiceCall) -> Value {
    match parse(call) {
        Ok(op) => envelope(run(shard, op).await),
        Err(message) => json!({ "error": message }),
    }
}

/// asobi's Lua envelope: `{ok = value}` or `{error = reason}`.
fn envelope(r: Result<Value, Error>) -> Value {
    match r {
        Ok(value) => json!({ "ok": value }),
        Err(e) => {
            if let Error::Storage(s) = &e {
                tracing::warn!(error = %s, "game.economy call failed in storage");
            }
            json!({ "error": e.lua_reason() })
        }
    }
}

async fn run(shard: &Shard, op: Op) -> Result<Value, Error> {
    let wallet = |player: String, receipt: asobi_storage::WalletReceipt| {
        json!({
            "player_id": player,
            "currency": receipt.wallet.currency,
            "balance": receipt.wallet.balance,
        })
    };
    Ok(match op {
        Op::Grant(c) => {
            let player = c.player.clone();
            wallet(player, super::grant(shard, c).await?.value)
        }
        Op::Debit(c) => {
            let player = c.player.clone();
            wallet(player, super::debit(shard, c).await?.value)
        }
        Op::Balance(player) => json!(super::wallets(shard, &player).await?),
        Op::Purchase {
            player,
            listing,
            key,
        } => json!(
            super::purchase(shard, &player, &listing, 1, key)
                .await?
                .value
                .item
        ),
    })
}
