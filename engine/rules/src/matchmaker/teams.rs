//! Forming matches from tickets that may carry several players (parties), for modes with teams.
//!
//! A party's players always land in one match and, in a team mode, on one team; a ticket is
//! never split. The rest of the match is filled with solos or other parties. Used by
//! [`super::ModeQueue`] when a mode declares `teams` or any waiting ticket is a party; a queue
//! of solos in a mode without teams keeps asobi's own grouping.
//!
//! How a match is built, per strategy:
//! - `fill`: the oldest waiting ticket anchors the match and the others are taken in arrival
//!   order where they still fit, so a party waits no longer for being a party than its packing
//!   needs (the oldest ticket is always tried first).
//! - `skill_based`: tickets sorted by rating (a party's aggregate rating); the lowest unplaced
//!   one anchors, and tickets above it are taken while within the window its wait has opened,
//!   as asobi's walk does for solos.
//!
//! Within the chosen set, tickets are dealt to teams largest first, each to the team with room
//! whose rating total is lowest, so teams come out close in strength.

use std::time::{Duration, Instant};

/// Most candidates looked at for one anchor: bounds a tick's work on a long queue of tickets
/// that do not fit together (a match needs at most `match_size` tickets, so a few hundred
/// looks is far beyond what a formable match needs).
pub(crate) const MAX_SCAN: usize = 512;
/// Anchors that failed to form a match before the tick gives up: after this many, more
/// attempts on the same queue rarely succeed and would make a tick quadratic in queue length.
pub(crate) const MAX_FAILED_ANCHORS: usize = 64;

/// Largest ticket size a retry leaves out (see [`choose`]); each size is one more scan of the
/// candidates, and parties larger than this are rare enough to never block a match.
pub(crate) const MAX_SKIPPED_SIZE: usize = 8;

/// How a party's rating is made from its members' ratings (the mode's `party_rating`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PartyRating {
    /// The mean of the members' ratings (default).
    #[default]
    Mean,
    /// The highest member rating: a strong player cannot hide behind weaker friends.
    Max,
    /// The lowest member rating.
    Min,
}

impl PartyRating {
    /// The rule a mode's `party_rating` value names; unknown names fall back to the mean, as
    /// unknown strategy names fall back to `fill`.
    pub fn from_mode_value(name: &str) -> Self {
        match name {
            "max" => Self::Max,
            "min" => Self::Min,
            _ => Self::Mean,
        }
    }

    /// The party's rating from its members' ratings (1000 for an empty list).
    pub fn aggregate(self, ratings: &[f64]) -> f64 {
        if ratings.is_empty() {
            return super::DEFAULT_SKILL;
        }
        match self {
            Self::Mean => ratings.iter().sum::<f64>() / ratings.len() as f64,
            Self::Max => ratings.iter().copied().fold(f64::MIN, f64::max),
            Self::Min => ratings.iter().copied().fold(f64::MAX, f64::min),
        }
    }
}

/// What formation needs of a waiting ticket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) seq: u64,
    pub(crate) size: usize,
    pub(crate) rating: f64,
    pub(crate) submitted_at: Instant,
}

/// Groups `entries` (arrival order) into matches of `teams` teams of `team_size` players.
/// Returns, per match, each ticket's sequence number and team index. `window` gives the
/// allowed rating spread after a wait; `None` means ratings are ignored (`fill`).
pub(crate) fn choose(
    now: Instant,
    entries: &[Entry],
    teams: usize,
    team_size: usize,
    window: Option<&dyn Fn(Duration) -> f64>,
) -> Vec<Vec<(u64, usize)>> {
    let teams = teams.max(1);
    let team_size = team_size.max(1);
    let total = teams * team_size;
    let mut order: Vec<&Entry> = entries.iter().filter(|e| e.size <= team_size).collect();
    if window.is_some() {
        // Stable: equal ratings keep arrival order.
        order.sort_by(|a, b| a.rating.total_cmp(&b.rating));
    }
    let mut used = vec![false; order.len()];
    let mut remaining: usize = order.iter().map(|e| e.size).sum();
    let mut failed = 0;
    // fill: an anchor of a size that already failed this tick sees the same candidates (less
    // what formed since), so it would fail too; skipping it keeps a backlog of one size (say
    // trios waiting for solos) from using up the tick's attempts and starving other sizes.
    let mut failed_sizes: Vec<usize> = Vec::new();
    let mut out = Vec::new();
    for a in 0..order.len() {
        if remaining < total || failed >= MAX_FAILED_ANCHORS {
            break;
        }
        if used[a] {
            continue;
        }
        let anchor = order[a];
        if window.is_none() && failed_sizes.contains(&anchor.size) {
            continue;
        }
        let spread = window.map(|w| w(now.saturating_duration_since(anchor.submitted_at)));
        // First in plain order; if that gets stuck, again without one size of ticket at a time:
        // a greedy pick of, say, a trio that only a solo could complete blocks a match that
        // pairs would fill.
        let mut found = None;
        for skip in std::iter::once(0).chain(2..=team_size.min(MAX_SKIPPED_SIZE)) {
            if let Some(set) = gather(&order, &used, a, spread, skip, teams, team_size) {
                found = Some(set);
                break;
            }
        }
        let Some((chosen, placed)) = found else {
            failed += 1;
            failed_sizes.push(anchor.size);
            continue;
        };
        for &i in &chosen {
            used[i] = true;
        }
        remaining -= total;
        out.push(
            chosen
                .iter()
                .zip(placed)
                .map(|(&i, team)| (order[i].seq, team))
                .collect(),
        );
    }
    out
}

