//! Chat channels. A channel lives on `owner(channel)`, which holds its members (session
//! addresses, grouped by the shard each session lives on) and queues its history for storage.
//!
//! Access is checked where the request arrives, once, by [`authorize`] (REST history, WS join
//! and send alike), with asobi's rules: `global:<name>` for any signed-in player, `dm:<a>:<b>`
//! for `a` and `b` when the other is a real player, `room:<group uuid>` for the group's
//! members, `world:`/`zone:`/`prox:<id>` for players seated in that match or world.
//!
//! Fan-out: the owner encodes `chat.message` once into a shared frame and hands it to each
//! member shard in one mesh message; every shard writes that same buffer to its local sockets.
//! A member whose outbox is full is closed as a slow consumer; nobody else waits for it.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use asobi_schema::envelope::encode_frame;
use asobi_schema::social::ChatMessageOut;
use asobi_schema::ApiError;
use asobi_storage::{new_social_id, ChatMessage};

use super::cmd::Cmd;
use super::error::Error;
use super::{now_ms, owner, Timer};
use crate::services::{Cmd as ShardCmd, Shard, Timer as ShardTimer};
use crate::shard::mesh::{Outbound, SessionRef};
use crate::shard::{overloaded, request, route};
use crate::wire::Frame;

/// asobi's longest channel id.
pub(crate) const MAX_CHANNEL_ID_BYTES: usize = 256;
/// asobi's longest chat message; longer ones are dropped without a reply, as asobi does.
pub(crate) const MAX_CONTENT_BYTES: usize = 2000;
/// asobi's cap on channels one connection has joined at once.
pub(crate) const MAX_JOINED_PER_CONNECTION: usize = 32;
/// Members one channel may hold: ten times the 10,000-member channel the benchmark drives, so a
/// game-wide channel fits, while one channel cannot grow a shard's memory without bound.
pub(crate) const MAX_CHANNEL_MEMBERS: usize = 100_000;
/// Live channels one shard may hold. A joined channel costs a few hundred bytes; past this a
/// join is refused (`chat.channel_full`) instead of growing memory.
pub(crate) const MAX_CHANNELS_PER_SHARD: usize = 100_000;
/// History rows waiting for storage. At this many the database is far behind; the oldest
/// waiting rows are dropped from history (and counted) rather than queued without bound.
const MAX_PENDING_HISTORY: usize = 100_000;
/// How often queued history is written: a crash loses at most this much history.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Rows per storage call: bounds one transaction's size.
const FLUSH_BATCH: usize = 2_000;

/// What a channel id names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Global,
    Dm { a: String, b: String },
    World(String),
    Room(String),
    Party(String),
}

impl Kind {
    /// The channel type stored with history (asobi's prefix).
    pub(crate) fn type_name(&self, channel: &str) -> &'static str {
        match self {
            Kind::Global => "global",
            Kind::Dm { .. } => "dm",
            Kind::Room(_) => "room",
            Kind::Party(_) => "party",
            Kind::World(_) if channel.starts_with("zone:") => "zone",
            Kind::World(_) if channel.starts_with("prox:") => "prox",
            Kind::World(_) => "world",
        }
    }
}

/// A canonical lowercase hyphenated UUID (the only group id shape a `room:` may name).
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => matches!(c, '0'..='9' | 'a'..='f'),
        })
}

/// The shape of a channel id, before any lookup.
pub(crate) fn classify(channel: &str) -> Result<Kind, Error> {
    if channel.is_empty() || channel.len() > MAX_CHANNEL_ID_BYTES {
        return Err(Error::InvalidChannelId);
    }
    let (prefix, rest) = channel.split_once(':').ok_or(Error::InvalidChannelId)?;
    match prefix {
        "global" if !rest.is_empty() => Ok(Kind::Global),
        "dm" => match rest.split(':').collect::<Vec<_>>()[..] {
            [a, b] if !a.is_empty() && !b.is_empty() => Ok(Kind::Dm {
                a: a.to_owned(),
                b: b.to_owned(),
            }),
            _ => Err(Error::NotAuthorized),
        },
        "world" | "zone" | "prox" => {
            let id = rest.split(':').next().unwrap_or_default();
            if id.is_empty() {
                Err(Error::NotAuthorized)
            } else {
                Ok(Kind::World(id.to_owned()))
            }
        }
        "room" if is_uuid(rest) => Ok(Kind::Room(rest.to_owned())),
        "room" => Err(Error::NotAuthorized),
        "party" if !rest.is_empty() => Ok(Kind::Party(rest.to_owned())),
        "global" => Err(Error::NotAuthorized),
        _ => Err(Error::InvalidChannelId),
    }
}

