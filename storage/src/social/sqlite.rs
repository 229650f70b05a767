//! Social on SQLite.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{
    ChatMessage, Friendship, Group, GroupMember, GroupPatch, JoinOutcome, Notification, Social,
};
use crate::backend::Reply;
use crate::error::parse_json_column;
use crate::sqlite::{write_tx, Fail, SqliteBackend};

const FRIEND_COLUMNS: &str = "id, player_id, friend_id, status, inserted_at, updated_at";
const GROUP_COLUMNS: &str =
    "id, name, description, max_members, open, creator_id, metadata, inserted_at, updated_at";
const MEMBER_COLUMNS: &str = "group_id, player_id, role, joined_at";
pub(crate) const NOTIFICATION_COLUMNS: &str =
    "id, player_id, type, subject, content, read, sent_at";
pub(crate) const CHAT_COLUMNS: &str = "id, channel_id, channel_type, sender_id, content, sent_at";

fn friend(r: &Row<'_>) -> rusqlite::Result<Friendship> {
    Ok(Friendship {
        id: r.get(0)?,
        player_id: r.get(1)?,
        friend_id: r.get(2)?,
        status: r.get(3)?,
        inserted_at: r.get(4)?,
        updated_at: r.get(5)?,
    })
}

fn group_row(r: &Row<'_>) -> rusqlite::Result<(Group, String)> {
    Ok((
        Group {
            id: r.get(0)?,
            name: r.get(1)?,
            description: r.get(2)?,
            max_members: r.get(3)?,
            open: r.get::<_, i64>(4)? != 0,
            creator_id: r.get(5)?,
            metadata: serde_json::Value::Null,
            inserted_at: r.get(7)?,
            updated_at: r.get(8)?,
        },
        r.get(6)?,
    ))
}

fn finish_group((mut g, metadata): (Group, String)) -> Result<Group, Fail> {
    g.metadata = parse_json_column("metadata", &metadata)?;
    Ok(g)
}

fn member_row(r: &Row<'_>) -> rusqlite::Result<GroupMember> {
    Ok(GroupMember {
        group_id: r.get(0)?,
        player_id: r.get(1)?,
        role: r.get(2)?,
        joined_at: r.get(3)?,
    })
}

pub(crate) fn notification_row(r: &Row<'_>) -> rusqlite::Result<(Notification, String)> {
    Ok((
        Notification {
            id: r.get(0)?,
            player_id: r.get(1)?,
            kind: r.get(2)?,
            subject: r.get(3)?,
            content: serde_json::Value::Null,
            read: r.get::<_, i64>(5)? != 0,
            sent_at: r.get(6)?,
        },
        r.get(4)?,
    ))
}

pub(crate) fn finish_notification(
    (mut n, content): (Notification, String),
) -> Result<Notification, Fail> {
    n.content = parse_json_column("content", &content)?;
    Ok(n)
}

pub(crate) fn chat_row(r: &Row<'_>) -> rusqlite::Result<ChatMessage> {
    Ok(ChatMessage {
        id: r.get(0)?,
        channel_id: r.get(1)?,
        channel_type: r.get(2)?,
        sender_id: r.get(3)?,
        content: r.get(4)?,
        sent_at: r.get(5)?,
    })
}

fn get_friendship(conn: &Connection, p: &str, f: &str) -> Result<Option<Friendship>, Fail> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {FRIEND_COLUMNS} FROM friendships WHERE player_id = ?1 AND friend_id = ?2"
        ))?
        .query_row(params![p, f], friend)
        .optional()?)
}

fn get_group(conn: &Connection, id: &str) -> Result<Option<Group>, Fail> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {GROUP_COLUMNS} FROM social_groups WHERE id = ?1"
        ))?
        .query_row(params![id], group_row)
        .optional()?;
    row.map(finish_group).transpose()
}

fn get_member(conn: &Connection, g: &str, p: &str) -> Result<Option<GroupMember>, Fail> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {MEMBER_COLUMNS} FROM group_members WHERE group_id = ?1 AND player_id = ?2"
        ))?
        .query_row(params![g, p], member_row)
        .optional()?)
}

fn get_notification(conn: &Connection, id: &str) -> Result<Option<Notification>, Fail> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE id = ?1"
        ))?
        .query_row(params![id], notification_row)
        .optional()?;
    row.map(finish_notification).transpose()
}

