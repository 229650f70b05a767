//! Loading game directories: single and multi-mode, globals, require, diagnostics.

mod common;

use asobi_script::{
    check, Budgets, Game, GameType, LoadError, Registration, Severity, StateStrategy,
    StateTransport, Strategy, VmPool,
};
use common::{game_dir, shared_state, Recorder};
use serde_json::json;

const CALLBACKS: &str = "
function init(c) return { n = 0 } end
function join(p, s) return s end
function leave(p, s) return s end
function handle_input(p, i, s) return s end
function tick(s) return s end
function get_state(p, s) return s end
";

#[test]
fn globals_become_the_mode_config() {
    let dir = game_dir(&[(
        "match.lua",
        &format!(
            r#"match_size = 4
max_players = 10.9
min_players = 3
strategy = "skill_based"
tick_rate = 50
state_strategy = "shared"
listed = true
quick_play = false
bots = {{ script = "bots/ai.lua", names = {{ "Spark", "Volt" }} }}
state_transport = "datagram"
max_wait_seconds = 30
skill_window = 200
guest_auth = true
registration = "oauth_only"
empty_grace_ms = 60000
{CALLBACKS}"#
        ),
    )]);
    common::write(
        dir.path(),
        "bots/ai.lua",
        "function think(id, s) return {} end",
    );
    let game = Game::load(dir.path()).unwrap();
    assert!(game.guest_auth);
    assert_eq!(game.registration, Registration::OauthOnly);
    let c = &game.mode("default").unwrap().config;
    assert_eq!((c.match_size, c.max_players, c.min_players), (4, 10, 3));
    assert_eq!(c.strategy, Strategy::SkillBased);
    assert_eq!(c.tick_rate_ms, 50);
    assert_eq!(c.state_strategy, StateStrategy::Shared);
    assert!(c.listed);
    assert!(!c.quick_play);
    assert_eq!(
        c.bots,
        json!({"script": "bots/ai.lua", "names": ["Spark", "Volt"]})
    );
    assert_eq!(c.state_transport, StateTransport::Datagram);
    assert_eq!(c.max_wait_seconds, Some(30));
    assert_eq!(c.skill_window, Some(200));
    assert_eq!(c.skill_expand_rate, None);
    assert_eq!(c.game_type, GameType::Match);
    assert_eq!(c.extra.get("empty_grace_ms"), Some(&json!(60000)));
    assert!(game.warnings.is_empty(), "{:?}", game.warnings);
}

#[test]
fn defaults_and_lenient_globals() {
    let dir = game_dir(&[(
        "match.lua",
        &format!("match_size = 2\nlisted = 'yes'\nstrategy = 'my_module'\n{CALLBACKS}"),
    )]);
    let game = Game::load(dir.path()).unwrap();
    let c = &game.mode("default").unwrap().config;
    assert_eq!((c.match_size, c.max_players, c.min_players), (2, 2, 2));
    assert_eq!(c.tick_rate_ms, 100);
    assert_eq!(c.state_strategy, StateStrategy::PerPlayer);
    assert_eq!(c.state_transport, StateTransport::Stream);
    assert!(!c.listed, "a non-boolean is ignored, like asobi");
    assert!(!c.quick_play, "asobi's default");
    assert_eq!(c.strategy, Strategy::Custom("my_module".into()));
    assert!(!game.guest_auth);
    assert_eq!(game.warnings.len(), 1);
    assert!(game.warnings[0]
        .message
        .contains("`listed` must be a boolean"));
}

