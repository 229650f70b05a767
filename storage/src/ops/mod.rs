//! The ops plane's reads and writes: paged player and match lists with totals (asobi's
//! `{data, page}` lists), player bans, the operator audit trail, and board summaries.
//!
//! Sort columns arrive as names; each list has an allowlist here, so nothing a caller sends is
//! ever formatted into SQL. Search is a case-insensitive substring match with `%` and `_`
//! matched literally.

mod postgres;
mod sqlite;

use serde::Serialize;

use crate::backend::Reply;
use crate::handle::wall_clock_ms;
use crate::{ChatMessage, MatchRecord, Notification, Player, StoreError, StoreHandle};

/// Which players a guest purge selects (both backends run the same text).
pub(crate) const UNCLAIMED_GUESTS: &str =
    "p.is_guest AND p.erased_at IS NULL AND p.updated_at <= {cutoff} \
     AND NOT EXISTS (SELECT 1 FROM player_credentials c WHERE c.player_id = p.id)";

/// Most rows one ops page returns (asobi clamps `limit` to 1–200).
pub const MAX_OPS_PAGE: u32 = 200;

/// Sort direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

impl Order {
    fn sql(self) -> &'static str {
        match self {
            Order::Asc => "ASC",
            Order::Desc => "DESC",
        }
    }
}

/// One page of an ops list.
#[derive(Clone, Debug)]
pub struct OpsPage {
    /// Rows per page, clamped to `1..=MAX_OPS_PAGE`.
    pub limit: u32,
    /// Rows skipped.
    pub offset: u32,
    /// Column to sort by (checked against the list's allowlist).
    pub sort: String,
    /// Direction.
    pub order: Order,
    /// Case-insensitive substring search, if any.
    pub q: Option<String>,
}

/// Filters of the player list.
#[derive(Clone, Debug)]
pub struct PlayerListQuery {
    /// Paging, sort and search (username and display name).
    pub page: OpsPage,
    /// `Some(true)`: only guests; `Some(false)`: only non-guests.
    pub guest: Option<bool>,
}

/// Filters of the match-record list.
#[derive(Clone, Debug)]
pub struct MatchListQuery {
    /// Paging, sort and search (mode).
    pub page: OpsPage,
    /// Only this mode.
    pub mode: Option<String>,
    /// Only this status.
    pub status: Option<String>,
}

/// Filters of the sent-notification list (asobi's `ops/notifications`).
#[derive(Clone, Debug)]
pub struct NotificationListQuery {
    /// Paging, sort and search (subject).
    pub page: OpsPage,
    /// Only this recipient.
    pub player_id: Option<String>,
    /// Only this type.
    pub kind: Option<String>,
    /// Only read (`true`) or unread (`false`) ones.
    pub read: Option<bool>,
}

/// Filters of one chat channel's persisted history (asobi's `ops/chat/channels/:id/messages`).
#[derive(Clone, Debug)]
pub struct ChatListQuery {
    /// Paging, sort and search (message content).
    pub page: OpsPage,
    /// The channel.
    pub channel_id: String,
    /// Only this sender.
    pub sender_id: Option<String>,
    /// Only this channel type.
    pub channel_type: Option<String>,
}

/// A banned player.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ban {
    /// Who is banned.
    pub player_id: String,
    /// Why, as the operator wrote it.
    pub reason: String,
    /// The operator's label.
    pub banned_by: String,
    /// Unix milliseconds.
    pub banned_at: i64,
}

/// One row of the audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// UUIDv7.
    pub id: String,
    /// The operator's label.
    pub actor: String,
    /// What was done (`player.ban`, `wallet.grant`, ...).
    pub action: String,
    /// Who or what it was done to.
    pub target_id: Option<String>,
    /// `ok` or `error`.
    pub outcome: String,
    /// JSON object text with the action's parameters.
    pub details: String,
    /// Unix milliseconds.
    pub occurred_at: i64,
}

