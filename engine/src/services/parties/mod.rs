//! Parties: a few players who queue together. Party P lives on `owner(P)`, which holds its
//! [`Party`] state machine (roster, invites, grace, ticket); members may be connected to any
//! shard, and every push reaches them through the registry's session index, as notifications
//! do. A process-wide [`Directory`] holds only the index player → party, so a party chat
//! check, a reconnect or a second `party.create` needs no mesh hop.
//!
//! Queueing: the leader's `party.queue` asks the party's owner for the roster, queues the
//! whole party as one ticket on `owner(mode)`, then records the ticket on the party; if the
//! roster changed in between, the ticket is cancelled at once. Any later roster change cancels
//! it too (the rules say when). When the ticket forms or expires the matchmaker reports it back
//! ([`cmd::Cmd::Unqueued`]) and members get `party.matched` / a fresh `party.updated`.
//!
//! Nothing is persisted: a party is a live grouping, gone with the process, as in Nakama.

pub(crate) mod cmd;
pub(crate) mod directory;
pub(crate) mod rest;
pub(crate) mod ws;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use asobi_rules::parties::{
    Change, LeaveReason, Party, PartyError, Privacy, Ticket, DEFAULT_PARTY_SIZE, MAX_PARTY_SIZE,
};
use asobi_schema::envelope::encode_frame;
use asobi_schema::error::code;
use asobi_schema::ApiError;

use super::{Cmd as ShardCmd, Shard, Timer as ShardTimer};
use crate::shard::mesh::Outbound;
use crate::shard::{request, route};
use crate::wire::Frame;

pub(crate) use directory::Directory;

/// How often parties are swept for lapsed grace windows and invites. Grace is measured in
/// seconds, so a second's lateness in dropping a seat changes nothing a player sees.
const SWEEP: Duration = Duration::from_secs(1);
/// Grace for a dropped member when the server sets none: long enough for a phone to switch
/// networks or an app to restart.
const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// Parties one shard may own. A player is in at most one party, so this only bites on a
/// node with more than this many players per shard in parties; past it `party.create` answers
/// `overloaded` instead of growing memory.
const MAX_PARTIES_PER_SHARD: usize = 200_000;
/// Longest party id accepted: ours are UUIDs; anything longer is not one and is not echoed.
const MAX_PARTY_ID: usize = 64;
/// Longest player id a request may name.
const MAX_PLAYER_ID: usize = 128;

/// The parties' timers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timer {
    Sweep,
}

/// The parties this shard owns.
#[derive(Default)]
pub(crate) struct Parties {
    parties: RefCell<HashMap<String, Party>>,
}

impl Parties {
    pub(crate) fn len(&self) -> usize {
        self.parties.borrow().len()
    }
}

/// The shard owning a party.
pub(crate) fn owner(shard: &Shard, party_id: &str) -> usize {
    asobi_rules::placement::owner(party_id, shard.rt.nshards())
}

fn grace(shard: &Shard) -> Duration {
    match shard.ctx.settings.reconnect_grace_ms {
        0 => DEFAULT_GRACE,
        ms => Duration::from_millis(ms),
    }
}

/// Arms the first sweep.
pub(crate) fn start(shard: &Rc<Shard>) {
    shard
        .rt
        .arm(shard.rt.now() + SWEEP, ShardTimer::Parties(Timer::Sweep));
}

pub(crate) fn rules_error(e: PartyError) -> ApiError {
    let message = e.to_string();
    ApiError::new(e.http_status(), e.code(), message)
}

pub(crate) fn not_found() -> ApiError {
    ApiError::new(404, code::PARTY_NOT_FOUND, "No such party.")
}

fn check_id(what: &'static str, id: &str, max: usize) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > max {
        return Err(ApiError::new(
            400,
            code::INVALID_FIELD,
            format!("`{what}` is missing or too long."),
        )
        .with_details(json!({ "field": what })));
    }
    Ok(())
}

/// What one operation asks of the party's owner.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    View,
    Invite(String),
    Accept,
    Decline,
    Join,
    Leave,
    Kick(String),
    Promote(String),
    Close,
    /// Leader: may the party queue? Answers the roster to queue.
    PrepareQueue,
    /// Leader: the party is queued with this ticket for exactly this roster.
    Queued {
        ticket: Ticket,
        roster: Vec<String>,
    },
    Cancel,
}

// ---- the caller's side (REST and WS call these) ----

#[derive(Debug, Deserialize)]
pub(crate) struct CreateBody {
    #[serde(default)]
    pub(crate) privacy: Option<String>,
    #[serde(default)]
    pub(crate) max_size: Option<u64>,
}

