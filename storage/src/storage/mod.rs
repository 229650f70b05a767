//! Player storage: key-value objects with read/write permissions and versions, cloud-save slots,
//! and the wins/losses/games-played stats folded in from finished matches.
//!
//! The permission and version rules live here, once, as plain functions over the rows a backend
//! read inside its transaction ([`decide_write`], [`decide_read`]); `sqlite.rs` and
//! `postgres.rs` only fetch and write rows. Both backends run a decision and its write in one
//! transaction (PostgreSQL under an advisory lock on the object or the player), so two racing
//! writers never both win against the same version.

mod postgres;
mod sqlite;

use serde::Serialize;
use serde_json::Value;

use crate::backend::Reply;
use crate::{StoreError, StoreHandle};

/// Largest page [`StoreHandle::list_objects`] returns (asobi clamps `limit` to 1–200).
pub const MAX_OBJECT_LIST: u32 = 200;

/// Who may read or write an object through the player API. Lua (the server) ignores them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perm {
    /// Only the owner (asobi's `"owner"`, the default).
    Owner,
    /// Every authenticated player (asobi's `"public"`).
    Public,
    /// No player, not even the owner: only server code (ours: `"none"`).
    None,
}

impl Perm {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Perm::Owner => "owner",
            Perm::Public => "public",
            Perm::None => "none",
        }
    }

    /// Parses a wire name; anything else is `None` (the caller answers `storage.invalid_perm`).
    pub fn parse(s: &str) -> Option<Perm> {
        match s {
            "owner" => Some(Perm::Owner),
            "public" => Some(Perm::Public),
            "none" => Some(Perm::None),
            _ => None,
        }
    }
}

/// One stored object, in asobi's shape.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredObject {
    /// The collection.
    pub collection: String,
    /// The key inside the collection.
    pub key: String,
    /// The owning player; `None` for a global (server-only) object.
    pub player_id: Option<String>,
    /// The JSON value.
    pub value: Value,
    /// 1 on creation, one more on every write.
    pub version: i64,
    /// `owner`, `public` or `none`.
    pub read_perm: String,
    /// `owner`, `public` or `none`.
    pub write_perm: String,
    /// Last write, unix milliseconds.
    pub updated_at: i64,
}

/// A player's write of an object through the player API.
#[derive(Clone, Debug)]
pub struct ObjectWrite {
    /// The collection.
    pub collection: String,
    /// The key.
    pub key: String,
    /// The writing player.
    pub caller: String,
    /// The new value.
    pub value: Value,
    /// Read permission for a new object, or the owner's change to an existing one.
    pub read_perm: Perm,
    /// Write permission, as `read_perm`.
    pub write_perm: Perm,
    /// The version the writer last saw: a write against any other is refused with the current
    /// one. `Some(0)` means "only if it does not exist yet"; `None` writes unconditionally.
    pub expected_version: Option<i64>,
    /// Now, unix milliseconds.
    pub now_ms: i64,
}

/// Why an object or save operation changed nothing. These are answers, not database failures.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageRefusal {
    /// No such object or save.
    NotFound,
    /// The object's permissions do not allow this caller.
    Forbidden,
    /// The writer's version is stale.
    VersionConflict {
        /// The version stored now (0: there is none).
        current_version: i64,
    },
    /// Several other players own an object under this collection and key, and the caller
    /// owns none: the path does not name one object.
    Ambiguous,
    /// The player already uses every save slot.
    SlotLimitReached,
}

/// The answer of a permission-checked object or save operation.
pub type Checked<T> = Result<T, StorageRefusal>;

/// A save slot as `GET /saves` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SaveSlot {
    /// Slot name.
    pub slot: String,
    /// 1 on creation, one more on every write.
    pub version: i64,
    /// Last write, unix milliseconds.
    pub updated_at: i64,
}

/// One cloud save, in asobi's shape.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CloudSave {
    /// Owner.
    pub player_id: String,
    /// Slot name.
    pub slot: String,
    /// The saved JSON.
    pub data: Value,
    /// 1 on creation, one more on every write.
    pub version: i64,
    /// Last write, unix milliseconds.
    pub updated_at: i64,
}