/// A leaderboard as the ops list shows it: its persisted size and best score.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BoardSummary {
    /// Board id.
    pub board_id: String,
    /// Persisted entries.
    pub entries: i64,
    /// Highest persisted score.
    pub top_score: i64,
    /// Newest persisted change, unix milliseconds.
    pub updated_at: i64,
}

pub(crate) const PLAYER_SORTS: &[(&str, &str)] = &[
    ("id", "id"),
    ("username", "username"),
    ("display_name", "display_name"),
    ("inserted_at", "created_at"),
    ("updated_at", "updated_at"),
];

pub(crate) const MATCH_SORTS: &[(&str, &str)] = &[
    ("id", "id"),
    ("mode", "mode"),
    ("status", "status"),
    ("started_at", "started_at"),
    ("finished_at", "finished_at"),
    ("inserted_at", "finished_at"),
];

pub(crate) const NOTIFICATION_SORTS: &[(&str, &str)] = &[
    ("id", "id"),
    ("player_id", "player_id"),
    ("type", "type"),
    ("subject", "subject"),
    ("read", "read"),
    ("sent_at", "sent_at"),
];

pub(crate) const CHAT_SORTS: &[(&str, &str)] = &[
    ("id", "id"),
    ("channel_type", "channel_type"),
    ("sender_id", "sender_id"),
    ("sent_at", "sent_at"),
];

