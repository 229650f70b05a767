//! The ops views of the features that landed after the ops plane — chat, notifications and
//! tournaments, as asobi's `/api/v1/ops/*` routes show them — and one action asobi lacks:
//! sending a notification to a player, audited.
//!
//! Same rules as `rest.rs`: every route names its capability and passes the gate first, lists
//! answer `{data, page:{limit,offset,total}}` with asobi's shared parameters, the mutation
//! writes an audit row naming the operator.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use serde::Deserialize;
use serde_json::{json, Value};

use asobi_net::http::{Head, Method};
use asobi_schema::error::code;
use asobi_schema::ApiError;
use asobi_storage::{ChatListQuery, NotificationListQuery, OpsPage, Order, Tournament};

use super::auth::Cap;
use super::cmd;
use super::rest::{
    audit, bad, data, gate, live_player, not_found, page_body, page_in_memory, paging, plain_id,
    player_id, Paging,
};
use crate::services::error::store_error;
use crate::services::rest::{handler, Route};
use crate::services::Shard;

pub(crate) const ROUTES: &[Route] = &[
    Route {
        method: Method::Get,
        path: "/ops/chat/channels",
        handler: chat_channels,
    },
    Route {
        method: Method::Get,
        path: "/ops/chat/channels/:id/messages",
        handler: chat_messages,
    },
    Route {
        method: Method::Get,
        path: "/ops/notifications",
        handler: notifications,
    },
    Route {
        method: Method::Post,
        path: "/ops/players/:id/notifications",
        handler: send_notification,
    },
    Route {
        method: Method::Get,
        path: "/ops/tournaments",
        handler: tournaments,
    },
    Route {
        method: Method::Get,
        path: "/ops/tournaments/:id",
        handler: tournament,
    },
    Route {
        method: Method::Get,
        path: "/ops/tournaments/:id/entries",
        handler: tournament_entries,
    },
];

/// Deepest board rank the standings read (entrants below it show without a score).
const STANDINGS_DEPTH: usize = 1000;

fn store_page(p: &Paging) -> OpsPage {
    OpsPage {
        limit: p.limit,
        offset: p.offset,
        sort: p.sort.clone(),
        order: p.order,
        q: p.q.clone(),
    }
}

/// An equality filter: absent or empty is no filter; over 128 bytes or with control characters
/// is asobi's `ops.invalid_filter`.
fn text_filter(head: &Head, name: &str) -> Result<Option<String>, ApiError> {
    match head.query_param(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) if v.len() <= 128 && !v.chars().any(char::is_control) => Ok(Some(v)),
        Some(_) => Err(invalid_filter(name)),
    }
}

/// A filter that must be a player id (a UUID).
fn uuid_filter(head: &Head, name: &str) -> Result<Option<String>, ApiError> {
    match text_filter(head, name)? {
        Some(v) if uuid::Uuid::parse_str(&v).is_err() => Err(invalid_filter(name)),
        v => Ok(v),
    }
}

fn bool_filter(head: &Head, name: &str) -> Result<Option<bool>, ApiError> {
    match head.query_param(name).filter(|v| !v.is_empty()).as_deref() {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(invalid_filter(name)),
    }
}

fn invalid_filter(name: &str) -> ApiError {
    bad(code::OPS_INVALID_FILTER, "A filter value is not valid.")
        .with_details(json!({ "filter": name }))
}

/// Asks every shard (this one in place) and concatenates the array answers. A shard that
/// cannot answer is left out, as the metrics scrape does.
async fn every_shard(
    shard: &Rc<Shard>,
    here: fn(&Shard) -> Value,
    ask: fn(crate::shard::mesh::ReplyTo) -> cmd::Cmd,
) -> Vec<Value> {
    let mut out = Vec::new();
    for peer in 0..shard.rt.nshards() {
        let answer = if peer == shard.id() {
            Ok(here(shard))
        } else {
            crate::shard::request(shard, peer, |reply| crate::services::Cmd::Ops(ask(reply))).await
        };
        match answer {
            Ok(Value::Array(rows)) => out.extend(rows),
            Ok(_) => tracing::warn!(peer, "ops view: a shard answered no list"),
            Err(e) => tracing::debug!(peer, "ops view: no answer: {}", e.message),
        }
    }
    out
}