/// A write to a save slot.
#[derive(Clone, Debug)]
pub struct SaveWrite {
    /// Owner.
    pub player_id: String,
    /// Slot name.
    pub slot: String,
    /// The new data.
    pub data: Value,
    /// The version the client last saw; a write to an existing slot with any other is refused.
    /// `None` writes unconditionally (asobi's rule).
    pub expected_version: Option<i64>,
    /// How many slots a player may use; a new slot past it is refused.
    pub max_slots: u32,
    /// Now, unix milliseconds.
    pub now_ms: i64,
}

/// A player's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PlayerStats {
    /// The player.
    pub player_id: String,
    /// Finished matches the player was in.
    pub games_played: i64,
    /// Matches the result named the player a winner in.
    pub wins: i64,
    /// Matches the result named (or left) the player a loser in.
    pub losses: i64,
    /// Last change, unix milliseconds (0: never played).
    pub updated_at: i64,
}

/// One finished match's effect on its players' stats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchStats {
    /// The match: a match is folded in at most once.
    pub match_id: String,
    /// Every participant, each with whether it won and whether it lost.
    pub players: Vec<(String, bool, bool)>,
    /// Now, unix milliseconds.
    pub now_ms: i64,
}

/// What a backend does after [`decide_write`] agreed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum WritePlan {
    /// Insert the caller's own new row at version 1.
    Insert,
    /// Update the row owned by `owner` from `version`; `owner_may_change_perms` when the caller
    /// owns it (a public writer changes only the value).
    Update {
        owner: String,
        version: i64,
        set_perms: bool,
    },
}

/// The rows stored under one collection and key in the player namespace, as a backend read them.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) owner: String,
    pub(crate) version: i64,
    pub(crate) read_perm: String,
    pub(crate) write_perm: String,
}

/// Picks the one object a player path names: the caller's own, else the only other one.
fn resolve<'a>(rows: &'a [Row], caller: &str) -> Checked<Option<&'a Row>> {
    if let Some(own) = rows.iter().find(|r| r.owner == caller) {
        return Ok(Some(own));
    }
    match rows {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => Err(StorageRefusal::Ambiguous),
    }
}

/// The read rule: public objects to everyone, owner objects to their owner, `none` to nobody.
/// Returns the owner of the row to read.
pub(crate) fn decide_read(rows: &[Row], caller: &str) -> Checked<String> {
    let row = resolve(rows, caller)?.ok_or(StorageRefusal::NotFound)?;
    let allowed = match Perm::parse(&row.read_perm) {
        Some(Perm::Public) => true,
        Some(Perm::Owner) => row.owner == caller,
        Some(Perm::None) | None => false,
    };
    if allowed {
        Ok(row.owner.clone())
    } else {
        Err(StorageRefusal::Forbidden)
    }
}

fn may_write(row: &Row, caller: &str) -> bool {
    match Perm::parse(&row.write_perm) {
        Some(Perm::Public) => true,
        Some(Perm::Owner) => row.owner == caller,
        Some(Perm::None) | None => false,
    }
}

fn check_version(expected: Option<i64>, current: i64) -> Checked<()> {
    match expected {
        Some(v) if v != current => Err(StorageRefusal::VersionConflict {
            current_version: current,
        }),
        _ => Ok(()),
    }
}

/// The write rule: the caller's own object (or a public-write one) at the expected version, or
/// a new object of the caller's.
pub(crate) fn decide_write(
    rows: &[Row],
    caller: &str,
    expected: Option<i64>,
) -> Checked<WritePlan> {
    match resolve(rows, caller)? {
        None => {
            check_version(expected, 0)?;
            Ok(WritePlan::Insert)
        }
        Some(row) => {
            if !may_write(row, caller) {
                return Err(StorageRefusal::Forbidden);
            }
            check_version(expected, row.version)?;
            Ok(WritePlan::Update {
                owner: row.owner.clone(),
                version: row.version,
                set_perms: row.owner == caller,
            })
        }
    }
}

/// The delete rule: as writing. Returns the owner of the row to delete.
pub(crate) fn decide_delete(rows: &[Row], caller: &str, expected: Option<i64>) -> Checked<String> {
    let row = resolve(rows, caller)?.ok_or(StorageRefusal::NotFound)?;
    if !may_write(row, caller) {
        return Err(StorageRefusal::Forbidden);
    }
    check_version(expected, row.version)?;
    Ok(row.owner.clone())
}

