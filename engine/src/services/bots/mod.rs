//! Bots in a match: placed by `game.bots.add`, removed by `game.bots.remove`, seated like
//! players but with no session, and deciding every [`THINK_PERIOD`] from the state a player
//! would see: the mode's bot script's `think(bot_id, state)` under its own budget, or asobi's
//! built-in AI when the mode has none or `think` failed this turn. What a bot decides goes in
//! as its input, through the same `handle_input` a player's does.
//!
//! A match with no bots carries an empty list and no timer.

pub(crate) mod fill;

use std::time::Instant;

use serde_json::Value;

use asobi_rules::bots::{self, MAX_BOTS_PER_MATCH, THINK_PERIOD};
use asobi_rules::votes::TieRng;
use asobi_script::BotVm;

pub(crate) use asobi_rules::bots::is_bot;

/// What a script asked of the bots during one callback.
#[derive(Debug, Clone)]
pub(crate) enum BotOp {
    Add(String),
    Remove(String),
}

struct Bot {
    id: String,
    /// The mode's bot script; `None` runs the built-in AI.
    vm: Option<BotVm>,
    /// When the script last failed, for a log line at most once a minute per bot.
    last_failure_log: Option<Instant>,
}

/// A match's bots.
#[derive(Default)]
pub(crate) struct MatchBots {
    bots: Vec<Bot>,
    pub(crate) pending: Vec<BotOp>,
    next_think: Option<Instant>,
    rng: Option<TieRng>,
}

/// Why `game.bots.add` did nothing (logged: the call itself never fails, as in asobi).
#[derive(Debug, thiserror::Error)]
pub(crate) enum AddRefused {
    #[error("the match is full")]
    Full,
    #[error("the match holds {MAX_BOTS_PER_MATCH} bots already")]
    TooMany,
    #[error("the match holds this bot already")]
    Duplicate,
}

impl MatchBots {
    fn rng(&mut self) -> &mut TieRng {
        self.rng
            .get_or_insert_with(|| TieRng::new(rand::random::<u64>()))
    }

    /// When the bots next think.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.next_think
    }

    /// Places a bot named `name`; its id, for the join.
    pub(crate) fn add(
        &mut self,
        now: Instant,
        name: &str,
        seated: usize,
        max_players: usize,
        vm: Option<BotVm>,
    ) -> Result<String, AddRefused> {
        if self.bots.len() >= MAX_BOTS_PER_MATCH {
            return Err(AddRefused::TooMany);
        }
        if seated >= max_players {
            return Err(AddRefused::Full);
        }
        if self.bots.iter().any(|b| bots::names_bot(&b.id, name)) {
            return Err(AddRefused::Duplicate);
        }
        let id = bots::bot_id(name, self.rng());
        self.bots.push(Bot {
            id: id.clone(),
            vm,
            last_failure_log: None,
        });
        self.next_think.get_or_insert(now + THINK_PERIOD);
        Ok(id)
    }

    /// Takes in a bot the matchmaker seated (queue fill): it joins with the group.
    pub(crate) fn adopt(&mut self, now: Instant, id: &str, vm: Option<BotVm>) {
        if self.bots.len() < MAX_BOTS_PER_MATCH && !self.bots.iter().any(|b| b.id == id) {
            self.bots.push(Bot {
                id: id.to_owned(),
                vm,
                last_failure_log: None,
            });
            self.next_think.get_or_insert(now + THINK_PERIOD);
        }
    }

    /// Takes the bot `which` (bare name or full id) off the list; its id, for the leave.
    pub(crate) fn remove(&mut self, which: &str) -> Option<String> {
        let i = self
            .bots
            .iter()
            .position(|b| bots::names_bot(&b.id, which))?;
        let bot = self.bots.remove(i);
        if self.bots.is_empty() {
            self.next_think = None;
        }
        Some(bot.id)
    }

    /// Forgets a bot that left the roster another way (a refused join).
    pub(crate) fn forget(&mut self, id: &str) {
        self.bots.retain(|b| b.id != id);
        if self.bots.is_empty() {
            self.next_think = None;
        }
    }

    /// Whether the think timer is due.
    pub(crate) fn due(&self, now: Instant) -> bool {
        self.next_think.is_some_and(|at| at <= now)
    }

    /// The bots' ids, in placing order.
    pub(crate) fn ids(&self) -> Vec<String> {
        self.bots.iter().map(|b| b.id.clone()).collect()
    }

    /// One bot's decision from `state`: its script's, or the built-in AI's when it has none
    /// or the script failed (a script that keeps overrunning is dropped for good).
    pub(crate) fn think(&mut self, now: Instant, id: &str, state: &Value) -> Value {
        let Some(i) = self.bots.iter().position(|b| b.id == id) else {
            return Value::Object(Default::default());
        };
        if let Some(vm) = self.bots[i].vm.as_mut() {
            match vm.think(id, state) {
                Ok(input) => return input,
                Err(e) => {
                    let bot = &mut self.bots[i];
                    if bot
                        .last_failure_log
                        .is_none_or(|at| now.duration_since(at).as_secs() >= 60)
                    {
                        bot.last_failure_log = Some(now);
                        tracing::warn!(bot_id = %id, reason = %e, "bot_think_error_falling_back_to_default_ai");
                    }
                    if bot.vm.as_ref().is_some_and(BotVm::failed) {
                        tracing::warn!(bot_id = %id, "bot script keeps overrunning; built-in AI from now on");
                        bot.vm = None;
                    }
                }
            }
        }
        bots::default_think(id, state, self.rng())
    }

    /// The think loop's next turn: one period after the last one was due, so a late wake-up
    /// does not slow the pace; a loop more than a period behind skips ahead instead of
    /// bunching turns.
    pub(crate) fn thought(&mut self, now: Instant) {
        let due = self.next_think.unwrap_or(now) + THINK_PERIOD;
        let next = if due <= now { now + THINK_PERIOD } else { due };
        self.next_think = (!self.bots.is_empty()).then_some(next);
    }
}
