//! The ops plane on PostgreSQL.

use tokio_postgres::Row;

use super::{
    like_pattern, sort_column, AuditEntry, Ban, BoardSummary, ChatListQuery, MatchListQuery,
    NotificationListQuery, Ops, PlayerListQuery, CHAT_SORTS, MATCH_SORTS, NOTIFICATION_SORTS,
    PLAYER_SORTS,
};
use crate::accounts::postgres::read_player;
use crate::accounts::PLAYER_COLUMNS;
use crate::backend::Reply;
use crate::matches::postgres::read_match;
use crate::matches::MATCH_COLUMNS;
use crate::postgres::{op, Fail, PgBackend};
use crate::social::postgres::{chat_of, notification_of, CHAT_COLUMNS, NOTIFICATION_COLUMNS};
use crate::{ChatMessage, MatchRecord, Notification, Player};

fn read_audit(r: &Row) -> Result<AuditEntry, Fail> {
    Ok(AuditEntry {
        id: r.try_get(0)?,
        actor: r.try_get(1)?,
        action: r.try_get(2)?,
        target_id: r.try_get(3)?,
        outcome: r.try_get(4)?,
        details: r.try_get(5)?,
        occurred_at: r.try_get(6)?,
    })
}

impl Ops for PgBackend {
    fn ops_players(&self, q: PlayerListQuery) -> Reply<'_, (Vec<Player>, u64)> {
        op(async move {
            let column = sort_column(PLAYER_SORTS, &q.page.sort)?;
            let pattern = q.page.q.as_deref().map(like_pattern);
            let filter = "p.erased_at IS NULL AND ($1::BOOLEAN IS NULL OR p.is_guest = $1) \
                 AND ($2::TEXT IS NULL OR lower(p.username) LIKE $2 ESCAPE '\\' \
                      OR lower(coalesce(p.display_name, '')) LIKE $2 ESCAPE '\\')";
            let client = self.client().await?;
            let total: i64 = client
                .query_one(
                    &format!("SELECT count(*) FROM players p WHERE {filter}"),
                    &[&q.guest, &pattern],
                )
                .await?
                .try_get(0)?;
            let sql = format!(
                "SELECT {PLAYER_COLUMNS} FROM players p WHERE {filter} \
                 ORDER BY p.{column} {o}, p.id {o} LIMIT $3::BIGINT OFFSET $4::BIGINT",
                o = q.page.order.sql()
            );
            let (limit, offset) = (i64::from(q.page.limit), i64::from(q.page.offset));
            let rows = client
                .query(&sql, &[&q.guest, &pattern, &limit, &offset])
                .await?;
            let players = rows.iter().map(read_player).collect::<Result<_, _>>()?;
            Ok((players, total.max(0) as u64))
        })
    }

    fn ops_matches(&self, q: MatchListQuery) -> Reply<'_, (Vec<MatchRecord>, u64)> {
        op(async move {
            let column = sort_column(MATCH_SORTS, &q.page.sort)?;
            let pattern = q.page.q.as_deref().map(like_pattern);
            let filter =
                "($1::TEXT IS NULL OR m.mode = $1) AND ($2::TEXT IS NULL OR m.status = $2) \
                 AND ($3::TEXT IS NULL OR lower(m.mode) LIKE $3 ESCAPE '\\')";
            let client = self.client().await?;
            let total: i64 = client
                .query_one(
                    &format!("SELECT count(*) FROM match_records m WHERE {filter}"),
                    &[&q.mode, &q.status, &pattern],
                )
                .await?
                .try_get(0)?;
            let sql = format!(
                "SELECT {MATCH_COLUMNS} FROM match_records m WHERE {filter} \
                 ORDER BY m.{column} {o}, m.id {o} LIMIT $4::BIGINT OFFSET $5::BIGINT",
                o = q.page.order.sql()
            );
            let (limit, offset) = (i64::from(q.page.limit), i64::from(q.page.offset));
            let rows = client
                .query(&sql, &[&q.mode, &q.status, &pattern, &limit, &offset])
                .await?;
            let records = rows.iter().map(read_match).collect::<Result<_, _>>()?;
            Ok((records, total.max(0) as u64))
        })
    }

    fn ban_player(&self, b: Ban) -> Reply<'_, ()> {
        op(async move {
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO player_bans (player_id, reason, banned_by, banned_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (player_id) DO UPDATE SET \
                     reason = excluded.reason, banned_by = excluded.banned_by, banned_at = excluded.banned_at",
                    &[&b.player_id, &b.reason, &b.banned_by, &b.banned_at],
                )
                .await?;
            Ok(())
        })
    }

    fn unban_player(&self, player_id: String) -> Reply<'_, bool> {
        op(async move {
            let client = self.client().await?;
            let n = client
                .execute(
                    "DELETE FROM player_bans WHERE player_id = $1",
                    &[&player_id],
                )
                .await?;
            Ok(n > 0)
        })
    }

    fn bans(&self) -> Reply<'_, Vec<Ban>> {
        op(async move {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT player_id, reason, banned_by, banned_at FROM player_bans \
                     ORDER BY banned_at, player_id",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(Ban {
                        player_id: r.try_get(0)?,
                        reason: r.try_get(1)?,
                        banned_by: r.try_get(2)?,
                        banned_at: r.try_get(3)?,
                    })
                })
                .collect()
        })
    }

    fn append_audit(&self, e: AuditEntry) -> Reply<'_, ()> {
        op(async move {
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO ops_audit_entries (id, actor, action, target_id, outcome, details, occurred_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[&e.id, &e.actor, &e.action, &e.target_id, &e.outcome, &e.details, &e.occurred_at],
                )
                .await?;
            Ok(())
        })
    }

    fn audit_for(&self, target_id: String, limit: u32) -> Reply<'_, Vec<AuditEntry>> {
        op(async move {
            let client = self.client().await?;
            let limit = i64::from(limit);
            let rows = client
                .query(
                    "SELECT id, actor, action, target_id, outcome, details, occurred_at \
                     FROM ops_audit_entries WHERE target_id = $1 \
                     ORDER BY occurred_at DESC, id DESC LIMIT $2::BIGINT",
                    &[&target_id, &limit],
                )
                .await?;
            rows.iter().map(read_audit).collect()
        })
    }

    fn unclaimed_guests(&self, cutoff_ms: i64, limit: u32) -> Reply<'_, (u64, Vec<String>)> {
        op(async move {
            let filter = super::UNCLAIMED_GUESTS.replace("{cutoff}", "$1");
            let client = self.client().await?;
            let total: i64 = client
                .query_one(
                    &format!("SELECT count(*) FROM players p WHERE {filter}"),
                    &[&cutoff_ms],
                )
                .await?
                .try_get(0)?;
            let limit = i64::from(limit);
            let rows = client
                .query(
                    &format!("SELECT p.id FROM players p WHERE {filter} ORDER BY p.updated_at, p.id LIMIT $2::BIGINT"),
                    &[&cutoff_ms, &limit],
                )
                .await?;
            let ids = rows
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            Ok((total.max(0) as u64, ids))
        })
    }

    fn board_summaries(&self) -> Reply<'_, Vec<BoardSummary>> {
        op(async move {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT board_id, count(*), max(score), max(updated_at) FROM leaderboard_entries \
                     GROUP BY board_id ORDER BY count(*) DESC, board_id",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(BoardSummary {
                        board_id: r.try_get(0)?,
                        entries: r.try_get(1)?,
                        top_score: r.try_get(2)?,
                        updated_at: r.try_get(3)?,
                    })
                })
                .collect()
        })
    }

    fn ops_notifications(&self, q: NotificationListQuery) -> Reply<'_, (Vec<Notification>, u64)> {
        op(async move {
            let column = sort_column(NOTIFICATION_SORTS, &q.page.sort)?;
            let pattern = q.page.q.as_deref().map(like_pattern);
            let read = q.read.map(i32::from);
            // A plain equality when filtering by recipient, so the (player_id, sent_at) index
            // serves it.
            let by_player = if q.player_id.is_some() {
                "player_id = $1::TEXT"
            } else {
                "$1::TEXT IS NULL"
            };
            let filter = format!(
                "{by_player} AND ($2::TEXT IS NULL OR type = $2) \
                 AND ($3::INTEGER IS NULL OR read = $3) \
                 AND ($4::TEXT IS NULL OR lower(subject) LIKE $4 ESCAPE '\\')"
            );
            let client = self.client().await?;
            let total: i64 = client
                .query_one(
                    &format!("SELECT count(*) FROM notifications WHERE {filter}"),
                    &[&q.player_id, &q.kind, &read, &pattern],
                )
                .await?
                .try_get(0)?;
            let sql = format!(
                "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE {filter} \
                 ORDER BY {column} {o}, id {o} LIMIT $5::BIGINT OFFSET $6::BIGINT",
                o = q.page.order.sql()
            );
            let (limit, offset) = (i64::from(q.page.limit), i64::from(q.page.offset));
            let rows = client
                .query(
                    &sql,
                    &[&q.player_id, &q.kind, &read, &pattern, &limit, &offset],
                )
                .await?;
            let out = rows.iter().map(notification_of).collect::<Result<_, _>>()?;
            Ok((out, total.max(0) as u64))
        })
    }

    fn ops_chat_messages(&self, q: ChatListQuery) -> Reply<'_, (Vec<ChatMessage>, u64)> {
        op(async move {
            let column = sort_column(CHAT_SORTS, &q.page.sort)?;
            let pattern = q.page.q.as_deref().map(like_pattern);
            let filter = "channel_id = $1 AND ($2::TEXT IS NULL OR sender_id = $2) \
                 AND ($3::TEXT IS NULL OR channel_type = $3) \
                 AND ($4::TEXT IS NULL OR lower(content) LIKE $4 ESCAPE '\\')";
            let client = self.client().await?;
            let total: i64 = client
                .query_one(
                    &format!("SELECT count(*) FROM chat_messages WHERE {filter}"),
                    &[&q.channel_id, &q.sender_id, &q.channel_type, &pattern],
                )
                .await?
                .try_get(0)?;
            let sql = format!(
                "SELECT {CHAT_COLUMNS} FROM chat_messages WHERE {filter} \
                 ORDER BY {column} {o}, id {o} LIMIT $5::BIGINT OFFSET $6::BIGINT",
                o = q.page.order.sql()
            );
            let (limit, offset) = (i64::from(q.page.limit), i64::from(q.page.offset));
            let rows = client
                .query(
                    &sql,
                    &[
                        &q.channel_id,
                        &q.sender_id,
                        &q.channel_type,
                        &pattern,
                        &limit,
                        &offset,
                    ],
                )
                .await?;
            let out = rows.iter().map(chat_of).collect::<Result<_, _>>()?;
            Ok((out, total.max(0) as u64))
        })
    }
}