/// The channel between two players (asobi's `dm:<lower>:<higher>`).
pub(crate) fn dm_channel(a: &str, b: &str) -> String {
    if a <= b {
        format!("dm:{a}:{b}")
    } else {
        format!("dm:{b}:{a}")
    }
}

/// May `player` read and write `channel`? Answers its kind.
pub(crate) async fn authorize(shard: &Shard, player: &str, channel: &str) -> Result<Kind, Error> {
    let kind = classify(channel)?;
    let allowed = match &kind {
        Kind::Global => true,
        Kind::Dm { a, b } => {
            let other = if a == player {
                b
            } else if b == player {
                a
            } else {
                return Err(Error::NotAuthorized);
            };
            other == player || shard.ctx.store.player(other).await?.is_some()
        }
        Kind::World(id) => shard
            .ctx
            .matches
            .seat_of(player)
            .is_some_and(|(m, _)| m == *id),
        Kind::Room(group) => shard.ctx.store.member(group, player).await?.is_some(),
        Kind::Party(id) => crate::services::parties::is_member(shard, id, player),
    };
    if allowed {
        Ok(kind)
    } else {
        Err(Error::NotAuthorized)
    }
}

// ---- the caller's side (REST, WS, Lua call these) ----

/// Adds the session to the channel on its owner. Access is the caller's to check first.
pub(crate) async fn join(
    shard: &Rc<Shard>,
    channel: &str,
    session: SessionRef,
    player: &str,
) -> Result<(), ApiError> {
    request(shard, owner(shard, channel), |reply| {
        ShardCmd::Social(Cmd::Join {
            channel: channel.to_owned(),
            session,
            player: player.to_owned(),
            reply,
        })
    })
    .await
    .map(drop)
}

/// Takes the session off the channel and waits until it is off, so nothing sent after the
/// answer reaches it.
pub(crate) async fn leave_now(
    shard: &Rc<Shard>,
    channel: &str,
    session: SessionRef,
) -> Result<(), ApiError> {
    request(shard, owner(shard, channel), |reply| {
        ShardCmd::Social(Cmd::Leave {
            channel: channel.to_owned(),
            session,
            reply: Some(reply),
        })
    })
    .await
    .map(drop)
}

/// Takes the session off the channel (fire and forget, for a closing session: a lost leave
/// only leaves a dead address, which delivery skips).
pub(crate) fn leave(shard: &Rc<Shard>, channel: &str, session: SessionRef) {
    let c = ShardCmd::Social(Cmd::Leave {
        channel: channel.to_owned(),
        session,
        reply: None,
    });
    if route(shard, owner(shard, channel), c).is_err() {
        tracing::debug!("chat leave dropped: owner overloaded");
    }
}

/// Takes a player who is no longer in a group off its `room:` channel, and waits until they are
/// off (so nothing the group says after the kick reaches them).
pub(crate) async fn evict_from_room(shard: &Rc<Shard>, group: &str, player: &str) {
    let channel = format!("room:{group}");
    let to = owner(shard, &channel);
    let answer = request(shard, to, |reply| {
        ShardCmd::Social(Cmd::Evict {
            channel,
            player: player.to_owned(),
            reply,
        })
    })
    .await;
    if let Err(e) = answer {
        tracing::debug!("room eviction not confirmed: {e}");
    }
}

/// Hands a message to the channel's owner for fan-out and history. `Ok` means handed off.
pub(crate) fn send(
    shard: &Rc<Shard>,
    channel: &str,
    kind: &Kind,
    sender: &str,
    content: &str,
) -> Result<(), Error> {
    let c = ShardCmd::Social(Cmd::Send {
        channel: channel.to_owned(),
        channel_type: kind.type_name(channel),
        sender: sender.to_owned(),
        content: content.to_owned(),
        sent_at: now_ms(),
    });
    route(shard, owner(shard, channel), c).map_err(|_| Error::Overloaded(overloaded()))
}

/// The newest `limit` messages of a channel the player may read, oldest first.
pub(crate) async fn history(
    shard: &Shard,
    player: &str,
    channel: &str,
    limit: u32,
) -> Result<Vec<ChatMessage>, Error> {
    authorize(shard, player, channel).await?;
    Ok(shard.ctx.store.chat_history(channel, limit).await?)
}

// ---- the owner's side ----

/// One live channel: its members, grouped by the shard their session lives on, and for each
/// where it sits in its group (so a leave is O(1)) and whose session it is (for evictions).
#[derive(Default)]
struct Channel {
    by_shard: Vec<Vec<SessionRef>>,
    at: HashMap<SessionRef, (usize, Rc<str>)>,
}

