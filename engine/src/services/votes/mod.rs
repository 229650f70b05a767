//! In-match voting: the votes a match runs ([`MatchVotes`], one per match, empty until a vote
//! starts), the frames they send, the rows they store, and the operations `vote.cast`,
//! `vote.veto` and the history routes call.
//!
//! The counting and the windows are `asobi_rules::votes`; this module feeds them the match's
//! players and the shard's clock, and turns what they decide into frames. A match polls
//! `vote_requested` after each tick only when its script defines it, and a match that never
//! votes carries three empty collections (no allocation on its hot path).

pub(crate) mod cmd;
pub(crate) mod error;
pub(crate) mod rest;
pub(crate) mod ws;

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use asobi_rules::votes::{Ballot, Closed, ConfigError, Vote, VoteConfig};
use asobi_schema::envelope::encode_frame;
use asobi_storage::VoteRecord;

use super::accounts::tokens::now_ms;
use error::Error;

/// asobi's `frustration_bonus` default: a voter who lost `n` votes in a row weighs `1 + n × 0.5`
/// in the next weighted vote.
pub(crate) const DEFAULT_FRUSTRATION_BONUS: f64 = 0.5;
/// Votes one match may run at once. asobi has no bound; a script that starts a vote on every
/// tick would otherwise grow the match without end.
pub(crate) const MAX_ACTIVE: usize = 8;
/// Closed vote ids remembered so a late ballot hears `vote_closed` rather than `vote_not_found`.
const RECENTLY_CLOSED: usize = 16;

/// The votes of one match.
#[derive(Default)]
pub(crate) struct MatchVotes {
    active: Vec<Vote>,
    closed: VecDeque<String>,
    /// Consecutive lost votes per player (asobi's frustration accumulator).
    frustration: HashMap<String, u32>,
    /// Vetoes spent per player.
    vetoes_spent: HashMap<String, u32>,
}

/// A vote that closed: its `vote_result` frame, its row, and what `vote_resolved` receives.
pub(crate) struct Resolved {
    pub(crate) frame: Bytes,
    pub(crate) record: VoteRecord,
    pub(crate) template: String,
    pub(crate) result: Value,
}

/// What a match's mode says about voting (asobi reads these from the session's start map and
/// app config; asobi-rs reads them as globals of the mode: `vote_templates`,
/// `veto_tokens_per_player`, `frustration_bonus`).
pub(crate) struct Settings<'a> {
    pub(crate) templates: &'a Map<String, Value>,
    pub(crate) veto_tokens: u32,
    pub(crate) frustration_bonus: f64,
}

impl<'a> Settings<'a> {
    pub(crate) fn of(extra: &'a Map<String, Value>) -> Settings<'a> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        Settings {
            templates: extra
                .get("vote_templates")
                .and_then(Value::as_object)
                .unwrap_or_else(|| EMPTY.get_or_init(Map::new)),
            veto_tokens: extra
                .get("veto_tokens_per_player")
                .and_then(Value::as_u64)
                .map_or(0, |n| n.min(u32::MAX as u64) as u32),
            frustration_bonus: extra
                .get("frustration_bonus")
                .and_then(Value::as_f64)
                .filter(|f| f.is_finite() && *f >= 0.0)
                .unwrap_or(DEFAULT_FRUSTRATION_BONUS),
        }
    }
}

fn frame(kind: &str, payload: &Value) -> Bytes {
    encode_frame(kind, None, payload)
}

fn counts_json(counts: &[(String, f64)], whole: bool) -> Value {
    Value::Object(
        counts
            .iter()
            .map(|(k, v)| {
                let n = if whole { json!(*v as u64) } else { json!(v) };
                (k.clone(), n)
            })
            .collect(),
    )
}

