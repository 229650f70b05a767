//! Notifications and direct messages: rows in storage, pushed live to the recipient's session
//! when they are online. A notification not pushed live (the player was offline) is pushed on
//! their next sign-in, then marked delivered.

use std::rc::Rc;

use serde_json::Value;

use asobi_schema::envelope::encode_frame;
use asobi_schema::social::ChatMessageOut;
use asobi_storage::{new_social_id, Notification};

use super::chat::{self, dm_channel, Kind};
use super::error::Error;
use super::now_ms;
use crate::services::Shard;
use crate::shard::mesh::Outbound;
use crate::wire::Frame;

/// Longest notification type.
pub(crate) const MAX_TYPE_BYTES: usize = 64;
/// Longest subject.
pub(crate) const MAX_SUBJECT_BYTES: usize = 256;
/// Largest content, as JSON text.
pub(crate) const MAX_CONTENT_JSON_BYTES: usize = 16 * 1024;
/// Recipients one `notify_many` may name.
pub(crate) const MAX_RECIPIENTS: usize = 1000;
/// Notifications pushed per sign-in; older undelivered ones stay listed by REST.
const MAX_REPLAYED: u32 = 200;

/// Pushes one frame to the player's session, when they have one. True when pushed.
fn push(shard: &Shard, player: &str, kind: &str, bytes: bytes::Bytes) -> bool {
    let Some(at) = shard.ctx.registry.session_of(player) else {
        return false;
    };
    match Frame::json(bytes) {
        Some(frame) => {
            shard.rt.deliver(at, Outbound::Frame(frame));
            true
        }
        None => {
            tracing::error!(kind, "push frame was not UTF-8");
            false
        }
    }
}

fn notification_frame(n: &Notification) -> bytes::Bytes {
    encode_frame("notification.new", None, n)
}

/// A notification, checked.
fn build(player: &str, kind: &str, subject: &str, content: Value) -> Result<Notification, Error> {
    if player.is_empty() || player.len() > 128 {
        return Err(Error::InvalidField("player_id"));
    }
    if kind.is_empty() || kind.len() > MAX_TYPE_BYTES {
        return Err(Error::InvalidField("type"));
    }
    if subject.is_empty() || subject.len() > MAX_SUBJECT_BYTES {
        return Err(Error::InvalidField("subject"));
    }
    let content = match content {
        Value::Null => Value::Object(Default::default()),
        v => v,
    };
    if content.to_string().len() > MAX_CONTENT_JSON_BYTES {
        return Err(Error::InvalidField("content"));
    }
    Ok(Notification {
        id: new_social_id(),
        player_id: player.to_owned(),
        kind: kind.to_owned(),
        subject: subject.to_owned(),
        content,
        read: false,
        sent_at: now_ms(),
    })
}

/// Stores notifications for `players` (one storage transaction) and pushes each to its
/// player's session when online. Answers them in order. One round trip whatever the count:
/// a script waiting on this counts the wait against its callback's budget.
pub(crate) async fn notify_all(
    shard: &Shard,
    players: &[String],
    kind: &str,
    subject: &str,
    content: &Value,
) -> Result<Vec<Notification>, Error> {
    let rows: Vec<Notification> = players
        .iter()
        .map(|p| build(p, kind, subject, content.clone()))
        .collect::<Result<_, _>>()?;
    // Delivered now when a session is there to take it; otherwise replayed at sign-in.
    let online: Vec<bool> = rows
        .iter()
        .map(|n| shard.ctx.registry.session_of(&n.player_id).is_some())
        .collect();
    shard
        .ctx
        .store
        .insert_notifications(rows.iter().cloned().zip(online.iter().copied()).collect())
        .await?;
    for (n, live) in rows.iter().zip(online) {
        if live {
            push(
                shard,
                &n.player_id,
                "notification.new",
                notification_frame(n),
            );
        }
    }
    Ok(rows)
}

