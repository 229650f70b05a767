//! Social: friendships, groups and their members, notifications and chat history.
//!
//! Types, the [`Social`] trait both backends implement (`sqlite.rs`, `postgres.rs`) and the
//! [`StoreHandle`] methods that ship each call to the bridge. Rules about who may do what (roles,
//! blocks, channel access) live in the engine; what must be atomic lives here: a group is
//! created together with its owner's membership, and a join checks "open" and "not full" in
//! the same transaction that inserts the member.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use serde::Serialize;
use serde_json::Value;

use crate::backend::Reply;
use crate::{StoreError, StoreHandle};

/// Largest page any social list returns.
pub const MAX_SOCIAL_LIST: u32 = 200;

/// One direction of a friendship.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Friendship {
    /// Row id.
    pub id: String,
    /// Who asked, or who blocked.
    pub player_id: String,
    /// The other player.
    pub friend_id: String,
    /// `pending`, `accepted` or `blocked`.
    pub status: String,
    /// Created, unix ms.
    pub inserted_at: i64,
    /// Last change, unix ms.
    pub updated_at: i64,
}

/// A group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Group {
    /// Group id (a UUID).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// Most members it may hold.
    pub max_members: i64,
    /// Anyone may join an open group; a closed one needs an invite.
    pub open: bool,
    /// Who created it.
    pub creator_id: String,
    /// Free-form JSON object.
    pub metadata: Value,
    /// Created, unix ms.
    pub inserted_at: i64,
    /// Last change, unix ms.
    pub updated_at: i64,
}

/// What an update of a group changes; `None` keeps a field.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupPatch {
    /// New name.
    pub name: Option<String>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// New member cap.
    pub max_members: Option<i64>,
    /// Open or closed.
    pub open: Option<bool>,
}

/// One member of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupMember {
    /// The group.
    pub group_id: String,
    /// The member.
    pub player_id: String,
    /// `owner`, `admin`, `moderator` or `member`.
    pub role: String,
    /// Joined, unix ms.
    pub joined_at: i64,
}

/// How a join ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoinOutcome {
    /// The player is now a member.
    Joined(GroupMember),
    /// No group with this id.
    NotFound,
    /// The group is closed.
    Closed,
    /// The group holds `max_members` already.
    Full,
    /// The player was a member already.
    AlreadyMember,
}

/// A notification.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notification {
    /// Notification id.
    pub id: String,
    /// Recipient.
    pub player_id: String,
    /// Kind, chosen by the sender (`friend_request`, `reward`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short subject line.
    pub subject: String,
    /// Free-form JSON content.
    pub content: Value,
    /// Marked read by the player.
    pub read: bool,
    /// Sent, unix ms.
    pub sent_at: i64,
}

/// One chat message, as kept for history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// Message id.
    pub id: String,
    /// The channel (`room:<group>`, `dm:<a>:<b>`, ...).
    pub channel_id: String,
    /// The channel's prefix without the colon (`room`, `dm`, `global`, ...).
    pub channel_type: String,
    /// Who sent it.
    pub sender_id: String,
    /// The text.
    pub content: String,
    /// Sent, unix ms.
    pub sent_at: i64,
}

