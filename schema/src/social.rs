//! Wire types of chat, direct messages, presence, friends, groups and notifications: the
//! bodies and WebSocket payloads the server reads, and the pushes it writes. Field names are
//! asobi's. Stored rows (friendships, groups, notifications, history) are answered in their
//! storage shape.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `chat.join` / `chat.leave`.
#[derive(Debug, Deserialize)]
pub struct ChatChannel {
    /// The channel (`global:<name>`, `room:<group id>`, `dm:<a>:<b>`, `world:<id>`, ...).
    pub channel_id: String,
}

/// `chat.joined` / `chat.left` (and `dm.sent`).
#[derive(Debug, Serialize)]
pub struct ChannelReply<'a> {
    /// The channel.
    pub channel_id: &'a str,
}

/// `chat.send`.
#[derive(Debug, Deserialize)]
pub struct ChatSend {
    /// The channel.
    pub channel_id: String,
    /// The text; kept raw so a non-string is refused with a clear error.
    pub content: Value,
}

/// `chat.message` and `dm.message` pushes.
#[derive(Debug, Serialize)]
pub struct ChatMessageOut<'a> {
    /// The channel.
    pub channel_id: &'a str,
    /// Who sent it.
    pub sender_id: &'a str,
    /// The text.
    pub content: &'a str,
    /// Sent, unix ms.
    pub sent_at: i64,
}

/// `dm.send` and `POST /api/v1/dm`.
#[derive(Debug, Deserialize)]
pub struct DmSend {
    /// The recipient.
    pub recipient_id: String,
    /// The text.
    pub content: Value,
}

/// `presence.update`.
#[derive(Debug, Deserialize)]
pub struct PresenceUpdate {
    /// Any short status (`online`, `away`, `in_match`, ...); `online` when absent.
    #[serde(default)]
    pub status: Option<String>,
}

/// `presence.updated`: the reply to the player who set it (`player_id` absent), and the push
/// to each online friend (`player_id` names whose status changed).
#[derive(Debug, Serialize)]
pub struct PresenceUpdated<'a> {
    /// Whose status; absent in the reply to the player themselves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub player_id: Option<&'a str>,
    /// The status (`offline` when their last session closed).
    pub status: &'a str,
}

/// `PUT /api/v1/friends/:friend_id`.
#[derive(Debug, Deserialize)]
pub struct FriendUpdate {
    /// `accepted`, `rejected` or `blocked` (also `accept`, `reject`, `block`).
    pub status: String,
}

/// `POST /api/v1/groups`.
#[derive(Debug, Deserialize)]
pub struct GroupCreate {
    /// 2–64 characters.
    pub name: Value,
    /// Up to 1024 characters.
    #[serde(default)]
    pub description: Option<Value>,
    /// Default 50.
    #[serde(default)]
    pub max_members: Option<Value>,
    /// Default false (closed).
    #[serde(default)]
    pub open: Option<Value>,
}

/// `PUT /api/v1/groups/:id/members/:player_id/role`.
#[derive(Debug, Deserialize)]
pub struct RoleUpdate {
    /// `admin`, `moderator` or `member`.
    pub role: String,
}
