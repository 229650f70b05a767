//! The social routes under `/api/v1`, with asobi's paths, shapes and codes: friends, groups,
//! chat and DM history, direct messages and notifications.

use serde_json::{json, Value};

use asobi_net::http::{percent_decode, Method};
use asobi_schema::social::{DmSend, FriendUpdate, GroupCreate, RoleUpdate};

use super::error::Error;
use super::{chat, friends, groups, notify};
use crate::services::rest::{handler, ok, Req, Route};

macro_rules! route {
    ($m:ident, $p:expr, $h:ident) => {
        Route {
            method: Method::$m,
            path: $p,
            handler: $h,
        }
    };
}

pub(crate) const ROUTES: &[Route] = &[
    route!(Get, "/friends", friends_list),
    route!(Post, "/friends", friend_add),
    route!(Put, "/friends/:friend_id", friend_update),
    route!(Delete, "/friends/:friend_id", friend_remove),
    route!(Post, "/groups", group_create),
    route!(Get, "/groups/:id", group_show),
    route!(Put, "/groups/:id", group_update),
    route!(Post, "/groups/:id/join", group_join),
    route!(Post, "/groups/:id/leave", group_leave),
    route!(Get, "/groups/:id/members", group_members),
    route!(Put, "/groups/:id/members/:player_id/role", group_role),
    route!(Delete, "/groups/:id/members/:player_id", group_kick),
    route!(Get, "/chat/:channel_id/history", chat_history),
    route!(Post, "/dm", dm_send),
    route!(Get, "/dm/:player_id/history", dm_history),
    route!(Get, "/notifications", notifications_list),
    route!(Put, "/notifications/:id/read", notification_read),
    route!(Delete, "/notifications/:id", notification_delete),
];

/// asobi's `?limit`: default 50, clamped to 1–200; not a number reads as the default.
fn limit(r: &Req<'_>) -> u32 {
    r.head
        .query_param("limit")
        .and_then(|l| l.trim().parse::<i64>().ok())
        .map_or(50, |n| n.clamp(1, 200) as u32)
}

fn param(r: &Req<'_>, n: usize) -> String {
    percent_decode(r.param(n))
}

handler!(friends_list, |s, r| {
    let me = r.player(s)?;
    let status = r.head.query_param("status");
    let rows = friends::list(s, &me, status.as_deref(), limit(&r)).await?;
    ok(&json!({ "friends": rows }))
});

handler!(friend_add, |s, r| {
    let me = r.player(s)?;
    // asobi answers a body without a string `friend_id` with `invalid_payload`.
    let body: serde_json::Map<String, Value> = r.json()?;
    let friend = body
        .get("friend_id")
        .and_then(Value::as_str)
        .ok_or(Error::InvalidField("friend_id"))?;
    ok(&friends::request(s, &me, friend).await?)
});

handler!(friend_update, |s, r| {
    let me = r.player(s)?;
    let body: FriendUpdate = r.json()?;
    ok(&friends::update(s, &me, &param(&r, 0), &body.status).await?)
});

handler!(friend_remove, |s, r| {
    let me = r.player(s)?;
    friends::remove(s, &me, &param(&r, 0)).await?;
    ok(&json!({ "success": true }))
});

handler!(group_create, |s, r| {
    let me = r.player(s)?;
    let body: GroupCreate = r.json()?;
    let g = groups::NewGroup {
        name: &body.name,
        description: body.description.as_ref(),
        max_members: body.max_members.as_ref(),
        open: body.open.as_ref(),
    };
    ok(&groups::create(s, &me, g).await?)
});

handler!(group_show, |s, r| {
    r.player(s)?;
    ok(&groups::show(s, &param(&r, 0)).await?)
});

handler!(group_update, |s, r| {
    let me = r.player(s)?;
    let body: serde_json::Map<String, Value> = r.json()?;
    ok(&groups::update(s, &me, &param(&r, 0), &body).await?)
});

handler!(group_join, |s, r| {
    let me = r.player(s)?;
    let id = param(&r, 0);
    groups::join(s, &me, &id).await?;
    ok(&json!({ "success": true, "group_id": id }))
});

handler!(group_leave, |s, r| {
    let me = r.player(s)?;
    groups::leave(s, &me, &param(&r, 0)).await?;
    ok(&json!({ "success": true }))
});

handler!(group_members, |s, r| {
    r.player(s)?;
    let members = groups::members(s, &param(&r, 0), limit(&r)).await?;
    ok(&json!({ "members": members }))
});

handler!(group_role, |s, r| {
    let me = r.player(s)?;
    let body: RoleUpdate = r.json()?;
    ok(&groups::set_role(s, &me, &param(&r, 0), &param(&r, 1), &body.role).await?)
});

handler!(group_kick, |s, r| {
    let me = r.player(s)?;
    groups::kick(s, &me, &param(&r, 0), &param(&r, 1)).await?;
    ok(&json!({ "success": true }))
});

handler!(chat_history, |s, r| {
    let me = r.player(s)?;
    let channel = param(&r, 0);
    let messages = chat::history(s, &me, &channel, limit(&r))
        .await
        .map_err(|e| match e {
            // asobi answers every refusal of a history read with `forbidden`.
            Error::InvalidChannelId => Error::NotAuthorized,
            other => other,
        })?;
    ok(&json!({ "messages": messages }))
});

handler!(dm_send, |s, r| {
    let me = r.player(s)?;
    let body: DmSend = r.json()?;
    let channel = notify::dm(s, &me, &body.recipient_id, &body.content).await?;
    ok(&json!({ "success": true, "channel_id": channel }))
});

handler!(dm_history, |s, r| {
    let me = r.player(s)?;
    let channel = chat::dm_channel(&me, &param(&r, 0));
    let messages = s
        .ctx
        .store
        .chat_history(&channel, limit(&r))
        .await
        .map_err(Error::from)?;
    ok(&json!({ "messages": messages, "channel_id": channel }))
});

handler!(notifications_list, |s, r| {
    let me = r.player(s)?;
    let read = match r.head.query_param("read").as_deref() {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => None,
    };
    let rows = s
        .ctx
        .store
        .notifications(&me, read, limit(&r))
        .await
        .map_err(Error::from)?;
    ok(&json!({ "notifications": rows }))
});

handler!(notification_read, |s, r| {
    let me = r.player(s)?;
    ok(&notify::mark_read(s, &me, &param(&r, 0)).await?)
});

handler!(notification_delete, |s, r| {
    let me = r.player(s)?;
    notify::delete(s, &me, &param(&r, 0)).await?;
    ok(&json!({ "success": true }))
});