#[test]
fn multi_mode_manifest_with_modules() {
    let dir = game_dir(&[
        (
            "config.lua",
            r#"guest_auth = true
return { arena = "arena/match.lua", ctf = "./ctf/match.lua" }"#,
        ),
        ("arena/match.lua", &format!("match_size = 2\nlocal rules = require('rules')\nlocal shared = require('lib.shared')\nfunction get_state(s) return {{ r = rules.name, s = shared.name }} end\n{}", CALLBACKS.replace("function get_state(p, s) return s end", ""))),
        ("arena/rules.lua", "return { name = 'arena rules' }"),
        ("lib/shared.lua", "return { name = 'shared lib' }"),
        ("ctf/match.lua", &format!("match_size = 6\ntick_rate = 33\n{CALLBACKS}")),
        ("bots/ai.lua", "names = {'Spark'} function think(id, s) end"),
        (".hidden/broken.lua", "this is not lua"),
    ]);
    let game = Game::load(dir.path()).unwrap();
    assert!(game.guest_auth);
    assert_eq!(game.modes.keys().collect::<Vec<_>>(), vec!["arena", "ctf"]);
    assert_eq!(game.mode("ctf").unwrap().config.tick_rate_ms, 33);
    assert_eq!(
        game.mode("ctf").unwrap().file.to_str(),
        Some("ctf/match.lua")
    );
    let arena = game.mode("arena").unwrap();
    let mut pool = VmPool::new(Budgets::default(), 1).unwrap();
    let mut vm = pool.acquire(arena, "m").unwrap();
    vm.init(&json!({}), &mut Recorder::default())
        .unwrap()
        .done()
        .unwrap();
    // `rules` resolves next to the mode script, `lib.shared` from the game root.
    assert_eq!(
        shared_state(&mut vm),
        json!({"r": "arena rules", "s": "shared lib"})
    );
}

#[test]
fn syntax_errors_are_reported_with_file_and_line() {
    let dir = game_dir(&[
        (
            "match.lua",
            &format!("match_size = 2\nlocal x = require('helper')\n{CALLBACKS}"),
        ),
        (
            "helper.lua",
            "local M = {}\n\nfunction M.f(\n  return 1\nend\nreturn M\n",
        ),
        ("other.lua", "x = = 1"),
    ]);
    let err = Game::load(dir.path()).unwrap_err();
    let LoadError::Invalid { diagnostics } = &err else {
        panic!("{err}")
    };
    let errors: Vec<String> = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.to_string())
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].starts_with("helper.lua:4: "), "{errors:?}");
    assert!(
        errors[1].starts_with("other.lua:1: unexpected symbol near '='"),
        "{errors:?}"
    );
    assert!(err.to_string().starts_with("helper.lua:4: "));
    assert_eq!(check(dir.path()), *diagnostics);
}

#[test]
fn runtime_errors_at_load_point_at_the_line() {
    let dir = game_dir(&[(
        "match.lua",
        "match_size = 2\nlocal t = nil\nlocal y = t.field\n",
    )]);
    let diags = check(dir.path());
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].file.to_str(), Some("match.lua"));
    assert_eq!(diags[0].line, Some(3));
    assert!(
        diags[0].message.contains("attempt to index a nil value"),
        "{}",
        diags[0].message
    );
}

#[test]
fn mode_declaration_errors() {
    let dir = game_dir(&[("match.lua", "max_players = 4\n")]);
    let diags = check(dir.path());
    assert!(diags
        .iter()
        .any(|d| d.severity == Severity::Error && d.message == "match_size global is required"));

    let dir = game_dir(&[("match.lua", "match_size = 0\n")]);
    assert!(check(dir.path())
        .iter()
        .any(|d| d.message == "match_size must be a positive integer"));

    let dir = game_dir(&[(
        "config.lua",
        "return { a = 'missing.lua', b = '../escape.lua', c = 5 }",
    )]);
    let messages: Vec<String> = check(dir.path()).into_iter().map(|d| d.message).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("script \"missing.lua\" not found")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("invalid script path \"../escape.lua\"")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("must be a script path string")),
        "{messages:?}"
    );

    let dir = game_dir(&[("config.lua", "return 5")]);
    assert!(check(dir.path())[0].message.contains("must return a table"));

    let dir = game_dir(&[("readme.txt", "nothing here")]);
    assert!(matches!(
        Game::load(dir.path()),
        Err(LoadError::NoGame { .. })
    ));
}