impl Channel {
    fn add(&mut self, s: SessionRef, player: &str) {
        if self.at.contains_key(&s) {
            return;
        }
        if self.by_shard.len() <= s.shard {
            self.by_shard.resize_with(s.shard + 1, Vec::new);
        }
        let group = &mut self.by_shard[s.shard];
        self.at.insert(s, (group.len(), Rc::from(player)));
        group.push(s);
    }

    fn remove(&mut self, s: SessionRef) {
        let Some((i, _)) = self.at.remove(&s) else {
            return;
        };
        let group = &mut self.by_shard[s.shard];
        group.swap_remove(i);
        if let Some(moved) = group.get(i) {
            if let Some(slot) = self.at.get_mut(moved) {
                slot.0 = i;
            }
        }
    }

    fn sessions_of(&self, player: &str) -> Vec<SessionRef> {
        self.at
            .iter()
            .filter(|(_, (_, p))| &**p == player)
            .map(|(s, _)| *s)
            .collect()
    }

    fn len(&self) -> usize {
        self.at.len()
    }
}

/// The channels this shard owns, and their history waiting for storage.
#[derive(Default)]
pub(crate) struct Channels {
    live: RefCell<HashMap<String, Channel>>,
    pending: RefCell<VecDeque<ChatMessage>>,
    flushing: Cell<bool>,
    flush_armed: Cell<bool>,
    /// History rows dropped because storage fell too far behind.
    pub(crate) dropped: Cell<u64>,
}

impl Channels {
    /// Members of a channel this shard owns (0 when it is not live).
    #[cfg(test)]
    pub(crate) fn members(&self, channel: &str) -> usize {
        self.live.borrow().get(channel).map_or(0, Channel::len)
    }

    /// Live channels on this shard.
    #[cfg(test)]
    pub(crate) fn live_count(&self) -> usize {
        self.live.borrow().len()
    }

    /// Every live channel this shard owns and its member count (the ops chat view).
    pub(crate) fn census(&self) -> Vec<(String, usize)> {
        self.live
            .borrow()
            .iter()
            .map(|(id, c)| (id.clone(), c.len()))
            .collect()
    }
}

pub(super) fn join_here(
    shard: &Shard,
    channel: String,
    session: SessionRef,
    player: &str,
) -> Result<(), Error> {
    let mut live = shard.social.channels.live.borrow_mut();
    if !live.contains_key(&channel) && live.len() >= MAX_CHANNELS_PER_SHARD {
        return Err(Error::ChannelFull);
    }
    let c = live.entry(channel).or_default();
    if c.len() >= MAX_CHANNEL_MEMBERS && !c.at.contains_key(&session) {
        return Err(Error::ChannelFull);
    }
    c.add(session, player);
    Ok(())
}

pub(super) fn evict_here(shard: &Shard, channel: &str, player: &str) {
    let mut live = shard.social.channels.live.borrow_mut();
    if let Some(c) = live.get_mut(channel) {
        for s in c.sessions_of(player) {
            c.remove(s);
        }
        if c.len() == 0 {
            live.remove(channel);
        }
    }
}

pub(super) fn leave_here(shard: &Shard, channel: &str, session: SessionRef) {
    let mut live = shard.social.channels.live.borrow_mut();
    if let Some(c) = live.get_mut(channel) {
        c.remove(session);
        if c.len() == 0 {
            live.remove(channel);
        }
    }
}

/// Encodes the message once, fans it out, and queues it for history.
pub(super) fn send_here(shard: &Rc<Shard>, m: ChatMessage) {
    {
        let live = shard.social.channels.live.borrow();
        if let Some(c) = live.get(&m.channel_id) {
            let bytes = encode_frame(
                "chat.message",
                None,
                &ChatMessageOut {
                    channel_id: &m.channel_id,
                    sender_id: &m.sender_id,
                    content: &m.content,
                    sent_at: m.sent_at,
                },
            );
            if let Some(frame) = Frame::json(bytes) {
                let out = Outbound::Frame(frame);
                for group in c.by_shard.iter().filter(|g| !g.is_empty()) {
                    shard.rt.deliver_all(group, &out);
                }
            }
        }
    }
    let ch = &shard.social.channels;
    let mut pending = ch.pending.borrow_mut();
    if pending.len() >= MAX_PENDING_HISTORY {
        pending.pop_front();
        let n = ch.dropped.get() + 1;
        ch.dropped.set(n);
        if n.is_power_of_two() {
            tracing::warn!(
                dropped = n,
                "chat history behind storage; oldest rows dropped"
            );
        }
    }
    pending.push_back(m);
    drop(pending);
    arm_flush(shard);
}

