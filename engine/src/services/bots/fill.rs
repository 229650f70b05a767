//! Queue fill: a mode that declares `bots = {script?, enabled?, min_players?}` gets bots queued
//! for it when humans wait and the queue is short of its target, checked every
//! [`FILL_INTERVAL`] (asobi's spawner period; there is no other wait). The matchmaker then
//! forms matches as usual, bots included; the match starts each bot's think loop.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::Value;

use asobi_rules::bots::{bot_id, MAX_BOTS_PER_MATCH};
use asobi_rules::matchmaker::TicketState;
use asobi_rules::votes::TieRng;
use asobi_script::{CompiledMode, DEFAULT_BOT_NAMES};

use crate::services::Shard;

/// How often queues are checked for bot fill (asobi: every 8 seconds).
pub(crate) const FILL_INTERVAL: Duration = Duration::from_secs(8);

/// This shard's fill state: when it next checks, and the bot tickets it queued per mode.
#[derive(Default)]
pub(crate) struct Fill {
    next: Cell<Option<Instant>>,
    queued: RefCell<HashMap<String, Vec<(String, String)>>>,
}

/// The fill target of a mode, or `None` when it does not fill: `min_players` (default
/// `match_size`), at most 64 and at most `max_players`.
pub(crate) fn target(mode: &CompiledMode) -> Option<usize> {
    let bots = mode.config.bots.as_object()?;
    if bots.get("enabled") == Some(&Value::Bool(false)) {
        return None;
    }
    let wanted = bots
        .get("min_players")
        .and_then(Value::as_u64)
        .map_or(mode.config.match_size as usize, |n| n as usize);
    Some(
        wanted
            .min(MAX_BOTS_PER_MATCH)
            .min(mode.config.max_players as usize),
    )
}

/// Called from the matchmaker's tick: queues bots where humans wait short of the target.
pub(crate) fn fill(shard: &Rc<Shard>, now: Instant) {
    let fill = &shard.bot_fill;
    match fill.next.get() {
        None => {
            // The first check comes one interval after start, like asobi's spawner.
            fill.next.set(Some(now + FILL_INTERVAL));
            return;
        }
        Some(at) if at > now => return,
        Some(_) => fill.next.set(Some(now + FILL_INTERVAL)),
    }
    let game = shard.game.borrow().clone();
    let mut queued = fill.queued.borrow_mut();
    let mut rng = TieRng::new(rand::random::<u64>());
    shard.matchmaker.for_each(|q| {
        let Some(mode) = game.mode(q.mode()) else {
            return;
        };
        let Some(target) = target(mode) else { return };
        let mine = queued.entry(q.mode().to_owned()).or_default();
        mine.retain(|(t, p)| {
            matches!(
                q.status(now, t, p).map(|s| s.state),
                Ok(TicketState::Pending)
            )
        });
        // A mode with nobody but bots queued is skipped: bots never start a match alone.
        if q.len() <= mine.len() {
            return;
        }
        let names: Vec<String> = mode.bot.as_ref().map_or_else(
            || DEFAULT_BOT_NAMES.iter().map(|n| (*n).to_owned()).collect(),
            |b| b.names.clone(),
        );
        // Players, not tickets: a party ticket seats all its members.
        for i in 0..target.saturating_sub(q.players_waiting()) {
            let name = names.get(i).cloned().unwrap_or_else(|| (i + 1).to_string());
            let id = bot_id(&name, &mut rng);
            let ticket = crate::services::matchmaker::new_ticket_id(shard.id());
            match q.add(now, ticket.clone(), id.clone(), Value::Null) {
                Ok(_) => mine.push((ticket, id)),
                Err(e) => {
                    tracing::info!(mode = %q.mode(), "bot fill stopped: {e}");
                    break;
                }
            }
        }
    });
}
