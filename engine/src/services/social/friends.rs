//! Friends: a request is a `pending` row from the asker; accepting turns it `accepted` and adds
//! the accepter's own `accepted` row, so both players list each other (asobi lists only rows a
//! player owns, and keeps one row, so the accepter never saw the friendship; two rows fix
//! that without changing either shape). Blocking writes the blocker's `blocked` row and ends
//! any friendship or request from the blocked player; a blocked player cannot DM the blocker.

use serde_json::{json, Value};

use asobi_storage::{new_social_id, Friendship};

use super::error::Error;
use super::now_ms;
use crate::services::Shard;

fn row(player: &str, friend: &str, status: &str) -> Friendship {
    let now = now_ms();
    Friendship {
        id: new_social_id(),
        player_id: player.to_owned(),
        friend_id: friend.to_owned(),
        status: status.to_owned(),
        inserted_at: now,
        updated_at: now,
    }
}

/// `POST /friends`: asks `friend` to be friends. A repeated request answers the existing row.
pub(crate) async fn request(shard: &Shard, me: &str, friend: &str) -> Result<Friendship, Error> {
    if friend == me {
        return Err(Error::CannotFriendSelf);
    }
    if friend.is_empty() || friend.len() > 128 {
        return Err(Error::FriendNotFound);
    }
    let store = &shard.ctx.store;
    if store.player(friend).await?.is_none() {
        return Err(Error::FriendNotFound);
    }
    let (kept, _created) = store.request_friend(row(me, friend, "pending")).await?;
    Ok(kept)
}

/// What `PUT /friends/:friend_id` asks for.
enum Change {
    Accept,
    Reject,
    Block,
}

fn change(status: &str) -> Result<Change, Error> {
    match status {
        "accepted" | "accept" => Ok(Change::Accept),
        "rejected" | "reject" => Ok(Change::Reject),
        "blocked" | "block" => Ok(Change::Block),
        _ => Err(Error::Validation {
            field: "status",
            message: "is invalid",
        }),
    }
}

/// `PUT /friends/:friend_id {status}`: accept or reject `friend`'s request, or block them.
pub(crate) async fn update(
    shard: &Shard,
    me: &str,
    friend: &str,
    status: &str,
) -> Result<Value, Error> {
    let change = change(status)?;
    let store = &shard.ctx.store;
    let incoming = store.friendship(friend, me).await?;
    match change {
        Change::Accept => {
            let Some(inc) = incoming.filter(|f| f.status != "blocked") else {
                return Err(Error::FriendshipNotFound);
            };
            let updated = store
                .put_friendship(Friendship {
                    status: "accepted".into(),
                    updated_at: now_ms(),
                    ..inc
                })
                .await?;
            store.put_friendship(row(me, friend, "accepted")).await?;
            Ok(json!(updated))
        }
        Change::Reject => {
            if incoming.is_none_or(|f| f.status != "pending") {
                return Err(Error::FriendshipNotFound);
            }
            store.delete_friendship(friend, me).await?;
            Ok(json!({ "success": true }))
        }
        Change::Block => {
            if friend == me {
                return Err(Error::CannotFriendSelf);
            }
            let mine = store.put_friendship(row(me, friend, "blocked")).await?;
            if incoming.is_some_and(|f| f.status != "blocked") {
                store.delete_friendship(friend, me).await?;
            }
            Ok(json!(mine))
        }
    }
}

/// `DELETE /friends/:friend_id`: ends a friendship, withdraws a request or lifts a block.
pub(crate) async fn remove(shard: &Shard, me: &str, friend: &str) -> Result<(), Error> {
    let store = &shard.ctx.store;
    let mine = store.delete_friendship(me, friend).await?;
    let theirs = match store.friendship(friend, me).await? {
        Some(f) if f.status == "accepted" => store.delete_friendship(friend, me).await?,
        _ => false,
    };
    if mine || theirs {
        Ok(())
    } else {
        Err(Error::FriendshipNotFound)
    }
}

/// `GET /friends`: the player's rows, optionally of one status.
pub(crate) async fn list(
    shard: &Shard,
    me: &str,
    status: Option<&str>,
    limit: u32,
) -> Result<Vec<Friendship>, Error> {
    Ok(shard.ctx.store.friends(me, status, limit).await?)
}
