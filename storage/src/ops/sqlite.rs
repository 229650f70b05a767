//! The ops plane on SQLite.

use rusqlite::{params, Row};

use super::{
    like_pattern, sort_column, AuditEntry, Ban, BoardSummary, ChatListQuery, MatchListQuery,
    NotificationListQuery, Ops, PlayerListQuery, CHAT_SORTS, MATCH_SORTS, NOTIFICATION_SORTS,
    PLAYER_SORTS,
};
use crate::accounts::sqlite::read_player;
use crate::accounts::PLAYER_COLUMNS;
use crate::backend::Reply;
use crate::matches::sqlite::read_match;
use crate::matches::MATCH_COLUMNS;
use crate::social::sqlite::{
    chat_row, finish_notification, notification_row, CHAT_COLUMNS, NOTIFICATION_COLUMNS,
};
use crate::sqlite::{write_tx, Fail, SqliteBackend};
use crate::{ChatMessage, MatchRecord, Notification, Player};

fn read_audit(r: &Row<'_>) -> Result<AuditEntry, Fail> {
    Ok(AuditEntry {
        id: r.get(0)?,
        actor: r.get(1)?,
        action: r.get(2)?,
        target_id: r.get(3)?,
        outcome: r.get(4)?,
        details: r.get(5)?,
        occurred_at: r.get(6)?,
    })
}

