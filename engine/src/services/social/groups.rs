//! Groups: create, update, open or closed, join, leave, members, roles and kicks, with asobi's
//! role ranks (owner > admin > moderator > member). Membership gates `room:<group id>` chat.

use std::rc::Rc;

use serde_json::Value;

use asobi_storage::{Group, GroupJoinOutcome as JoinOutcome, GroupMember, GroupPatch};

use super::error::Error;
use super::now_ms;
use crate::services::Shard;

/// Default member cap (asobi's).
pub(crate) const DEFAULT_MAX_MEMBERS: i64 = 50;
/// Largest member cap a group may ask for (ours: bounds one group's member list).
pub(crate) const MAX_MEMBERS_CAP: i64 = 10_000;

fn rank(role: &str) -> u8 {
    match role {
        "owner" => 100,
        "admin" => 75,
        "moderator" => 50,
        _ => 0,
    }
}

fn valid_role(role: &str) -> bool {
    matches!(role, "owner" | "admin" | "moderator" | "member")
}

/// A moderator or above may kick someone ranked below them.
pub(crate) fn can_kick(actor: &str, target: &str) -> bool {
    rank(actor) >= rank("moderator") && rank(actor) > rank(target)
}

/// An admin or above may give a role ranked below their own, never `owner`.
pub(crate) fn can_promote(actor: &str, new_role: &str) -> bool {
    rank(actor) >= rank("admin") && rank(actor) > rank(new_role) && new_role != "owner"
}

fn name(v: &Value) -> Result<String, Error> {
    let n = v.as_str().ok_or(Error::Validation {
        field: "name",
        message: "can't be blank",
    })?;
    let chars = n.chars().count();
    if !(2..=64).contains(&chars) {
        return Err(Error::Validation {
            field: "name",
            message: "should be between 2 and 64 characters",
        });
    }
    Ok(n.to_owned())
}

fn description(v: &Value) -> Result<Option<String>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.chars().count() <= 1024 => Ok(Some(s.clone())),
        _ => Err(Error::Validation {
            field: "description",
            message: "should be at most 1024 characters",
        }),
    }
}

fn max_members(v: &Value) -> Result<i64, Error> {
    v.as_i64()
        .filter(|m| (1..=MAX_MEMBERS_CAP).contains(m))
        .ok_or(Error::Validation {
            field: "max_members",
            message: "must be an integer from 1 to 10000",
        })
}

fn open(v: &Value) -> Result<bool, Error> {
    v.as_bool().ok_or(Error::Validation {
        field: "open",
        message: "must be a boolean",
    })
}

/// What a create asks for, raw from the body.
pub(crate) struct NewGroup<'a> {
    pub(crate) name: &'a Value,
    pub(crate) description: Option<&'a Value>,
    pub(crate) max_members: Option<&'a Value>,
    pub(crate) open: Option<&'a Value>,
}

/// Creates a group; its creator is its owner.
pub(crate) async fn create(shard: &Shard, me: &str, g: NewGroup<'_>) -> Result<Group, Error> {
    let now = now_ms();
    let group = Group {
        id: uuid::Uuid::now_v7().to_string(),
        name: name(g.name)?,
        description: g.description.map(description).transpose()?.flatten(),
        max_members: g
            .max_members
            .filter(|v| !v.is_null())
            .map(max_members)
            .transpose()?
            .unwrap_or(DEFAULT_MAX_MEMBERS),
        open: g
            .open
            .filter(|v| !v.is_null())
            .map(open)
            .transpose()?
            .unwrap_or(false),
        creator_id: me.to_owned(),
        metadata: Value::Object(Default::default()),
        inserted_at: now,
        updated_at: now,
    };
    shard.ctx.store.create_group(group.clone()).await?;
    Ok(group)
}

/// One group.
pub(crate) async fn show(shard: &Shard, id: &str) -> Result<Group, Error> {
    shard.ctx.store.group(id).await?.ok_or(Error::GroupNotFound)
}

