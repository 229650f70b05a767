//! `asobi import --from <asobi PostgreSQL URL>`: copies an asobi database into this server's,
//! keeping asobi's ids: players (profile, ban, password hash, linked providers), guest devices,
//! wallets with their ledgers, inventories, leaderboard entries, friendships, groups and their
//! members, cloud saves, storage objects and match stats.
//!
//! Idempotent: nothing already here is overwritten (a player, wallet, entry... with the same key
//! is left alone and counted as "already here"), so the command can be re-run after a partial
//! failure or to pick up what was created since. Each player's rows are written in one
//! transaction, and the rows that belong to no player (groups, global storage objects) in one
//! more; a ledger is written only together with its wallet, so a re-run never doubles one.
//! Imported passwords stay in asobi's PBKDF2 form until the player's first login, which verifies
//! them and rehashes them to argon2id; imported guest devices keep asobi's verifier, checked
//! against `ASOBI_GUEST_VERIFIER_PEPPER` (set it to asobi's pepper).
//!
//! Run it while the server is stopped: a running server's leaderboards are held in memory and
//! would not see the imported entries until restarted.

use std::collections::BTreeMap;

use asobi_storage::{StoreConfig, StoreError, StoreHandle};

/// What asobi has that is not carried over at all.
const NOT_COPIED: &str =
    "chat history, notifications, match records, tournaments, seasons, votes, \
                          IAP receipts, zone snapshots, item definitions and store listings \
                          (the game's economy file defines these here), ratings";

/// What one import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Report {
    pub(crate) imported: usize,
    pub(crate) already_here: usize,
    pub(crate) failed: Vec<(String, String)>,
    pub(crate) skipped: Vec<(String, String)>,
    /// Per kind of row: (copied, already here).
    pub(crate) rows: BTreeMap<&'static str, (usize, usize)>,
    /// Rows that could not be carried over, as (what, why).
    pub(crate) unmapped: Vec<(String, String)>,
}

impl Report {
    fn count(&mut self, batch: &[asobi_storage::ImportInsert], written: &[bool]) {
        for (row, w) in batch.iter().zip(written) {
            let c = self.rows.entry(row.kind).or_default();
            if *w {
                c.0 += 1;
            } else {
                c.1 += 1;
            }
        }
    }
}

/// Runs the import against `target`; blocking (a CLI command).
pub(crate) fn run(from: &str, target: &StoreConfig) -> anyhow::Result<Report> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut export = runtime.block_on(asobi_storage::read_asobi_players(from))?;
    let store = StoreHandle::start(target.clone())?;
    let mut report = Report {
        skipped: std::mem::take(&mut export.skipped),
        unmapped: std::mem::take(&mut export.unmapped),
        ..Report::default()
    };
    for p in std::mem::take(&mut export.players) {
        let id = p.id.clone();
        let rows = export.rows.remove(&id).unwrap_or_default();
        match futures::executor::block_on(store.import_player(p)) {
            Ok(true) => report.imported += 1,
            Ok(false) => report.already_here += 1,
            Err(e) => {
                let why = match e {
                    StoreError::Conflict(why) => format!("username taken here ({why})"),
                    e => e.to_string(),
                };
                if !rows.is_empty() {
                    report.unmapped.push((
                        format!("{} row(s) of {id}", rows.len()),
                        "the player failed".to_owned(),
                    ));
                }
                report.failed.push((id, why));
                continue;
            }
        }
        if rows.is_empty() {
            continue;
        }
        match futures::executor::block_on(store.import_rows(rows.clone())) {
            Ok(written) => report.count(&rows, &written),
            Err(e) => report
                .failed
                .push((id, format!("its rows (nothing of them written): {e}"))),
        }
    }
    let shared = std::mem::take(&mut export.shared);
    if !shared.is_empty() {
        match futures::executor::block_on(store.import_rows(shared.clone())) {
            Ok(written) => report.count(&shared, &written),
            Err(e) => report.failed.push((
                "groups and global storage objects".to_owned(),
                format!("nothing of them written: {e}"),
            )),
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
        for (kind, (copied, here)) in &self.rows {
            writeln!(f, "{kind}: {copied} copied, {here} already here")?;
        }
        for (id, why) in &self.failed {
            writeln!(f, "failed  {id}: {why}")?;
        }
        for (id, why) in &self.skipped {
            writeln!(f, "skipped {id}: {why}")?;
        }
        for (what, why) in &self.unmapped {
            writeln!(f, "not copied {what}: {why}")?;
        }
        write!(f, "not copied (no counterpart here): {NOT_COPIED}")
    }
}
