//! RPCs a Lua game serves (`rpc.lua`, see `asobi_script::RpcVm`), called over WebSocket
//! (`rpc.call` → `rpc.ok` / `rpc.error`, `ws.rs`) and REST (`POST /api/v1/rpc/:method`,
//! `rest.rs`) — both through [`call`], so validation and error mapping happen once.
//!
//! VMs live per shard: a small stack of idle VMs of the current code. A call takes one (or
//! makes one), runs the handler under the same budgets as a match callback, and returns the VM
//! only if it ended cleanly and still runs the current code — a handler that failed or overran
//! leaves its VM to be dropped, and hot reload needs no step of its own: VMs of an older game
//! version are dropped when next taken, so an edited RPC answers with its new code at once.
//!
//! A handler's suspending `game.*` calls are answered here: `game.storage.*` goes to the
//! storage feature; others answer asobi's "not available" shape. The wait is bounded by the
//! store's own call deadline, and the handler's wall-clock budget counts it.

pub(crate) mod rest;
pub(crate) mod ws;

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::{json, Value};

use asobi_schema::error::code;
use asobi_schema::ApiError;
use asobi_script::{Call, RpcReply, RpcVm, ServiceCall, MAX_METHOD};

use super::Shard;

/// Idle VMs kept per shard. Each holds a few hundred KiB; sixteen cover the handlers that can
/// be suspended on storage at once on one core without making a VM per call under load.
const MAX_IDLE_VMS: usize = 16;

/// This shard's idle RPC VMs.
#[derive(Default)]
pub(crate) struct Rpcs {
    idle: RefCell<Vec<RpcVm>>,
}

/// Which transport a call came on (handed to the handler as `ctx.transport`).
#[derive(Clone, Copy)]
pub(crate) enum Transport {
    Ws,
    Http,
}

fn unknown(method: &str) -> ApiError {
    ApiError::new(
        404,
        code::RPC_UNKNOWN_METHOD,
        "No RPC is registered under this method.",
    )
    .with_details(json!({ "method": method }))
}

fn internal(method: &str, why: &str) -> ApiError {
    tracing::warn!(method, "rpc handler failed: {why}");
    ApiError::internal()
}

/// Calls `method(params)` for `player`: the result object, or the error a client sees.
pub(crate) async fn call(
    shard: &Rc<Shard>,
    player: &str,
    method: &str,
    params: Value,
    transport: Transport,
) -> Result<Value, ApiError> {
    if !params.is_object() {
        return Err(ApiError::new(
            400,
            code::RPC_INVALID_PARAMS,
            "`params` must be a JSON object.",
        ));
    }
    let game = shard.game.borrow().clone();
    if let Some((ext, func)) = game.extensions.rpc(method) {
        return super::ext::rpc(shard, ext, func, player, method, params, transport).await;
    }
    let Some(script) = game.rpc.clone() else {
        return Err(unknown(method));
    };
    if method.is_empty() || method.len() > MAX_METHOD || !script.methods.iter().any(|m| m == method)
    {
        return Err(unknown(method));
    }
    let mut vm = {
        let mut idle = shard.rpc.idle.borrow_mut();
        idle.retain(|vm| vm.code_version() == script.version);
        idle.pop()
    };
    let mut vm = match vm.take() {
        Some(vm) => vm,
        None => {
            RpcVm::new(&script, &shard.ctx.budgets).map_err(|e| internal(method, &e.to_string()))?
        }
    };
    let ctx = json!({
        "player_id": player,
        "method": method,
        "transport": match transport { Transport::Ws => "ws", Transport::Http => "http" },
        "wire": "json",
    });
    let mut step = vm.call(method, &params, &ctx);
    let reply = loop {
        match step {
            Ok(Call::Done(reply)) => break reply,
            // The handler used its time slice: let the shard's other tasks run first.
            Ok(Call::Waiting(c)) if c.is_slice() => {
                futures_lite::future::yield_now().await;
                step = vm.resume(&Value::Null);
            }
            Ok(Call::Waiting(c)) => {
                let wait = shard.ctx.budgets.service_wait;
                // Most answers are ready at once (a local owner, a cast): only a call that has
                // to wait gets a timer.
                let mut pending = std::pin::pin!(service(shard, &c));
                let answer = match futures::poll!(pending.as_mut()) {
                    std::task::Poll::Ready(v) => Some(v),
                    std::task::Poll::Pending => {
                        futures_lite::future::or(async { Some(pending.await) }, async {
                            shard.rt.sleep(wait).await;
                            None
                        })
                        .await
                    }
                };
                let Some(answer) = answer else {
                    vm.abandon();
                    return Err(internal(method, "a game.* call got no answer in time"));
                };
                step = vm.resume(&answer);
            }
            Err(e) => return Err(internal(method, &e.to_string())),
        }
    };
    if !vm.failed() && vm.code_version() == shard.game.borrow().version {
        let mut idle = shard.rpc.idle.borrow_mut();
        if idle.len() < MAX_IDLE_VMS {
            idle.push(vm);
        }
    }
    match reply {
        RpcReply::Ok(result) => Ok(result),
        RpcReply::Error { code, details } => match script.codes.get(&code) {
            // The code set stays closed: only codes the game declared reach a client.
            Some(c) => Err(ApiError::new(c.status, code, c.message.clone()).with_details(details)),
            None => Err(internal(method, &format!("undeclared code {code:?}"))),
        },
        RpcReply::UnknownMethod => Err(unknown(method)),
        RpcReply::Invalid(why) => Err(internal(method, &why)),
        _ => Err(internal(method, "unexpected reply")),
    }
}

/// Answers a handler's suspending `game.*` call (RPC handlers and extension functions alike).
pub(crate) async fn service(shard: &Rc<Shard>, c: &ServiceCall) -> Value {
    match c.service.as_str() {
        "storage" => match super::storage::script::parse(c) {
            Ok(op) => super::storage::script::run(shard, op).await,
            Err(message) => json!({ "error": message }),
        },
        "economy" => super::economy::script::answer(shard, c).await,
        "leaderboard" => super::leaderboards::script::answer(shard, c).await,
        "tournament" => super::tournaments::script::answer(shard, c).await,
        "notify" => super::social::script::notify_answer(shard, c).await,
        "chat" => super::social::script::chat_answer(shard, c),
        "ext" => super::ext::script::binding_answer(shard, c).await,
        "emit" => super::ext::script::emit_outside(),
        _ => json!({
            "error": format!("game.{}.{} is not available in RPC handlers", c.service, c.op)
        }),
    }
}
