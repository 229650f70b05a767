//! `GET /health`, `/ready` and `/live` (asobi's probes), also under `/api/v1`. `/ready` is
//! asobi's `{"status":"ready"}` / 503 `{"status":"not_ready"}` (with our `ready` flag kept);
//! `/live` is `{"status":"alive"}` while the process answers at all.

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;

use futures::future::LocalBoxFuture;
use serde_json::{json, Value};

use asobi_net::http::{Method, Response};

use crate::services::rest::{Req, RestResult, Route};
use crate::services::Shard;

pub(crate) const ROUTES: &[Route] = &[
    Route {
        method: Method::Get,
        path: "/health",
        handler: health,
    },
    Route {
        method: Method::Get,
        path: "/ready",
        handler: ready,
    },
    Route {
        method: Method::Get,
        path: "/live",
        handler: live,
    },
];

fn live<'a>(_: &'a Rc<Shard>, _: Req<'a>) -> LocalBoxFuture<'a, RestResult> {
    Box::pin(async move { Ok(Response::json(200, &br#"{"status":"alive"}"#[..])) })
}

/// Every shard is running (a shard that died clears its flag on the way out).
fn all_alive(shard: &Shard) -> bool {
    shard
        .ctx
        .registry
        .shards()
        .iter()
        .all(|s| s.alive.load(Relaxed))
}

fn health<'a>(shard: &'a Rc<Shard>, _: Req<'a>) -> LocalBoxFuture<'a, RestResult> {
    Box::pin(async move {
        let ctx = &shard.ctx;
        let reachable = ctx.store.ping().await.is_ok();
        let shards: Vec<Value> = ctx
            .registry
            .shards()
            .iter()
            .enumerate()
            .map(|(i, s)| {
                json!({
                    "id": i,
                    "alive": s.alive.load(Relaxed),
                    "connections": s.connections.load(Relaxed),
                    "sessions": s.sessions.load(Relaxed),
                    "matches": s.hosted.load(Relaxed),
                })
            })
            .collect();
        let healthy = reachable && all_alive(shard);
        let game = shard.game.borrow().clone();
        let body = json!({
            "status": if healthy { "ok" } else { "degraded" },
            "version": env!("CARGO_PKG_VERSION"),
            "storage": { "backend": ctx.store.backend_name(), "reachable": reachable },
            "shards": shards,
            "served_by": shard.id(),
            "live_matches": ctx.matches.len(),
            "local": {
                "matches": shard.matches.len(),
                "queued_tickets": shard.matchmaker.len(),
                "timers": shard.rt.timer_count(),
                "waiting_answers": shard.rt.waiting(),
                "mesh_bounced": shard.rt.counters.bounced.get(),
                "outbox_refused": shard.rt.counters.outbox_refused.get(),
            },
            "game": { "version": game.version, "modes": game.modes.keys().collect::<Vec<_>>() },
        });
        let status = if healthy { 200 } else { 503 };
        Ok(Response::json(
            status,
            serde_json::to_vec(&body).unwrap_or_default(),
        ))
    })
}

fn ready<'a>(shard: &'a Rc<Shard>, _: Req<'a>) -> LocalBoxFuture<'a, RestResult> {
    Box::pin(async move {
        let ready = all_alive(shard) && !shard.rt.shutting_down.get() && !shard.ops.draining.get();
        let body = json!({
            "status": if ready { "ready" } else { "not_ready" },
            "ready": ready,
        });
        Ok(Response::json(
            if ready { 200 } else { 503 },
            serde_json::to_vec(&body).unwrap_or_default(),
        ))
    })
}