#[test]
fn missing_callbacks_are_warnings() {
    let dir = game_dir(&[(
        "match.lua",
        "match_size = 1\nfunction init() return {} end\n",
    )]);
    let diags = check(dir.path());
    assert!(diags.iter().all(|d| d.severity == Severity::Warning));
    let missing: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
    // `leave` and `get_state` are optional: only join, handle_input and tick are missing.
    assert_eq!(missing.len(), 3, "{missing:?}");
    assert!(missing.contains(&"callback `tick` is not defined"));
    // It still loads, and calling a missing callback is a typed error.
    let game = Game::load(dir.path()).unwrap();
    let mut pool = VmPool::new(Budgets::default(), 0).unwrap();
    let mut vm = pool.acquire(game.mode("default").unwrap(), "m").unwrap();
    vm.init(&json!({}), &mut Recorder::default())
        .unwrap()
        .done()
        .unwrap();
    assert_eq!(
        vm.tick(&mut Recorder::default()),
        Err(asobi_script::CallError::MissingCallback { callback: "tick" })
    );
    // leave is optional.
    vm.leave("p", &mut Recorder::default())
        .unwrap()
        .done()
        .unwrap();
}

#[test]
fn bytecode_files_are_compiled_as_text() {
    let dir = game_dir(&[("match.lua", "\x1bLua\x54\x00 not really bytecode")]);
    let diags = check(dir.path());
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].severity, Severity::Error);
}

#[cfg(unix)]
#[test]
fn symlinks_outside_the_game_are_ignored() {
    let outside = game_dir(&[("secret.lua", "return { secret = true }")]);
    let dir = game_dir(&[(
        "match.lua",
        &format!("match_size = 1\nlocal ok = pcall(require, 'secret')\nleaked = ok\n{CALLBACKS}"),
    )]);
    std::os::unix::fs::symlink(
        outside.path().join("secret.lua"),
        dir.path().join("secret.lua"),
    )
    .unwrap();
    let diags = check(dir.path());
    assert!(
        diags
            .iter()
            .any(|d| d.message.contains("symlink leading outside")),
        "{diags:?}"
    );
    let game = Game::load(dir.path()).unwrap();
    assert!(game
        .warnings
        .iter()
        .any(|d| d.file.to_str() == Some("secret.lua")));
}

/// The seed's quick-start room: no `get_state` and no `leave`. Every player gets the whole
/// state, a leave keeps it as it was, and `check` raises no warning for either.
#[test]
fn get_state_and_leave_are_optional() {
    let seed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/seed/match.lua"),
    )
    .unwrap();
    let dir = game_dir(&[("match.lua", &seed)]);
    let diagnostics = check(dir.path());
    assert!(
        diagnostics
            .iter()
            .all(|d| !d.message.contains("get_state") && !d.message.contains("`leave`")),
        "{diagnostics:?}"
    );
    let game = Game::load(dir.path()).unwrap();
    let mode = game.mode("default").unwrap().clone();
    let mut pool = VmPool::new(Budgets::default(), 1).unwrap();
    let mut vm = pool.acquire(&mode, "m-1").unwrap();
    let h = &mut common::Recorder::default();
    vm.init(&json!({}), h).unwrap().done().unwrap();
    vm.join("alice", None, h).unwrap().done().unwrap();
    vm.handle_input("alice", &json!({"right": true}), h)
        .unwrap()
        .done()
        .unwrap();
    assert_eq!(
        shared_state(&mut vm),
        json!({"players": {"alice": {"x": 5, "y": 0}}})
    );
    let per_player = vm.state_for(Some("alice"), h).unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&per_player).unwrap()["players"]["alice"]["x"],
        5
    );
    vm.leave("alice", h).unwrap().done().unwrap();
    assert_eq!(shared_state(&mut vm)["players"]["alice"]["x"], 5);
}