impl Ops for SqliteBackend {
    fn ops_players(&self, q: PlayerListQuery) -> Reply<'_, (Vec<Player>, u64)> {
        self.run(move |conn| {
            let column = sort_column(PLAYER_SORTS, &q.page.sort)?;
            let pattern = q.page.q.as_deref().map(like_pattern);
            let filter = "p.erased_at IS NULL AND (?1 IS NULL OR p.is_guest = ?1) \
                 AND (?2 IS NULL OR lower(p.username) LIKE ?2 ESCAPE '\\' \
                      OR lower(coalesce(p.display_name, '')) LIKE ?2 ESCAPE '\\')";
            let total: i64 = conn.query_row(
                &format!("SELECT count(*) FROM players p WHERE {filter}"),
                params![q.guest, pattern],
                |r| r.get(0),
            )?;
            let sql = format!(
                "SELECT {PLAYER_COLUMNS} FROM players p WHERE {filter} \
                 ORDER BY p.{column} {o}, p.id {o} LIMIT ?3 OFFSET ?4",
                o = q.page.order.sql()
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![q.guest, pattern, q.page.limit, q.page.offset])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(read_player(row)?);
            }
            Ok((out, total.max(0) as u64))
        })
    }

    fn ops_matches(&self, q: MatchListQuery) -> Reply<'_, (Vec<MatchRecord>, u64)> {
        self.run(move |conn| {
            let column = sort_column(MATCH_SORTS, &q.page.sort)?;
            let pattern = q.page.q.as_deref().map(like_pattern);
            let filter = "(?1 IS NULL OR m.mode = ?1) AND (?2 IS NULL OR m.status = ?2) \
                 AND (?3 IS NULL OR lower(m.mode) LIKE ?3 ESCAPE '\\')";
            let total: i64 = conn.query_row(
                &format!("SELECT count(*) FROM match_records m WHERE {filter}"),
                params![q.mode, q.status, pattern],
                |r| r.get(0),
            )?;
            let sql = format!(
                "SELECT {MATCH_COLUMNS} FROM match_records m WHERE {filter} \
                 ORDER BY m.{column} {o}, m.id {o} LIMIT ?4 OFFSET ?5",
                o = q.page.order.sql()
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![
                q.mode,
                q.status,
                pattern,
                q.page.limit,
                q.page.offset
            ])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(read_match(row)?);
            }
            Ok((out, total.max(0) as u64))
        })
    }

    fn ban_player(&self, b: Ban) -> Reply<'_, ()> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            tx.execute(
                "INSERT INTO player_bans (player_id, reason, banned_by, banned_at) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (player_id) DO UPDATE SET \
                 reason = excluded.reason, banned_by = excluded.banned_by, banned_at = excluded.banned_at",
                params![b.player_id, b.reason, b.banned_by, b.banned_at],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn unban_player(&self, player_id: String) -> Reply<'_, bool> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let n = tx.execute(
                "DELETE FROM player_bans WHERE player_id = ?1",
                params![player_id],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn bans(&self) -> Reply<'_, Vec<Ban>> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT player_id, reason, banned_by, banned_at FROM player_bans \
                 ORDER BY banned_at, player_id",
            )?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(Ban {
                    player_id: r.get(0)?,
                    reason: r.get(1)?,
                    banned_by: r.get(2)?,
                    banned_at: r.get(3)?,
                });
            }
            Ok(out)
        })
    }

    fn append_audit(&self, e: AuditEntry) -> Reply<'_, ()> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            tx.execute(
                "INSERT INTO ops_audit_entries (id, actor, action, target_id, outcome, details, occurred_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![e.id, e.actor, e.action, e.target_id, e.outcome, e.details, e.occurred_at],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn audit_for(&self, target_id: String, limit: u32) -> Reply<'_, Vec<AuditEntry>> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, actor, action, target_id, outcome, details, occurred_at \
                 FROM ops_audit_entries WHERE target_id = ?1 \
                 ORDER BY occurred_at DESC, id DESC LIMIT ?2",
            )?;
            let mut rows = stmt.query(params![target_id, limit])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(read_audit(r)?);
            }
            Ok(out)
        })
    }

    fn unclaimed_guests(&self, cutoff_ms: i64, limit: u32) -> Reply<'_, (u64, Vec<String>)> {
        self.run(move |conn| {
            let filter = super::UNCLAIMED_GUESTS.replace("{cutoff}", "?1");
            let total: i64 = conn.query_row(
                &format!("SELECT count(*) FROM players p WHERE {filter}"),
                params![cutoff_ms],
                |r| r.get(0),
            )?;
            let mut stmt = conn.prepare(&format!(
                "SELECT p.id FROM players p WHERE {filter} ORDER BY p.updated_at, p.id LIMIT ?2"
            ))?;
            let mut rows = stmt.query(params![cutoff_ms, limit])?;
            let mut ids = Vec::new();
            while let Some(r) = rows.next()? {
                ids.push(r.get(0)?);
            }
            Ok((total.max(0) as u64, ids))
        })
    }

    fn board_summaries(&self) -> Reply<'_, Vec<BoardSummary>> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT board_id, count(*), max(score), max(updated_at) FROM leaderboard_entries \
                 GROUP BY board_id ORDER BY count(*) DESC, board_id",
            )?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(BoardSummary {
                    board_id: r.get(0)?,
                    entries: r.get(1)?,
                    top_score: r.get(2)?,
                    updated_at: r.get(3)?,
                });
            }
            Ok(out)
        })
    }

    fn ops_notifications(&self, q: NotificationListQuery) -> Reply<'_, (Vec<Notification>, u64)> {
        self.run(move |conn| {
            let column = sort_column(NOTIFICATION_SORTS, &q.page.sort)?;
            let pattern = q.page.q.as_deref().map(like_pattern);
            let read = q.read.map(i64::from);
            // A plain equality when filtering by recipient, so the (player_id, sent_at) index
            // serves it (`?1 IS NULL OR ...` would scan the table).
            let by_player = if q.player_id.is_some() {
                "player_id = ?1"
            } else {
                "?1 IS NULL"
            };
            let filter = format!(
                "{by_player} AND (?2 IS NULL OR type = ?2) \
                 AND (?3 IS NULL OR read = ?3) AND (?4 IS NULL OR lower(subject) LIKE ?4 ESCAPE '\\')"
            );
            let total: i64 = conn.query_row(
                &format!("SELECT count(*) FROM notifications WHERE {filter}"),
                params![q.player_id, q.kind, read, pattern],
                |r| r.get(0),
            )?;
            let sql = format!(
                "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE {filter} \
                 ORDER BY {column} {o}, id {o} LIMIT ?5 OFFSET ?6",
                o = q.page.order.sql()
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(
                    params![
                        q.player_id,
                        q.kind,
                        read,
                        pattern,
                        q.page.limit,
                        q.page.offset
                    ],
                    notification_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            let rows = rows
                .into_iter()
                .map(finish_notification)
                .collect::<Result<Vec<_>, _>>()?;
            Ok((rows, total.max(0) as u64))
        })
    }

    fn ops_chat_messages(&self, q: ChatListQuery) -> Reply<'_, (Vec<ChatMessage>, u64)> {
        self.run(move |conn| {
            let column = sort_column(CHAT_SORTS, &q.page.sort)?;
            let pattern = q.page.q.as_deref().map(like_pattern);
            let filter = "channel_id = ?1 AND (?2 IS NULL OR sender_id = ?2) \
                 AND (?3 IS NULL OR channel_type = ?3) AND (?4 IS NULL OR lower(content) LIKE ?4 ESCAPE '\\')";
            let total: i64 = conn.query_row(
                &format!("SELECT count(*) FROM chat_messages WHERE {filter}"),
                params![q.channel_id, q.sender_id, q.channel_type, pattern],
                |r| r.get(0),
            )?;
            let sql = format!(
                "SELECT {CHAT_COLUMNS} FROM chat_messages WHERE {filter} \
                 ORDER BY {column} {o}, id {o} LIMIT ?5 OFFSET ?6",
                o = q.page.order.sql()
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(
                    params![
                        q.channel_id,
                        q.sender_id,
                        q.channel_type,
                        pattern,
                        q.page.limit,
                        q.page.offset
                    ],
                    chat_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok((rows, total.max(0) as u64))
        })
    }
}
