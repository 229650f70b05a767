//! Social: chat channels, direct messages, presence, notifications, friends and groups.
//!
//! Where state lives:
//! - A chat channel lives on `owner(channel)`: its member list (session addresses), and the
//!   write-behind queue of its history. A message is encoded once there and fanned out as one
//!   mesh message per shard that has members, each shard writing the same buffer to its local
//!   sockets (`chat.rs`).
//! - A player's presence (sessions, status) lives on `owner(player)` (`presence.rs`); the
//!   registry stays what it is, the index of where a player's sessions are.
//! - Friends, groups and notifications are database rows: every operation is a storage call
//!   whose transaction is the truth (`friends.rs`, `groups.rs`, `notify.rs`).
//!
//! REST (`rest.rs`), WebSocket (`ws.rs`) and Lua (`script.rs`) call the same functions here,
//! so validation and errors happen once.

pub(crate) mod chat;
pub(crate) mod cmd;
pub(crate) mod error;
pub(crate) mod friends;
pub(crate) mod groups;
pub(crate) mod notify;
pub(crate) mod presence;
pub(crate) mod rest;
pub(crate) mod script;
#[cfg(test)]
mod sim_tests;
pub(crate) mod ws;

use std::cell::RefCell;
use std::rc::Rc;

use asobi_rules::social::SenderLimits;

use super::Shard;

pub(crate) use chat::Channels;
pub(crate) use presence::Presence;

/// Direct messages one player may send per second through this shard (REST and every socket
/// together). asobi has no such cap; ten a second is far above any person typing, and stops a
/// script from flooding another player's socket and the history table.
pub(crate) const DM_PER_SECOND: u32 = 10;
/// Players whose DM budget one shard tracks at once (idle ones are forgotten first).
const MAX_DM_SENDERS: usize = 100_000;

/// This shard's part of the social service.
pub(crate) struct Social {
    pub(crate) channels: Channels,
    pub(crate) presence: Presence,
    pub(crate) dm_limits: RefCell<SenderLimits>,
}

impl Default for Social {
    fn default() -> Self {
        Social {
            channels: Channels::default(),
            presence: Presence::default(),
            dm_limits: RefCell::new(SenderLimits::new(DM_PER_SECOND, MAX_DM_SENDERS)),
        }
    }
}

/// The social timers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timer {
    /// Write queued chat history.
    FlushHistory,
}

pub(crate) fn on_timer(shard: &Rc<Shard>, t: Timer) {
    match t {
        Timer::FlushHistory => chat::on_flush_timer(shard),
    }
}

/// The shard that owns a channel or a player's presence.
pub(crate) fn owner(shard: &Shard, key: &str) -> usize {
    asobi_rules::placement::owner(key, shard.rt.nshards())
}

/// Wall-clock unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    crate::services::accounts::tokens::now_ms()
}
