//! asobi's `/api/v1/ops/*` routes for the features asobi-rs has, the actions asobi lacks, and the
//! routes outside `/api/v1`: `GET /metrics` and the console (`/console`, its assets and
//! `/console/session`).
//!
//! Every ops route names its capability and calls [`auth::authorize`] first, so no route can be
//! reached without the credential. Lists answer asobi's `{data, page:{limit,offset,total}}` and
//! take its shared parameters (`limit`, `page`, `offset`, `sort`, `order`, `q`); every mutation
//! writes an audit row naming the operator.

use std::rc::Rc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use asobi_net::http::{Head, Method, Response};
use asobi_schema::error::code;
use asobi_schema::ApiError;
use asobi_storage::{MatchListQuery, OpsPage, Order, Player, PlayerListQuery};

use super::auth::{self, Actor, Cap};
use super::metrics::bump;
use crate::services::error::store_error;
use crate::services::rest::{handler, ok, RestResult, Route};
use crate::services::Shard;
use crate::shard::mesh::Outbound;

macro_rules! routes {
    ($($method:ident $path:literal => $h:ident),* $(,)?) => {
        pub(crate) const ROUTES: &[Route] = &[
            $(Route { method: Method::$method, path: $path, handler: $h },)*
        ];
    };
}

routes! {
    Get "/ops/stats" => stats,
    Get "/ops/features" => features,
    Get "/ops/players" => players,
    Get "/ops/players/:id" => player,
    Get "/ops/players/:id/export" => export,
    Post "/ops/players/:id/erase" => erase,
    Post "/ops/players/guests/purge" => purge_guests,
    Post "/ops/players/:id/kick" => kick,
    Post "/ops/players/:id/ban" => ban,
    Post "/ops/tournaments" => create_tournament,
    Delete "/ops/players/:id/ban" => unban,
    Post "/ops/players/:id/wallets/grant" => grant,
    Get "/ops/matches" => matches,
    Get "/ops/matches/live" => live_matches,
    Get "/ops/matches/:id" => match_record,
    Post "/ops/matches/:id/end" => end_match,
    Get "/ops/matchmaker" => matchmaker,
    Get "/ops/leaderboards" => leaderboards,
    Get "/ops/leaderboards/:id/entries" => leaderboard_entries,
    Get "/ops/economy/items" => items,
    Get "/ops/economy/items/:id" => item,
    Get "/ops/economy/listings" => listings,
    Get "/ops/economy/listings/:id" => listing,
    Get "/ops/shards" => shards,
    Get "/ops/reloads" => reloads,
}

pub(super) fn gate(shard: &Shard, head: &Head, need: Cap) -> Result<Actor, ApiError> {
    auth::authorize(&shard.ctx.ops, head, need)
}

pub(super) fn data(v: Value) -> RestResult {
    ok(&json!({ "data": v }))
}

pub(super) fn bad(code: &'static str, message: &str) -> ApiError {
    ApiError::new(400, code, message.to_owned())
}

pub(super) fn not_found() -> ApiError {
    ApiError::new(404, code::OPS_NOT_FOUND, "No record exists with this id.")
}

/// A player id must be a UUID (asobi: `ops.invalid_id` before any database read).
pub(super) fn player_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(|_| raw.to_owned())
        .map_err(|_| bad(code::OPS_INVALID_ID, "The id is not a uuid."))
}

/// Other ids: printable, at most 128 bytes.
pub(super) fn plain_id(raw: &str) -> Result<String, ApiError> {
    let id = asobi_net::http::percent_decode(raw);
    if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
        return Err(bad(code::OPS_INVALID_ID, "The id is missing or too long."));
    }
    Ok(id)
}

/// asobi's shared list parameters: `limit` 1–200 (default 50), `page` (1-based, at most 10000)
/// wins over `offset` (0–100000, snapped down to a multiple of `limit`), `sort` from the
/// list's own fields, `order` asc/desc, `q` dropped when empty or over 128 bytes.
pub(crate) struct Paging {
    pub(crate) limit: u32,
    pub(crate) offset: u32,
    pub(crate) sort: String,
    pub(crate) order: Order,
    pub(crate) q: Option<String>,
}