handler!(chat_channels, |shard, req| {
    gate(shard, req.head, Cap::Read)?;
    let p = paging(req.head, &["channel_id", "members"], "members", Order::Desc)?;
    let mut rows = every_shard(shard, cmd::channels_here, |reply| cmd::Cmd::Channels {
        reply,
    })
    .await;
    // `q` searches the channel id only (asobi's rule for this list).
    if let Some(q) = &p.q {
        let q = q.to_lowercase();
        rows.retain(|r| {
            r["channel_id"]
                .as_str()
                .is_some_and(|id| id.to_lowercase().contains(&q))
        });
    }
    // Ties end on the channel id so no page repeats a row.
    rows.sort_by(|a, b| a["channel_id"].as_str().cmp(&b["channel_id"].as_str()));
    let unsearched = Paging { q: None, ..p };
    page_in_memory(rows, &unsearched)
});

handler!(chat_messages, |shard, req| {
    gate(shard, req.head, Cap::Read)?;
    let channel = plain_id(req.param(0))?;
    let p = paging(
        req.head,
        &["id", "channel_type", "sender_id", "sent_at"],
        "sent_at",
        Order::Desc,
    )?;
    let q = ChatListQuery {
        page: store_page(&p),
        channel_id: channel,
        sender_id: uuid_filter(req.head, "sender_id")?,
        channel_type: text_filter(req.head, "channel_type")?,
    };
    let (rows, total) = shard
        .ctx
        .store
        .ops_chat_messages(q)
        .await
        .map_err(store_error)?;
    let rows = rows
        .iter()
        .map(|m| {
            json!({
                "id": m.id,
                "channel_type": m.channel_type,
                "channel_id": m.channel_id,
                "sender_id": m.sender_id,
                "content": m.content,
                "sent_at": m.sent_at,
            })
        })
        .collect();
    page_body(rows, &p, total)
});

fn notification_row(n: &asobi_storage::Notification) -> Value {
    json!({
        "id": n.id,
        "player_id": n.player_id,
        "type": n.kind,
        "subject": n.subject,
        "content": n.content,
        "read": n.read,
        "sent_at": n.sent_at,
    })
}

handler!(notifications, |shard, req| {
    gate(shard, req.head, Cap::Read)?;
    let p = paging(
        req.head,
        &["id", "player_id", "type", "subject", "read", "sent_at"],
        "sent_at",
        Order::Desc,
    )?;
    let q = NotificationListQuery {
        page: store_page(&p),
        player_id: uuid_filter(req.head, "player_id")?,
        kind: text_filter(req.head, "type")?,
        read: bool_filter(req.head, "read")?,
    };
    let (rows, total) = shard
        .ctx
        .store
        .ops_notifications(q)
        .await
        .map_err(store_error)?;
    page_body(rows.iter().map(notification_row).collect(), &p, total)
});

#[derive(Deserialize)]
struct SendBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    subject: Option<String>,
    content: Option<Value>,
}

handler!(send_notification, |shard, req| {
    // asobi classes a notification send as a change to player data.
    let actor = gate(shard, req.head, Cap::PlayerData)?;
    let id = player_id(req.param(0))?;
    let body: SendBody = req.json()?;
    live_player(shard, &id).await?;
    let kind = body.kind.unwrap_or_else(|| "system".to_owned());
    let subject = body.subject.unwrap_or_default();
    let content = body.content.unwrap_or(Value::Null);
    // The social feature stores it and pushes `notification.new` to a live session (or at the
    // player's next sign-in).
    let sent =
        match crate::services::social::notify::notify(shard, &id, &kind, &subject, content).await {
            Ok(n) => n,
            Err(e) => {
                // A refused send is audited too (asobi audits every outcome of a send).
                let e = ApiError::from(e);
                audit(
                    shard,
                    &actor,
                    "notification.send",
                    Some(&id),
                    "error",
                    json!({ "code": e.code, "type": kind }),
                )
                .await;
                return Err(e);
            }
        };
    audit(
        shard,
        &actor,
        "notification.send",
        Some(&id),
        "ok",
        json!({ "notification_id": sent.id, "type": sent.kind, "subject": sent.subject }),
    )
    .await;
    data(notification_row(&sent))
});

const TOURNAMENT_SORTS: &[&str] = &[
    "id",
    "name",
    "leaderboard_id",
    "status",
    "start_at",
    "end_at",
    "inserted_at",
];

