//! `rpc.call` → `rpc.ok` / `rpc.error`. asobi's rules: `cid` is required (1–64 printable
//! ASCII bytes; a rejected one is not echoed), `protocol` must be 1, `params` an object. The
//! error reply carries only the error object, without the older flat `reason`.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use asobi_schema::envelope::{encode_frame, Inbound};
use asobi_schema::error::code;
use asobi_schema::ApiError;

use super::Transport;
use crate::services::session::{Handled, Session, WsHandler};

pub(crate) const HANDLERS: &[(&str, WsHandler)] = &[("rpc.call", call)];

/// The RPC payload versions this server speaks.
pub(crate) const PROTOCOLS: &[u64] = &[1];

#[derive(Deserialize)]
struct RpcCall {
    #[serde(default)]
    protocol: Option<Value>,
    #[serde(default)]
    method: Option<Value>,
    #[serde(default)]
    params: Option<Value>,
}

fn valid_cid(cid: Option<&RawValue>) -> bool {
    let Some(raw) = cid else { return false };
    let Ok(s) = serde_json::from_str::<String>(raw.get()) else {
        return false;
    };
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

fn error_frame(s: &mut Session, cid: Option<&RawValue>, e: &ApiError) {
    let body = json!({ "error": { "code": e.code, "message": e.message, "details": e.details } });
    s.reply(encode_frame("rpc.error", cid, &body));
}

fn call<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Later(Box::pin(async move {
        if !valid_cid(f.cid) {
            let e = ApiError::new(
                400,
                code::RPC_INVALID_CID,
                "`cid` must be 1-64 printable ASCII characters.",
            );
            error_frame(s, None, &e);
            return Ok(());
        }
        let body: RpcCall = match f.decode() {
            Ok(b) => b,
            Err(e) => {
                error_frame(s, f.cid, &e);
                return Ok(());
            }
        };
        if !body
            .protocol
            .as_ref()
            .and_then(Value::as_u64)
            .is_some_and(|p| PROTOCOLS.contains(&p))
        {
            let e = ApiError::new(
                400,
                code::RPC_UNSUPPORTED_PROTOCOL,
                "This server does not speak that RPC protocol version.",
            )
            .with_details(json!({ "supported": PROTOCOLS }));
            error_frame(s, f.cid, &e);
            return Ok(());
        }
        let method = match body.method {
            Some(Value::String(m)) => m,
            _ => String::new(),
        };
        let params = body.params.unwrap_or_else(|| json!({}));
        let shard = s.shard.clone();
        let player = s.player();
        match super::call(&shard, &player, &method, params, Transport::Ws).await {
            Ok(result) => s.reply(encode_frame("rpc.ok", f.cid, &json!({ "result": result }))),
            Err(e) => error_frame(s, f.cid, &e),
        }
        Ok(())
    }))
}
