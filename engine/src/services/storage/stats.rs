//! Player stats from match results, asobi's rule: every participant of a finished match plays a
//! game; `winners` (a list) or `winner` (one id) win; `losers` / `loser` lose; when winners are
//! named and losers are not, every other participant loses (`losers = []` for a co-op run where
//! nobody does). Ids that are not in the roster are ignored. The fold is one transaction keyed
//! by the match id, so a match never counts twice.
//!
//! Bots are participants for that rule (a bot can be the winner, and then every human lost)
//! but get no stats of their own: asobi only bumps rows that account creation made, and a bot
//! has no account. The match record still lists them, as asobi's does.

use std::rc::Rc;

use serde_json::Value;

use asobi_storage::{MatchStats, PlayerStats};

use super::error::Error;
use crate::services::Shard;

/// The ids a result names under `many` (a list) or `one` (a single id); `None` when neither.
fn named(result: &Value, many: &str, one: &str) -> Option<Vec<String>> {
    if let Some(list) = result.get(many).and_then(Value::as_array) {
        return Some(
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        );
    }
    result
        .get(one)
        .and_then(Value::as_str)
        .map(|id| vec![id.to_owned()])
}

/// Each participant with whether it won and whether it lost.
pub(crate) fn outcome(players: &[String], result: &Value) -> Vec<(String, bool, bool)> {
    let winners = named(result, "winners", "winner");
    let losers = named(result, "losers", "loser");
    players
        .iter()
        .map(|p| {
            let won = winners.as_ref().is_some_and(|w| w.contains(p));
            let lost = match (&winners, &losers) {
                (_, Some(l)) => l.contains(p),
                (Some(_), None) => !won,
                (None, None) => false,
            };
            (p.clone(), won, lost)
        })
        .collect()
}

/// Folds a match that finished normally into its players' stats, in the background.
pub(crate) fn on_match_finished(
    shard: &Rc<Shard>,
    match_id: &str,
    status: &str,
    players: Vec<String>,
    result: &Value,
) {
    if status != "finished" || players.is_empty() {
        return;
    }
    let mut players = outcome(&players, result);
    players.retain(|(p, _, _)| !crate::services::bots::is_bot(p));
    if players.is_empty() {
        return;
    }
    let stats = MatchStats {
        match_id: match_id.to_owned(),
        players,
        now_ms: super::now_ms(),
    };
    let store = shard.ctx.store.clone();
    shard.rt.spawn(async move {
        if let Err(e) = store.record_match_stats(stats).await {
            tracing::warn!("could not record player stats of a finished match: {e}");
        }
    });
}

/// A player's stats; zeros for a player who never finished a match.
pub(crate) async fn read(shard: &Shard, player: &str) -> Result<PlayerStats, Error> {
    Ok(shard
        .ctx
        .store
        .player_stats(player)
        .await?
        .unwrap_or_else(|| PlayerStats {
            player_id: player.to_owned(),
            ..PlayerStats::default()
        }))
}

#[cfg(test)]
mod tests {
    use super::outcome;
    use serde_json::json;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn asobis_winner_and_loser_rule() {
        let p = ids(&["a", "b", "c"]);
        assert_eq!(
            outcome(&p, &json!({"winner": "a"})),
            [
                ("a".into(), true, false),
                ("b".into(), false, true),
                ("c".into(), false, true)
            ]
        );
        assert_eq!(
            outcome(&p, &json!({"winners": ["a", "b", "zz"], "losers": []})),
            [
                ("a".into(), true, false),
                ("b".into(), true, false),
                ("c".into(), false, false)
            ]
        );
        assert_eq!(
            outcome(&p, &json!({"loser": "c"})),
            [
                ("a".into(), false, false),
                ("b".into(), false, false),
                ("c".into(), false, true)
            ]
        );
        assert_eq!(
            outcome(&p, &json!({"score": 3})),
            [
                ("a".into(), false, false),
                ("b".into(), false, false),
                ("c".into(), false, false)
            ]
        );
    }
}