/// A message as the owner receives it.
pub(super) fn message(
    channel: String,
    channel_type: &str,
    sender: String,
    content: String,
    sent_at: i64,
) -> ChatMessage {
    ChatMessage {
        id: new_social_id(),
        channel_id: channel,
        channel_type: channel_type.to_owned(),
        sender_id: sender,
        content,
        sent_at,
    }
}

fn arm_flush(shard: &Shard) {
    let ch = &shard.social.channels;
    if !ch.flush_armed.get() {
        ch.flush_armed.set(true);
        shard.rt.arm(
            shard.rt.now() + FLUSH_EVERY,
            ShardTimer::Social(Timer::FlushHistory),
        );
    }
}

pub(super) fn on_flush_timer(shard: &Rc<Shard>) {
    let ch = &shard.social.channels;
    ch.flush_armed.set(false);
    if ch.flushing.get() {
        arm_flush(shard);
        return;
    }
    let batch: Vec<ChatMessage> = {
        let mut pending = ch.pending.borrow_mut();
        let n = pending.len().min(FLUSH_BATCH);
        pending.drain(..n).collect()
    };
    if batch.is_empty() {
        return;
    }
    ch.flushing.set(true);
    let s = shard.clone();
    shard.rt.spawn(async move {
        if let Err(e) = s.ctx.store.save_chat_messages(batch.clone()).await {
            tracing::warn!("chat history not written, retrying: {e}");
            let mut pending = s.social.channels.pending.borrow_mut();
            for m in batch.into_iter().rev() {
                pending.push_front(m);
            }
        }
        s.social.channels.flushing.set(false);
        if !s.social.channels.pending.borrow().is_empty() {
            arm_flush(&s);
        }
    });
}

/// Shutdown: writes what is queued, waiting at most a few seconds.
pub(crate) async fn flush_for_shutdown(shard: &Rc<Shard>) {
    let deadline = shard.rt.now() + Duration::from_secs(5);
    while shard.rt.now() < deadline {
        let ch = &shard.social.channels;
        if ch.pending.borrow().is_empty() && !ch.flushing.get() {
            return;
        }
        if !ch.flushing.get() {
            on_flush_timer(shard);
        }
        shard.rt.sleep(Duration::from_millis(5)).await;
    }
    tracing::warn!("chat history flush did not finish before shutdown");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_ids_are_classified_like_asobi() {
        assert_eq!(classify("global:lobby").unwrap(), Kind::Global);
        assert!(matches!(classify("global:"), Err(Error::NotAuthorized)));
        assert_eq!(
            classify("dm:a:b").unwrap(),
            Kind::Dm {
                a: "a".into(),
                b: "b".into()
            }
        );
        assert!(matches!(classify("dm:a"), Err(Error::NotAuthorized)));
        assert_eq!(classify("zone:w1:3,4").unwrap(), Kind::World("w1".into()));
        let g = "0190f5a2-0000-7000-8000-00000000abcd";
        assert_eq!(
            classify(&format!("room:{g}")).unwrap(),
            Kind::Room(g.into())
        );
        assert!(matches!(
            classify("room:0190F5A2-0000-7000-8000-00000000ABCD"),
            Err(Error::NotAuthorized)
        ));
        assert!(matches!(classify("lobby"), Err(Error::InvalidChannelId)));
        assert!(matches!(classify("team:x"), Err(Error::InvalidChannelId)));
        assert!(matches!(classify(""), Err(Error::InvalidChannelId)));
        let long = format!("global:{}", "x".repeat(300));
        assert!(matches!(classify(&long), Err(Error::InvalidChannelId)));
        assert_eq!(dm_channel("b", "a"), "dm:a:b");
        assert_eq!(dm_channel("a", "b"), "dm:a:b");
    }

    #[test]
    fn members_leave_in_constant_time_and_keep_their_groups() {
        let mut c = Channel::default();
        let at = |shard, slot| SessionRef {
            shard,
            slot,
            gen: slot as u64,
        };
        for i in 0..10 {
            c.add(at(i % 3, i), if i % 2 == 0 { "even" } else { "odd" });
        }
        c.add(at(0, 0), "even");
        assert_eq!(c.len(), 10);
        c.remove(at(0, 0));
        c.remove(at(0, 0));
        c.remove(at(1, 4));
        assert_eq!(c.len(), 8);
        for (shard, group) in c.by_shard.iter().enumerate() {
            for (i, s) in group.iter().enumerate() {
                assert_eq!(s.shard, shard);
                assert_eq!(c.at[s].0, i);
            }
        }
        // Slots 2, 6, 8 are left of "even" (0 and 4 are gone).
        let mut evens: Vec<usize> = c.sessions_of("even").iter().map(|s| s.slot).collect();
        evens.sort_unstable();
        assert_eq!(evens, [2, 6, 8]);
    }
}
