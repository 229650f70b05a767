//! `vote.cast` and `vote.veto`: routed to the shard hosting the player's match.

use asobi_schema::envelope::{encode_frame, Inbound};
use asobi_schema::payload::Success;
use asobi_schema::votes::{VoteCast, VoteVeto};
use asobi_schema::ApiError;

use super::cmd::Cmd;
use crate::services::matches::error::Error as MatchError;
use crate::services::session::{Handled, Session, WsHandler};
use crate::services::Cmd as ShardCmd;
use crate::shard::request;

pub(crate) const HANDLERS: &[(&str, WsHandler)] = &[("vote.cast", cast), ("vote.veto", veto)];

fn current(s: &Session) -> Result<(String, usize), ApiError> {
    s.matches
        .current()
        .cloned()
        .ok_or_else(|| MatchError::NotInMatch.into())
}

fn cast<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Later(Box::pin(async move {
        let (match_id, host) = current(s)?;
        let body: VoteCast = f.decode()?;
        let shard = s.shard.clone();
        let player_id = s.player();
        request(&shard, host, |reply| {
            ShardCmd::Votes(Cmd::Cast {
                match_id,
                player_id,
                vote_id: body.vote_id,
                option: body.option_id,
                reply,
            })
        })
        .await?;
        s.reply(encode_frame(
            "vote.cast_ok",
            f.cid,
            &Success { success: true },
        ));
        Ok(())
    }))
}

fn veto<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Later(Box::pin(async move {
        let (match_id, host) = current(s)?;
        let body: VoteVeto = f.decode()?;
        let shard = s.shard.clone();
        let player_id = s.player();
        request(&shard, host, |reply| {
            ShardCmd::Votes(Cmd::Veto {
                match_id,
                player_id,
                vote_id: body.vote_id,
                reply,
            })
        })
        .await?;
        s.reply(encode_frame(
            "vote.veto_ok",
            f.cid,
            &Success { success: true },
        ));
        Ok(())
    }))
}
