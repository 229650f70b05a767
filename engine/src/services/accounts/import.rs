//! `asobi import --from <asobi PostgreSQL URL>`: copies asobi's players (profile, ban, password
//! hash, linked providers) into this server's database, keeping their ids. Idempotent: a player
//! already here is left alone, so the command can be re-run after a partial failure or to pick
//! up players created since. Imported passwords stay in asobi's PBKDF2 form until the player's
//! first login, which verifies them and rehashes them to argon2id.
//!
//! Not copied (and said so at the end): guests (asobi's device verifiers depend on its pepper
//! map), and every other feature's rows — wallets, inventories, leaderboards, friends, groups,
//! saves and storage objects.

use asobi_storage::{StoreConfig, StoreError, StoreHandle};

/// What one import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Report {
    pub(crate) imported: usize,
    pub(crate) already_here: usize,
    pub(crate) failed: Vec<(String, String)>,
    pub(crate) skipped: Vec<(String, String)>,
}

/// Runs the import against `target`; blocking (a CLI command).
pub(crate) fn run(from: &str, target: &StoreConfig) -> anyhow::Result<Report> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let export = runtime.block_on(asobi_storage::read_asobi_players(from))?;
    let store = StoreHandle::start(target.clone())?;
    let mut report = Report {
        skipped: export.skipped,
        ..Report::default()
    };
    for p in export.players {
        let id = p.id.clone();
        match futures::executor::block_on(store.import_player(p)) {
            Ok(true) => report.imported += 1,
            Ok(false) => report.already_here += 1,
            Err(StoreError::Conflict(why)) => report
                .failed
                .push((id, format!("username taken here ({why})"))),
            Err(e) => report.failed.push((id, e.to_string())),
        }
    }
    store.shutdown();
    Ok(report)
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "imported {} player(s), {} already here, {} failed, {} skipped",
            self.imported,
            self.already_here,
            self.failed.len(),
            self.skipped.len()
        )?;
        for (id, why) in &self.failed {
            writeln!(f, "failed  {id}: {why}")?;
        }
        for (id, why) in &self.skipped {
            writeln!(f, "skipped {id}: {why}")?;
        }
        write!(
            f,
            "not copied: wallets, ledgers, inventories, leaderboards, friends, groups, saves and storage objects"
        )
    }
}