/// Creates a party led by `player`. A player leads or sits in one party at a time.
pub(crate) async fn create(
    shard: &Rc<Shard>,
    player: &str,
    body: CreateBody,
) -> Result<Value, ApiError> {
    let privacy = match body.privacy.as_deref() {
        None | Some("open") => Privacy::Open,
        Some("invite_only") => Privacy::InviteOnly,
        Some(_) => {
            return Err(ApiError::new(
                400,
                code::INVALID_FIELD,
                "`privacy` must be \"open\" or \"invite_only\".",
            )
            .with_details(json!({ "field": "privacy" })))
        }
    };
    let max_size = match body.max_size {
        None => DEFAULT_PARTY_SIZE,
        Some(n) if (1..=MAX_PARTY_SIZE as u64).contains(&n) => n as usize,
        Some(_) => {
            return Err(ApiError::new(
                400,
                code::INVALID_FIELD,
                format!("`max_size` must be 1 to {MAX_PARTY_SIZE}."),
            )
            .with_details(json!({ "field": "max_size" })))
        }
    };
    if shard.ctx.parties.party_of(player).is_some() {
        return Err(rules_error(PartyError::AlreadyMember));
    }
    let party_id = uuid::Uuid::now_v7().to_string();
    request(shard, owner(shard, &party_id), |reply| {
        ShardCmd::Parties(cmd::Cmd::Create {
            party_id: party_id.clone(),
            player: player.to_owned(),
            privacy,
            max_size,
            reply,
        })
    })
    .await
}

/// Runs `op` for `player` on the party's owner and answers the party view (or
/// `{"success": true}` where the caller is no longer a member).
pub(crate) async fn op(
    shard: &Rc<Shard>,
    party_id: &str,
    player: &str,
    op: Op,
) -> Result<Value, ApiError> {
    check_id("party_id", party_id, MAX_PARTY_ID)?;
    if let Op::Invite(p) | Op::Kick(p) | Op::Promote(p) = &op {
        check_id("player_id", p, MAX_PLAYER_ID)?;
    }
    request(shard, owner(shard, party_id), |reply| {
        ShardCmd::Parties(cmd::Cmd::Op {
            party_id: party_id.to_owned(),
            player: player.to_owned(),
            op,
            reply,
        })
    })
    .await
}

