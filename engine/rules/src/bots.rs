//! Bots as plain data: bot ids, and asobi's built-in AI for bots whose mode has no bot script
//! (or whose `think` failed this turn).
//!
//! The engine owns the bots themselves (their seats, their think timer, their Lua VMs); this
//! module decides only from the state a bot sees and a seeded generator.

use serde_json::{json, Map, Value};

use crate::votes::TieRng;

/// asobi's bot think period: every bot decides on its own fixed 100 ms loop.
pub const THINK_PERIOD: std::time::Duration = std::time::Duration::from_millis(100);
/// Most bots one match may hold (asobi's ceiling).
pub const MAX_BOTS_PER_MATCH: usize = 64;
/// The prefix every bot id carries.
pub const BOT_PREFIX: &str = "bot_";

/// Whether a player id is a bot's.
pub fn is_bot(player_id: &str) -> bool {
    player_id.starts_with(BOT_PREFIX)
}

/// `bot_<name>_<6 hex>`: the discriminator keeps two matches' `Spark`s apart.
pub fn bot_id(name: &str, rng: &mut TieRng) -> String {
    format!("{BOT_PREFIX}{name}_{:06x}", rng.pick(1 << 24))
}

/// Whether `bot_id` is the bot `wanted` names: the full id, or the bare name it was built from.
pub fn names_bot(bot_id: &str, wanted: &str) -> bool {
    if bot_id == wanted {
        return true;
    }
    bot_id
        .strip_prefix(BOT_PREFIX)
        .and_then(|rest| rest.rsplit_once('_'))
        .is_some_and(|(name, _)| name == wanted)
}

fn num(m: &Map<String, Value>, k: &str, default: f64) -> f64 {
    m.get(k).and_then(Value::as_f64).unwrap_or(default)
}

/// asobi's default AI: find the nearest living player (`hp > 0`) under `state.players`, move
/// towards it, shoot within 200 units with ±10 aim jitter; wander when none is alive. A bot
/// without an entry of its own under `players` sends an empty input.
pub fn default_think(bot_id: &str, state: &Value, rng: &mut TieRng) -> Value {
    let Some(players) = state.get("players").and_then(Value::as_object) else {
        return json!({});
    };
    let Some(me) = players.get(bot_id).and_then(Value::as_object) else {
        return json!({});
    };
    let (mx, my) = (num(me, "x", 400.0), num(me, "y", 300.0));
    let mut best: Option<(f64, f64, f64)> = None;
    for (id, p) in players {
        let Some(p) = p.as_object().filter(|_| id != bot_id) else {
            continue;
        };
        if num(p, "hp", 0.0) <= 0.0 {
            continue;
        }
        let (x, y) = (num(p, "x", 0.0), num(p, "y", 0.0));
        let d = ((x - mx).powi(2) + (y - my).powi(2)).sqrt();
        if best.is_none_or(|b| d < b.2) {
            best = Some((x, y, d));
        }
    }
    match best {
        None => json!({
            "right": rng.pick(2) == 0,
            "left": rng.pick(2) == 0,
            "down": rng.pick(2) == 0,
            "up": rng.pick(2) == 0,
            "shoot": false,
        }),
        Some((tx, ty, d)) => json!({
            "right": tx > mx,
            "left": tx < mx,
            "down": ty > my,
            "up": ty < my,
            "shoot": d < 200.0,
            "aim_x": tx + (rng.pick(20) as f64 + 1.0 - 10.0),
            "aim_y": ty + (rng.pick(20) as f64 + 1.0 - 10.0),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chases_the_nearest_living_player_and_shoots_in_range() {
        let mut rng = TieRng::new(1);
        let state = json!({"players": {
            "bot_Spark_000001": {"x": 100, "y": 100, "hp": 10},
            "near_dead": {"x": 110, "y": 100, "hp": 0},
            "far": {"x": 500, "y": 50, "hp": 5},
            "near": {"x": 50, "y": 200, "hp": 5},
        }});
        let i = default_think("bot_Spark_000001", &state, &mut rng);
        assert_eq!(i["left"], true);
        assert_eq!(i["right"], false);
        assert_eq!(i["down"], true);
        assert_eq!(i["shoot"], true, "the nearest living one is ~112 away");
        let ax = i["aim_x"].as_f64().unwrap();
        assert!(
            (41.0..=60.0).contains(&ax),
            "aim within ±10 of the target: {ax}"
        );
    }

    #[test]
    fn wanders_with_nothing_alive_and_idles_without_an_entry() {
        let mut rng = TieRng::new(2);
        let state = json!({"players": {"bot_a_1": {"x": 1, "y": 1}, "p": {"x": 5, "y": 5}}});
        let i = default_think("bot_a_1", &state, &mut rng);
        assert_eq!(i["shoot"], false);
        assert!(i.get("aim_x").is_none());
        assert_eq!(default_think("bot_b_1", &state, &mut rng), json!({}));
        assert_eq!(default_think("bot_b_1", &json!({}), &mut rng), json!({}));
    }

    #[test]
    fn ids_carry_the_prefix_name_and_a_discriminator() {
        let mut rng = TieRng::new(3);
        let id = bot_id("Spark", &mut rng);
        assert!(is_bot(&id));
        assert!(id.starts_with("bot_Spark_") && id.len() == "bot_Spark_".len() + 6);
        assert!(names_bot(&id, "Spark"));
        assert!(names_bot(&id, &id));
        assert!(!names_bot(&id, "Spar"));
        assert!(
            names_bot("bot_my_bot_00ff00", "my_bot"),
            "names may hold underscores"
        );
    }
}