pub(crate) fn paging(
    head: &Head,
    sorts: &[&str],
    default_sort: &str,
    default_order: Order,
) -> Result<Paging, ApiError> {
    let num = |k: &str| {
        head.query_param(k)
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let limit = num("limit").map_or(50, |l| l.clamp(1, 200)) as u32;
    let offset = match num("page").filter(|p| *p >= 1) {
        Some(page) => (page.min(10_000) - 1) * u64::from(limit),
        None => num("offset").unwrap_or(0).min(100_000) / u64::from(limit) * u64::from(limit),
    }
    .min(100_000) as u32;
    let sort = match head.query_param("sort").filter(|s| !s.is_empty()) {
        Some(s) if sorts.contains(&s.as_str()) => s,
        Some(s) => {
            return Err(bad(
                code::OPS_UNKNOWN_SORT_FIELD,
                "That is not a field this endpoint sorts on.",
            )
            .with_details(
                json!({ "sort": s.chars().take(64).collect::<String>(), "allowed": sorts }),
            ))
        }
        None => default_sort.to_owned(),
    };
    let order = match head.query_param("order").map(|o| o.to_ascii_lowercase()) {
        None => default_order,
        Some(o) if o == "asc" => Order::Asc,
        Some(o) if o == "desc" => Order::Desc,
        Some(_) => {
            return Err(bad(
                code::OPS_UNKNOWN_SORT_ORDER,
                "`order` must be \"asc\" or \"desc\".",
            ))
        }
    };
    let q = head
        .query_param("q")
        .filter(|q| !q.trim().is_empty() && q.len() <= 128);
    Ok(Paging {
        limit,
        offset,
        sort,
        order,
        q,
    })
}

pub(super) fn page_body(rows: Vec<Value>, p: &Paging, total: u64) -> RestResult {
    ok(&json!({
        "data": rows,
        "page": { "limit": p.limit, "offset": p.offset, "total": total },
    }))
}

/// Sorts and pages rows held in memory the way the database lists do.
pub(super) fn page_in_memory(mut rows: Vec<Value>, p: &Paging) -> RestResult {
    if let Some(q) = &p.q {
        let q = q.to_lowercase();
        rows.retain(|r| r.to_string().to_lowercase().contains(&q));
    }
    rows.sort_by(|a, b| {
        let ord = cmp_json(&a[&p.sort], &b[&p.sort]);
        match p.order {
            Order::Asc => ord,
            Order::Desc => ord.reverse(),
        }
    });
    let total = rows.len() as u64;
    let page: Vec<Value> = rows
        .into_iter()
        .skip(p.offset as usize)
        .take(p.limit as usize)
        .collect();
    page_body(page, p, total)
}

fn cmp_json(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// asobi's ops projection of a player: no credentials, no guest column.
fn player_row(p: &Player, banned: bool) -> Value {
    json!({
        "id": p.id,
        "username": p.username,
        "display_name": p.display_name,
        "avatar_url": p.avatar_url,
        "metadata": p.metadata,
        "inserted_at": p.created_at,
        "updated_at": p.updated_at,
        "banned": banned,
    })
}

fn match_row(r: &asobi_storage::MatchRecord) -> Value {
    json!({
        "id": r.id,
        "mode": r.mode,
        "status": r.status,
        "result": r.result,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
    })
}

/// Writes an audit row after the fact; a failed write is logged with the same fields and never
/// fails the operation it describes (asobi's rule for everything but erasure).
pub(super) async fn audit(
    shard: &Shard,
    actor: &Actor,
    action: &str,
    target: Option<&str>,
    outcome: &str,
    details: Value,
) {
    tracing::info!(event = "ops_action", actor = %actor.display, source = actor.source, action, target = target.unwrap_or(""), outcome, "operator action");
    if let Err(e) = shard
        .ctx
        .store
        .append_audit(&actor.display, action, target, outcome, details.clone())
        .await
    {
        tracing::error!(event = "ops_audit_failed", actor = %actor.display, action, target = target.unwrap_or(""), outcome, %details, "audit row not written: {e}");
    }
}

handler!(stats, |shard, req| {
    gate(shard, req.head, Cap::Read)?;
    let ctx = &shard.ctx;
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    let sessions: usize = ctx
        .registry
        .shards()
        .iter()
        .map(|s| s.sessions.load(relaxed))
        .sum();
    let connections: usize = ctx
        .registry
        .shards()
        .iter()
        .map(|s| s.connections.load(relaxed))
        .sum();
    data(json!({
        "node": hostname(),
        "online_players": sessions,
        "connections": connections,
        "live_matches": ctx.matches.len(),
        "scheduler_count": shard.rt.nshards(),
        "uptime_ms": ctx.ops.uptime().as_millis() as u64,
        "version": env!("CARGO_PKG_VERSION"),
        "draining": shard.ops.draining.get(),
        "label": ctx.ops.config.label,
        "production": ctx.ops.config.production,
    }))
});

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "asobi".to_owned())
}