/// The leader queues the party for `mode` as one ticket.
pub(crate) async fn queue(
    shard: &Rc<Shard>,
    party_id: &str,
    player: &str,
    mode: &str,
    properties: Value,
) -> Result<Value, ApiError> {
    super::matchmaker::check_mode(shard, mode)?;
    let roster = op(shard, party_id, player, Op::PrepareQueue).await?;
    let members: Vec<String> = roster["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let rated = ratings(&members, &properties);
    let queued =
        super::matchmaker::add_party(shard, mode, player, party_id, rated, properties).await?;
    let ticket_id = queued["ticket_id"].as_str().unwrap_or_default().to_owned();
    let ticket = Ticket {
        mode: mode.to_owned(),
        ticket_id,
    };
    op(
        shard,
        party_id,
        player,
        Op::Queued {
            ticket,
            roster: members,
        },
    )
    .await?;
    Ok(queued)
}

/// Each member's rating: `properties.skills[player]` if a number, else `properties.skill`,
/// else the matchmaker's default.
fn ratings(members: &[String], properties: &Value) -> Vec<(String, f64)> {
    let fallback = asobi_rules::matchmaker::ticket_skill(properties);
    let skills = properties.get("skills").and_then(Value::as_object);
    members
        .iter()
        .map(|m| {
            let r = skills
                .and_then(|s| s.get(m))
                .and_then(Value::as_f64)
                .unwrap_or(fallback);
            (m.clone(), r)
        })
        .collect()
}

// ---- the owning shard's side ----

/// The full view every member gets: roster with presence, leader, invites, queue.
fn view(shard: &Shard, p: &Party) -> Value {
    let now = shard.rt.now();
    let members: Vec<Value> = p
        .members()
        .iter()
        .map(|m| {
            json!({
                "player_id": m.player_id,
                "leader": m.player_id == p.leader(),
                "online": m.online(),
            })
        })
        .collect();
    json!({
        "party_id": p.id(),
        "leader": p.leader(),
        "privacy": p.privacy().as_str(),
        "max_size": p.max_size(),
        "members": members,
        "invites": p.invitees(now),
        "queue": p.ticket().map(|t| json!({ "mode": t.mode, "ticket_id": t.ticket_id })),
    })
}

fn push(shard: &Shard, player: &str, kind: &str, payload: &Value) {
    if let (Some(at), Some(f)) = (
        shard.ctx.registry.session_of(player),
        Frame::text(encode_frame(kind, None, payload)),
    ) {
        shard.rt.deliver(at, Outbound::Frame(f));
    }
}

fn push_all(shard: &Shard, p: &Party, kind: &str, payload: &Value) {
    for m in p.members() {
        push(shard, &m.player_id, kind, payload);
    }
}

/// Acts on what the rules said: cancel a ticket, release seats in the directory, push.
fn apply(shard: &Rc<Shard>, party_id: &str, change: Change) {
    let parties = shard.parties.parties.borrow();
    let p = parties.get(party_id);
    if let Some(t) = &change.cancel_ticket {
        // Any member still on the ticket cancels it whole; the removed member still is.
        let on_ticket = change
            .removed
            .first()
            .map(|(who, _)| who.clone())
            .or_else(|| p.map(|p| p.leader().to_owned()));
        if let Some(who) = on_ticket {
            super::matchmaker::remove_player(shard, &t.mode, &who);
        }
    }
    for (who, why) in &change.removed {
        shard.ctx.parties.release(who, party_id);
        let reason = match why {
            LeaveReason::Left => "left",
            LeaveReason::Kicked => "kicked",
            LeaveReason::TimedOut => "timed_out",
        };
        if change.closed {
            push(shard, who, "party.closed", &json!({ "party_id": party_id }));
        } else {
            push(
                shard,
                who,
                "party.removed",
                &json!({ "party_id": party_id, "reason": reason }),
            );
        }
    }
    if change.closed {
        drop(parties);
        shard.parties.parties.borrow_mut().remove(party_id);
        return;
    }
    if change.updated {
        if let Some(p) = p {
            push_all(shard, p, "party.updated", &view(shard, p));
        }
    }
}

pub(crate) fn on_create(
    shard: &Rc<Shard>,
    party_id: String,
    player: String,
    privacy: Privacy,
    max_size: usize,
) -> Result<Value, ApiError> {
    if shard.parties.len() >= MAX_PARTIES_PER_SHARD {
        return Err(crate::shard::overloaded());
    }
    if !shard.ctx.parties.claim(&player, &party_id) {
        return Err(rules_error(PartyError::AlreadyMember));
    }
    let p = Party::new(party_id.clone(), player, privacy, max_size, grace(shard));
    let v = view(shard, &p);
    shard.parties.parties.borrow_mut().insert(party_id, p);
    Ok(v)
}

pub(crate) fn on_op(
    shard: &Rc<Shard>,
    party_id: &str,
    player: &str,
    op: Op,
) -> Result<Value, ApiError> {
    let now = shard.rt.now();
    let mut parties = shard.parties.parties.borrow_mut();
    let p = parties.get_mut(party_id).ok_or_else(not_found)?;
    let visible = p.is_member(player) || p.invited(now, player);
    let (change, answer) = match op {
        Op::View => {
            if !visible {
                return Err(rules_error(PartyError::NotMember));
            }
            return Ok(view(shard, p));
        }
        Op::Invite(who) => {
            let change = p.invite(now, player, &who).map_err(rules_error)?;
            let v = view(shard, p);
            push(
                shard,
                &who,
                "party.invited",
                &json!({ "party_id": party_id, "from": player, "party": v }),
            );
            (change, None)
        }
        Op::Accept => {
            if p.is_member(player) {
                return Err(rules_error(PartyError::AlreadyMember));
            }
            if !p.invited(now, player) {
                return Err(rules_error(PartyError::NoInvite));
            }
            (join(shard, p, party_id, player)?, None)
        }
        Op::Join => (join(shard, p, party_id, player)?, None),
        Op::Decline => {
            let change = p.decline(now, player).map_err(rules_error)?;
            (change, Some(json!({ "success": true })))
        }
        Op::Leave => {
            let change = p.leave(now, player).map_err(rules_error)?;
            (change, Some(json!({ "success": true })))
        }
        Op::Kick(who) => (p.kick(now, player, &who).map_err(rules_error)?, None),
        Op::Promote(who) => (p.promote(now, player, &who).map_err(rules_error)?, None),
        Op::Close => {
            let change = p.close(now, player).map_err(rules_error)?;
            (change, Some(json!({ "success": true })))
        }
        Op::PrepareQueue => {
            p.may_queue(player).map_err(rules_error)?;
            return Ok(json!({ "members": p.member_ids() }));
        }
        Op::Queued { ticket, roster } => {
            if p.member_ids() != roster || p.leader() != player {
                // The roster moved while the ticket was being made: it must not stand.
                super::matchmaker::remove_player(shard, &ticket.mode, player);
                return Err(ApiError::new(
                    409,
                    code::PARTY_CHANGED,
                    "The party changed while it was being queued; queue again.",
                ));
            }
            let new_id = ticket.ticket_id.clone();
            let old = p.queued(player, ticket).map_err(rules_error)?;
            // Queueing again for the same mode answers the same ticket (`already_queued`);
            // only a ticket for another mode is replaced.
            if let Some(old) = old.filter(|o| o.ticket_id != new_id) {
                super::matchmaker::remove_player(shard, &old.mode, player);
            }
            (
                Change {
                    updated: true,
                    ..Change::default()
                },
                None,
            )
        }
        Op::Cancel => {
            p.may_queue(player).map_err(rules_error)?;
            let Some(t) = p.ticket().cloned() else {
                return Err(ApiError::new(
                    404,
                    code::PARTY_NOT_QUEUED,
                    "The party is not in a queue.",
                ));
            };
            p.unqueued(&t.ticket_id);
            (
                Change {
                    cancel_ticket: Some(t),
                    updated: true,
                    ..Change::default()
                },
                None,
            )
        }
    };
    let answer = answer.unwrap_or_else(|| view(shard, p));
    drop(parties);
    apply(shard, party_id, change);
    Ok(answer)
}

fn join(shard: &Shard, p: &mut Party, party_id: &str, player: &str) -> Result<Change, ApiError> {
    let now = shard.rt.now();
    if p.is_member(player) {
        return Err(rules_error(PartyError::AlreadyMember));
    }
    if !shard.ctx.parties.claim(player, party_id) {
        return Err(ApiError::new(
            409,
            code::PARTY_IN_ANOTHER_PARTY,
            "Leave your current party first.",
        ));
    }
    p.join(now, player).map_err(|e| {
        shard.ctx.parties.release(player, party_id);
        rules_error(e)
    })
}

/// The party's ticket resolved on the matchmaker: formed into `match_id`, or expired.
pub(crate) fn on_unqueued(
    shard: &Rc<Shard>,
    party_id: &str,
    ticket_id: &str,
    match_id: Option<String>,
    teams: Option<Value>,
) {
    let mut parties = shard.parties.parties.borrow_mut();
    let Some(p) = parties.get_mut(party_id) else {
        return;
    };
    let Some(t) = p.unqueued(ticket_id) else {
        return;
    };
    if let Some(match_id) = match_id {
        let mut body = Map::new();
        body.insert("party_id".into(), json!(party_id));
        body.insert("match_id".into(), json!(match_id));
        body.insert("mode".into(), json!(t.mode));
        if let Some(teams) = teams {
            body.insert("teams".into(), teams);
        }
        push_all(shard, p, "party.matched", &Value::Object(body));
    }
    push_all(shard, p, "party.updated", &view(shard, p));
}

/// A member's last socket closed (`away`) or a socket opened again (`!away`).
pub(crate) fn on_presence(shard: &Rc<Shard>, party_id: &str, player: &str, away: bool) {
    let now = shard.rt.now();
    let change = {
        let mut parties = shard.parties.parties.borrow_mut();
        let Some(p) = parties.get_mut(party_id) else {
            return;
        };
        if away {
            p.disconnected(now, player)
        } else {
            p.reconnected(now, player)
        }
    };
    apply(shard, party_id, change);
}

pub(crate) fn on_timer(shard: &Rc<Shard>, t: Timer) {
    match t {
        Timer::Sweep => {
            let now = shard.rt.now();
            let due: Vec<(String, Change)> = shard
                .parties
                .parties
                .borrow_mut()
                .iter_mut()
                .filter(|(_, p)| p.next_deadline().is_some_and(|d| d <= now))
                .map(|(id, p)| (id.clone(), p.tick(now)))
                .collect();
            for (id, change) in due {
                apply(shard, &id, change);
            }
            shard.rt.arm(now + SWEEP, ShardTimer::Parties(Timer::Sweep));
        }
    }
}

/// Tells a party's owner that `player`'s presence changed (fire and forget: a lost notice
/// only means a dropped member keeps the seat until they leave, or a back-online flag lags).
pub(crate) fn presence(shard: &Rc<Shard>, player: &str, away: bool) {
    let Some(party_id) = shard.ctx.parties.party_of(player) else {
        return;
    };
    let to = owner(shard, &party_id);
    let c = ShardCmd::Parties(cmd::Cmd::Presence {
        party_id,
        player: player.to_owned(),
        away,
    });
    if route(shard, to, c).is_err() {
        tracing::debug!("party presence notice dropped: owner overloaded");
    }
}

/// Whether `player` holds a seat in `party_id` (party chat's access check).
pub(crate) fn is_member(shard: &Shard, party_id: &str, player: &str) -> bool {
    shard.ctx.parties.party_of(player).as_deref() == Some(party_id)
}