/// Changes name, description, cap or openness; admins and the owner only.
pub(crate) async fn update(
    shard: &Shard,
    me: &str,
    id: &str,
    body: &serde_json::Map<String, Value>,
) -> Result<Group, Error> {
    let store = &shard.ctx.store;
    match store.member(id, me).await? {
        Some(m) if rank(&m.role) >= rank("admin") => {}
        _ => return Err(Error::Forbidden),
    }
    let patch = GroupPatch {
        name: body.get("name").map(name).transpose()?,
        description: body.get("description").map(description).transpose()?,
        max_members: body.get("max_members").map(max_members).transpose()?,
        open: body.get("open").map(open).transpose()?,
    };
    store
        .update_group(id, patch, now_ms())
        .await?
        .ok_or(Error::GroupNotFound)
}

/// Joins an open group with room.
pub(crate) async fn join(shard: &Shard, me: &str, id: &str) -> Result<GroupMember, Error> {
    match shard.ctx.store.join_group(id, me, now_ms()).await? {
        JoinOutcome::Joined(m) => Ok(m),
        JoinOutcome::NotFound => Err(Error::GroupNotFound),
        JoinOutcome::Closed => Err(Error::GroupClosed),
        JoinOutcome::Full => Err(Error::GroupFull),
        JoinOutcome::AlreadyMember => Err(Error::AlreadyMember),
        _ => Err(Error::GroupNotFound),
    }
}

/// Leaves a group (a no-op when not a member, as on asobi); off its `room:` channel too.
pub(crate) async fn leave(shard: &Rc<Shard>, me: &str, id: &str) -> Result<(), Error> {
    if shard.ctx.store.remove_member(id, me).await? {
        super::chat::evict_from_room(shard, id, me).await;
    }
    Ok(())
}

/// A group's members.
pub(crate) async fn members(
    shard: &Shard,
    id: &str,
    limit: u32,
) -> Result<Vec<GroupMember>, Error> {
    let store = &shard.ctx.store;
    if store.group(id).await?.is_none() {
        return Err(Error::GroupNotFound);
    }
    Ok(store.members(id, limit).await?)
}

async fn both(
    shard: &Shard,
    id: &str,
    me: &str,
    target: &str,
) -> Result<(GroupMember, GroupMember), Error> {
    let store = &shard.ctx.store;
    match (store.member(id, me).await?, store.member(id, target).await?) {
        (Some(a), Some(t)) => Ok((a, t)),
        _ => Err(Error::MemberNotFound),
    }
}

/// Gives `target` a role.
pub(crate) async fn set_role(
    shard: &Shard,
    me: &str,
    id: &str,
    target: &str,
    role: &str,
) -> Result<GroupMember, Error> {
    if !valid_role(role) {
        return Err(Error::InvalidRole);
    }
    let (actor, _) = both(shard, id, me, target).await?;
    if !can_promote(&actor.role, role) {
        return Err(Error::Forbidden);
    }
    shard
        .ctx
        .store
        .set_role(id, target, role)
        .await?
        .ok_or(Error::MemberNotFound)
}

/// Removes `target` from the group, and from its `room:` channel.
pub(crate) async fn kick(shard: &Rc<Shard>, me: &str, id: &str, target: &str) -> Result<(), Error> {
    let (actor, t) = both(shard, id, me, target).await?;
    if !can_kick(&actor.role, &t.role) {
        return Err(Error::Forbidden);
    }
    if shard.ctx.store.remove_member(id, target).await? {
        super::chat::evict_from_room(shard, id, target).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_rank_like_asobi() {
        assert!(can_kick("owner", "admin"));
        assert!(can_kick("moderator", "member"));
        assert!(!can_kick("moderator", "moderator"));
        assert!(!can_kick("member", "member"));
        assert!(can_promote("owner", "admin"));
        assert!(!can_promote("owner", "owner"));
        assert!(!can_promote("admin", "admin"));
        assert!(can_promote("admin", "moderator"));
        assert!(!can_promote("moderator", "member"));
        assert!(valid_role("member") && !valid_role("king"));
    }
}
