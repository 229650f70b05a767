//! `match.input`, `match.list`, `match.join`, `match.find_or_create`, `match.leave`, and what a
//! session remembers of its match.

use serde_json::value::RawValue;
use serde_json::{json, Value};

use asobi_rules::session::{Throttle, NOT_IN_MATCH_REPORT_INTERVAL};
use asobi_schema::envelope::{encode_frame, Inbound};
use asobi_schema::payload::{self, MatchInfo};
use asobi_schema::ApiError;

use super::error::Error;
use super::SessionEvent;
use crate::services::matchmaker::{check_mode, MAX_MODE_NAME};
use crate::services::session::{Handled, Session, WsHandler};
use crate::services::Cmd as ShardCmd;
use crate::shard::{overloaded, request, route};

pub(crate) const HANDLERS: &[(&str, WsHandler)] = &[
    ("match.input", input),
    ("match.list", list),
    ("match.join", join),
    ("match.find_or_create", find_or_create),
    ("match.leave", leave),
];

/// The match a session is in, as far as the session knows.
pub(crate) struct SessionPart {
    /// The match id and the shard hosting it.
    current: Option<(String, usize)>,
    /// Input outside a match arrives at game rate: it is reported once per interval, not each.
    not_in_match: Throttle,
}

impl Default for SessionPart {
    fn default() -> Self {
        SessionPart {
            current: None,
            not_in_match: Throttle::new(NOT_IN_MATCH_REPORT_INTERVAL),
        }
    }
}

impl SessionPart {
    /// The match this session is in and the shard hosting it.
    pub(crate) fn current(&self) -> Option<&(String, usize)> {
        self.current.as_ref()
    }

    pub(crate) fn on_event(&mut self, e: SessionEvent) {
        match e {
            SessionEvent::Entered { match_id, shard } => self.current = Some((match_id, shard)),
            SessionEvent::Left { match_id } => {
                if self.current.as_ref().is_some_and(|(m, _)| *m == match_id) {
                    self.current = None;
                }
            }
        }
    }
}

fn cmd(c: super::cmd::Cmd) -> ShardCmd {
    ShardCmd::Matches(c)
}

fn input<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Done(input_now(s, f))
}

fn input_now(s: &mut Session, f: &Inbound<'_>) -> Result<(), ApiError> {
    let Some((match_id, host)) = s.matches.current.clone() else {
        let now = s.shard.rt.now();
        if s.matches.not_in_match.allow(now) {
            let e = ApiError::from(Error::NotInMatch);
            s.reply(e.to_ws_frame(f.cid, None, Some("match.input")));
        }
        return Ok(());
    };
    // `handle_input` receives a table, always: anything else (or a legacy `{data}` wrapper whose
    // text is not an object) is refused here, as asobi refuses it.
    let input = super::input::object_text(f.payload_str())?.ok_or_else(|| {
        ApiError::new(
            400,
            asobi_schema::error::code::INVALID_FIELD,
            "match.input's payload must be a JSON object.",
        )
    })?;
    let c = cmd(super::cmd::Cmd::Input {
        match_id,
        player_id: s.player(),
        input: input.into(),
    });
    // Input is a stream: one the host cannot take now is dropped, like a lost datagram, and
    // the client hears about it so it can slow down.
    route(&s.shard, host, c).map_err(|_| overloaded())
}

fn list<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Done((|| {
        let q: payload::MatchListQuery = f.decode()?;
        let mode = q.mode.filter(|m| m.len() <= MAX_MODE_NAME);
        let matches: Vec<MatchInfo> =
            s.shard
                .ctx
                .matches
                .list(mode.as_deref(), q.has_capacity.unwrap_or(false), q.joinable);
        s.reply(encode_frame(
            "match.list",
            f.cid,
            &json!({ "matches": matches }),
        ));
        Ok(())
    })())
}