handler!(features, |shard, req| {
    gate(shard, req.head, Cap::Read)?;
    let s = &shard.ctx.settings;
    let cap = |name: &str, enabled: bool| json!({ "name": name, "enabled": enabled });
    data(json!({
        "core": {
            "name": "asobi-rs",
            "version": env!("CARGO_PKG_VERSION"),
            "capabilities": [
                cap("guest_auth", s.guest_pepper.is_some()),
                cap("lua", true),
                cap("console", shard.ctx.ops.config.console),
                cap("economy", true),
                cap("leaderboards", true),
                cap("matchmaker", true),
            ],
        },
        "extensions": [],
    }))
});

const PLAYER_SORTS: &[&str] = &[
    "id",
    "username",
    "display_name",
    "inserted_at",
    "updated_at",
];

handler!(players, |shard, req| {
    gate(shard, req.head, Cap::Read)?;
    let p = paging(req.head, PLAYER_SORTS, "inserted_at", Order::Desc)?;
    let guest = match req.head.query_param("guest").as_deref() {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => None,
    };
    let q = PlayerListQuery {
        page: OpsPage {
            limit: p.limit,
            offset: p.offset,
            sort: p.sort.clone(),
            order: p.order,
            q: p.q.clone(),
        },
        guest,
    };
    let (rows, total) = shard.ctx.store.ops_players(q).await.map_err(store_error)?;
    let ops = &shard.ctx.ops;
    let rows = rows
        .iter()
        .map(|r| player_row(r, ops.is_banned(&r.id)))
        .collect();
    page_body(rows, &p, total)
});

pub(super) async fn live_player(shard: &Shard, id: &str) -> Result<Player, ApiError> {
    match shard.ctx.store.player(id).await.map_err(store_error)? {
        Some(p) if p.erased_at.is_none() => Ok(p),
        _ => Err(not_found()),
    }
}

handler!(player, |shard, req| {
    gate(shard, req.head, Cap::Read)?;
    let id = player_id(req.param(0))?;
    let p = live_player(shard, &id).await?;
    let mut row = player_row(&p, shard.ctx.ops.is_banned(&id));
    row["online"] = json!(shard.ctx.registry.session_of(&id).is_some());
    row["wallets"] = serde_json::to_value(shard.ctx.store.wallets(&id).await.map_err(store_error)?)
        .unwrap_or(Value::Null);
    data(row)
});

handler!(export, |shard, req| {
    gate(shard, req.head, Cap::PlayerData)?;
    let id = player_id(req.param(0))?;
    let store = &shard.ctx.store;
    let p = live_player(shard, &id).await?;
    let wallets = store.wallets(&id).await.map_err(store_error)?;
    let mut ledger = Vec::new();
    for w in &wallets {
        let rows = store
            .wallet_history(&id, &w.currency, asobi_storage::MAX_ECONOMY_LIST)
            .await
            .map_err(store_error)?;
        ledger.extend(rows);
    }
    let items = store
        .inventory(&id, asobi_storage::MAX_ECONOMY_LIST)
        .await
        .map_err(store_error)?;
    let matches = store
        .list_match_records(asobi_storage::MatchQuery {
            player_id: Some(id.clone()),
            limit: asobi_storage::MAX_MATCH_LIST,
            ..Default::default()
        })
        .await
        .map_err(store_error)?;
    let audit = store.audit_for(&id, 200).await.map_err(store_error)?;
    data(json!({
        "player": player_row(&p, shard.ctx.ops.is_banned(&id)),
        "is_guest": p.is_guest,
        "wallets": wallets,
        "transactions": ledger,
        "player_items": items,
        "match_records": matches.iter().map(match_row).collect::<Vec<_>>(),
        "ops_audit_entries": audit,
        "extensions": {},
    }))
});