/// The SQL column of an allowed sort name.
pub(crate) fn sort_column(
    allowed: &[(&str, &'static str)],
    name: &str,
) -> Result<&'static str, StoreError> {
    allowed
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
        .ok_or_else(|| StoreError::Precondition(format!("cannot sort by {name}")))
}

/// `%term%` with `%`, `_` and `\` escaped for `LIKE ... ESCAPE '\'`, lower-cased.
pub(crate) fn like_pattern(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 2);
    out.push('%');
    for c in q.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

fn clamp(page: &mut OpsPage) {
    page.limit = page.limit.clamp(1, MAX_OPS_PAGE);
}

/// The ops operations one database implements.
pub(crate) trait Ops: Send + Sync {
    fn ops_players(&self, q: PlayerListQuery) -> Reply<'_, (Vec<Player>, u64)>;
    fn ops_matches(&self, q: MatchListQuery) -> Reply<'_, (Vec<MatchRecord>, u64)>;
    fn ban_player(&self, ban: Ban) -> Reply<'_, ()>;
    fn unban_player(&self, player_id: String) -> Reply<'_, bool>;
    fn bans(&self) -> Reply<'_, Vec<Ban>>;
    fn append_audit(&self, e: AuditEntry) -> Reply<'_, ()>;
    fn audit_for(&self, target_id: String, limit: u32) -> Reply<'_, Vec<AuditEntry>>;
    fn board_summaries(&self) -> Reply<'_, Vec<BoardSummary>>;
    fn unclaimed_guests(&self, cutoff_ms: i64, limit: u32) -> Reply<'_, (u64, Vec<String>)>;
    fn ops_notifications(&self, q: NotificationListQuery) -> Reply<'_, (Vec<Notification>, u64)>;
    fn ops_chat_messages(&self, q: ChatListQuery) -> Reply<'_, (Vec<ChatMessage>, u64)>;
}

impl StoreHandle {
    /// A page of players (erased ones excluded) and how many match in all.
    /// [`StoreError::Precondition`] for a sort the list does not allow.
    pub async fn ops_players(
        &self,
        mut q: PlayerListQuery,
    ) -> Result<(Vec<Player>, u64), StoreError> {
        clamp(&mut q.page);
        sort_column(PLAYER_SORTS, &q.page.sort)?;
        self.call(move |db| db.ops_players(q)).await
    }

    /// A page of match records and how many match in all.
    /// [`StoreError::Precondition`] for a sort the list does not allow.
    pub async fn ops_matches(
        &self,
        mut q: MatchListQuery,
    ) -> Result<(Vec<MatchRecord>, u64), StoreError> {
        clamp(&mut q.page);
        sort_column(MATCH_SORTS, &q.page.sort)?;
        self.call(move |db| db.ops_matches(q)).await
    }

    /// Bans a player (a second ban replaces the first's reason and operator).
    pub async fn ban_player(&self, ban: Ban) -> Result<(), StoreError> {
        self.call(move |db| db.ban_player(ban)).await
    }

    /// Lifts a ban; false when the player was not banned.
    pub async fn unban_player(&self, player_id: &str) -> Result<bool, StoreError> {
        let id = player_id.to_owned();
        self.call(move |db| db.unban_player(id)).await
    }

    /// Every ban, oldest first (loaded at start-up into the engine's ban list).
    pub async fn bans(&self) -> Result<Vec<Ban>, StoreError> {
        self.call(|db| db.bans()).await
    }

    /// Appends one audit row with a fresh id and the current time.
    pub async fn append_audit(
        &self,
        actor: &str,
        action: &str,
        target_id: Option<&str>,
        outcome: &str,
        details: serde_json::Value,
    ) -> Result<(), StoreError> {
        let e = AuditEntry {
            id: uuid::Uuid::now_v7().to_string(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target_id: target_id.map(str::to_owned),
            outcome: outcome.to_owned(),
            details: details.to_string(),
            occurred_at: wall_clock_ms(),
        };
        self.call(move |db| db.append_audit(e)).await
    }

    /// The newest audit rows about one target, newest first.
    pub async fn audit_for(
        &self,
        target_id: &str,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let id = target_id.to_owned();
        let limit = limit.clamp(1, MAX_OPS_PAGE);
        self.call(move |db| db.audit_for(id, limit)).await
    }

    /// Unclaimed guests (guest, not erased, no password) untouched since `cutoff_ms`: how many
    /// there are, and the ids of the oldest `limit` of them.
    pub async fn unclaimed_guests(
        &self,
        cutoff_ms: i64,
        limit: u32,
    ) -> Result<(u64, Vec<String>), StoreError> {
        self.call(move |db| db.unclaimed_guests(cutoff_ms, limit))
            .await
    }

    /// A page of sent notifications, every player's, and how many match in all.
    /// [`StoreError::Precondition`] for a sort the list does not allow.
    pub async fn ops_notifications(
        &self,
        mut q: NotificationListQuery,
    ) -> Result<(Vec<Notification>, u64), StoreError> {
        clamp(&mut q.page);
        sort_column(NOTIFICATION_SORTS, &q.page.sort)?;
        self.call(move |db| db.ops_notifications(q)).await
    }

    /// A page of one channel's persisted messages and how many match in all.
    /// [`StoreError::Precondition`] for a sort the list does not allow.
    pub async fn ops_chat_messages(
        &self,
        mut q: ChatListQuery,
    ) -> Result<(Vec<ChatMessage>, u64), StoreError> {
        clamp(&mut q.page);
        sort_column(CHAT_SORTS, &q.page.sort)?;
        self.call(move |db| db.ops_chat_messages(q)).await
    }

    /// Every persisted board with its size, best score and newest change.
    pub async fn board_summaries(&self) -> Result<Vec<BoardSummary>, StoreError> {
        self.call(|db| db.board_summaries()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_match_wildcards_literally() {
        assert_eq!(like_pattern("Ka_i%"), "%ka\\_i\\%%");
        assert_eq!(like_pattern("a\\b"), "%a\\\\b%");
    }

    #[test]
    fn only_listed_sorts_are_accepted() {
        assert_eq!(sort_column(PLAYER_SORTS, "inserted_at"), Ok("created_at"));
        assert!(sort_column(PLAYER_SORTS, "id; DROP TABLE players").is_err());
    }
}