impl Social for SqliteBackend {
    fn friendship(&self, player: String, friend: String) -> Reply<'_, Option<Friendship>> {
        self.run(move |conn| get_friendship(conn, &player, &friend))
    }

    fn request_friend(&self, row: Friendship) -> Reply<'_, (Friendship, bool)> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let n = tx.execute(
                "INSERT INTO friendships (id, player_id, friend_id, status, inserted_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (player_id, friend_id) DO NOTHING",
                params![
                    row.id,
                    row.player_id,
                    row.friend_id,
                    row.status,
                    row.inserted_at,
                    row.updated_at
                ],
            )?;
            let kept = get_friendship(&tx, &row.player_id, &row.friend_id)?;
            tx.commit()?;
            Ok((kept.unwrap_or(row), n == 1))
        })
    }

    fn put_friendship(&self, row: Friendship) -> Reply<'_, Friendship> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            tx.execute(
                "INSERT INTO friendships (id, player_id, friend_id, status, inserted_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (player_id, friend_id) \
                 DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
                params![
                    row.id,
                    row.player_id,
                    row.friend_id,
                    row.status,
                    row.inserted_at,
                    row.updated_at
                ],
            )?;
            let kept = get_friendship(&tx, &row.player_id, &row.friend_id)?;
            tx.commit()?;
            Ok(kept.unwrap_or(row))
        })
    }

    fn delete_friendship(&self, player: String, friend: String) -> Reply<'_, bool> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let n = tx.execute(
                "DELETE FROM friendships WHERE player_id = ?1 AND friend_id = ?2",
                params![player, friend],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn friends(
        &self,
        player: String,
        status: Option<String>,
        limit: u32,
    ) -> Reply<'_, Vec<Friendship>> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {FRIEND_COLUMNS} FROM friendships WHERE player_id = ?1 \
                 AND (?2 IS NULL OR status = ?2) ORDER BY updated_at DESC, id DESC LIMIT ?3"
            ))?;
            let rows = stmt.query_map(params![player, status, limit], friend)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn accepted_friend_ids(&self, player: String) -> Reply<'_, Vec<String>> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT friend_id FROM friendships WHERE player_id = ?1 AND status = 'accepted' \
                 UNION SELECT player_id FROM friendships WHERE friend_id = ?1 AND status = 'accepted'",
            )?;
            let rows = stmt.query_map(params![player], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn create_group(&self, g: Group) -> Reply<'_, ()> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            tx.execute(
                &format!(
                    "INSERT INTO social_groups ({GROUP_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ),
                params![
                    g.id,
                    g.name,
                    g.description,
                    g.max_members,
                    i64::from(g.open),
                    g.creator_id,
                    g.metadata.to_string(),
                    g.inserted_at,
                    g.updated_at
                ],
            )?;
            tx.execute(
                "INSERT INTO group_members (group_id, player_id, role, joined_at) \
                 VALUES (?1, ?2, 'owner', ?3)",
                params![g.id, g.creator_id, g.inserted_at],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn group(&self, id: String) -> Reply<'_, Option<Group>> {
        self.run(move |conn| get_group(conn, &id))
    }

    fn update_group(&self, id: String, patch: GroupPatch, now_ms: i64) -> Reply<'_, Option<Group>> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let Some(mut g) = get_group(&tx, &id)? else {
                return Ok(None);
            };
            if let Some(n) = patch.name {
                g.name = n;
            }
            if let Some(d) = patch.description {
                g.description = d;
            }
            if let Some(m) = patch.max_members {
                g.max_members = m;
            }
            if let Some(o) = patch.open {
                g.open = o;
            }
            g.updated_at = now_ms;
            tx.execute(
                "UPDATE social_groups SET name = ?2, description = ?3, max_members = ?4, \
                 open = ?5, updated_at = ?6 WHERE id = ?1",
                params![
                    g.id,
                    g.name,
                    g.description,
                    g.max_members,
                    i64::from(g.open),
                    g.updated_at
                ],
            )?;
            tx.commit()?;
            Ok(Some(g))
        })
    }

    fn join_group(&self, group: String, player: String, now_ms: i64) -> Reply<'_, JoinOutcome> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let Some(g) = get_group(&tx, &group)? else {
                return Ok(JoinOutcome::NotFound);
            };
            if get_member(&tx, &group, &player)?.is_some() {
                return Ok(JoinOutcome::AlreadyMember);
            }
            if !g.open {
                return Ok(JoinOutcome::Closed);
            }
            let count: i64 = tx.query_row(
                "SELECT COUNT(*) FROM group_members WHERE group_id = ?1",
                params![group],
                |r| r.get(0),
            )?;
            if count >= g.max_members {
                return Ok(JoinOutcome::Full);
            }
            let m = GroupMember {
                group_id: group,
                player_id: player,
                role: "member".to_owned(),
                joined_at: now_ms,
            };
            tx.execute(
                "INSERT INTO group_members (group_id, player_id, role, joined_at) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![m.group_id, m.player_id, m.role, m.joined_at],
            )?;
            tx.commit()?;
            Ok(JoinOutcome::Joined(m))
        })
    }

    fn remove_member(&self, group: String, player: String) -> Reply<'_, bool> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let n = tx.execute(
                "DELETE FROM group_members WHERE group_id = ?1 AND player_id = ?2",
                params![group, player],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn member(&self, group: String, player: String) -> Reply<'_, Option<GroupMember>> {
        self.run(move |conn| get_member(conn, &group, &player))
    }

    fn members(&self, group: String, limit: u32) -> Reply<'_, Vec<GroupMember>> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {MEMBER_COLUMNS} FROM group_members WHERE group_id = ?1 \
                 ORDER BY joined_at, player_id LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![group, limit], member_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn set_role(
        &self,
        group: String,
        player: String,
        role: String,
    ) -> Reply<'_, Option<GroupMember>> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            tx.execute(
                "UPDATE group_members SET role = ?3 WHERE group_id = ?1 AND player_id = ?2",
                params![group, player, role],
            )?;
            let m = get_member(&tx, &group, &player)?;
            tx.commit()?;
            Ok(m)
        })
    }

    fn insert_notifications(&self, rows: Vec<(Notification, bool)>) -> Reply<'_, ()> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO notifications \
                     (id, player_id, type, subject, content, read, delivered, sent_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                for (n, delivered) in &rows {
                    stmt.execute(params![
                        n.id,
                        n.player_id,
                        n.kind,
                        n.subject,
                        n.content.to_string(),
                        i64::from(n.read),
                        i64::from(*delivered),
                        n.sent_at
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn notifications(
        &self,
        player: String,
        read: Option<bool>,
        limit: u32,
    ) -> Reply<'_, Vec<Notification>> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE player_id = ?1 \
                 AND (?2 IS NULL OR read = ?2) ORDER BY sent_at DESC, id DESC LIMIT ?3"
            ))?;
            let rows = stmt
                .query_map(
                    params![player, read.map(i64::from), limit],
                    notification_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(finish_notification).collect()
        })
    }

    fn notification(&self, id: String) -> Reply<'_, Option<Notification>> {
        self.run(move |conn| get_notification(conn, &id))
    }

    fn mark_notification_read(&self, id: String) -> Reply<'_, Option<Notification>> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            tx.execute(
                "UPDATE notifications SET read = 1 WHERE id = ?1",
                params![id],
            )?;
            let n = get_notification(&tx, &id)?;
            tx.commit()?;
            Ok(n)
        })
    }

    fn delete_notification(&self, id: String) -> Reply<'_, bool> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let n = tx.execute("DELETE FROM notifications WHERE id = ?1", params![id])?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn undelivered_notifications(
        &self,
        player: String,
        limit: u32,
    ) -> Reply<'_, Vec<Notification>> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE player_id = ?1 \
                 AND delivered = 0 ORDER BY sent_at, id LIMIT ?2"
            ))?;
            let rows = stmt
                .query_map(params![player, limit], notification_row)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(finish_notification).collect()
        })
    }

    fn mark_delivered(&self, ids: Vec<String>) -> Reply<'_, ()> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            {
                let mut stmt =
                    tx.prepare_cached("UPDATE notifications SET delivered = 1 WHERE id = ?1")?;
                for id in &ids {
                    stmt.execute(params![id])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn save_chat_messages(&self, rows: Vec<ChatMessage>) -> Reply<'_, ()> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            {
                let mut stmt = tx.prepare_cached(&format!(
                    "INSERT INTO chat_messages ({CHAT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     ON CONFLICT (id) DO NOTHING"
                ))?;
                for m in &rows {
                    stmt.execute(params![
                        m.id,
                        m.channel_id,
                        m.channel_type,
                        m.sender_id,
                        m.content,
                        m.sent_at
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn chat_history(&self, channel: String, limit: u32) -> Reply<'_, Vec<ChatMessage>> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {CHAT_COLUMNS} FROM chat_messages WHERE channel_id = ?1 \
                 ORDER BY sent_at DESC, id DESC LIMIT ?2"
            ))?;
            let mut rows = stmt
                .query_map(params![channel, limit], chat_row)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.reverse();
            Ok(rows)
        })
    }
}