#[derive(Deserialize)]
struct EraseBody {
    username: Option<String>,
}

handler!(erase, |shard, req| {
    let actor = gate(shard, req.head, Cap::Erasure)?;
    let id = player_id(req.param(0))?;
    let body: EraseBody = req.json()?;
    let p = live_player(shard, &id).await?;
    let Some(echo) = body.username.filter(|u| !u.is_empty()) else {
        return Err(bad(
            code::OPS_CONFIRMATION_REQUIRED,
            "Echo the player's username to confirm.",
        ));
    };
    if echo != p.username {
        return Err(bad(
            code::OPS_CONFIRMATION_MISMATCH,
            "The username does not match this player.",
        ));
    }
    crate::services::accounts::lifecycle::operator_erase(shard, &id, &actor.display).await?;
    audit(shard, &actor, "player.erase", Some(&id), "ok", json!({})).await;
    data(json!({ "player_id": id, "erased": true }))
});

#[derive(Deserialize)]
struct PurgeBody {
    inactive_for_seconds: Option<i64>,
    dry_run: Option<bool>,
    confirm_count: Option<u64>,
    limit: Option<u32>,
}

handler!(purge_guests, |shard, req| {
    let actor = gate(shard, req.head, Cap::Erasure)?;
    let body: PurgeBody = req.json()?;
    let Some(secs) = body.inactive_for_seconds.filter(|s| *s >= 0) else {
        return Err(bad(
            code::OPS_INVALID_CUTOFF,
            "`inactive_for_seconds` is required and must not be negative.",
        ));
    };
    let dry_run = body.dry_run.unwrap_or(false);
    if !dry_run && body.confirm_count.is_none() {
        return Err(bad(
            code::OPS_CONFIRMATION_REQUIRED,
            "Run a dry run and echo its count as `confirm_count`.",
        ));
    }
    let cutoff = super::now_ms().saturating_sub(secs.saturating_mul(1000));
    let limit = body.limit.unwrap_or(500).clamp(1, 5000);
    let store = &shard.ctx.store;
    let (matched, ids) = store
        .unclaimed_guests(cutoff, limit)
        .await
        .map_err(store_error)?;
    if dry_run {
        return data(
            json!({ "matched": matched, "deleted": 0, "skipped": 0, "failed": 0, "remaining": matched, "dry_run": true }),
        );
    }
    if body.confirm_count != Some(matched) {
        return Err(ApiError::new(
            409,
            code::OPS_PURGE_COUNT_MISMATCH,
            "The cohort changed since it was counted; count it again.",
        )
        .with_details(json!({ "matched": matched })));
    }
    let (mut deleted, mut failed) = (0u64, 0u64);
    let mut erased = Vec::new();
    for id in ids {
        match store.erase_player(&id).await {
            Ok(()) => {
                deleted += 1;
                disconnect(shard, &id, "account_erased");
                erased.push(id);
            }
            Err(e) => {
                failed += 1;
                tracing::warn!(player_id = %id, "guest purge could not erase: {e}");
            }
        }
    }
    let outcome = if failed == 0 {
        "ok"
    } else if deleted == 0 {
        "error"
    } else {
        "partial"
    };
    audit(
        shard,
        &actor,
        "guests.purge",
        None,
        outcome,
        json!({ "erased": erased, "failed": failed }),
    )
    .await;
    data(
        json!({ "matched": matched, "deleted": deleted, "skipped": 0, "failed": failed,
                 "remaining": matched.saturating_sub(deleted), "dry_run": false }),
    )
});

/// Closes the player's newest session with `reason` (a no-op when offline). True when one was
/// connected.
fn disconnect(shard: &Shard, player: &str, reason: &str) -> bool {
    match shard.ctx.registry.session_of(player) {
        Some(at) => {
            // 4000-range codes are the application's; 1008 would make asobi-js treat the close
            // as an auth failure, which is what a ban wants and a kick does not.
            let code = if reason == "banned" { 1008 } else { 4000 };
            shard.rt.deliver(
                at,
                Outbound::Close {
                    code,
                    reason: reason.to_owned(),
                },
            );
            bump(&shard.ops.metrics.kicks);
            true
        }
        None => false,
    }
}

#[derive(Deserialize)]
struct ReasonBody {
    reason: Option<String>,
}

