//! `chat.join`, `chat.leave`, `chat.send`, `dm.send` and `presence.update`, and what a session
//! remembers of its channels. Signing in marks the player online and replays missed
//! notifications; signing out leaves every joined channel and marks them offline.

use asobi_schema::envelope::{encode_frame, Inbound};
use asobi_schema::social::{
    ChannelReply, ChatChannel, ChatSend, DmSend, PresenceUpdate, PresenceUpdated,
};
use asobi_schema::ApiError;

use super::chat::{self, MAX_CONTENT_BYTES, MAX_JOINED_PER_CONNECTION};
use super::error::Error;
use super::{notify, presence};
use crate::services::session::{Handled, Session, WsHandler};

pub(crate) const HANDLERS: &[(&str, WsHandler)] = &[
    ("chat.send", send),
    ("chat.join", join),
    ("chat.leave", leave),
    ("dm.send", dm_send),
    ("presence.update", presence_update),
];

/// The channels this session joined (at most [`MAX_JOINED_PER_CONNECTION`]).
#[derive(Default)]
pub(crate) struct SessionPart {
    joined: Vec<String>,
}

impl SessionPart {
    /// Channels joined.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.joined.len()
    }
}

/// asobi's reason for a refused channel: `not_authorized` (code `forbidden`).
fn refused(s: &mut Session, f: &Inbound<'_>, e: Error) -> Result<(), ApiError> {
    if matches!(e, Error::NotAuthorized) {
        let api: ApiError = e.into();
        s.error_with_reason(f.cid, &api, "not_authorized");
        Ok(())
    } else {
        Err(e.into())
    }
}

fn join<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Later(Box::pin(async move {
        let body: ChatChannel = f.decode()?;
        let channel = body.channel_id;
        let shard = s.shard.clone();
        if let Err(e) = chat::authorize(&shard, &s.player(), &channel).await {
            return refused(s, f, e);
        }
        if !s.social.joined.contains(&channel) {
            if s.social.joined.len() >= MAX_JOINED_PER_CONNECTION {
                return Err(Error::TooManyChannels.into());
            }
            chat::join(&shard, &channel, s.me, &s.player()).await?;
            s.social.joined.push(channel.clone());
        }
        s.reply(encode_frame(
            "chat.joined",
            f.cid,
            &ChannelReply {
                channel_id: &channel,
            },
        ));
        Ok(())
    }))
}

fn leave<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Later(Box::pin(async move {
        let body: ChatChannel = f.decode()?;
        if let Some(i) = s.social.joined.iter().position(|c| *c == body.channel_id) {
            s.social.joined.swap_remove(i);
            let shard = s.shard.clone();
            chat::leave_now(&shard, &body.channel_id, s.me).await?;
        }
        s.reply(encode_frame(
            "chat.left",
            f.cid,
            &ChannelReply {
                channel_id: &body.channel_id,
            },
        ));
        Ok(())
    }))
}

fn send<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Later(Box::pin(async move {
        let body: ChatSend = f.decode()?;
        let Some(content) = body.content.as_str() else {
            return Err(Error::InvalidField("content").into());
        };
        if content.len() > MAX_CONTENT_BYTES {
            // asobi drops an oversize message without a reply.
            return Ok(());
        }
        let shard = s.shard.clone();
        let me = s.player();
        // A joined channel passed the access check at join; anything else is checked now, and
        // so is a `room:` every time (its group membership can end while joined).
        let kind = if s.social.joined.contains(&body.channel_id)
            && !body.channel_id.starts_with("room:")
        {
            chat::classify(&body.channel_id)
        } else {
            chat::authorize(&shard, &me, &body.channel_id).await
        };
        let kind = match kind {
            Ok(k) => k,
            Err(e) => return refused(s, f, e),
        };
        chat::send(&shard, &body.channel_id, &kind, &me, content)?;
        Ok(())
    }))
}

fn dm_send<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Later(Box::pin(async move {
        let body: DmSend = f.decode()?;
        let shard = s.shard.clone();
        let channel = notify::dm(&shard, &s.player(), &body.recipient_id, &body.content).await?;
        s.reply(encode_frame(
            "dm.sent",
            f.cid,
            &ChannelReply {
                channel_id: &channel,
            },
        ));
        Ok(())
    }))
}

fn presence_update<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Done(presence_now(s, f))
}

fn presence_now(s: &mut Session, f: &Inbound<'_>) -> Result<(), ApiError> {
    let body: PresenceUpdate = f.decode()?;
    let status = body.status.unwrap_or_else(|| "online".to_owned());
    presence::set_status(&s.shard, &s.player(), &status)?;
    s.reply(encode_frame(
        "presence.updated",
        f.cid,
        &PresenceUpdated {
            player_id: None,
            status: &status,
        },
    ));
    Ok(())
}

/// A player signed in on this session.
pub(crate) fn session_connected(s: &mut Session, player_id: &str) {
    presence::session(&s.shard, player_id, s.me, true);
    notify::replay_on_connect(&s.shard, player_id);
}

/// The player lets go of this session.
pub(crate) fn session_closed(s: &mut Session, player_id: &str) {
    for channel in s.social.joined.drain(..) {
        chat::leave(&s.shard, &channel, s.me);
    }
    presence::session(&s.shard, player_id, s.me, false);
}