impl MatchVotes {
    /// The earliest window close, for the match's timer.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.active.iter().map(Vote::close_at).min()
    }

    /// Starts a vote from a script's configuration among `players`; the `vote_start` frame.
    pub(crate) fn start(
        &mut self,
        now: Instant,
        config: &Value,
        settings: &Settings<'_>,
        players: Vec<String>,
        seed: u64,
    ) -> Result<Bytes, Error> {
        if self.active.len() >= MAX_ACTIVE {
            return Err(Error::TooManyVotes);
        }
        let mut cfg = VoteConfig::parse(config, settings.templates).map_err(Error::Config)?;
        let id = cfg
            .vote_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        if self.active.iter().any(|v| v.id == id) || self.closed.contains(&id) {
            return Err(Error::Config(ConfigError::Key("vote_id")));
        }
        // Frustration weights for every player, then the script's own weights over them.
        for p in &players {
            let lost = self.frustration.get(p).copied().unwrap_or(0);
            cfg.weights
                .entry(p.clone())
                .or_insert(1.0 + f64::from(lost) * settings.frustration_bonus);
        }
        let payload = json!({
            "vote_id": id,
            "options": cfg.options,
            "window_ms": cfg.window.as_millis() as u64,
            "method": cfg.method.as_str(),
        });
        self.active.push(Vote::open(now, id, cfg, players, seed));
        Ok(frame("match.vote_start", &payload))
    }

    fn find(&mut self, vote_id: &str) -> Result<usize, Error> {
        match self.active.iter().position(|v| v.id == vote_id) {
            Some(i) => Ok(i),
            None if self.closed.iter().any(|c| c == vote_id) => Err(Error::Closed),
            None => Err(Error::NotFound),
        }
    }

    /// A ballot; the `vote_tally` frame for a live vote.
    pub(crate) fn cast(
        &mut self,
        now: Instant,
        voter: &str,
        vote_id: &str,
        option: &Value,
    ) -> Result<Option<Bytes>, Error> {
        let i = self.find(vote_id)?;
        let vote = &mut self.active[i];
        // A ballot of the wrong JSON type is an invalid option, as in asobi (never a crash).
        let ballot = Ballot::from_json(option)
            .ok_or(Error::Refused(asobi_rules::votes::Refused::InvalidOption))?;
        vote.cast(now, voter, ballot).map_err(Error::Refused)?;
        if vote.config.visibility == asobi_rules::votes::Visibility::Hidden {
            return Ok(None);
        }
        let payload = json!({
            "vote_id": vote.id,
            "tallies": counts_json(&vote.live(), vote.config.method != asobi_rules::votes::Method::Weighted),
            "time_remaining_ms": vote.remaining(now).as_millis() as u64,
            "total_votes": vote.cast_count(),
        });
        Ok(Some(frame("match.vote_tally", &payload)))
    }

    /// A veto: the vote ends with no result; the `vote_vetoed` frame.
    pub(crate) fn veto(&mut self, voter: &str, vote_id: &str, tokens: u32) -> Result<Bytes, Error> {
        let i = self.find(vote_id)?;
        let spent = self.vetoes_spent.get(voter).copied().unwrap_or(0);
        if spent >= tokens {
            return Err(Error::NoVetoTokens);
        }
        self.active[i].check_veto(voter).map_err(Error::Refused)?;
        let vote = self.active.remove(i);
        *self.vetoes_spent.entry(voter.to_owned()).or_insert(0) += 1;
        self.remember(vote.id.clone());
        Ok(frame(
            "match.vote_vetoed",
            &json!({ "vote_id": vote.id, "vetoed_by": voter }),
        ))
    }

    fn remember(&mut self, id: String) {
        if self.closed.len() >= RECENTLY_CLOSED {
            self.closed.pop_front();
        }
        self.closed.push_back(id);
    }

    /// Closes every vote whose window ended by `now`.
    pub(crate) fn poll(&mut self, now: Instant, match_id: &str) -> Vec<Resolved> {
        if self.active.iter().all(|v| v.close_at() > now) {
            return Vec::new();
        }
        let (due, open): (Vec<Vote>, Vec<Vote>) = std::mem::take(&mut self.active)
            .into_iter()
            .partition(|v| v.close_at() <= now);
        self.active = open;
        due.into_iter()
            .map(|v| self.resolve(now, match_id, v))
            .collect()
    }

    fn resolve(&mut self, now: Instant, match_id: &str, vote: Vote) -> Resolved {
        let id = vote.id.clone();
        let cfg = vote.config.clone();
        let eligible = vote.eligible.len();
        let opened_ms =
            now_ms() - now.saturating_duration_since(vote.opened_at()).as_millis() as i64;
        let Closed {
            ballots,
            outcome,
            cast,
            turnout,
            ..
        } = vote.close(now);
        let votes_cast = Value::Object(
            ballots
                .iter()
                .map(|(k, b)| (k.clone(), b.to_json()))
                .collect(),
        );
        // Frustration: who voted for the winner starts over, everyone else lost one more.
        if let Some(w) = &outcome.winner {
            for (voter, b) in &ballots {
                if matches!(b, Ballot::One(o) if o == w) {
                    self.frustration.remove(voter);
                } else {
                    *self.frustration.entry(voter.clone()).or_insert(0) += 1;
                }
            }
        }
        let frame_payload = json!({
            "vote_id": id,
            "winner": outcome.winner,
            "counts": outcome.counts_json(),
            "distribution": outcome.distribution_json(),
            "total_votes": cast,
            "turnout": turnout,
        });
        let mut result = outcome.to_json();
        if let Some(m) = result.as_object_mut() {
            m.insert("votes_cast".into(), votes_cast.clone());
        }
        let closed_ms = now_ms();
        let record = VoteRecord {
            id: id.clone(),
            match_id: match_id.to_owned(),
            template: cfg.template.clone(),
            method: cfg.method.as_str().to_owned(),
            visibility: match cfg.visibility {
                asobi_rules::votes::Visibility::Live => "live",
                asobi_rules::votes::Visibility::Hidden => "hidden",
            }
            .to_owned(),
            options: Value::Array(cfg.options.clone()),
            votes_cast,
            result: outcome.to_json(),
            distribution: outcome.distribution_json(),
            turnout,
            eligible_count: eligible as i64,
            window_ms: cfg.window.as_millis() as i64,
            opened_at: opened_ms,
            closed_at: closed_ms,
            inserted_at: closed_ms,
        };
        self.remember(id);
        Resolved {
            frame: frame("match.vote_result", &frame_payload),
            record,
            template: cfg.template,
            result,
        }
    }
}

/// A stored vote as the history routes serve it: a hidden vote's per-voter ballots are
/// withheld (asobi's stated intent for hidden votes; see README).
pub(crate) fn public(v: VoteRecord) -> Value {
    let hidden = v.visibility == "hidden";
    let mut out = json!({
        "id": v.id,
        "match_id": v.match_id,
        "template": v.template,
        "method": v.method,
        "options": v.options,
        "votes_cast": v.votes_cast,
        "result": v.result,
        "distribution": v.distribution,
        "turnout": v.turnout,
        "eligible_count": v.eligible_count,
        "window_ms": v.window_ms,
        "opened_at": v.opened_at,
        "closed_at": v.closed_at,
        "inserted_at": v.inserted_at,
    });
    if hidden {
        if let Some(m) = out.as_object_mut() {
            m.remove("votes_cast");
        }
    }
    out
}