/// The social operations one database implements.
pub(crate) trait Social: Send + Sync {
    fn friendship(&self, player: String, friend: String) -> Reply<'_, Option<Friendship>>;
    fn request_friend(&self, row: Friendship) -> Reply<'_, (Friendship, bool)>;
    fn put_friendship(&self, row: Friendship) -> Reply<'_, Friendship>;
    fn delete_friendship(&self, player: String, friend: String) -> Reply<'_, bool>;
    fn friends(
        &self,
        player: String,
        status: Option<String>,
        limit: u32,
    ) -> Reply<'_, Vec<Friendship>>;
    fn accepted_friend_ids(&self, player: String) -> Reply<'_, Vec<String>>;
    fn create_group(&self, group: Group) -> Reply<'_, ()>;
    fn group(&self, id: String) -> Reply<'_, Option<Group>>;
    fn update_group(&self, id: String, patch: GroupPatch, now_ms: i64) -> Reply<'_, Option<Group>>;
    fn join_group(&self, group: String, player: String, now_ms: i64) -> Reply<'_, JoinOutcome>;
    fn remove_member(&self, group: String, player: String) -> Reply<'_, bool>;
    fn member(&self, group: String, player: String) -> Reply<'_, Option<GroupMember>>;
    fn members(&self, group: String, limit: u32) -> Reply<'_, Vec<GroupMember>>;
    fn set_role(
        &self,
        group: String,
        player: String,
        role: String,
    ) -> Reply<'_, Option<GroupMember>>;
    fn insert_notifications(&self, rows: Vec<(Notification, bool)>) -> Reply<'_, ()>;
    fn notifications(
        &self,
        player: String,
        read: Option<bool>,
        limit: u32,
    ) -> Reply<'_, Vec<Notification>>;
    fn notification(&self, id: String) -> Reply<'_, Option<Notification>>;
    fn mark_notification_read(&self, id: String) -> Reply<'_, Option<Notification>>;
    fn delete_notification(&self, id: String) -> Reply<'_, bool>;
    fn undelivered_notifications(&self, player: String, limit: u32)
        -> Reply<'_, Vec<Notification>>;
    fn mark_delivered(&self, ids: Vec<String>) -> Reply<'_, ()>;
    fn save_chat_messages(&self, rows: Vec<ChatMessage>) -> Reply<'_, ()>;
    fn chat_history(&self, channel: String, limit: u32) -> Reply<'_, Vec<ChatMessage>>;
}

/// A fresh row id.
pub fn new_social_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn clamp(limit: u32) -> u32 {
    limit.clamp(1, MAX_SOCIAL_LIST)
}

impl StoreHandle {
    /// The row `player` → `friend`, if any.
    pub async fn friendship(
        &self,
        player: &str,
        friend: &str,
    ) -> Result<Option<Friendship>, StoreError> {
        let (p, f) = (player.to_owned(), friend.to_owned());
        self.call(move |db| db.friendship(p, f)).await
    }

    /// Inserts `row` unless a row for its pair exists; answers the row kept and whether it is
    /// new.
    pub async fn request_friend(&self, row: Friendship) -> Result<(Friendship, bool), StoreError> {
        self.call(move |db| db.request_friend(row)).await
    }

    /// Inserts or replaces the row of `row`'s pair (its id and `inserted_at` are kept when one
    /// exists).
    pub async fn put_friendship(&self, row: Friendship) -> Result<Friendship, StoreError> {
        self.call(move |db| db.put_friendship(row)).await
    }

    /// Deletes the row `player` → `friend`; true when there was one.
    pub async fn delete_friendship(&self, player: &str, friend: &str) -> Result<bool, StoreError> {
        let (p, f) = (player.to_owned(), friend.to_owned());
        self.call(move |db| db.delete_friendship(p, f)).await
    }

