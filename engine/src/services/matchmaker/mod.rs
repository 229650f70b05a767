//! The matchmaker runtime: each shard owns the queues of the modes that hash to it, ticks them
//! once a second, and turns formed groups into matches placed where most of their players are.
//! The rules live in the sans-IO [`crate::matchmaker`]; this module moves requests and time in
//! and matches and notifications out.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use serde::Deserialize;
use serde_json::{json, Value};

use asobi_schema::envelope::encode_frame;
use asobi_schema::error::code;
use asobi_schema::ApiError;
use asobi_script::{CompiledMode, Game};

use crate::matchmaker::{ModeQueue, QueueConfig, QueueEvent, Strategy};
use crate::mesh::{MatchCmd, MeshMsg, Outbound, QueueCmd};
use crate::rest::{ok, RestResult};
use crate::session::{await_reply, text};
use crate::shard::Shard;

/// asobi's matchmaker tick interval.
const TICK: Duration = Duration::from_secs(1);

fn queue_config(shard: &Shard, mode: &CompiledMode) -> QueueConfig {
    let cfg = &mode.config;
    let g = &shard.global.cfg;
    QueueConfig {
        match_size: Some(cfg.match_size as usize),
        strategy: match cfg.strategy {
            asobi_script::Strategy::SkillBased => Strategy::SkillBased,
            _ => Strategy::Fill,
        },
        max_wait: Duration::from_secs(cfg.max_wait_seconds.unwrap_or(g.matchmaker_max_wait_secs)),
        max_queue: g.matchmaker_max_queue,
        ..QueueConfig::default()
    }
}

/// Queues a player for a mode on the shard that owns the mode's queue.
/// Returns the `matchmaker.queued` payload.
pub(crate) async fn add(
    shard: &Rc<Shard>,
    mode: &str,
    player_id: &str,
    properties: Value,
) -> Result<Value, ApiError> {
    let (tx, rx) = oneshot::channel();
    let host = shard.queue_shard(mode);
    shard.route(
        host,
        MeshMsg::Queue(QueueCmd::Add {
            mode: mode.to_owned(),
            player_id: player_id.to_owned(),
            properties,
            reply: tx,
        }),
    );
    let queued = await_reply(rx).await?;
    if let Some(ticket) = queued["ticket_id"].as_str() {
        shard.global.directory.put_ticket(ticket, mode);
    }
    Ok(queued)
}

pub(crate) fn handle(shard: &Rc<Shard>, cmd: QueueCmd) {
    let now = Instant::now();
    match cmd {
        QueueCmd::Add {
            mode,
            player_id,
            properties,
            reply,
        } => {
            let result = with_queue(shard, &mode, |q| {
                q.add(now, uuid::Uuid::now_v7().to_string(), player_id, properties)
                    .map_err(|e| {
                        ApiError::new(
                            if e.code() == code::QUEUE_FULL {
                                503
                            } else {
                                500
                            },
                            e.code(),
                            e.to_string(),
                        )
                    })
            })
            .and_then(|r| r)
            .map(|q| q.to_json());
            let _ = reply.send(result);
        }
        QueueCmd::Remove {
            mode,
            ticket_id,
            player_id,
            reply,
        } => {
            let result = with_queue(shard, &mode, |q| {
                q.remove(now, &ticket_id, &player_id)
                    .map_err(|e| ApiError::new(e.http_status(), e.code(), e.to_string()))
            })
            .and_then(|r| r);
            let _ = reply.send(result);
        }
        QueueCmd::FormationFailed { mode, tickets } => {
            let retry = shard
                .queues
                .borrow_mut()
                .get_mut(&mode)
                .map(|q| q.formation_failed(now, tickets));
            for t in retry.map(|r| r.gave_up).unwrap_or_default() {
                let frame = encode_frame(
                    "match.matchmaker_failed",
                    None,
                    &json!({ "reason": "match_start_failed" }),
                );
                if let (Some(at), Some(f)) =
                    (shard.global.directory.session_of(&t.player_id), text(frame))
                {
                    shard.deliver(at, Outbound::Frame(f));
                }
            }
        }
        QueueCmd::RemovePlayer { mode, player_id } => {
            if let Some(q) = shard.queues.borrow_mut().get_mut(&mode) {
                q.remove_player(now, &player_id);
            }
        }
        QueueCmd::Status {
            mode,
            ticket_id,
            player_id,
            reply,
        } => {
            let wall = crate::auth::now_ms() as u64;
            let result = with_queue(shard, &mode, |q| {
                q.status(now, &ticket_id, &player_id)
                    .map(|s| s.to_json(wall))
                    .map_err(|e| ApiError::new(e.http_status(), e.code(), e.to_string()))
            })
            .and_then(|r| r);
            let _ = reply.send(result);
        }
    }
}

