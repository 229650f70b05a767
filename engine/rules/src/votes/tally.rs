//! Counting ballots: the four methods, ties, quorum, supermajority and the spectator pool.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Map, Value};

use super::config::{Ballot, Method, TieBreaker, VoteConfig};

/// A small seeded generator for random tie breaks (splitmix64): the engine seeds it, a test
/// replays it.
#[derive(Debug, Clone)]
pub struct TieRng(u64);

impl TieRng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> TieRng {
        TieRng(seed)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn pick(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z % n.max(1) as u64) as usize
    }
}

/// The outcome of a closed vote, as `vote_result` and the stored row carry it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The winning option; `None` for no quorum, no consensus, or no options left.
    pub winner: Option<String>,
    /// Per option, in the vote's option order: ballots (or weight, or merged score).
    pub counts: Vec<(String, f64)>,
    /// Whether `counts` are whole ballots (plurality, approval, ranked) rather than weights.
    pub whole: bool,
    /// Each option's share, for the methods asobi reports one for.
    pub distribution: Option<Vec<(String, f64)>>,
    /// Ballots counted (after defaults and delegation).
    pub total_votes: usize,
    /// `no_quorum` or `no_consensus` when there is no winner for that reason.
    pub status: Option<&'static str>,
}

fn num(v: f64, whole: bool) -> Value {
    if whole {
        json!(v as u64)
    } else {
        json!(v)
    }
}

fn object(pairs: &[(String, f64)], whole: bool) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), num(*v, whole)))
            .collect::<Map<_, _>>(),
    )
}

impl Outcome {
    /// `counts` as a JSON object.
    pub fn counts_json(&self) -> Value {
        object(&self.counts, self.whole)
    }

    /// `distribution` as a JSON object (`{}` when the method has none).
    pub fn distribution_json(&self) -> Value {
        self.distribution
            .as_ref()
            .map_or_else(|| json!({}), |d| object(d, false))
    }

    /// The result map (`winner`, `counts`, `distribution`?, `total_votes`, `status`?), as the
    /// script's `vote_resolved` and the stored row receive it.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("winner".into(), json!(self.winner));
        m.insert("counts".into(), self.counts_json());
        if self.distribution.is_some() {
            m.insert("distribution".into(), self.distribution_json());
        }
        m.insert("total_votes".into(), json!(self.total_votes));
        if let Some(s) = self.status {
            m.insert("status".into(), json!(s));
        }
        Value::Object(m)
    }
}

/// Running counts as `vote_tally` shows them: first choices for ranked, weights for weighted,
/// approvals for approval, ballots for plurality.
pub fn live(cfg: &VoteConfig, ballots: &BTreeMap<String, Ballot>) -> Vec<(String, f64)> {
    let mut counts: Vec<(String, f64)> =
        cfg.option_ids.iter().map(|id| (id.clone(), 0.0)).collect();
    for (voter, ballot) in ballots {
        add(cfg.method, &cfg.weights, voter, ballot, &mut counts);
    }
    counts
}

fn add(
    method: Method,
    weights: &HashMap<String, f64>,
    voter: &str,
    ballot: &Ballot,
    counts: &mut [(String, f64)],
) {
    let mut bump = |id: &str, by: f64| {
        if let Some(c) = counts.iter_mut().find(|(k, _)| k == id) {
            c.1 += by;
        }
    };
    match method {
        Method::Approval => ballot.ids().iter().for_each(|id| bump(id, 1.0)),
        Method::Weighted => {
            if let Some(id) = ballot.first() {
                bump(id, weights.get(voter).copied().unwrap_or(1.0));
            }
        }
        Method::Plurality | Method::Ranked => {
            if let Some(id) = ballot.first() {
                bump(id, 1.0);
            }
        }
    }
}

/// The leading options (every one tied at the top), settled by `tie`.
fn leader(counts: &[(String, f64)], tie: TieBreaker, rng: &mut TieRng) -> Option<String> {
    let max = counts.iter().map(|c| c.1).fold(f64::NEG_INFINITY, f64::max);
    let top: Vec<&String> = counts.iter().filter(|c| c.1 == max).map(|c| &c.0).collect();
    settle(&top, tie, rng).cloned()
}

fn settle<'a, T>(tied: &[&'a T], tie: TieBreaker, rng: &mut TieRng) -> Option<&'a T> {
    match (tied.len(), tie) {
        (0, _) => None,
        (1, _) | (_, TieBreaker::First) => Some(tied[0]),
        (n, TieBreaker::Random) => Some(tied[rng.pick(n)]),
    }
}

/// One voter's ballot, borrowed.
type Cast<'a> = (&'a str, &'a Ballot);

/// One pool's count (players, or spectators) by the vote's method.
fn count_pool(cfg: &VoteConfig, ballots: &[(&str, &Ballot)], rng: &mut TieRng) -> Outcome {
    let total = ballots.len();
    let mut counts: Vec<(String, f64)> =
        cfg.option_ids.iter().map(|id| (id.clone(), 0.0)).collect();
    for (voter, ballot) in ballots {
        add(cfg.method, &cfg.weights, voter, ballot, &mut counts);
    }
    let share = |by: f64| {
        counts
            .iter()
            .map(|(k, v)| (k.clone(), if by == 0.0 { 0.0 } else { v / by }))
            .collect::<Vec<_>>()
    };
    let (winner, distribution) = match cfg.method {
        Method::Plurality => (
            leader(&counts, cfg.tie_breaker, rng),
            Some(share(total as f64)),
        ),
        Method::Weighted => {
            let weight: f64 = counts.iter().map(|c| c.1).sum();
            (leader(&counts, cfg.tie_breaker, rng), Some(share(weight)))
        }
        Method::Approval => (leader(&counts, cfg.tie_breaker, rng), None),
        Method::Ranked => (runoff(cfg, ballots, rng), None),
    };
    Outcome {
        winner,
        counts,
        whole: cfg.method != Method::Weighted,
        distribution,
        total_votes: total,
        status: None,
    }
}