async fn join_match(
    s: &mut Session,
    match_id: String,
    ctx: Option<Value>,
    cid: Option<&RawValue>,
) -> Result<(), ApiError> {
    crate::services::accounts::limits::allow_join(&s.shard, &s.player())?;
    if let Some(ctx) = &ctx {
        payload::check_join_ctx(ctx).map_err(Error::JoinContext)?;
    }
    if let Some((current, _)) = &s.matches.current {
        if *current != match_id {
            return Err(Error::AlreadyInMatch.into());
        }
    }
    let entry = s.shard.ctx.matches.get(&match_id).ok_or(Error::NotFound)?;
    let shard = s.shard.clone();
    let (player_id, me) = (s.player(), s.me);
    let joined = request(&shard, entry.shard, |reply| {
        cmd(super::cmd::Cmd::Join {
            match_id: match_id.clone(),
            player_id,
            session: me,
            ctx,
            reply,
        })
    })
    .await?;
    s.matches.current = Some((match_id, entry.shard));
    s.reply(encode_frame("match.joined", cid, &joined));
    Ok(())
}

fn join<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Later(Box::pin(async move {
        let body: payload::MatchJoin = f.decode()?;
        join_match(s, body.match_id, body.ctx, f.cid).await
    }))
}

fn find_or_create<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Later(Box::pin(async move {
        let body: payload::MatchFindOrCreate = f.decode()?;
        check_mode(&s.shard, &body.mode)?;
        let quick_play = s
            .shard
            .game
            .borrow()
            .mode(&body.mode)
            .is_some_and(|m| m.config.quick_play);
        if !quick_play {
            return Err(Error::QuickPlayDisabled.into());
        }
        // Decided on owner(mode), so callers on different shards converge on one match.
        let owner = crate::services::matchmaker::owner(&s.shard, &body.mode);
        let mode = body.mode.clone();
        let picked = request(&s.shard, owner, |reply| {
            cmd(super::cmd::Cmd::FindOrCreate { mode, reply })
        })
        .await?;
        let match_id = picked["match_id"].as_str().unwrap_or_default().to_owned();
        let joined = join_match(s, match_id.clone(), body.ctx, f.cid).await;
        let settled = cmd(super::cmd::Cmd::Settled { match_id });
        if route(&s.shard, owner, settled).is_err() {
            tracing::debug!("find_or_create settle dropped: the hold expires on its own");
        }
        joined
    }))
}

fn leave<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Later(Box::pin(async move {
        let Some((match_id, host)) = s.matches.current.take() else {
            // As in asobi, leaving when in no match is a successful no-op.
            s.reply(encode_frame(
                "match.left",
                f.cid,
                &payload::Success { success: true },
            ));
            return Ok(());
        };
        let shard = s.shard.clone();
        let player_id = s.player();
        // Leaving a match that just finished is still a successful leave.
        let _ = request(&shard, host, |reply| {
            cmd(super::cmd::Cmd::Leave {
                match_id,
                player_id,
                reply: Some(reply),
            })
        })
        .await;
        s.reply(encode_frame(
            "match.left",
            f.cid,
            &payload::Success { success: true },
        ));
        Ok(())
    }))
}

/// A signed-in player with a seat in a live match (reconnecting within the grace window) is put
/// back in it.
pub(crate) fn session_connected(s: &mut Session, player_id: &str) {
    if let Some((match_id, host)) = s.shard.ctx.matches.seat_of(player_id) {
        let c = cmd(super::cmd::Cmd::Reattach {
            match_id,
            player_id: player_id.to_owned(),
            session: s.me,
        });
        if route(&s.shard, host, c).is_err() {
            tracing::debug!(
                "reattach dropped: host overloaded; the seat waits for the grace window"
            );
        }
    }
}

/// The socket dropped: the seat is kept for the grace window.
pub(crate) fn session_closed(s: &mut Session, player_id: &str) {
    if let Some((match_id, host)) = s.matches.current.take() {
        let c = cmd(super::cmd::Cmd::Disconnected {
            match_id,
            player_id: player_id.to_owned(),
            session: s.me,
        });
        if route(&s.shard, host, c).is_err() {
            tracing::debug!("disconnect notice dropped: host overloaded");
        }
    }
}
