//! Player storage: key-value objects with permissions and versions, cloud-save slots, and the
//! per-player stats folded in from finished matches — one function per operation, called alike
//! from REST (`rest.rs`) and Lua (`script.rs`).
//!
//! Nothing here lives in shard memory: every operation is one request to the storage bridge,
//! whose transaction checks permissions and versions and writes together (see
//! `asobi_storage::storage`). This module validates once: names, permission words and the size
//! caps, which are asobi's (256 KiB per value or save, 10 slots per player).

pub(crate) mod error;
pub(crate) mod rest;
pub(crate) mod script;
pub(crate) mod stats;

use asobi_storage::{
    CloudSave, ObjectWrite, Perm, SaveSlot, SaveWrite, StoredObject, MAX_OBJECT_LIST,
};
use serde_json::Value;

use error::{Error, Family};

use super::Shard;

/// Largest encoded value or save data (asobi's `MAX_SAVE_DATA_BYTES`, used for both).
pub(crate) const MAX_VALUE_BYTES: usize = 262_144;
/// Most save slots one player may use (asobi's `MAX_SLOTS_PER_PLAYER`).
pub(crate) const MAX_SAVE_SLOTS: u32 = 10;
/// Longest collection, key or slot name, in bytes (ours: asobi bounds them only by the URL).
pub(crate) const MAX_NAME_BYTES: usize = 128;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn name(field: &'static str, value: &str) -> Result<(), Error> {
    if value.is_empty() || value.len() > MAX_NAME_BYTES {
        return Err(Error::InvalidName(field));
    }
    Ok(())
}

fn within_cap(family: Family, v: &Value) -> Result<(), Error> {
    let size = serde_json::to_vec(v).map_or(usize::MAX, |b| b.len());
    if size > MAX_VALUE_BYTES {
        return Err(Error::TooLarge {
            family,
            size,
            limit: MAX_VALUE_BYTES,
        });
    }
    Ok(())
}

/// A permission word from a request; absent means asobi's default, `owner`.
pub(crate) fn perm(v: Option<&Value>) -> Result<Perm, Error> {
    match v {
        None | Some(Value::Null) => Ok(Perm::Owner),
        Some(Value::String(s)) => Perm::parse(s).ok_or(Error::InvalidPerm),
        Some(_) => Err(Error::InvalidPerm),
    }
}

/// An optional `version` from a request: absent or null is unconditional.
pub(crate) fn version(v: Option<&Value>) -> Result<Option<i64>, Error> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .filter(|n| *n >= 0)
            .map(Some)
            .ok_or(Error::InvalidRequest("version")),
    }
}

/// The object a player path names, if the caller may read it.
pub(crate) async fn get_object(
    shard: &Shard,
    caller: &str,
    collection: &str,
    key: &str,
) -> Result<StoredObject, Error> {
    name("collection", collection)?;
    name("key", key)?;
    shard
        .ctx
        .store
        .read_object(collection, key, caller)
        .await?
        .map_err(|r| Error::refused(Family::Object, r))
}

/// What a player's write asks for.
pub(crate) struct Put {
    pub(crate) collection: String,
    pub(crate) key: String,
    pub(crate) value: Value,
    pub(crate) read_perm: Perm,
    pub(crate) write_perm: Perm,
    pub(crate) version: Option<i64>,
}

/// Creates or updates an object through the player API.
pub(crate) async fn put_object(
    shard: &Shard,
    caller: &str,
    put: Put,
) -> Result<StoredObject, Error> {
    name("collection", &put.collection)?;
    name("key", &put.key)?;
    within_cap(Family::Object, &put.value)?;
    shard
        .ctx
        .store
        .write_object(ObjectWrite {
            collection: put.collection,
            key: put.key,
            caller: caller.to_owned(),
            value: put.value,
            read_perm: put.read_perm,
            write_perm: put.write_perm,
            expected_version: put.version,
            now_ms: now_ms(),
        })
        .await?
        .map_err(|r| Error::refused(Family::Object, r))
}

/// Deletes an object through the player API.
pub(crate) async fn delete_object(
    shard: &Shard,
    caller: &str,
    collection: &str,
    key: &str,
    version: Option<i64>,
) -> Result<(), Error> {
    name("collection", collection)?;
    name("key", key)?;
    shard
        .ctx
        .store
        .delete_object(collection, key, caller, version)
        .await?
        .map_err(|r| Error::refused(Family::Object, r))
}

/// The objects of a collection the caller may read.
pub(crate) async fn list_objects(
    shard: &Shard,
    caller: &str,
    collection: &str,
    limit: u32,
) -> Result<Vec<StoredObject>, Error> {
    name("collection", collection)?;
    let limit = limit.clamp(1, MAX_OBJECT_LIST);
    Ok(shard
        .ctx
        .store
        .list_objects(collection, caller, limit)
        .await?)
}

/// Server read (Lua): the global object, or a player's own, ignoring permissions.
pub(crate) async fn server_get(
    shard: &Shard,
    owner: Option<&str>,
    collection: &str,
    key: &str,
) -> Result<StoredObject, Error> {
    name("collection", collection)?;
    name("key", key)?;
    if let Some(o) = owner {
        name("player_id", o)?;
    }
    shard
        .ctx
        .store
        .server_object(collection, key, owner)
        .await?
        .ok_or(Error::NotFound(Family::Object))
}

/// Server write (Lua), ignoring permissions.
pub(crate) async fn server_set(
    shard: &Shard,
    owner: Option<&str>,
    collection: &str,
    key: &str,
    value: Value,
) -> Result<StoredObject, Error> {
    name("collection", collection)?;
    name("key", key)?;
    if let Some(o) = owner {
        name("player_id", o)?;
    }
    within_cap(Family::Object, &value)?;
    Ok(shard
        .ctx
        .store
        .server_write_object(collection, key, owner, value, now_ms())
        .await?)
}

/// The player's save slots.
pub(crate) async fn saves(shard: &Shard, player: &str) -> Result<Vec<SaveSlot>, Error> {
    Ok(shard.ctx.store.save_slots(player).await?)
}

/// One save slot.
pub(crate) async fn get_save(shard: &Shard, player: &str, slot: &str) -> Result<CloudSave, Error> {
    name("slot", slot)?;
    shard
        .ctx
        .store
        .cloud_save(player, slot)
        .await?
        .ok_or(Error::NotFound(Family::Save))
}

/// Writes a save slot (`version` checked against an existing slot; the slot cap for a new one).
pub(crate) async fn put_save(
    shard: &Shard,
    player: &str,
    slot: &str,
    data: Value,
    version: Option<i64>,
) -> Result<CloudSave, Error> {
    name("slot", slot)?;
    within_cap(Family::Save, &data)?;
    shard
        .ctx
        .store
        .write_save(SaveWrite {
            player_id: player.to_owned(),
            slot: slot.to_owned(),
            data,
            expected_version: version,
            max_slots: MAX_SAVE_SLOTS,
            now_ms: now_ms(),
        })
        .await?
        .map_err(|r| Error::refused(Family::Save, r))
}