fn with_queue<T>(
    shard: &Shard,
    mode: &str,
    f: impl FnOnce(&mut ModeQueue) -> T,
) -> Result<T, ApiError> {
    let mut queues = shard.queues.borrow_mut();
    if !queues.contains_key(mode) {
        let game = shard.game.borrow();
        let compiled = game.mode(mode).ok_or_else(|| {
            ApiError::new(404, code::UNKNOWN_MODE, format!("No game mode `{mode}`."))
        })?;
        queues.insert(
            mode.to_owned(),
            ModeQueue::new(mode.to_owned(), queue_config(shard, compiled)),
        );
    }
    queues.get_mut(mode).map(f).ok_or_else(ApiError::internal)
}

/// New mode settings apply to queues from the next tick; queued tickets stay.
pub(crate) fn reconfigure(shard: &Rc<Shard>, game: &Arc<Game>) {
    let mut queues = shard.queues.borrow_mut();
    for (mode, q) in queues.iter_mut() {
        if let Some(compiled) = game.mode(mode) {
            q.reconfigure(queue_config(shard, compiled));
        }
    }
}

/// Ticks this shard's queues once a second.
pub(crate) async fn ticker(shard: Rc<Shard>) {
    loop {
        glommio::timer::sleep(TICK).await;
        if shard.shutting_down.get() {
            return;
        }
        let now = Instant::now();
        let events: Vec<QueueEvent> = shard
            .queues
            .borrow_mut()
            .values_mut()
            .filter(|q| !q.is_empty())
            .flat_map(|q| q.tick(now))
            .collect();
        for event in events {
            match event {
                QueueEvent::Formed(group) => form(&shard, group),
                QueueEvent::Expired(t) => {
                    let frame = encode_frame(
                        "match.matchmaker_expired",
                        None,
                        &json!({ "ticket_id": t.ticket_id }),
                    );
                    if let (Some(at), Some(f)) =
                        (shard.global.directory.session_of(&t.player_id), text(frame))
                    {
                        shard.deliver(at, Outbound::Frame(f));
                    }
                }
            }
        }
    }
}

fn form(shard: &Rc<Shard>, group: crate::matchmaker::FormedGroup) {
    let players = group.player_ids();
    let match_id = uuid::Uuid::now_v7().to_string();
    if let Some(q) = shard.queues.borrow_mut().get_mut(&group.mode) {
        q.mark_matched(group.ticket_ids(), &match_id);
    }
    let host = shard.global.directory.place(&players);
    shard.route(
        host,
        MeshMsg::Match(MatchCmd::Create {
            tickets: group.ticket_ids(),
            mode: group.mode,
            match_id,
            players,
        }),
    );
}

#[derive(Deserialize)]
pub(crate) struct RestAdd {
    mode: String,
    #[serde(default)]
    properties: Option<Value>,
}

pub(crate) async fn rest_add(shard: &Rc<Shard>, me: &str, body: RestAdd) -> RestResult {
    if body.mode.len() > 64 || shard.game.borrow().mode(&body.mode).is_none() {
        return Err(ApiError::new(
            404,
            code::UNKNOWN_MODE,
            format!("No game mode `{}`.", body.mode),
        ));
    }
    let queued = add(shard, &body.mode, me, body.properties.unwrap_or(json!({}))).await?;
    ok(&queued)
}

/// The mode a ticket was queued for, as recorded when it was issued.
fn ticket_mode(shard: &Shard, ticket: &str) -> Result<String, ApiError> {
    shard
        .global
        .directory
        .ticket_mode(ticket)
        .ok_or_else(|| ApiError::new(404, code::TICKET_NOT_FOUND, "No such ticket."))
}

/// Sends a command built around a reply channel to the queue shard of `mode` and awaits it.
async fn ask_queue<T>(
    shard: &Rc<Shard>,
    mode: &str,
    cmd: impl FnOnce(crate::mesh::Reply<T>) -> QueueCmd,
) -> Result<T, ApiError> {
    let (tx, rx) = oneshot::channel();
    shard.route(shard.queue_shard(mode), MeshMsg::Queue(cmd(tx)));
    await_reply(rx).await
}

pub(crate) async fn rest_status(shard: &Rc<Shard>, me: &str, ticket: &str) -> RestResult {
    let mode = ticket_mode(shard, ticket)?;
    let status = ask_queue(shard, &mode.clone(), |reply| QueueCmd::Status {
        mode,
        ticket_id: ticket.to_owned(),
        player_id: me.to_owned(),
        reply,
    })
    .await?;
    ok(&status)
}

pub(crate) async fn rest_remove(shard: &Rc<Shard>, me: &str, ticket: &str) -> RestResult {
    let mode = ticket_mode(shard, ticket)?;
    ask_queue(shard, &mode.clone(), |reply| QueueCmd::Remove {
        mode,
        ticket_id: ticket.to_owned(),
        player_id: me.to_owned(),
        reply,
    })
    .await?;
    ok(&json!({ "success": true }))
}
