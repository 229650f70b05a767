//! Tournaments and seasons: their definitions, who entered, and settlement.
//!
//! Money never leaves this crate's transactions: a join that costs an entry fee debits the
//! wallet in the same transaction that records the entry (so a fee is never taken for a join
//! that did not happen, nor a join made without its fee), and settlement grants every reward in
//! the same transaction that marks the tournament settled. Each money row carries a per-player
//! idempotency key in the economy's operation record (`tournament:<id>:entry`,
//! `tournament:<id>:payout`, `season:<id>:<board>:payout`), so a settlement repeated after a
//! crash or a restart pays nobody twice.

mod postgres;
mod sqlite;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::Reply;
use crate::{StoreError, StoreHandle, WalletReceipt};

/// Largest page [`StoreHandle::tournaments`] returns (asobi clamps `limit` to 1–200).
pub const MAX_TOURNAMENT_LIST: u32 = 200;

/// A tournament as stored (asobi's columns, times in unix ms) and how many entered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tournament {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The board entrants' scores are ranked on.
    pub leaderboard_id: String,
    /// Cap on entrants; `None`: no cap.
    pub max_entries: Option<i64>,
    /// `{}` or `{"currency", "amount"}`.
    pub entry_fee: Value,
    /// `[]` or `[{"from", "to", "currency", "amount"}, …]`.
    pub rewards: Value,
    /// `pending`, `active`, `finished` or `cancelled`.
    pub status: String,
    /// Unix ms.
    pub start_at: i64,
    /// Unix ms.
    pub end_at: i64,
    /// Free-form JSON object.
    pub metadata: Value,
    /// Unix ms.
    pub inserted_at: i64,
    /// When the rewards were paid, unix ms.
    pub settled_at: Option<i64>,
    /// Entrants so far (not a column: counted when read).
    pub entrants: i64,
}

/// A fee, as a tournament's `entry_fee` declares it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Fee {
    /// Currency debited.
    pub currency: String,
    /// Positive amount.
    pub amount: i64,
}

impl Tournament {
    /// The entry fee, if the tournament charges one.
    pub fn fee(&self) -> Option<Fee> {
        serde_json::from_value::<Fee>(self.entry_fee.clone())
            .ok()
            .filter(|f| f.amount > 0)
    }
}

/// Entering a tournament.
#[derive(Clone, Debug)]
pub struct JoinRequest {
    /// The tournament.
    pub tournament_id: String,
    /// Who enters.
    pub player_id: String,
    /// Unix ms; a join at or after `end_at` is refused.
    pub now_ms: i64,
}

/// What a join did.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum JoinOutcome {
    /// Entered; with the fee's wallet change when it cost one.
    Joined {
        /// The debit, when the tournament has a fee.
        fee: Option<Box<WalletReceipt>>,
    },
    /// No tournament with this id.
    NotFound,
    /// As many entrants as `max_entries` allows.
    Full,
    /// This player entered before (nothing was charged again).
    AlreadyJoined,
    /// Finished, cancelled or past its end.
    Closed,
    /// The wallet holds less than the fee.
    InsufficientFunds {
        /// The balance when refused.
        balance: i64,
    },
}

/// One entrant's final placement and what it pays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The entrant.
    pub player_id: String,
    /// 1-based rank among entrants with a score.
    pub rank: i64,
    /// Final score.
    pub score: i64,
    /// The reward, if this rank earns one: currency and positive amount.
    pub reward: Option<(String, i64)>,
}

/// The end of a tournament: placements and rewards, applied once.
#[derive(Clone, Debug)]
pub struct Settlement {
    /// The tournament.
    pub tournament_id: String,
    /// Ranked entrants.
    pub placements: Vec<Placement>,
    /// Unix ms.
    pub now_ms: i64,
}

/// A season as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Season {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Boards reset when the season ends.
    pub boards: Vec<String>,
    /// `[{"from", "to", "currency", "amount"}, …]`, applied to each board's ranking.
    pub rewards: Value,
    /// Unix ms.
    pub start_at: i64,
    /// Unix ms.
    pub end_at: i64,
    /// Unix ms.
    pub inserted_at: i64,
    /// When the rewards were paid.
    pub settled_at: Option<i64>,
    /// When, after the payout, every board of the season was reset (`None` until then).
    #[serde(default)]
    pub reset_at: Option<i64>,
}

/// The end of a season: for each board, its ranking with rewards.
#[derive(Clone, Debug)]
pub struct SeasonSettlement {
    /// The season.
    pub season_id: String,
    /// Per board: its id and its placements.
    pub boards: Vec<(String, Vec<Placement>)>,
    /// Unix ms.
    pub now_ms: i64,
}

/// The tournament operations one database implements.
pub(crate) trait Tournaments: Send + Sync {
    fn create_tournament(&self, t: Tournament) -> Reply<'_, bool>;
    fn tournaments(&self, status: Option<String>, limit: u32) -> Reply<'_, Vec<Tournament>>;
    fn tournament(&self, id: String) -> Reply<'_, Option<Tournament>>;
    fn set_tournament_status(&self, id: String, status: String) -> Reply<'_, ()>;
    fn join_tournament(&self, j: JoinRequest) -> Reply<'_, JoinOutcome>;
    fn tournament_entrants(&self, id: String) -> Reply<'_, Vec<String>>;
    fn settle_tournament(&self, s: Settlement) -> Reply<'_, bool>;
    fn create_season(&self, s: Season) -> Reply<'_, bool>;
    fn seasons(&self) -> Reply<'_, Vec<Season>>;
    fn settle_season(&self, s: SeasonSettlement) -> Reply<'_, bool>;
    fn finish_season(&self, id: String, now_ms: i64) -> Reply<'_, bool>;
}

