//! The schema history, embedded in the binary, and the rule for deciding what is pending.
//! Both backends apply the same files in the same order and record each name in
//! `schema_migrations` inside the same transaction as the change itself.

use crate::StoreError;

/// One schema change, identified by its file name without extension.
pub(crate) struct Migration {
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

/// Every migration, oldest first. Append only: an applied migration is never edited.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "0001_initial",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        name: "0002_economy",
        sql: include_str!("../migrations/0002_economy.sql"),
    },
    Migration {
        name: "0003_leaderboards",
        sql: include_str!("../migrations/0003_leaderboards.sql"),
    },
    Migration {
        name: "0004_storage",
        sql: include_str!("../migrations/0004_storage.sql"),
    },
    Migration {
        name: "0005_social",
        sql: include_str!("../migrations/0005_social.sql"),
    },
    Migration {
        name: "0006_ops",
        sql: include_str!("../migrations/0006_ops.sql"),
    },
    Migration {
        name: "0007_accounts",
        sql: include_str!("../migrations/0007_accounts.sql"),
    },
    Migration {
        name: "0008_votes",
        sql: include_str!("../migrations/0008_votes.sql"),
    },
    Migration {
        name: "0009_tournaments",
        sql: include_str!("../migrations/0009_tournaments.sql"),
    },
    Migration {
        name: "0010_iap",
        sql: include_str!("../migrations/0010_iap.sql"),
    },
    Migration {
        name: "0012_world_snapshots",
        sql: include_str!("../migrations/0012_world_snapshots.sql"),
    },
    Migration {
        name: "0013_season_resets",
        sql: include_str!("../migrations/0013_season_resets.sql"),
    },
];

/// Portable DDL for the bookkeeping table itself.
pub(crate) const CREATE_TRACKING_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
     name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)";

/// Migrations not yet in `applied`. A database that has migrations this build does not know
/// was written by a newer server; running against it could corrupt data, so that is an error.
pub(crate) fn pending(applied: &[String]) -> Result<Vec<&'static Migration>, StoreError> {
    if let Some(unknown) = applied
        .iter()
        .find(|name| !MIGRATIONS.iter().any(|m| m.name == name.as_str()))
    {
        return Err(StoreError::Migration(format!(
            "database has migration {unknown} which this build does not know; it was written by a newer asobi"
        )));
    }
    Ok(MIGRATIONS
        .iter()
        .filter(|m| !applied.iter().any(|a| a == m.name))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_skips_applied_and_rejects_unknown() {
        assert_eq!(pending(&[]).unwrap().len(), MIGRATIONS.len());
        let all: Vec<String> = MIGRATIONS.iter().map(|m| m.name.to_owned()).collect();
        assert!(pending(&all).unwrap().is_empty());
        let future = vec!["9999_from_the_future".to_owned()];
        assert!(matches!(pending(&future), Err(StoreError::Migration(_))));
    }

    #[test]
    fn names_are_sorted_and_unique() {
        let names: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
    }
}
