//! Tournaments and seasons as plain data: when a window opens and closes, and what each final
//! rank pays. The engine's owning shard keeps a [`Calendar`] of the windows it owns, arms one
//! timer at [`Calendar::next_deadline`], and on that timer calls [`Calendar::poll`] with the
//! wall-clock milliseconds it reads; the transitions it gets back are what it must do (mark a
//! tournament active, settle it). Nothing here reads a clock or does I/O.
//!
//! Polling order: `insert` windows as they are created or loaded, then `poll(now)` whenever the
//! deadline passes (or at any time: a poll before a deadline returns nothing), then re-arm at
//! `next_deadline()`. A window seen for the first time after its end reports both transitions
//! at once, in order, so a tournament that ended while the server was down is still settled.

use std::collections::BTreeMap;

use serde_json::Value;

/// Where a window stands at some instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Before `start_at`.
    Pending,
    /// From `start_at` (inclusive) to `end_at` (exclusive).
    Active,
    /// At or after `end_at`.
    Ended,
}

/// A start and an end, unix milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Opens at this instant.
    pub start_at: i64,
    /// Closes at this instant; after `start_at`.
    pub end_at: i64,
}

impl Window {
    /// The phase at `now`.
    pub fn phase(&self, now: i64) -> Phase {
        if now < self.start_at {
            Phase::Pending
        } else if now < self.end_at {
            Phase::Active
        } else {
            Phase::Ended
        }
    }

    /// The next instant the phase changes after `now`, if any.
    pub fn next_change(&self, now: i64) -> Option<i64> {
        match self.phase(now) {
            Phase::Pending => Some(self.start_at),
            Phase::Active => Some(self.end_at),
            Phase::Ended => None,
        }
    }
}

/// A phase change the engine must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The window's id.
    pub id: String,
    /// The phase entered.
    pub to: Phase,
}

/// The windows one shard owns and the phase each was last reported in.
#[derive(Debug, Default)]
pub struct Calendar {
    windows: BTreeMap<String, (Window, Phase)>,
}

impl Calendar {
    /// Tracks a window whose last known phase is `seen` (`Pending` for a new one; a stored
    /// tournament passes its stored status). Replaces a window with the same id.
    pub fn insert(&mut self, id: &str, window: Window, seen: Phase) {
        self.windows.insert(id.to_owned(), (window, seen));
    }

    /// Stops tracking a window.
    pub fn remove(&mut self, id: &str) {
        self.windows.remove(id);
    }

    /// How many windows are tracked.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// True when no window is tracked.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// The phase changes due by `now`, each reported once, in time order per window (a window
    /// that jumped from pending to ended reports `Active` then `Ended`). Ended windows are
    /// dropped after they are reported.
    pub fn poll(&mut self, now: i64) -> Vec<Transition> {
        let mut out = Vec::new();
        self.windows.retain(|id, (window, seen)| {
            let phase = window.phase(now);
            if *seen < Phase::Active && phase >= Phase::Active {
                out.push(Transition {
                    id: id.clone(),
                    to: Phase::Active,
                });
            }
            if *seen < Phase::Ended && phase == Phase::Ended {
                out.push(Transition {
                    id: id.clone(),
                    to: Phase::Ended,
                });
            }
            *seen = (*seen).max(phase);
            phase != Phase::Ended
        });
        out
    }

    /// The earliest instant a tracked window changes phase.
    pub fn next_deadline(&self) -> Option<i64> {
        self.windows
            .values()
            .filter_map(|(w, seen)| match seen {
                Phase::Pending => Some(w.start_at),
                Phase::Active => Some(w.end_at),
                Phase::Ended => None,
            })
            .min()
    }
}

/// What one band of ranks pays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tier {
    /// First rank paid (1-based).
    pub from: u64,
    /// Last rank paid, inclusive.
    pub to: u64,
    /// Currency granted.
    pub currency: String,
    /// Positive amount granted.
    pub amount: i64,
}

/// Ranks to rewards: bands that do not overlap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rewards {
    tiers: Vec<Tier>,
}

/// Longest currency name accepted in a reward or fee (the economy's limit).
pub const MAX_CURRENCY: usize = 128;
/// Largest single reward (the economy's per-operation cap).
pub const MAX_REWARD: i64 = 1_000_000_000_000;

/// Why a reward table was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RewardsError {
    /// Not a JSON array of objects.
    #[error("rewards must be an array of {{from, to, currency, amount}} objects")]
    Shape,
    /// A tier with a missing or invalid field.
    #[error("reward tier {0}: {1}")]
    Tier(usize, &'static str),
    /// Two tiers pay the same rank.
    #[error("reward tiers {0} and {1} overlap")]
    Overlap(usize, usize),
}