fn reason_of(body: ReasonBody, default: &str) -> Result<String, ApiError> {
    let r = body.reason.unwrap_or_else(|| default.to_owned());
    if r.is_empty() || r.len() > 256 {
        return Err(ApiError::new(
            400,
            code::INVALID_FIELD,
            "`reason` must be 1–256 characters.",
        )
        .with_details(json!({ "field": "reason" })));
    }
    Ok(r)
}

handler!(kick, |shard, req| {
    let actor = gate(shard, req.head, Cap::Config)?;
    let id = player_id(req.param(0))?;
    let reason = reason_of(req.json()?, "kicked")?;
    let was_online = disconnect(shard, &id, "kicked");
    audit(
        shard,
        &actor,
        "player.kick",
        Some(&id),
        "ok",
        json!({ "reason": reason, "was_online": was_online }),
    )
    .await;
    data(json!({ "player_id": id, "kicked": was_online }))
});

handler!(ban, |shard, req| {
    let actor = gate(shard, req.head, Cap::Config)?;
    let id = player_id(req.param(0))?;
    let reason = reason_of(req.json()?, "banned by an operator")?;
    live_player(shard, &id).await?;
    // The ban itself: stored with the player, and every token and socket of theirs ends on
    // every shard (close reason `banned`); login and refresh refuse them until the unban.
    crate::services::accounts::lifecycle::set_ban(shard, &id, true, &actor.display).await?;
    // The operator's record of it (reason, who), for the ops views.
    shard
        .ctx
        .store
        .ban_player(asobi_storage::Ban {
            player_id: id.clone(),
            reason: reason.clone(),
            banned_by: actor.display.clone(),
            banned_at: super::now_ms(),
        })
        .await
        .map_err(store_error)?;
    super::lock(&shard.ctx.ops.bans).insert(id.clone());
    audit(
        shard,
        &actor,
        "player.ban",
        Some(&id),
        "ok",
        json!({ "reason": reason }),
    )
    .await;
    data(json!({ "player_id": id, "banned": true }))
});

handler!(unban, |shard, req| {
    let actor = gate(shard, req.head, Cap::Config)?;
    let id = player_id(req.param(0))?;
    crate::services::accounts::lifecycle::set_ban(shard, &id, false, &actor.display).await?;
    let was = shard
        .ctx
        .store
        .unban_player(&id)
        .await
        .map_err(store_error)?;
    super::lock(&shard.ctx.ops.bans).remove(&id);
    audit(
        shard,
        &actor,
        "player.unban",
        Some(&id),
        "ok",
        json!({ "was_banned": was }),
    )
    .await;
    data(json!({ "player_id": id, "banned": false }))
});

handler!(create_tournament, |shard, req| {
    let actor = gate(shard, req.head, Cap::Config)?;
    let body: Value = req.json()?;
    let result = crate::services::tournaments::create(shard, body).await;
    let (outcome, details) = match &result {
        Ok(t) => ("ok", json!({ "id": t["id"] })),
        Err(e) => ("refused", json!({ "code": e.code })),
    };
    let target = result
        .as_ref()
        .ok()
        .and_then(|t| t["id"].as_str().map(str::to_owned));
    audit(
        shard,
        &actor,
        "tournament.create",
        target.as_deref(),
        outcome,
        details,
    )
    .await;
    data(result?)
});

#[derive(Deserialize)]
struct GrantBody {
    currency: String,
    amount: Value,
    reason: Option<String>,
    idempotency_key: Option<String>,
}

handler!(grant, |shard, req| {
    let actor = gate(shard, req.head, Cap::Config)?;
    let id = player_id(req.param(0))?;
    let body: GrantBody = req.json()?;
    live_player(shard, &id).await?;
    let amount = crate::services::economy::whole(&body.amount)
        .ok_or_else(|| ApiError::from(crate::services::economy::error::Error::InvalidAmount))?;
    // The ledger row names the operator, so every operator grant is traceable from the wallet.
    let note = body.reason.unwrap_or_else(|| "grant".to_owned());
    let reason: String = format!("ops:{}:{}", actor.display, note)
        .chars()
        .take(crate::services::economy::MAX_TEXT)
        .collect();
    let done = crate::services::economy::grant(
        shard,
        crate::services::economy::Change {
            player: id.clone(),
            currency: body.currency.clone(),
            amount,
            reason: Some(reason.clone()),
            key: body.idempotency_key,
        },
    )
    .await
    .map_err(ApiError::from)?;
    audit(
        shard,
        &actor,
        "wallet.grant",
        Some(&id),
        "ok",
        json!({ "currency": body.currency, "amount": amount, "reason": reason }),
    )
    .await;
    data(serde_json::to_value(&done.value).unwrap_or(Value::Null))
});

