//! `world.list`, `world.create`, `world.find_or_create`, `world.join`, `world.input`,
//! `world.leave`, `world.resync`, and what a session remembers of its world.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use asobi_rules::worlds::ZoneId;
use asobi_schema::envelope::{encode_frame, Inbound};
use asobi_schema::error::code;
use asobi_schema::{payload, ApiError};

use super::error::Error;
use super::SessionEvent;
use crate::services::matchmaker::{check_mode, MAX_MODE_NAME};
use crate::services::session::{Handled, Session, WsHandler};
use crate::services::Cmd as ShardCmd;
use crate::shard::{overloaded, request, route};

pub(crate) const HANDLERS: &[(&str, WsHandler)] = &[
    ("world.input", input),
    ("world.list", list),
    ("world.create", create),
    ("world.find_or_create", find_or_create),
    ("world.join", join),
    ("world.leave", leave),
    ("world.resync", resync),
];

/// Largest `seq` acknowledged: a JavaScript-safe integer (asobi's bound).
const MAX_ACK_SEQ: u64 = (1 << 53) - 1;

/// The world a session is in, as far as the session knows.
#[derive(Default)]
pub(crate) struct SessionPart {
    /// The world id and the shard hosting it.
    current: Option<(String, usize)>,
}

impl SessionPart {
    pub(crate) fn on_event(&mut self, e: SessionEvent) {
        match e {
            SessionEvent::Entered { world_id, shard } => self.current = Some((world_id, shard)),
            SessionEvent::Left { world_id } => {
                if self.current.as_ref().is_some_and(|(w, _)| *w == world_id) {
                    self.current = None;
                }
            }
        }
    }
}

fn cmd(c: super::cmd::Cmd) -> ShardCmd {
    ShardCmd::Worlds(c)
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    has_capacity: Option<bool>,
}

fn list<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Done((|| {
        let q: ListQuery = f.decode()?;
        let mode = q.mode.filter(|m| m.len() <= MAX_MODE_NAME);
        let worlds = s
            .shard
            .ctx
            .worlds
            .list(mode.as_deref(), q.has_capacity.unwrap_or(false));
        s.reply(encode_frame(
            "world.list",
            f.cid,
            &json!({ "worlds": worlds }),
        ));
        Ok(())
    })())
}

#[derive(Deserialize)]
struct ModeBody {
    mode: String,
}

#[derive(Deserialize)]
struct JoinBody {
    world_id: String,
    #[serde(default)]
    ctx: Option<Value>,
}

/// Joins world `world_id` on `host` and replies `world.joined`.
async fn join_world(
    s: &mut Session,
    world_id: String,
    host: usize,
    ctx: Option<Value>,
    cid: Option<&RawValue>,
) -> Result<(), ApiError> {
    if let Some((current, _)) = &s.worlds.current {
        if *current != world_id {
            return Err(Error::AlreadyJoined.into());
        }
    }
    let shard = s.shard.clone();
    let (player_id, me, binary) = (s.player(), s.me, s.world_wire.binary);
    let joined = request(&shard, host, |reply| {
        cmd(super::cmd::Cmd::Join {
            world_id: world_id.clone(),
            player_id,
            session: me,
            binary,
            ctx,
            reply,
        })
    })
    .await?;
    // A split world may already have told the session which part it is on.
    if s.worlds
        .current
        .as_ref()
        .is_none_or(|(w, _)| *w != world_id)
    {
        s.worlds.current = Some((world_id, host));
    }
    s.reply(encode_frame("world.joined", cid, &joined));
    Ok(())
}

/// Checks shared by `world.create` and `world.find_or_create`.
fn can_create(s: &Session, mode: &str) -> Result<(), ApiError> {
    crate::services::accounts::limits::allow_join(&s.shard, &s.player())?;
    if s.worlds.current.is_some() {
        return Err(Error::AlreadyJoined.into());
    }
    check_mode(&s.shard, mode)?;
    super::world_mode(&s.shard, mode)?;
    Ok(())
}

fn create<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Later(Box::pin(async move {
        let body: ModeBody = f.decode()?;
        can_create(s, &body.mode)?;
        let player = s.player();
        let world_id = super::create(&s.shard, &body.mode, Some(&player))?;
        let host = s.shard.id();
        join_world(s, world_id, host, None, f.cid).await
    }))
}

fn find_or_create<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Later(Box::pin(async move {
        let body: ModeBody = f.decode()?;
        can_create(s, &body.mode)?;
        let mode = super::world_mode(&s.shard, &body.mode)?;
        if !super::world_config(&mode).quick_play {
            return Err(Error::QuickPlayDisabled.into());
        }
        let owner = crate::services::matchmaker::owner(&s.shard, &body.mode);
        let (mode, creator) = (body.mode.clone(), s.player());
        let picked = request(&s.shard, owner, |reply| {
            cmd(super::cmd::Cmd::FindOrCreate {
                mode,
                creator,
                reply,
            })
        })
        .await?;
        let world_id = picked["world_id"].as_str().unwrap_or_default().to_owned();
        let host = picked["shard"].as_u64().unwrap_or_default() as usize;
        join_world(s, world_id, host, None, f.cid).await
    }))
}

