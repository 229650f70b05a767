//! Social on PostgreSQL. A join locks the group's row (`FOR UPDATE`) so two joins racing for
//! the last seat cannot both pass the member count.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{
    ChatMessage, Friendship, Group, GroupMember, GroupPatch, JoinOutcome, Notification, Social,
};
use crate::backend::Reply;
use crate::error::parse_json_column;
use crate::postgres::{op, Fail, PgBackend};

const FRIEND_COLUMNS: &str = "id, player_id, friend_id, status, inserted_at, updated_at";
const GROUP_COLUMNS: &str =
    "id, name, description, max_members, open, creator_id, metadata, inserted_at, updated_at";
const MEMBER_COLUMNS: &str = "group_id, player_id, role, joined_at";
pub(crate) const NOTIFICATION_COLUMNS: &str =
    "id, player_id, type, subject, content, read, sent_at";
pub(crate) const CHAT_COLUMNS: &str = "id, channel_id, channel_type, sender_id, content, sent_at";

fn friend(r: &Row) -> Result<Friendship, Fail> {
    Ok(Friendship {
        id: r.try_get(0)?,
        player_id: r.try_get(1)?,
        friend_id: r.try_get(2)?,
        status: r.try_get(3)?,
        inserted_at: r.try_get(4)?,
        updated_at: r.try_get(5)?,
    })
}

fn group_of(r: &Row) -> Result<Group, Fail> {
    let metadata: String = r.try_get(6)?;
    Ok(Group {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        description: r.try_get(2)?,
        max_members: r.try_get(3)?,
        open: r.try_get::<_, i32>(4)? != 0,
        creator_id: r.try_get(5)?,
        metadata: parse_json_column("metadata", &metadata)?,
        inserted_at: r.try_get(7)?,
        updated_at: r.try_get(8)?,
    })
}

fn member_of(r: &Row) -> Result<GroupMember, Fail> {
    Ok(GroupMember {
        group_id: r.try_get(0)?,
        player_id: r.try_get(1)?,
        role: r.try_get(2)?,
        joined_at: r.try_get(3)?,
    })
}

pub(crate) fn notification_of(r: &Row) -> Result<Notification, Fail> {
    let content: String = r.try_get(4)?;
    Ok(Notification {
        id: r.try_get(0)?,
        player_id: r.try_get(1)?,
        kind: r.try_get(2)?,
        subject: r.try_get(3)?,
        content: parse_json_column("content", &content)?,
        read: r.try_get::<_, i32>(5)? != 0,
        sent_at: r.try_get(6)?,
    })
}

pub(crate) fn chat_of(r: &Row) -> Result<ChatMessage, Fail> {
    Ok(ChatMessage {
        id: r.try_get(0)?,
        channel_id: r.try_get(1)?,
        channel_type: r.try_get(2)?,
        sender_id: r.try_get(3)?,
        content: r.try_get(4)?,
        sent_at: r.try_get(5)?,
    })
}

async fn get_friendship(
    c: &impl GenericClient,
    p: &str,
    f: &str,
) -> Result<Option<Friendship>, Fail> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {FRIEND_COLUMNS} FROM friendships WHERE player_id = $1 AND friend_id = $2"
        ))
        .await?;
    c.query_opt(&stmt, &[&p, &f])
        .await?
        .as_ref()
        .map(friend)
        .transpose()
}

async fn get_group(c: &impl GenericClient, id: &str, lock: bool) -> Result<Option<Group>, Fail> {
    let suffix = if lock { " FOR UPDATE" } else { "" };
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {GROUP_COLUMNS} FROM social_groups WHERE id = $1{suffix}"
        ))
        .await?;
    c.query_opt(&stmt, &[&id])
        .await?
        .as_ref()
        .map(group_of)
        .transpose()
}