/// The economy key a tournament's fee is recorded under.
pub fn entry_key(tournament: &str) -> String {
    format!("tournament:{tournament}:entry")
}

/// The economy key a tournament's payout is recorded under.
pub fn payout_key(tournament: &str) -> String {
    format!("tournament:{tournament}:payout")
}

/// The economy key a season's payout on one board is recorded under.
pub fn season_key(season: &str, board: &str) -> String {
    format!("season:{season}:{board}:payout")
}

fn check_status(status: &str) -> Result<(), StoreError> {
    if ["pending", "active", "finished", "cancelled"].contains(&status) {
        Ok(())
    } else {
        Err(StoreError::Precondition(format!(
            "unknown tournament status {status:?}"
        )))
    }
}

impl StoreHandle {
    /// Creates a tournament unless one with its id exists. True when it was created.
    pub async fn create_tournament(&self, t: Tournament) -> Result<bool, StoreError> {
        check_status(&t.status)?;
        if t.end_at <= t.start_at {
            return Err(StoreError::Precondition(
                "end_at must follow start_at".into(),
            ));
        }
        self.call(move |db| db.create_tournament(t)).await
    }

    /// Tournaments by start time, optionally of one status, at most `limit` (1–200).
    pub async fn tournaments(
        &self,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Tournament>, StoreError> {
        let status = status.map(str::to_owned);
        let limit = limit.clamp(1, MAX_TOURNAMENT_LIST);
        self.call(move |db| db.tournaments(status, limit)).await
    }

    /// One tournament.
    pub async fn tournament(&self, id: &str) -> Result<Option<Tournament>, StoreError> {
        let id = id.to_owned();
        self.call(move |db| db.tournament(id)).await
    }

    /// Moves a tournament to `status` (a settled tournament stays finished).
    pub async fn set_tournament_status(&self, id: &str, status: &str) -> Result<(), StoreError> {
        check_status(status)?;
        let (id, status) = (id.to_owned(), status.to_owned());
        self.call(move |db| db.set_tournament_status(id, status))
            .await
    }

    /// Enters a player, charging the fee in the same transaction.
    pub async fn join_tournament(&self, j: JoinRequest) -> Result<JoinOutcome, StoreError> {
        self.call(move |db| db.join_tournament(j)).await
    }

    /// Every entrant's player id.
    pub async fn tournament_entrants(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let id = id.to_owned();
        self.call(move |db| db.tournament_entrants(id)).await
    }

    /// Records placements, pays rewards and marks the tournament finished, all in one
    /// transaction. False when it was settled before (then nothing changes).
    pub async fn settle_tournament(&self, s: Settlement) -> Result<bool, StoreError> {
        check_rewards(s.placements.iter())?;
        self.call(move |db| db.settle_tournament(s)).await
    }

    /// Creates a season unless one with its id exists. True when it was created.
    pub async fn create_season(&self, s: Season) -> Result<bool, StoreError> {
        if s.end_at <= s.start_at {
            return Err(StoreError::Precondition(
                "end_at must follow start_at".into(),
            ));
        }
        self.call(move |db| db.create_season(s)).await
    }

    /// Every season.
    pub async fn seasons(&self) -> Result<Vec<Season>, StoreError> {
        self.call(|db| db.seasons()).await
    }

    /// Pays a season's rewards and marks it settled, in one transaction. False when it was
    /// settled before.
    pub async fn settle_season(&self, s: SeasonSettlement) -> Result<bool, StoreError> {
        check_rewards(s.boards.iter().flat_map(|(_, p)| p.iter()))?;
        self.call(move |db| db.settle_season(s)).await
    }

    /// Records that a settled season's boards are reset. False when it is not settled or was
    /// finished before.
    pub async fn finish_season(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.call(move |db| db.finish_season(id, now_ms)).await
    }
}

fn check_rewards<'a>(
    mut placements: impl Iterator<Item = &'a Placement>,
) -> Result<(), StoreError> {
    if placements.any(|p| p.reward.as_ref().is_some_and(|(_, a)| *a <= 0)) {
        return Err(StoreError::Precondition("a reward must be positive".into()));
    }
    Ok(())
}

/// The grant a placement's reward makes.
fn reward_change(
    player: &str,
    currency: &str,
    amount: i64,
    reason: &str,
    reference: (&str, &str),
    key: String,
    now_ms: i64,
) -> crate::WalletChange {
    crate::WalletChange {
        player_id: player.to_owned(),
        currency: currency.to_owned(),
        amount,
        reason: reason.to_owned(),
        reference_type: Some(reference.0.to_owned()),
        reference_id: Some(reference.1.to_owned()),
        metadata: Value::Object(Default::default()),
        idempotency_key: key,
        now_ms,
    }
}

/// The debit a join's fee makes.
fn fee_change(j: &JoinRequest, fee: &Fee) -> crate::WalletChange {
    crate::WalletChange {
        player_id: j.player_id.clone(),
        currency: fee.currency.clone(),
        amount: -fee.amount,
        reason: "tournament_entry".to_owned(),
        reference_type: Some("tournament".to_owned()),
        reference_id: Some(j.tournament_id.clone()),
        metadata: Value::Object(Default::default()),
        idempotency_key: entry_key(&j.tournament_id),
        now_ms: j.now_ms,
    }
}

const TOURNAMENT_COLUMNS: &str = "t.id, t.name, t.leaderboard_id, t.max_entries, t.entry_fee, \
     t.rewards, t.status, t.start_at, t.end_at, t.metadata, t.inserted_at, t.settled_at, \
     (SELECT COUNT(*) FROM tournament_entries e WHERE e.tournament_id = t.id)";