impl Rewards {
    /// Reads `[{"from": 1, "to": 3, "currency": "gold", "amount": 100}, …]`; `"rank": n` is
    /// short for `from = to = n`; `{}` or `null` (asobi's default) is no rewards.
    pub fn parse(v: &Value) -> Result<Rewards, RewardsError> {
        let list = match v {
            Value::Null => return Ok(Rewards::default()),
            Value::Object(o) if o.is_empty() => return Ok(Rewards::default()),
            Value::Array(a) => a,
            _ => return Err(RewardsError::Shape),
        };
        let mut tiers = Vec::with_capacity(list.len());
        for (i, t) in list.iter().enumerate() {
            let o = t.as_object().ok_or(RewardsError::Shape)?;
            let rank = |k: &str| o.get(k).and_then(Value::as_u64).filter(|r| *r >= 1);
            let (from, to) = match (rank("rank"), rank("from"), rank("to")) {
                (Some(r), None, None) => (r, r),
                (None, Some(f), Some(t)) => (f, t),
                (None, Some(f), None) => (f, f),
                _ => {
                    return Err(RewardsError::Tier(
                        i,
                        "give `rank`, or `from` and `to` (≥ 1)",
                    ))
                }
            };
            if to < from {
                return Err(RewardsError::Tier(i, "`to` is before `from`"));
            }
            let currency = o
                .get("currency")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty() && c.len() <= MAX_CURRENCY)
                .ok_or(RewardsError::Tier(
                    i,
                    "`currency` must be a short non-empty string",
                ))?;
            let amount = o
                .get("amount")
                .and_then(Value::as_i64)
                .filter(|a| (1..=MAX_REWARD).contains(a))
                .ok_or(RewardsError::Tier(i, "`amount` must be a positive integer"))?;
            tiers.push(Tier {
                from,
                to,
                currency: currency.to_owned(),
                amount,
            });
        }
        for (i, a) in tiers.iter().enumerate() {
            for (j, b) in tiers.iter().enumerate().skip(i + 1) {
                if a.from <= b.to && b.from <= a.to {
                    return Err(RewardsError::Overlap(i, j));
                }
            }
        }
        Ok(Rewards { tiers })
    }

    /// What `rank` pays, if anything.
    pub fn for_rank(&self, rank: u64) -> Option<&Tier> {
        self.tiers.iter().find(|t| (t.from..=t.to).contains(&rank))
    }

    /// The deepest rank that pays (0: none).
    pub fn deepest(&self) -> u64 {
        self.tiers.iter().map(|t| t.to).max().unwrap_or(0)
    }
}

/// One entrant's final place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// The entrant.
    pub player_id: String,
    /// 1-based rank among entrants.
    pub rank: u64,
    /// Final score.
    pub score: i64,
    /// Currency and amount, if the rank pays.
    pub reward: Option<(String, i64)>,
}

/// Places entrants in board order: `ranked` is the board's ranking (best first) as
/// `(player, score)`; only players for which `entered` holds are placed, ranked 1.. among
/// themselves, each with what its rank pays.
pub fn place<'a>(
    ranked: impl IntoIterator<Item = (&'a str, i64)>,
    entered: impl Fn(&str) -> bool,
    rewards: &Rewards,
) -> Vec<Place> {
    ranked
        .into_iter()
        .filter(|(p, _)| entered(p))
        .enumerate()
        .map(|(i, (player, score))| {
            let rank = i as u64 + 1;
            Place {
                player_id: player.to_owned(),
                rank,
                score,
                reward: rewards
                    .for_rank(rank)
                    .map(|t| (t.currency.clone(), t.amount)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;

/// Reads a time as unix milliseconds: an integer, or `YYYY-MM-DDTHH:MM:SSZ` (UTC, the shape
/// asobi's answers use; fractional seconds are accepted and dropped).
pub fn parse_time(v: &Value) -> Option<i64> {
    if let Some(ms) = v.as_i64() {
        return Some(ms);
    }
    let s = v.as_str()?;
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let time = time.split('.').next()?;
    let mut d = date.splitn(3, '-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    let mut t = time.splitn(3, ':');
    let hour: u32 = t.next()?.parse().ok()?;
    let minute: u32 = t.next()?.parse().ok()?;
    let second: u32 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let c = crate::leaderboards::Civil {
        year,
        month,
        day,
        hour,
        minute,
        second: second.min(59),
        weekday: 0,
    };
    Some(c.to_ms())
}
