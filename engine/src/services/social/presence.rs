//! Presence: which players are online and the status they set, kept on `owner(player)`.
//!
//! A session that signs in or closes tells the owner; the first session makes the player
//! `online`, the last one closing makes them `offline`, and `presence.update` sets any short
//! status in between. Each change is pushed as `presence.updated {player_id, status}` to the
//! player's online friends, encoded once. The registry stays the index of where sessions are;
//! the status lives here.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use asobi_schema::envelope::encode_frame;
use asobi_schema::social::PresenceUpdated;

use super::cmd::Cmd;
use super::error::Error;
use super::owner;
use crate::services::{Cmd as ShardCmd, Shard};
use crate::shard::mesh::{Outbound, SessionRef};
use crate::shard::{overloaded, route};
use crate::wire::Frame;

/// Longest status a player may set.
pub(crate) const MAX_STATUS_BYTES: usize = 64;
/// Sessions remembered per player (as the registry's cap): a player opening sockets in a loop
/// cannot grow this; the oldest is forgotten.
const MAX_SESSIONS_PER_PLAYER: usize = 16;

struct Entry {
    sessions: Vec<SessionRef>,
    status: String,
}

/// The players whose presence this shard owns.
#[derive(Default)]
pub(crate) struct Presence {
    players: RefCell<HashMap<String, Entry>>,
}

impl Presence {
    /// The player's status, when they are online and this shard owns them.
    #[cfg(test)]
    pub(crate) fn status(&self, player: &str) -> Option<String> {
        self.players.borrow().get(player).map(|e| e.status.clone())
    }

    /// Online players this shard owns.
    #[cfg(test)]
    pub(crate) fn online(&self) -> usize {
        self.players.borrow().len()
    }
}

fn tell(shard: &Rc<Shard>, player: &str, cmd: Cmd) -> Result<(), Error> {
    route(shard, owner(shard, player), ShardCmd::Social(cmd))
        .map_err(|_| Error::Overloaded(overloaded()))
}

/// A session of `player` signed in (`up`) or went away.
pub(crate) fn session(shard: &Rc<Shard>, player: &str, session: SessionRef, up: bool) {
    let c = Cmd::Session {
        player: player.to_owned(),
        session,
        up,
    };
    if tell(shard, player, c).is_err() {
        tracing::debug!(up, "presence change dropped: owner overloaded");
    }
}

/// The player sets a status (`online` when none is given).
pub(crate) fn set_status(shard: &Rc<Shard>, player: &str, status: &str) -> Result<(), Error> {
    if status.is_empty() || status.len() > MAX_STATUS_BYTES {
        return Err(Error::InvalidField("status"));
    }
    tell(
        shard,
        player,
        Cmd::Status {
            player: player.to_owned(),
            status: status.to_owned(),
        },
    )
}

pub(super) fn session_here(shard: &Rc<Shard>, player: String, session: SessionRef, up: bool) {
    let mut players = shard.social.presence.players.borrow_mut();
    let changed = if up {
        match players.get_mut(&player) {
            Some(e) => {
                if e.sessions.len() >= MAX_SESSIONS_PER_PLAYER {
                    e.sessions.remove(0);
                }
                e.sessions.push(session);
                None
            }
            None => {
                players.insert(
                    player.clone(),
                    Entry {
                        sessions: vec![session],
                        status: "online".to_owned(),
                    },
                );
                Some("online")
            }
        }
    } else {
        match players.get_mut(&player) {
            Some(e) => {
                e.sessions.retain(|s| *s != session);
                if e.sessions.is_empty() {
                    players.remove(&player);
                    Some("offline")
                } else {
                    None
                }
            }
            None => None,
        }
    };
    drop(players);
    if let Some(status) = changed {
        announce(shard, player, status.to_owned());
    }
}

pub(super) fn status_here(shard: &Rc<Shard>, player: String, status: String) {
    let mut players = shard.social.presence.players.borrow_mut();
    let Some(e) = players.get_mut(&player) else {
        // Not online (its last session already closed): nothing to tell.
        return;
    };
    if e.status == status {
        return;
    }
    e.status = status.clone();
    drop(players);
    announce(shard, player, status);
}

/// Pushes the change to the player's online friends, one shared frame for all of them.
fn announce(shard: &Rc<Shard>, player: String, status: String) {
    let s = shard.clone();
    shard.rt.spawn(async move {
        let friends = match s.ctx.store.accepted_friend_ids(&player).await {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!("presence not announced: {e}");
                return;
            }
        };
        let targets: Vec<SessionRef> = friends
            .iter()
            .filter_map(|f| s.ctx.registry.session_of(f))
            .collect();
        if targets.is_empty() {
            return;
        }
        let bytes = encode_frame(
            "presence.updated",
            None,
            &PresenceUpdated {
                player_id: Some(&player),
                status: &status,
            },
        );
        if let Some(frame) = Frame::json(bytes) {
            s.rt.deliver_all(&targets, &Outbound::Frame(frame));
        }
    });
}