/// asobi's ops projection of a tournament (no `metadata`), plus `live`: whether a shard is
/// keeping its window now, and `entrants` (ours). Times stay unix ms so they sort as numbers.
fn tournament_row(t: &Tournament, now: i64, live: &HashSet<String>) -> Value {
    let shown = crate::services::tournaments::to_json(t, now);
    json!({
        "id": t.id,
        "name": t.name,
        "leaderboard_id": t.leaderboard_id,
        "max_entries": t.max_entries,
        "entry_fee": t.entry_fee,
        "rewards": t.rewards,
        "status": shown["status"],
        "start_at": t.start_at,
        "end_at": t.end_at,
        "inserted_at": t.inserted_at,
        "settled_at": t.settled_at,
        "entrants": t.entrants,
        "live": live.contains(&t.id),
    })
}

async fn live_tournaments(shard: &Rc<Shard>) -> HashSet<String> {
    every_shard(shard, cmd::tournaments_here, |reply| {
        cmd::Cmd::Tournaments { reply }
    })
    .await
    .into_iter()
    .filter_map(|v| v.as_str().map(str::to_owned))
    .collect()
}

handler!(tournaments, |shard, req| {
    gate(shard, req.head, Cap::Read)?;
    let p = paging(req.head, TOURNAMENT_SORTS, "start_at", Order::Desc)?;
    let status = text_filter(req.head, "status")?;
    let board = text_filter(req.head, "leaderboard_id")?;
    let now = crate::services::tournaments::wall_ms(shard);
    let live = live_tournaments(shard).await;
    let stored = shard
        .ctx
        .store
        .tournaments(None, asobi_storage::MAX_TOURNAMENT_LIST)
        .await
        .map_err(store_error)?;
    let mut rows: Vec<Value> = stored
        .iter()
        .map(|t| tournament_row(t, now, &live))
        .filter(|r| status.as_deref().is_none_or(|s| r["status"] == s))
        .filter(|r| board.as_deref().is_none_or(|b| r["leaderboard_id"] == b))
        .collect();
    // `q` searches the name only.
    if let Some(q) = &p.q {
        let q = q.to_lowercase();
        rows.retain(|r| {
            r["name"]
                .as_str()
                .is_some_and(|n| n.to_lowercase().contains(&q))
        });
    }
    let unsearched = Paging { q: None, ..p };
    page_in_memory(rows, &unsearched)
});

async fn stored_tournament(shard: &Rc<Shard>, raw: &str) -> Result<Tournament, ApiError> {
    let id = plain_id(raw)?;
    shard
        .ctx
        .store
        .tournament(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(not_found)
}

handler!(tournament, |shard, req| {
    gate(shard, req.head, Cap::Read)?;
    let t = stored_tournament(shard, req.param(0)).await?;
    let now = crate::services::tournaments::wall_ms(shard);
    data(tournament_row(&t, now, &live_tournaments(shard).await))
});

handler!(tournament_entries, |shard, req| {
    gate(shard, req.head, Cap::Read)?;
    let t = stored_tournament(shard, req.param(0)).await?;
    let p = paging(
        req.head,
        &["rank", "player_id", "score", "board_rank"],
        "rank",
        Order::Asc,
    )?;
    let entrants = shard
        .ctx
        .store
        .tournament_entrants(&t.id)
        .await
        .map_err(store_error)?;
    // The board's ranking from its owner, the one settlement reads; entrants are ranked among
    // themselves in board order, those without a score after them.
    let top = crate::services::leaderboards::top(shard, &t.leaderboard_id, STANDINGS_DEPTH).await?;
    let mut on_board: HashMap<String, Value> = HashMap::new();
    for e in top["entries"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        if let Some(pid) = e["player_id"].as_str() {
            on_board.insert(pid.to_owned(), e.clone());
        }
    }
    let mut ranked: Vec<(i64, Value)> = Vec::new();
    let mut unranked: Vec<Value> = Vec::new();
    for pid in &entrants {
        match on_board.get(pid) {
            Some(e) => ranked.push((e["rank"].as_i64().unwrap_or(i64::MAX), e.clone())),
            None => unranked.push(json!({ "player_id": pid, "score": null, "board_rank": null })),
        }
    }
    ranked.sort_by_key(|(rank, _)| *rank);
    let mut rows = Vec::with_capacity(entrants.len());
    for (i, (board_rank, e)) in ranked.into_iter().enumerate() {
        rows.push(json!({
            "rank": i + 1,
            "player_id": e["player_id"],
            "score": e["score"],
            "sub_score": e["sub_score"],
            "board_rank": board_rank,
        }));
    }
    let first_unranked = rows.len() + 1;
    for (i, mut r) in unranked.into_iter().enumerate() {
        r["rank"] = json!(first_unranked + i);
        rows.push(r);
    }
    page_in_memory(rows, &p)
});
