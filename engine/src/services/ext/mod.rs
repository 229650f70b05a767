//! Lua extensions (`extensions/*.lua`, see `asobi_script::Extensions`): asobi's extension
//! surface for a Lua game. Their declared routes are served by `rest.rs` (after core's table
//! found nothing), their RPC methods by [`rpc`] (reached from the RPC feature's `call`),
//! their `game.<namespace>.<fn>` bindings and `game.emit` by `script.rs`.
//!
//! Every entry point runs the extension's function through [`run`]: in a per-shard VM of that
//! extension, under the same budgets as a match callback, answering its suspending `game.*`
//! calls through the RPC feature's service routing. A function that fails or overruns leaves
//! its VM to be dropped; VMs of an older game version are dropped when next taken, so hot
//! reload needs no step of its own (the same discipline as RPC VMs).

pub(crate) mod rest;
pub(crate) mod script;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use serde_json::{json, Value};

use asobi_schema::ApiError;
use asobi_script::{Call, ExtScript, ExtVm, Returned, RpcReply};

use super::rpc::Transport;
use super::Shard;

/// Idle VMs kept per extension per shard: enough for the calls one core has suspended on
/// storage at once, without one VM per call under load (each holds a few hundred KiB).
const MAX_IDLE_VMS: usize = 8;

/// This shard's idle extension VMs, by extension name.
#[derive(Default)]
pub(crate) struct Exts {
    idle: RefCell<HashMap<String, Vec<ExtVm>>>,
}

/// Runs `ext`'s global function `func(args...)`: what it returned, or why it failed (a Lua
/// error, an overrun; already logged).
pub(crate) async fn run(
    shard: &Rc<Shard>,
    ext: &Arc<ExtScript>,
    func: &str,
    args: &[Value],
) -> Result<Returned, String> {
    let vm = {
        let mut idle = shard.ext.idle.borrow_mut();
        let stack = idle.entry(ext.name.clone()).or_default();
        stack.retain(|vm| Arc::ptr_eq(vm.script(), ext));
        stack.pop()
    };
    let mut vm = match vm {
        Some(vm) => vm,
        None => ExtVm::new(ext, &shard.ctx.budgets).map_err(|e| failed(ext, func, &e))?,
    };
    let mut step = vm.call(func, args);
    let returned = loop {
        match step {
            Ok(Call::Done(r)) => break r,
            // The function used its time slice: the shard's other tasks run first.
            Ok(Call::Waiting(c)) if c.is_slice() => {
                futures_lite::future::yield_now().await;
                step = vm.resume(&serde_json::Value::Null);
            }
            Ok(Call::Waiting(c)) => {
                let answer = service(shard, ext, &c).await;
                step = vm.resume(&answer);
            }
            Err(e) => return Err(failed(ext, func, &e)),
        }
    };
    let current = shard
        .game
        .borrow()
        .extensions
        .by_name
        .get(&ext.name)
        .is_some_and(|e| Arc::ptr_eq(e, ext));
    if !vm.failed() && current {
        let mut idle = shard.ext.idle.borrow_mut();
        let stack = idle.entry(ext.name.clone()).or_default();
        if stack.len() < MAX_IDLE_VMS {
            stack.push(vm);
        }
    }
    Ok(returned)
}

fn failed(ext: &ExtScript, func: &str, e: &dyn std::fmt::Display) -> String {
    tracing::warn!(extension = %ext.name, function = func, "extension function failed: {e}");
    e.to_string()
}

/// Answers an extension function's suspending `game.*` call. `game.emit` is checked against
/// this extension's own domain; the rest goes where an RPC handler's calls go.
async fn service(shard: &Rc<Shard>, ext: &Arc<ExtScript>, c: &asobi_script::ServiceCall) -> Value {
    match c.service.as_str() {
        "emit" => script::emit(shard, ext, c),
        // Extension VMs get no `game.<namespace>` tables; one cannot call another.
        "ext" => json!({ "error": format!("game.{} is not available in extensions", c.op) }),
        // Boxed: an RPC handler's service call may itself run an extension function.
        _ => Box::pin(super::rpc::service(shard, c)).await,
    }
}

/// The error a client sees for what a route or RPC handler answered, or its result and
/// status. A code the extension did not declare is a defect (`internal`), as in asobi.
fn answer(ext: &ExtScript, what: &str, returned: &Returned) -> Result<(Value, u16), ApiError> {
    match returned.reply() {
        (RpcReply::Ok(v), status) => Ok((v, status)),
        (RpcReply::Error { code, details }, _) => match ext.codes.get(&code) {
            Some(c) => Err(ApiError::new(c.status, code, c.message.clone()).with_details(details)),
            None => {
                tracing::warn!(extension = %ext.name, handler = what, "undeclared code {code:?}");
                Err(ApiError::internal())
            }
        },
        (RpcReply::Invalid(why), _) => {
            tracing::warn!(extension = %ext.name, handler = what, "{why}");
            Err(ApiError::internal())
        }
        _ => Err(ApiError::internal()),
    }
}

/// An RPC method an extension declares (`rpc = { ["quests.claim"] = "claim" }`), called
/// with `(params, ctx)` like a `rpc.lua` handler. `params` was checked to be an object.
pub(crate) async fn rpc(
    shard: &Rc<Shard>,
    ext: &Arc<ExtScript>,
    func: &str,
    player: &str,
    method: &str,
    params: Value,
    transport: Transport,
) -> Result<Value, ApiError> {
    let ctx = json!({
        "player_id": player,
        "method": method,
        "transport": match transport { Transport::Ws => "ws", Transport::Http => "http" },
        "wire": "json",
        "extension": ext.name,
    });
    let returned = run(shard, ext, func, &[params, ctx])
        .await
        .map_err(|_| ApiError::internal())?;
    answer(ext, func, &returned).map(|(v, _)| v)
}
