//! One open vote: ballots, revote limits, the window and its early closes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::config::{Ballot, VoteConfig, WindowType};
use super::tally::{self, Outcome, TieRng};

/// How long an adaptive window lasts once one option holds the supermajority (asobi: 3 s).
pub const ADAPTIVE_SHRINK: Duration = Duration::from_millis(3_000);

/// Why a ballot or a veto was refused (asobi's `reason`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// The voter is in neither the eligible nor the spectator pool.
    #[error("not_eligible")]
    NotEligible,
    /// The ballot names an option the vote does not have, or has the wrong shape.
    #[error("invalid_option")]
    InvalidOption,
    /// The voter already changed their ballot `max_revotes` times.
    #[error("rate_limited")]
    RateLimited,
    /// This vote does not allow vetoes.
    #[error("veto_disabled")]
    VetoDisabled,
}

impl Refused {
    /// The wire `reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Refused::NotEligible => "not_eligible",
            Refused::InvalidOption => "invalid_option",
            Refused::RateLimited => "rate_limited",
            Refused::VetoDisabled => "veto_disabled",
        }
    }
}

/// A closed vote: what the engine broadcasts, stores and hands to `vote_resolved`.
#[derive(Debug, Clone)]
pub struct Closed {
    /// Ballots after defaults and delegation, as stored in `votes_cast`.
    pub ballots: BTreeMap<String, Ballot>,
    /// The count.
    pub outcome: Outcome,
    /// Ballots actually cast in the window (defaults and delegations excluded).
    pub cast: usize,
    /// `cast / eligible`, 0.0 with nobody eligible.
    pub turnout: f64,
    /// How long it was open.
    pub open_for: Duration,
}

/// One vote in a match.
///
/// The engine opens it with the match's players as `eligible`, feeds it casts and vetoes with
/// the current time, arms a timer at [`Vote::close_at`], and at that time calls
/// [`Vote::close`]. A cast may bring `close_at` forward (ready-up, hybrid, adaptive); the
/// engine re-arms after each.
#[derive(Debug)]
pub struct Vote {
    /// The vote id.
    pub id: String,
    /// Its configuration.
    pub config: VoteConfig,
    /// Players who may vote (spectators are in `config.spectators`).
    pub eligible: Vec<String>,
    opened_at: Instant,
    close_at: Instant,
    ballots: BTreeMap<String, Ballot>,
    changes: BTreeMap<String, u32>,
    rng: TieRng,
}

impl Vote {
    /// Opens a vote at `now`; `seed` drives random tie breaks.
    pub fn open(
        now: Instant,
        id: String,
        config: VoteConfig,
        eligible: Vec<String>,
        seed: u64,
    ) -> Vote {
        let close_at = now + config.window;
        Vote {
            id,
            config,
            eligible,
            opened_at: now,
            close_at,
            ballots: BTreeMap::new(),
            changes: BTreeMap::new(),
            rng: TieRng::new(seed),
        }
    }

    /// When the window closes (the engine's timer).
    pub fn close_at(&self) -> Instant {
        self.close_at
    }

    /// When it opened.
    pub fn opened_at(&self) -> Instant {
        self.opened_at
    }

    /// Time left in the window at `now`.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.close_at.saturating_duration_since(now)
    }

    /// Ballots cast so far.
    pub fn cast_count(&self) -> usize {
        self.ballots.len()
    }

    /// Running counts (`vote_tally`).
    pub fn live(&self) -> Vec<(String, f64)> {
        tally::live(&self.config, &self.ballots)
    }

    fn may_vote(&self, voter: &str) -> bool {
        self.eligible.iter().any(|p| p == voter)
            || self.config.spectators.iter().any(|p| p == voter)
    }

    /// A ballot (a new one, or a change within `max_revotes`). The window may close early as
    /// a result: check [`Vote::close_at`] afterwards.
    pub fn cast(&mut self, now: Instant, voter: &str, ballot: Ballot) -> Result<(), Refused> {
        if !self.may_vote(voter) {
            return Err(Refused::NotEligible);
        }
        if !self.config.valid(&ballot) {
            return Err(Refused::InvalidOption);
        }
        if self.ballots.contains_key(voter) {
            let used = self.changes.entry(voter.to_owned()).or_insert(0);
            if *used >= self.config.max_revotes {
                return Err(Refused::RateLimited);
            }
            *used += 1;
        }
        self.ballots.insert(voter.to_owned(), ballot);
        self.after_cast(now);
        Ok(())
    }

    fn after_cast(&mut self, now: Instant) {
        let everyone = self.ballots.len() >= self.eligible.len();
        let early = match self.config.window_type {
            WindowType::Fixed => None,
            WindowType::ReadyUp => everyone.then_some(now),
            // All in before the minimum: close when the minimum is reached.
            WindowType::Hybrid => {
                everyone.then(|| now.max(self.opened_at + self.config.min_window))
            }
            WindowType::Adaptive => {
                let live = self.live();
                tally::has_supermajority(&live, self.ballots.len(), self.config.supermajority)
                    .then(|| now + ADAPTIVE_SHRINK)
            }
        };
        // The window only ever shrinks: a later cast that breaks the supermajority does not
        // give the time back.
        if let Some(at) = early {
            self.close_at = self.close_at.min(at);
        }
    }

    /// Whether `voter` may veto this vote (the engine spends their token after).
    pub fn check_veto(&self, voter: &str) -> Result<(), Refused> {
        if !self.config.veto_enabled {
            return Err(Refused::VetoDisabled);
        }
        if !self.may_vote(voter) {
            return Err(Refused::NotEligible);
        }
        Ok(())
    }

    /// Closes the window and counts.
    pub fn close(mut self, now: Instant) -> Closed {
        let cast = self.ballots.len();
        let (ballots, outcome) =
            tally::resolve(&self.config, &self.eligible, &self.ballots, &mut self.rng);
        let turnout = if self.eligible.is_empty() {
            0.0
        } else {
            cast as f64 / self.eligible.len() as f64
        };
        Closed {
            ballots,
            outcome,
            cast,
            turnout,
            open_for: now.saturating_duration_since(self.opened_at),
        }
    }
}