const MATCH_SORTS: &[&str] = &[
    "id",
    "mode",
    "status",
    "started_at",
    "finished_at",
    "inserted_at",
];

handler!(matches, |shard, req| {
    gate(shard, req.head, Cap::Read)?;
    let p = paging(req.head, MATCH_SORTS, "finished_at", Order::Desc)?;
    let text = |k: &str| {
        req.head
            .query_param(k)
            .filter(|v| !v.is_empty() && v.len() <= 64)
    };
    let q = MatchListQuery {
        page: OpsPage {
            limit: p.limit,
            offset: p.offset,
            sort: p.sort.clone(),
            order: p.order,
            q: p.q.clone(),
        },
        mode: text("mode"),
        status: text("status"),
    };
    let (rows, total) = shard.ctx.store.ops_matches(q).await.map_err(store_error)?;
    page_body(rows.iter().map(match_row).collect(), &p, total)
});

handler!(live_matches, |shard, req| {
    gate(shard, req.head, Cap::Read)?;
    let p = paging(
        req.head,
        &["match_id", "mode", "player_count", "started_at", "shard"],
        "started_at",
        Order::Desc,
    )?;
    let rows: Vec<Value> = shard
        .ctx
        .matches
        .all()
        .into_iter()
        .map(|(_, e)| {
            json!({
                "match_id": e.info.match_id,
                "mode": e.info.mode,
                "status": e.info.status,
                "player_count": e.info.player_count,
                "max_players": e.info.max_players,
                "joinable": e.info.joinable,
                "players": e.players,
                "shard": e.shard,
                "started_at": e.started_at,
            })
        })
        .collect();
    page_in_memory(rows, &p)
});

handler!(match_record, |shard, req| {
    gate(shard, req.head, Cap::Read)?;
    let id = plain_id(req.param(0))?;
    match shard
        .ctx
        .store
        .match_record(&id)
        .await
        .map_err(store_error)?
    {
        Some(r) => data(match_row(&r)),
        None => Err(not_found()),
    }
});

handler!(end_match, |shard, req| {
    let actor = gate(shard, req.head, Cap::Config)?;
    let id = plain_id(req.param(0))?;
    let Some(entry) = shard.ctx.matches.get(&id) else {
        return Err(ApiError::new(
            404,
            code::OPS_NOT_FOUND,
            "No live match has this id.",
        ));
    };
    let answer = crate::shard::request(shard, entry.shard, |reply| {
        crate::services::Cmd::Ops(super::cmd::Cmd::EndMatch {
            match_id: id.clone(),
            reply,
        })
    })
    .await?;
    audit(shard, &actor, "match.end", Some(&id), "ok", json!({})).await;
    data(answer)
});

handler!(matchmaker, |shard, req| {
    gate(shard, req.head, Cap::Read)?;
    let p = paging(
        req.head,
        &["mode", "waiting", "oldest_wait_ms"],
        "waiting",
        Order::Desc,
    )?;
    let snaps = super::all_snapshots(shard).await;
    let mut rows: Vec<Value> = Vec::new();
    for s in &snaps {
        for (mode, waiting, oldest) in &s.gauges.queues {
            rows.push(json!({ "mode": mode, "waiting": waiting, "oldest_wait_ms": oldest, "shard": s.shard }));
        }
    }
    let waiting: u64 = snaps
        .iter()
        .flat_map(|s| s.gauges.queues.iter().map(|q| q.1))
        .sum();
    let modes = rows.len();
    let mut body: Value =
        serde_json::from_slice(&page_in_memory(rows, &p)?.body).unwrap_or(Value::Null);
    body["queue"] =
        json!({ "waiting": waiting, "modes": modes, "sampled_at": super::now_ms(), "age_ms": 0 });
    ok(&body)
});