/// Stores one notification and pushes it when the player is online.
pub(crate) async fn notify(
    shard: &Shard,
    player: &str,
    kind: &str,
    subject: &str,
    content: Value,
) -> Result<Notification, Error> {
    let mut rows = notify_all(shard, &[player.to_owned()], kind, subject, &content).await?;
    rows.pop().ok_or(Error::InvalidField("player_id"))
}

/// Pushes what the player missed while offline; called when a session signs in.
pub(crate) fn replay_on_connect(shard: &Rc<Shard>, player: &str) {
    let s = shard.clone();
    let player = player.to_owned();
    shard.rt.spawn(async move {
        let missed = match s
            .ctx
            .store
            .undelivered_notifications(&player, MAX_REPLAYED)
            .await
        {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("notification replay skipped: {e}");
                return;
            }
        };
        // Claimed first, pushed after: a second sign-in racing this one does not push them
        // again.
        let ids = missed.iter().map(|n| n.id.clone()).collect();
        if let Err(e) = s.ctx.store.mark_delivered(ids).await {
            tracing::debug!("notification replay skipped: {e}");
            return;
        }
        for n in &missed {
            push(&s, &player, "notification.new", notification_frame(n));
        }
    });
}

/// The player's own notification, or why not.
async fn own(shard: &Shard, player: &str, id: &str) -> Result<(), Error> {
    match shard.ctx.store.notification(id).await? {
        Some(n) if n.player_id == player => Ok(()),
        Some(_) => Err(Error::Forbidden),
        None => Err(Error::NotificationNotFound),
    }
}

/// Marks the player's notification read.
pub(crate) async fn mark_read(
    shard: &Shard,
    player: &str,
    id: &str,
) -> Result<Notification, Error> {
    own(shard, player, id).await?;
    shard
        .ctx
        .store
        .mark_notification_read(id)
        .await?
        .ok_or(Error::NotificationNotFound)
}

/// Deletes the player's notification.
pub(crate) async fn delete(shard: &Shard, player: &str, id: &str) -> Result<(), Error> {
    own(shard, player, id).await?;
    shard.ctx.store.delete_notification(id).await?;
    Ok(())
}

/// Sends a direct message: into the pair's `dm:` channel (history, and members who joined it)
/// and as `dm.message` to the recipient's session. Answers the channel id.
pub(crate) async fn dm(
    shard: &Rc<Shard>,
    sender: &str,
    recipient: &str,
    content: &Value,
) -> Result<String, Error> {
    if !shard
        .social
        .dm_limits
        .borrow_mut()
        .allow(sender, shard.rt.now())
    {
        return Err(Error::RateLimited);
    }
    let content = match content {
        Value::String(s) => s.as_str(),
        _ => return Err(Error::InvalidField("content")),
    };
    if content.is_empty() {
        return Err(Error::ContentEmpty);
    }
    if content.len() > chat::MAX_CONTENT_BYTES {
        return Err(Error::ContentTooLarge);
    }
    if recipient.is_empty() || recipient.len() > 128 {
        return Err(Error::InvalidField("recipient_id"));
    }
    let store = &shard.ctx.store;
    if recipient != sender && store.player(recipient).await?.is_none() {
        return Err(Error::PlayerNotFound);
    }
    if store
        .friendship(recipient, sender)
        .await?
        .is_some_and(|f| f.status == "blocked")
    {
        return Err(Error::Blocked);
    }
    let channel = dm_channel(sender, recipient);
    let kind = Kind::Dm {
        a: sender.to_owned(),
        b: recipient.to_owned(),
    };
    chat::send(shard, &channel, &kind, sender, content)?;
    let bytes = encode_frame(
        "dm.message",
        None,
        &ChatMessageOut {
            channel_id: &channel,
            sender_id: sender,
            content,
            sent_at: now_ms(),
        },
    );
    push(shard, recipient, "dm.message", bytes);
    Ok(channel)
}