fn join<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Later(Box::pin(async move {
        let body: JoinBody = f.decode()?;
        let entry = s
            .shard
            .ctx
            .worlds
            .get(&body.world_id)
            .ok_or(Error::NotFound)?;
        crate::services::accounts::limits::allow_join(&s.shard, &s.player())?;
        if let Some(ctx) = &body.ctx {
            payload::check_join_ctx(ctx).map_err(|reason| {
                ApiError::new(
                    400,
                    code::REQUEST_FAILED,
                    "The join context is outside its bounds.",
                )
                .with_details(json!({ "reason": reason }))
            })?;
        }
        join_world(s, body.world_id, entry.shard, body.ctx, f.cid).await
    }))
}

fn leave<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Later(Box::pin(async move {
        if let Some((world_id, host)) = s.worlds.current.take() {
            let shard = s.shard.clone();
            let player_id = s.player();
            // Leaving a world that just finished is still a successful leave.
            let _ = request(&shard, host, |reply| {
                cmd(super::cmd::Cmd::Leave {
                    world_id,
                    player_id,
                    reply: Some(reply),
                })
            })
            .await;
        }
        // As in asobi, leaving when in no world is a successful no-op.
        s.reply(encode_frame(
            "world.left",
            f.cid,
            &payload::Success { success: true },
        ));
        Ok(())
    }))
}

fn input<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Done(input_now(s, f))
}

fn input_now(s: &mut Session, f: &Inbound<'_>) -> Result<(), ApiError> {
    // Not in a world: dropped, as asobi drops it.
    let Some((world_id, host)) = s.worlds.current.clone() else {
        return Ok(());
    };
    let input: Value =
        serde_json::from_str(f.payload_str()).map_err(|e| ApiError::invalid_payload(&e))?;
    // asobi unwraps a payload that is exactly `{data: {...}}`.
    let input = match input {
        Value::Object(mut m) if m.len() == 1 && m.get("data").is_some_and(Value::is_object) => {
            m.remove("data").unwrap_or_default()
        }
        other => other,
    };
    if !input.is_object() {
        return Err(ApiError::new(
            400,
            code::INVALID_FIELD,
            "world.input's payload must be a JSON object.",
        ));
    }
    // An out-of-range seq degrades to no ack rather than an error (asobi).
    let seq = f
        .seq
        .and_then(|raw| serde_json::from_str::<u64>(raw.get()).ok())
        .filter(|n| *n <= MAX_ACK_SEQ);
    let c = cmd(super::cmd::Cmd::Input {
        world_id,
        player_id: s.player(),
        input,
        seq,
    });
    // Input is a stream: one the host cannot take now is dropped like a lost datagram.
    route(&s.shard, host, c).map_err(|_| overloaded())
}

#[derive(Deserialize)]
struct ResyncBody {
    zone: (i64, i64),
}

fn resync<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Done((|| {
        // Malformed, out of range, not in a world or over the limit: dropped quietly (asobi:
        // an error on a repair path is one more thing for a broken client to loop on).
        let Ok(body) = f.decode::<ResyncBody>() else {
            return Ok(());
        };
        let (Ok(x), Ok(y)) = (u32::try_from(body.zone.0), u32::try_from(body.zone.1)) else {
            return Ok(());
        };
        let Some((world_id, host)) = s.worlds.current.clone() else {
            return Ok(());
        };
        // The player's own limit first, so a client looping the request is refused without
        // spending the node's budget that honest clients share (asobi's order).
        let now = s.shard.rt.now();
        if !crate::services::accounts::limits::allow_world_resync(&s.shard, &s.player(), now) {
            return Ok(());
        }
        let c = cmd(super::cmd::Cmd::Resync {
            world_id,
            player_id: s.player(),
            zone: ZoneId::new(x, y),
        });
        if route(&s.shard, host, c).is_err() {
            tracing::debug!("world.resync dropped: host overloaded");
        }
        Ok(())
    })())
}

/// A player signing in whose entity a world holds (`player_ttl_ms`) is put back into it.
pub(crate) fn session_connected(s: &mut Session, player_id: &str) {
    if let Some((world_id, host)) = s.shard.ctx.worlds.seat_of(player_id) {
        let c = cmd(super::cmd::Cmd::Reattach {
            world_id,
            player_id: player_id.to_owned(),
            session: s.me,
            binary: s.world_wire.binary,
        });
        if route(&s.shard, host, c).is_err() {
            tracing::debug!("world reattach dropped: host overloaded");
        }
    }
}

/// The socket dropped (or the player signed out): the world holds the entity for
/// `player_ttl_ms`, or lets the player go.
pub(crate) fn session_closed(s: &mut Session, player_id: &str) {
    if let Some((world_id, host)) = s.worlds.current.take() {
        let c = cmd(super::cmd::Cmd::Disconnected {
            world_id,
            player_id: player_id.to_owned(),
            session: s.me,
        });
        if route(&s.shard, host, c).is_err() {
            tracing::debug!("world disconnect notice dropped: host overloaded");
        }
    }
}