    /// Rows `player` → anyone, optionally of one status, newest first, at most `limit` (1–200).
    pub async fn friends(
        &self,
        player: &str,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Friendship>, StoreError> {
        let (p, s, l) = (player.to_owned(), status.map(str::to_owned), clamp(limit));
        self.call(move |db| db.friends(p, s, l)).await
    }

    /// Everyone with an accepted friendship with `player`, in either direction.
    pub async fn accepted_friend_ids(&self, player: &str) -> Result<Vec<String>, StoreError> {
        let p = player.to_owned();
        self.call(move |db| db.accepted_friend_ids(p)).await
    }

    /// Creates a group and makes its creator the owner, in one transaction.
    pub async fn create_group(&self, group: Group) -> Result<(), StoreError> {
        self.call(move |db| db.create_group(group)).await
    }

    /// One group.
    pub async fn group(&self, id: &str) -> Result<Option<Group>, StoreError> {
        let id = id.to_owned();
        self.call(move |db| db.group(id)).await
    }

    /// Applies a patch; `None` when there is no such group.
    pub async fn update_group(
        &self,
        id: &str,
        patch: GroupPatch,
        now_ms: i64,
    ) -> Result<Option<Group>, StoreError> {
        let id = id.to_owned();
        self.call(move |db| db.update_group(id, patch, now_ms))
            .await
    }

    /// Joins an open group that has room, as `member`, in one transaction.
    pub async fn join_group(
        &self,
        group: &str,
        player: &str,
        now_ms: i64,
    ) -> Result<JoinOutcome, StoreError> {
        let (g, p) = (group.to_owned(), player.to_owned());
        self.call(move |db| db.join_group(g, p, now_ms)).await
    }

    /// Removes a member; true when they were one.
    pub async fn remove_member(&self, group: &str, player: &str) -> Result<bool, StoreError> {
        let (g, p) = (group.to_owned(), player.to_owned());
        self.call(move |db| db.remove_member(g, p)).await
    }

    /// One member of a group.
    pub async fn member(
        &self,
        group: &str,
        player: &str,
    ) -> Result<Option<GroupMember>, StoreError> {
        let (g, p) = (group.to_owned(), player.to_owned());
        self.call(move |db| db.member(g, p)).await
    }

    /// A group's members, earliest first, at most `limit` (1–200).
    pub async fn members(&self, group: &str, limit: u32) -> Result<Vec<GroupMember>, StoreError> {
        let (g, l) = (group.to_owned(), clamp(limit));
        self.call(move |db| db.members(g, l)).await
    }

    /// Changes a member's role; `None` when they are not a member.
    pub async fn set_role(
        &self,
        group: &str,
        player: &str,
        role: &str,
    ) -> Result<Option<GroupMember>, StoreError> {
        let (g, p, r) = (group.to_owned(), player.to_owned(), role.to_owned());
        self.call(move |db| db.set_role(g, p, r)).await
    }

    /// Stores notifications in one transaction, each with whether it is being pushed to a live
    /// session now (`true`) or waits for the player's next sign-in (`false`).
    pub async fn insert_notifications(
        &self,
        rows: Vec<(Notification, bool)>,
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.call(move |db| db.insert_notifications(rows)).await
    }

    /// A player's notifications, newest first, optionally only read or unread ones.
    pub async fn notifications(
        &self,
        player: &str,
        read: Option<bool>,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        let (p, l) = (player.to_owned(), clamp(limit));
        self.call(move |db| db.notifications(p, read, l)).await
    }

    /// One notification.
    pub async fn notification(&self, id: &str) -> Result<Option<Notification>, StoreError> {
        let id = id.to_owned();
        self.call(move |db| db.notification(id)).await
    }

    /// Marks a notification read and answers it.
    pub async fn mark_notification_read(
        &self,
        id: &str,
    ) -> Result<Option<Notification>, StoreError> {
        let id = id.to_owned();
        self.call(move |db| db.mark_notification_read(id)).await
    }

    /// Deletes a notification; true when it existed.
    pub async fn delete_notification(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.call(move |db| db.delete_notification(id)).await
    }

    /// Notifications never pushed to a live session, oldest first, at most `limit` (1–200).
    pub async fn undelivered_notifications(
        &self,
        player: &str,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        let (p, l) = (player.to_owned(), clamp(limit));
        self.call(move |db| db.undelivered_notifications(p, l))
            .await
    }

    /// Records that these notifications reached a live session.
    pub async fn mark_delivered(&self, ids: Vec<String>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.call(move |db| db.mark_delivered(ids)).await
    }

    /// Appends chat messages (a write-behind batch); an id stored before is kept as it was.
    pub async fn save_chat_messages(&self, rows: Vec<ChatMessage>) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.call(move |db| db.save_chat_messages(rows)).await
    }

    /// The newest `limit` (1–200) messages of a channel, oldest first.
    pub async fn chat_history(
        &self,
        channel: &str,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let (c, l) = (channel.to_owned(), clamp(limit));
        self.call(move |db| db.chat_history(c, l)).await
    }
}