/// Instant runoff: each round counts every ballot's first preference still standing; an option
/// over half of them wins, otherwise the weakest (ties settled by the tie breaker) is out.
fn runoff(cfg: &VoteConfig, ballots: &[(&str, &Ballot)], rng: &mut TieRng) -> Option<String> {
    let mut standing: Vec<&String> = cfg.option_ids.iter().collect();
    loop {
        match standing.len() {
            0 => return None,
            1 => return Some(standing[0].clone()),
            _ => {}
        }
        let mut firsts = vec![0usize; standing.len()];
        for (_, b) in ballots {
            if let Some(i) = b
                .ids()
                .iter()
                .find_map(|id| standing.iter().position(|s| *s == id))
            {
                firsts[i] += 1;
            }
        }
        let total: usize = firsts.iter().sum();
        let (best, &most) = firsts
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))
            .unwrap_or((0, &0));
        if most * 2 > total {
            return Some(standing[best].clone());
        }
        let least = firsts.iter().copied().min().unwrap_or(0);
        let tied: Vec<usize> = (0..standing.len())
            .filter(|i| firsts[*i] == least)
            .collect();
        let refs: Vec<&usize> = tied.iter().collect();
        let out = settle(&refs, cfg.tie_breaker, rng).copied().unwrap_or(0);
        standing.remove(out);
    }
}

/// Closes the count: defaults and delegation fill in for absentees, then quorum, then each
/// pool is counted and the spectator pool merged, then the supermajority rule.
pub fn resolve(
    cfg: &VoteConfig,
    eligible: &[String],
    cast: &BTreeMap<String, Ballot>,
    rng: &mut TieRng,
) -> (BTreeMap<String, Ballot>, Outcome) {
    let mut all = cast.clone();
    for p in eligible {
        if all.contains_key(p) {
            continue;
        }
        let filled = match cfg.delegation.get(p) {
            Some(delegate) => all.get(delegate).cloned(),
            None => cfg.default_votes.get(p).cloned(),
        };
        if let Some(b) = filled.filter(|b| cfg.valid(b)) {
            all.insert(p.clone(), b);
        }
    }
    let voters = all.len();
    let quorum_met = cfg.quorum <= 0.0
        || eligible.is_empty()
        || voters as f64 / eligible.len() as f64 >= cfg.quorum;
    if !quorum_met {
        let outcome = Outcome {
            winner: None,
            counts: Vec::new(),
            whole: true,
            distribution: None,
            total_votes: voters,
            status: Some("no_quorum"),
        };
        return (all, outcome);
    }
    let (spectators, players): (Vec<Cast<'_>>, Vec<Cast<'_>>) = all
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .partition(|(k, _)| cfg.spectators.iter().any(|s| s == k));
    let mut outcome = if spectators.is_empty() {
        count_pool(cfg, &players, rng)
    } else {
        let p = count_pool(cfg, &players, rng);
        let s = count_pool(cfg, &spectators, rng);
        merge(cfg, &p, &s, rng)
    };
    if cfg.require_supermajority {
        if let Some(w) = &outcome.winner {
            let got = outcome
                .counts
                .iter()
                .find(|(k, _)| k == w)
                .map_or(0.0, |c| c.1);
            let total = outcome.total_votes as f64;
            if !(total > 0.0 && got / total >= cfg.supermajority) {
                outcome.winner = None;
                outcome.status = Some("no_consensus");
            }
        }
    }
    (all, outcome)
}

/// `score = players' share × (1 − spectator_weight) + spectators' share × spectator_weight`.
fn merge(cfg: &VoteConfig, p: &Outcome, s: &Outcome, rng: &mut TieRng) -> Outcome {
    let pt: f64 = p.counts.iter().map(|c| c.1).sum();
    let st: f64 = s.counts.iter().map(|c| c.1).sum();
    let w = cfg.spectator_weight;
    let merged: Vec<(String, f64)> = p
        .counts
        .iter()
        .zip(&s.counts)
        .map(|((id, pc), (_, sc))| {
            let pn = if pt == 0.0 { 0.0 } else { pc / pt };
            let sn = if st == 0.0 { 0.0 } else { sc / st };
            (id.clone(), pn * (1.0 - w) + sn * w)
        })
        .collect();
    Outcome {
        winner: leader(&merged, cfg.tie_breaker, rng),
        distribution: Some(merged.clone()),
        counts: merged,
        whole: false,
        total_votes: p.total_votes + s.total_votes,
        status: None,
    }
}

/// Whether one option holds `threshold` of the ballots cast so far (the adaptive window).
pub fn has_supermajority(live: &[(String, f64)], ballots: usize, threshold: f64) -> bool {
    let most = live.iter().map(|c| c.1).fold(0.0, f64::max);
    ballots > 0 && most / ballots as f64 >= threshold
}