/// One attempt at a match around the anchor `a`, leaving out tickets of size `skip` (0: none).
/// Returns the chosen indices into `order` and each one's team.
fn gather(
    order: &[&Entry],
    used: &[bool],
    a: usize,
    spread: Option<f64>,
    skip: usize,
    teams: usize,
    team_size: usize,
) -> Option<(Vec<usize>, Vec<usize>)> {
    let total = teams * team_size;
    let anchor = order[a];
    let mut chosen: Vec<usize> = vec![a];
    let mut players = anchor.size;
    let mut looked = 0;
    // fill: every other unplaced ticket in arrival order; skill_based: those above the anchor
    // in rating order, until one is out of the window.
    let candidates: Box<dyn Iterator<Item = usize>> = if spread.is_some() {
        Box::new(a + 1..order.len())
    } else {
        Box::new((0..order.len()).filter(move |&i| i != a))
    };
    for c in candidates {
        if players == total || looked >= MAX_SCAN {
            break;
        }
        if used[c] {
            continue;
        }
        looked += 1;
        let e = order[c];
        if let Some(spread) = spread {
            if e.rating - anchor.rating > spread {
                break;
            }
        }
        if e.size == skip || players + e.size > total {
            continue;
        }
        chosen.push(c);
        let set: Vec<&Entry> = chosen.iter().map(|&i| order[i]).collect();
        if assign(&set, teams, team_size).is_some() {
            players += e.size;
        } else {
            chosen.pop();
        }
    }
    if players < total {
        return None;
    }
    let set: Vec<&Entry> = chosen.iter().map(|&i| order[i]).collect();
    let placed = assign(&set, teams, team_size)?;
    Some((chosen, placed))
}

/// Deals `set` to teams without splitting a ticket: largest tickets first, each to the team
/// with room whose rating total is lowest; if that greedy deal gets stuck, best-fit (the team
/// with the least room that still fits). Returns each ticket's team, in `set`'s order, or
/// `None` if neither deal fits everyone.
pub(crate) fn assign(set: &[&Entry], teams: usize, team_size: usize) -> Option<Vec<usize>> {
    if teams <= 1 {
        let players: usize = set.iter().map(|e| e.size).sum();
        return (players <= team_size).then(|| vec![0; set.len()]);
    }
    let mut idx: Vec<usize> = (0..set.len()).collect();
    idx.sort_by(|&a, &b| {
        set[b]
            .size
            .cmp(&set[a].size)
            .then(set[b].rating.total_cmp(&set[a].rating))
    });
    for balanced in [true, false] {
        let mut room = vec![team_size; teams];
        let mut strength = vec![0.0f64; teams];
        let mut team_of = vec![0usize; set.len()];
        let mut ok = true;
        for &i in &idx {
            let e = set[i];
            let fits = (0..teams).filter(|&t| room[t] >= e.size);
            let pick = if balanced {
                fits.min_by(|&x, &y| strength[x].total_cmp(&strength[y]).then(x.cmp(&y)))
            } else {
                fits.min_by_key(|&t| (room[t], t))
            };
            let Some(t) = pick else {
                ok = false;
                break;
            };
            room[t] -= e.size;
            strength[t] += e.rating * e.size as f64;
            team_of[i] = t;
        }
        if ok {
            return Some(team_of);
        }
    }
    None
}