handler!(leaderboards, |shard, req| {
    gate(shard, req.head, Cap::Read)?;
    let p = paging(
        req.head,
        &["board_id", "entries", "top_score", "updated_at"],
        "entries",
        Order::Desc,
    )?;
    let boards = shard
        .ctx
        .store
        .board_summaries()
        .await
        .map_err(store_error)?;
    let rows = boards
        .into_iter()
        .map(|b| serde_json::to_value(b).unwrap_or(Value::Null))
        .collect();
    page_in_memory(rows, &p)
});

handler!(leaderboard_entries, |shard, req| {
    gate(shard, req.head, Cap::Read)?;
    let board = plain_id(req.param(0))?;
    let p = paging(
        req.head,
        &["rank", "player_id", "score", "sub_score"],
        "rank",
        Order::Asc,
    )?;
    // The owner's ranking, the one the public endpoint serves (ranks are the board's, not the
    // page's).
    let top = crate::services::leaderboards::top(shard, &board, 1000).await?;
    let rows = top["entries"].as_array().cloned().unwrap_or_default();
    page_in_memory(rows, &p)
});

fn catalog_rows<T: serde::Serialize>(list: &[T]) -> Vec<Value> {
    list.iter()
        .map(|x| serde_json::to_value(x).unwrap_or(Value::Null))
        .collect()
}

handler!(items, |shard, req| {
    gate(shard, req.head, Cap::Read)?;
    let p = paging(
        req.head,
        &["id", "slug", "name", "category", "rarity"],
        "id",
        Order::Asc,
    )?;
    page_in_memory(catalog_rows(&shard.economy.catalog.items), &p)
});

handler!(item, |shard, req| {
    gate(shard, req.head, Cap::Read)?;
    let id = plain_id(req.param(0))?;
    let item = shard.economy.catalog.item(&id).ok_or_else(not_found)?;
    data(serde_json::to_value(item).unwrap_or(Value::Null))
});

handler!(listings, |shard, req| {
    gate(shard, req.head, Cap::Read)?;
    let p = paging(
        req.head,
        &["id", "item_def_id", "currency", "price", "active"],
        "id",
        Order::Desc,
    )?;
    page_in_memory(catalog_rows(&shard.economy.catalog.listings), &p)
});

handler!(listing, |shard, req| {
    gate(shard, req.head, Cap::Read)?;
    let id = plain_id(req.param(0))?;
    let l = shard.economy.catalog.listing(&id).ok_or_else(not_found)?;
    data(serde_json::to_value(l).unwrap_or(Value::Null))
});

handler!(shards, |shard, req| {
    gate(shard, req.head, Cap::Read)?;
    let snaps = super::all_snapshots(shard).await;
    let alive: Vec<bool> = shard
        .ctx
        .registry
        .shards()
        .iter()
        .map(|s| s.alive.load(std::sync::atomic::Ordering::Relaxed))
        .collect();
    let rows: Vec<Value> = snaps
        .iter()
        .map(|s| {
            let mut counters = serde_json::Map::new();
            for (k, v) in &s.counters {
                counters.insert(k.clone(), json!(v));
            }
            json!({
                "shard": s.shard,
                "alive": alive.get(s.shard).copied().unwrap_or(false),
                "gauges": s.gauges,
                "counters": counters,
            })
        })
        .collect();
    data(json!(rows))
});

handler!(reloads, |shard, req| {
    gate(shard, req.head, Cap::Read)?;
    let recent: Vec<super::ReloadNote> = super::lock(&shard.ctx.ops.reloads)
        .iter()
        .rev()
        .cloned()
        .collect();
    data(json!(recent))
});

/// Paths outside `/api/v1`: `/metrics` and the console. Anything else is asobi's 404.
pub(crate) async fn root(shard: &Rc<Shard>, head: &Head, body: Bytes) -> RestResult {
    let path = head.path.split('?').next().unwrap_or("");
    if path == "/metrics" && matches!(head.method, Method::Get | Method::Head) {
        let snaps = super::all_snapshots(shard).await;
        let text = super::metrics::render(snaps, shard.ops.draining.get());
        return Ok(Response {
            status: 200,
            headers: vec![(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8".into(),
            )],
            body: Bytes::from(text),
        });
    }
    if path == "/console" || path.starts_with("/console/") {
        return super::console::handle(shard, head, body).await;
    }
    Err(ApiError::new(404, code::NOT_FOUND, "No such endpoint."))
}