/// The owner column for an optional player: '' is the global namespace.
pub(crate) fn owner_column(player: Option<&str>) -> String {
    player.unwrap_or("").to_owned()
}

/// A stored object from its columns.
#[allow(clippy::too_many_arguments)]
pub(crate) fn object(
    collection: String,
    key: String,
    owner: String,
    value: &str,
    version: i64,
    read_perm: String,
    write_perm: String,
    updated_at: i64,
) -> Result<StoredObject, StoreError> {
    Ok(StoredObject {
        collection,
        key,
        player_id: (!owner.is_empty()).then_some(owner),
        value: crate::error::parse_json_column("storage_objects.value", value)?,
        version,
        read_perm,
        write_perm,
        updated_at,
    })
}

/// The storage operations one database implements.
pub(crate) trait Storage: Send + Sync {
    fn read_object(
        &self,
        collection: String,
        key: String,
        caller: String,
    ) -> Reply<'_, Checked<StoredObject>>;
    fn write_object(&self, w: ObjectWrite) -> Reply<'_, Checked<StoredObject>>;
    fn delete_object(
        &self,
        collection: String,
        key: String,
        caller: String,
        expected_version: Option<i64>,
    ) -> Reply<'_, Checked<()>>;
    fn list_objects(
        &self,
        collection: String,
        caller: String,
        limit: u32,
    ) -> Reply<'_, Vec<StoredObject>>;
    fn server_object(
        &self,
        collection: String,
        key: String,
        owner: String,
    ) -> Reply<'_, Option<StoredObject>>;
    fn server_write_object(
        &self,
        collection: String,
        key: String,
        owner: String,
        value: Value,
        now_ms: i64,
    ) -> Reply<'_, StoredObject>;
    fn save_slots(&self, player_id: String) -> Reply<'_, Vec<SaveSlot>>;
    fn cloud_save(&self, player_id: String, slot: String) -> Reply<'_, Option<CloudSave>>;
    fn write_save(&self, w: SaveWrite) -> Reply<'_, Checked<CloudSave>>;
    fn record_match_stats(&self, m: MatchStats) -> Reply<'_, bool>;
    fn player_stats(&self, player_id: String) -> Reply<'_, Option<PlayerStats>>;
}

impl StoreHandle {
    /// The object a player path names, if the caller may read it.
    pub async fn read_object(
        &self,
        collection: &str,
        key: &str,
        caller: &str,
    ) -> Result<Checked<StoredObject>, StoreError> {
        let (c, k, p) = (collection.to_owned(), key.to_owned(), caller.to_owned());
        self.call(move |db| db.read_object(c, k, p)).await
    }

    /// Creates or updates an object through the player API, checking permissions and version
    /// in one transaction.
    pub async fn write_object(&self, w: ObjectWrite) -> Result<Checked<StoredObject>, StoreError> {
        self.call(move |db| db.write_object(w)).await
    }

    /// Deletes an object through the player API (permissions and optional version checked).
    pub async fn delete_object(
        &self,
        collection: &str,
        key: &str,
        caller: &str,
        expected_version: Option<i64>,
    ) -> Result<Checked<()>, StoreError> {
        let (c, k, p) = (collection.to_owned(), key.to_owned(), caller.to_owned());
        self.call(move |db| db.delete_object(c, k, p, expected_version))
            .await
    }

    /// The player objects of a collection the caller may read, by key, at most `limit`
    /// (clamped to 1–200).
    pub async fn list_objects(
        &self,
        collection: &str,
        caller: &str,
        limit: u32,
    ) -> Result<Vec<StoredObject>, StoreError> {
        let (c, p) = (collection.to_owned(), caller.to_owned());
        let limit = limit.clamp(1, MAX_OBJECT_LIST);
        self.call(move |db| db.list_objects(c, p, limit)).await
    }

    /// Server (Lua) read, ignoring permissions: the global object (`owner` `None`) or a
    /// player's own.
    pub async fn server_object(
        &self,
        collection: &str,
        key: &str,
        owner: Option<&str>,
    ) -> Result<Option<StoredObject>, StoreError> {
        let (c, k, o) = (collection.to_owned(), key.to_owned(), owner_column(owner));
        self.call(move |db| db.server_object(c, k, o)).await
    }