async fn get_member(c: &impl GenericClient, g: &str, p: &str) -> Result<Option<GroupMember>, Fail> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {MEMBER_COLUMNS} FROM group_members WHERE group_id = $1 AND player_id = $2"
        ))
        .await?;
    c.query_opt(&stmt, &[&g, &p])
        .await?
        .as_ref()
        .map(member_of)
        .transpose()
}

async fn get_notification(c: &impl GenericClient, id: &str) -> Result<Option<Notification>, Fail> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE id = $1"
        ))
        .await?;
    c.query_opt(&stmt, &[&id])
        .await?
        .as_ref()
        .map(notification_of)
        .transpose()
}

fn limit_of(l: u32) -> i64 {
    i64::from(l)
}

impl Social for PgBackend {
    fn friendship(&self, player: String, friend: String) -> Reply<'_, Option<Friendship>> {
        op(async move {
            let c = self.client().await?;
            get_friendship(&c, &player, &friend).await
        })
    }

    fn request_friend(&self, row: Friendship) -> Reply<'_, (Friendship, bool)> {
        op(async move {
            let c = self.client().await?;
            let n = c
                .execute(
                    "INSERT INTO friendships \
                     (id, player_id, friend_id, status, inserted_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (player_id, friend_id) DO NOTHING",
                    &[
                        &row.id,
                        &row.player_id,
                        &row.friend_id,
                        &row.status,
                        &row.inserted_at,
                        &row.updated_at,
                    ],
                )
                .await?;
            let kept = get_friendship(&c, &row.player_id, &row.friend_id).await?;
            Ok((kept.unwrap_or(row), n == 1))
        })
    }

    fn put_friendship(&self, row: Friendship) -> Reply<'_, Friendship> {
        op(async move {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!(
                    "INSERT INTO friendships \
                     (id, player_id, friend_id, status, inserted_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (player_id, friend_id) \
                     DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at \
                     RETURNING {FRIEND_COLUMNS}"
                ))
                .await?;
            let r = c
                .query_one(
                    &stmt,
                    &[
                        &row.id,
                        &row.player_id,
                        &row.friend_id,
                        &row.status,
                        &row.inserted_at,
                        &row.updated_at,
                    ],
                )
                .await?;
            friend(&r)
        })
    }

    fn delete_friendship(&self, player: String, friend: String) -> Reply<'_, bool> {
        op(async move {
            let c = self.client().await?;
            let n = c
                .execute(
                    "DELETE FROM friendships WHERE player_id = $1 AND friend_id = $2",
                    &[&player, &friend],
                )
                .await?;
            Ok(n > 0)
        })
    }

    fn friends(
        &self,
        player: String,
        status: Option<String>,
        limit: u32,
    ) -> Reply<'_, Vec<Friendship>> {
        op(async move {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT {FRIEND_COLUMNS} FROM friendships WHERE player_id = $1 \
                     AND ($2::text IS NULL OR status = $2) \
                     ORDER BY updated_at DESC, id DESC LIMIT $3"
                ))
                .await?;
            c.query(&stmt, &[&player, &status, &limit_of(limit)])
                .await?
                .iter()
                .map(friend)
                .collect()
        })
    }

    fn accepted_friend_ids(&self, player: String) -> Reply<'_, Vec<String>> {
        op(async move {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(
                    "SELECT friend_id FROM friendships WHERE player_id = $1 AND status = 'accepted' \
                     UNION SELECT player_id FROM friendships \
                     WHERE friend_id = $1 AND status = 'accepted'",
                )
                .await?;
            let rows = c.query(&stmt, &[&player]).await?;
            Ok(rows
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<Vec<String>, _>>()?)
        })
    }

    fn create_group(&self, g: Group) -> Reply<'_, ()> {
        op(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            tx.execute(
                &format!(
                    "INSERT INTO social_groups ({GROUP_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ),
                &[
                    &g.id,
                    &g.name,
                    &g.description,
                    &g.max_members,
                    &i32::from(g.open),
                    &g.creator_id,
                    &g.metadata.to_string(),
                    &g.inserted_at,
                    &g.updated_at,
                ],
            )
            .await?;
            tx.execute(
                "INSERT INTO group_members (group_id, player_id, role, joined_at) \
                 VALUES ($1, $2, 'owner', $3)",
                &[&g.id, &g.creator_id, &g.inserted_at],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn group(&self, id: String) -> Reply<'_, Option<Group>> {
        op(async move {
            let c = self.client().await?;
            get_group(&c, &id, false).await
        })
    }

    fn update_group(&self, id: String, patch: GroupPatch, now_ms: i64) -> Reply<'_, Option<Group>> {
        op(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let Some(mut g) = get_group(&tx, &id, true).await? else {
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
                "UPDATE social_groups SET name = $2, description = $3, max_members = $4, \
                 open = $5, updated_at = $6 WHERE id = $1",
                &[
                    &g.id,
                    &g.name,
                    &g.description,
                    &g.max_members,
                    &i32::from(g.open),
                    &g.updated_at,
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(Some(g))
        })
    }

    fn join_group(&self, group: String, player: String, now_ms: i64) -> Reply<'_, JoinOutcome> {
        op(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let Some(g) = get_group(&tx, &group, true).await? else {
                return Ok(JoinOutcome::NotFound);
            };
            if get_member(&tx, &group, &player).await?.is_some() {
                return Ok(JoinOutcome::AlreadyMember);
            }
            if !g.open {
                return Ok(JoinOutcome::Closed);
            }
            let count: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM group_members WHERE group_id = $1",
                    &[&group],
                )
                .await?
                .try_get(0)?;
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
                 VALUES ($1, $2, $3, $4)",
                &[&m.group_id, &m.player_id, &m.role, &m.joined_at],
            )
            .await?;
            tx.commit().await?;
            Ok(JoinOutcome::Joined(m))
        })
    }

    fn remove_member(&self, group: String, player: String) -> Reply<'_, bool> {
        op(async move {
            let c = self.client().await?;
            let n = c
                .execute(
                    "DELETE FROM group_members WHERE group_id = $1 AND player_id = $2",
                    &[&group, &player],
                )
                .await?;
            Ok(n > 0)
        })
    }

    fn member(&self, group: String, player: String) -> Reply<'_, Option<GroupMember>> {
        op(async move {
            let c = self.client().await?;
            get_member(&c, &group, &player).await
        })
    }

    fn members(&self, group: String, limit: u32) -> Reply<'_, Vec<GroupMember>> {
        op(async move {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT {MEMBER_COLUMNS} FROM group_members WHERE group_id = $1 \
                     ORDER BY joined_at, player_id LIMIT $2"
                ))
                .await?;
            c.query(&stmt, &[&group, &limit_of(limit)])
                .await?
                .iter()
                .map(member_of)
                .collect()
        })
    }

    fn set_role(
        &self,
        group: String,
        player: String,
        role: String,
    ) -> Reply<'_, Option<GroupMember>> {
        op(async move {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!(
                    "UPDATE group_members SET role = $3 WHERE group_id = $1 AND player_id = $2 \
                     RETURNING {MEMBER_COLUMNS}"
                ))
                .await?;
            c.query_opt(&stmt, &[&group, &player, &role])
                .await?
                .as_ref()
                .map(member_of)
                .transpose()
        })
    }

    fn insert_notifications(&self, rows: Vec<(Notification, bool)>) -> Reply<'_, ()> {
        op(async move {
            let c = self.client().await?;
            let mut text: [Vec<String>; 5] = Default::default();
            let (mut read, mut delivered, mut sent) = (Vec::new(), Vec::new(), Vec::new());
            for (n, d) in rows {
                text[0].push(n.id);
                text[1].push(n.player_id);
                text[2].push(n.kind);
                text[3].push(n.subject);
                text[4].push(n.content.to_string());
                read.push(i32::from(n.read));
                delivered.push(i32::from(d));
                sent.push(n.sent_at);
            }
            let stmt = c
                .prepare_cached(
                    "INSERT INTO notifications \
                     (id, player_id, type, subject, content, read, delivered, sent_at) \
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
                     $5::text[], $6::int[], $7::int[], $8::bigint[])",
                )
                .await?;
            c.execute(
                &stmt,
                &[
                    &text[0], &text[1], &text[2], &text[3], &text[4], &read, &delivered, &sent,
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn notifications(
        &self,
        player: String,
        read: Option<bool>,
        limit: u32,
    ) -> Reply<'_, Vec<Notification>> {
        op(async move {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE player_id = $1 \
                     AND ($2::int IS NULL OR read = $2) ORDER BY sent_at DESC, id DESC LIMIT $3"
                ))
                .await?;
            let read = read.map(i32::from);
            c.query(&stmt, &[&player, &read, &limit_of(limit)])
                .await?
                .iter()
                .map(notification_of)
                .collect()
        })
    }

    fn notification(&self, id: String) -> Reply<'_, Option<Notification>> {
        op(async move {
            let c = self.client().await?;
            get_notification(&c, &id).await
        })
    }

    fn mark_notification_read(&self, id: String) -> Reply<'_, Option<Notification>> {
        op(async move {
            let c = self.client().await?;
            c.execute("UPDATE notifications SET read = 1 WHERE id = $1", &[&id])
                .await?;
            get_notification(&c, &id).await
        })
    }

    fn delete_notification(&self, id: String) -> Reply<'_, bool> {
        op(async move {
            let c = self.client().await?;
            let n = c
                .execute("DELETE FROM notifications WHERE id = $1", &[&id])
                .await?;
            Ok(n > 0)
        })
    }

    fn undelivered_notifications(
        &self,
        player: String,
        limit: u32,
    ) -> Reply<'_, Vec<Notification>> {
        op(async move {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE player_id = $1 \
                     AND delivered = 0 ORDER BY sent_at, id LIMIT $2"
                ))
                .await?;
            c.query(&stmt, &[&player, &limit_of(limit)])
                .await?
                .iter()
                .map(notification_of)
                .collect()
        })
    }

    fn mark_delivered(&self, ids: Vec<String>) -> Reply<'_, ()> {
        op(async move {
            let c = self.client().await?;
            c.execute(
                "UPDATE notifications SET delivered = 1 WHERE id = ANY($1)",
                &[&ids],
            )
            .await?;
            Ok(())
        })
    }

    fn save_chat_messages(&self, rows: Vec<ChatMessage>) -> Reply<'_, ()> {
        op(async move {
            let c = self.client().await?;
            let mut cols: [Vec<String>; 5] = Default::default();
            let mut sent: Vec<i64> = Vec::with_capacity(rows.len());
            for m in rows {
                cols[0].push(m.id);
                cols[1].push(m.channel_id);
                cols[2].push(m.channel_type);
                cols[3].push(m.sender_id);
                cols[4].push(m.content);
                sent.push(m.sent_at);
            }
            let stmt = c
                .prepare_cached(&format!(
                    "INSERT INTO chat_messages ({CHAT_COLUMNS}) \
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
                     $5::text[], $6::bigint[]) ON CONFLICT (id) DO NOTHING"
                ))
                .await?;
            c.execute(
                &stmt,
                &[&cols[0], &cols[1], &cols[2], &cols[3], &cols[4], &sent],
            )
            .await?;
            Ok(())
        })
    }

    fn chat_history(&self, channel: String, limit: u32) -> Reply<'_, Vec<ChatMessage>> {
        op(async move {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT {CHAT_COLUMNS} FROM chat_messages WHERE channel_id = $1 \
                     ORDER BY sent_at DESC, id DESC LIMIT $2"
                ))
                .await?;
            let mut out = c
                .query(&stmt, &[&channel, &limit_of(limit)])
                .await?
                .iter()
                .map(chat_of)
                .collect::<Result<Vec<_>, _>>()?;
            out.reverse();
            Ok(out)
        })
    }
}
