//! Bot scripts: no `game` table, budgets apply, problems degrade to the default AI.

mod common;

use asobi_script::{BudgetKind, Budgets, CallError, Game, VmPool, DEFAULT_BOT_NAMES};
use common::game_dir;
use serde_json::json;

const MATCH: &str = "match_size = 1
bots = { script = 'bots/ai.lua' }
function init() return {} end
function join(p, s) return s end
function leave(p, s) return s end
function handle_input(p, i, s) return s end
function tick(s) return s end
function get_state(p, s) return s end
";

#[test]
fn bots_run_without_the_game_api_and_can_require() {
    let dir = game_dir(&[
        ("match.lua", MATCH),
        (
            "bots/ai.lua",
            "local aim = require('aim')
            function think(id, state)
              return { id = id, has_game = game ~= nil, target = aim.pick(state.targets) }
            end",
        ),
        (
            "bots/aim.lua",
            "return { pick = function(t) return t and t[#t] end }",
        ),
    ]);
    let game = Game::load(dir.path()).unwrap();
    let mode = game.mode("default").unwrap();
    let names: Vec<&str> = mode
        .bot
        .as_ref()
        .unwrap()
        .names
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(names, DEFAULT_BOT_NAMES);
    let mut pool = VmPool::new(Budgets::default(), 0).unwrap();
    let mut bot = pool.acquire_bot(mode).unwrap().unwrap();
    let input = bot
        .think("bot_Spark", &json!({"targets": ["a", "b"]}))
        .unwrap();
    assert_eq!(
        input,
        json!({"id": "bot_Spark", "has_game": false, "target": "b"})
    );
}

#[test]
fn runaway_bots_are_stopped_and_reported() {
    let dir = game_dir(&[
        ("match.lua", MATCH),
        (
            "bots/ai.lua",
            "function think(id, s) if s.spin then while true do end end return nil end",
        ),
    ]);
    let game = Game::load(dir.path()).unwrap();
    let budgets = Budgets {
        instructions: 1_000_000,
        // The instruction budget is under test; a loaded machine must not reach the wall first.
        wall: std::time::Duration::from_secs(10),
        ..Budgets::default()
    };
    let mut pool = VmPool::new(budgets, 0).unwrap();
    let mut bot = pool
        .acquire_bot(game.mode("default").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(bot.think("b", &json!({})).unwrap(), json!({}));
    for _ in 0..3 {
        assert_eq!(
            bot.think("b", &json!({"spin": true})),
            Err(CallError::Budget {
                kind: BudgetKind::Instructions,
                callback: "think"
            })
        );
    }
    assert!(bot.failed());
}

#[test]
fn missing_or_broken_bot_scripts_fall_back_to_the_default_ai() {
    let dir = game_dir(&[("match.lua", MATCH)]);
    let game = Game::load(dir.path()).unwrap();
    assert!(game.mode("default").unwrap().bot.is_none());
    assert!(game
        .warnings
        .iter()
        .any(|w| w.message.contains("bots.script \"bots/ai.lua\" not found")));
    let mut pool = VmPool::new(Budgets::default(), 0).unwrap();
    assert!(pool
        .acquire_bot(game.mode("default").unwrap())
        .unwrap()
        .is_none());

    let dir = game_dir(&[
        ("match.lua", MATCH),
        ("bots/ai.lua", "names = {'A'}\nerror('no brain')"),
    ]);
    let game = Game::load(dir.path()).unwrap();
    assert!(game.mode("default").unwrap().bot.is_none());
    let warning = game
        .warnings
        .iter()
        .find(|w| w.message.contains("bot script failed"))
        .unwrap();
    assert_eq!(warning.file.to_str(), Some("bots/ai.lua"));
    assert_eq!(warning.line, Some(2));
}