    /// Server (Lua) write, ignoring permissions: creates (owner-only permissions, version 1) or
    /// replaces the value (version + 1).
    pub async fn server_write_object(
        &self,
        collection: &str,
        key: &str,
        owner: Option<&str>,
        value: Value,
        now_ms: i64,
    ) -> Result<StoredObject, StoreError> {
        let (c, k, o) = (collection.to_owned(), key.to_owned(), owner_column(owner));
        self.call(move |db| db.server_write_object(c, k, o, value, now_ms))
            .await
    }

    /// The player's save slots, by slot name.
    pub async fn save_slots(&self, player_id: &str) -> Result<Vec<SaveSlot>, StoreError> {
        let p = player_id.to_owned();
        self.call(move |db| db.save_slots(p)).await
    }

    /// One save slot.
    pub async fn cloud_save(
        &self,
        player_id: &str,
        slot: &str,
    ) -> Result<Option<CloudSave>, StoreError> {
        let (p, s) = (player_id.to_owned(), slot.to_owned());
        self.call(move |db| db.cloud_save(p, s)).await
    }

    /// Writes a save slot: checks the version against an existing slot, or the slot count for
    /// a new one, in one transaction.
    pub async fn write_save(&self, w: SaveWrite) -> Result<Checked<CloudSave>, StoreError> {
        self.call(move |db| db.write_save(w)).await
    }

    /// Folds one finished match into its players' stats. Returns false (and changes nothing)
    /// when this match was folded in before.
    pub async fn record_match_stats(&self, mut m: MatchStats) -> Result<bool, StoreError> {
        // One row per player: a roster never repeats one, and an upsert batch must not either.
        m.players.sort_by(|a, b| a.0.cmp(&b.0));
        m.players.dedup_by(|a, b| a.0 == b.0);
        if m.players.is_empty() {
            return Ok(false);
        }
        self.call(move |db| db.record_match_stats(m)).await
    }

    /// A player's stats, if the player finished any match.
    pub async fn player_stats(&self, player_id: &str) -> Result<Option<PlayerStats>, StoreError> {
        let p = player_id.to_owned();
        self.call(move |db| db.player_stats(p)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(owner: &str, version: i64, read: &str, write: &str) -> Row {
        Row {
            owner: owner.into(),
            version,
            read_perm: read.into(),
            write_perm: write.into(),
        }
    }

    #[test]
    fn own_row_wins_and_others_need_permission() {
        let rows = [
            row("a", 3, "owner", "owner"),
            row("b", 1, "public", "public"),
        ];
        assert_eq!(decide_read(&rows, "a"), Ok("a".into()));
        assert_eq!(decide_read(&rows, "b"), Ok("b".into()));
        assert_eq!(decide_read(&rows, "c"), Err(StorageRefusal::Ambiguous));
        let one = [row("a", 3, "owner", "owner")];
        assert_eq!(decide_read(&one, "c"), Err(StorageRefusal::Forbidden));
        assert_eq!(
            decide_write(&one, "c", None),
            Err(StorageRefusal::Forbidden)
        );
        assert_eq!(
            decide_write(&one, "a", Some(2)),
            Err(StorageRefusal::VersionConflict { current_version: 3 })
        );
        assert_eq!(
            decide_write(&one, "a", Some(3)),
            Ok(WritePlan::Update {
                owner: "a".into(),
                version: 3,
                set_perms: true
            })
        );
        let public = [row("a", 1, "public", "public")];
        assert_eq!(
            decide_write(&public, "c", None),
            Ok(WritePlan::Update {
                owner: "a".into(),
                version: 1,
                set_perms: false
            })
        );
        let none = [row("a", 1, "none", "none")];
        assert_eq!(decide_read(&none, "a"), Err(StorageRefusal::Forbidden));
        assert_eq!(
            decide_delete(&none, "a", None),
            Err(StorageRefusal::Forbidden)
        );
        assert_eq!(decide_write(&[], "a", Some(0)), Ok(WritePlan::Insert));
        assert_eq!(
            decide_write(&[], "a", Some(4)),
            Err(StorageRefusal::VersionConflict { current_version: 0 })
        );
    }
}
