//! Drives the example arena game tick by tick: joins, inputs, ticks, finish.

mod common;

use asobi_script::{Budgets, Call, Game, JoinOutcome, StateStrategy, Strategy, VmPool};
use common::{arena_dir, Recorder};
use serde_json::{json, Value};

fn state_of(vm: &mut asobi_script::MatchVm, player: &str) -> Value {
    let bytes = vm
        .state_for(Some(player), &mut Recorder::default())
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn arena_mode_config_is_read_from_globals() {
    let game = Game::load(&arena_dir()).unwrap();
    assert_eq!(game.version, 1);
    assert!(!game.guest_auth);
    let mode = game.mode("default").unwrap();
    assert_eq!(mode.file.to_str(), Some("match.lua"));
    let c = &mode.config;
    assert_eq!((c.match_size, c.max_players, c.min_players), (2, 16, 2));
    assert_eq!(c.strategy, Strategy::Fill);
    assert_eq!(c.tick_rate_ms, 100);
    assert_eq!(c.state_strategy, StateStrategy::PerPlayer);
    assert!(!c.listed);
    assert!(!c.quick_play, "off unless the mode opts in, as in asobi");
    assert_eq!(
        c.bots,
        json!({"script": "bots/chaser.lua", "min_players": 2})
    );
    let bot = mode.bot.as_ref().unwrap();
    assert_eq!(bot.file.to_str(), Some("bots/chaser.lua"));
    assert_eq!(bot.names, vec!["Spark", "Blitz", "Volt"]);
    assert!(game.warnings.is_empty(), "{:?}", game.warnings);
}

#[test]
fn a_match_runs_from_join_to_finish() {
    let game = Game::load(&arena_dir()).unwrap();
    let mode = game.mode("default").unwrap();
    let mut pool = VmPool::new(Budgets::default(), 2).unwrap();
    let mut vm = pool.acquire(mode, "match-1").unwrap();
    let mut host = Recorder::default();

    vm.init(
        &json!({"width": 8, "height": 8, "target": 2, "seed": 11}),
        &mut host,
    )
    .unwrap()
    .done()
    .unwrap();
    assert_eq!(
        vm.join("alice", Some(&json!({"name": "Alice"})), &mut host)
            .unwrap(),
        Call::Done(JoinOutcome::Accepted)
    );
    assert_eq!(
        vm.join("bob", None, &mut host).unwrap(),
        Call::Done(JoinOutcome::Accepted)
    );
    assert_eq!(host.broadcasts.len(), 2);
    assert_eq!(
        host.broadcasts[1],
        (
            "player_joined".to_owned(),
            json!({"id": "bob", "players": 2})
        )
    );

    let s = state_of(&mut vm, "alice");
    assert_eq!(s["tick"], 0);
    assert_eq!(s["you"], json!({"x": 0, "y": 0, "score": 0}));
    assert_eq!(s["players"].as_array().unwrap().len(), 2);
    assert_eq!(s["coins"], json!([]), "an empty coin list stays an array");

    // Steer alice toward every coin the script spawns, as a client would from match.state.
    let mut finished_at = None;
    for t in 1..=400 {
        vm.tick(&mut host).unwrap().done().unwrap();
        if let Some(result) = vm.finished() {
            finished_at = Some((t, result.clone()));
            break;
        }
        let s = state_of(&mut vm, "alice");
        let me = &s["you"];
        if let Some(coin) = s["coins"].as_array().unwrap().first() {
            let dx = (coin["x"].as_i64().unwrap() - me["x"].as_i64().unwrap()).signum();
            let dy = (coin["y"].as_i64().unwrap() - me["y"].as_i64().unwrap()).signum();
            vm.handle_input(
                "alice",
                &json!({"action": "move", "dx": dx, "dy": dy}),
                &mut host,
            )
            .unwrap()
            .done()
            .unwrap();
        } else {
            vm.handle_input("alice", &json!({"action": "stop"}), &mut host)
                .unwrap()
                .done()
                .unwrap();
        }
    }
    let (ticks, result) = finished_at.expect("alice collects two coins well within 400 ticks");
    assert_eq!(result["status"], "completed");
    assert_eq!(result["reason"], "target");
    assert_eq!(result["winner"], "alice");
    assert_eq!(result["score"], 2);
    assert_eq!(result["ticks"], ticks);

    let taken: Vec<_> = host
        .broadcasts
        .iter()
        .filter(|(e, _)| e == "coin_taken")
        .collect();
    assert_eq!(taken.len(), 2);
    assert_eq!(
        host.sends.last().unwrap(),
        &("alice".to_owned(), json!({"kind": "score", "score": 2}))
    );
    assert!(!vm.failed());

    vm.leave("bob", &mut host).unwrap().done().unwrap();
    assert_eq!(host.broadcasts.last().unwrap().0, "player_left");
    pool.release(vm);
}

#[test]
fn time_limit_finishes_with_the_best_score() {
    let game = Game::load(&arena_dir()).unwrap();
    let mut pool = VmPool::new(Budgets::default(), 0).unwrap();
    let mut vm = pool
        .acquire(game.mode("default").unwrap(), "match-2")
        .unwrap();
    let mut host = Recorder::default();
    vm.init(&json!({"time_limit": 3}), &mut host)
        .unwrap()
        .done()
        .unwrap();
    vm.join("p1", None, &mut host).unwrap().done().unwrap();
    for _ in 0..2 {
        vm.tick(&mut host).unwrap().done().unwrap();
        assert!(vm.finished().is_none());
    }
    vm.tick(&mut host).unwrap().done().unwrap();
    let result = vm.finished().unwrap();
    assert_eq!(result["reason"], "time");
    assert_eq!(result["winner"], "p1");
}

#[test]
fn inputs_are_clamped_by_the_script() {
    let game = Game::load(&arena_dir()).unwrap();
    let mut pool = VmPool::new(Budgets::default(), 0).unwrap();
    let mut vm = pool
        .acquire(game.mode("default").unwrap(), "match-3")
        .unwrap();
    let mut host = Recorder::default();
    vm.init(
        &json!({"width": 4, "height": 4, "time_limit": 100}),
        &mut host,
    )
    .unwrap()
    .done()
    .unwrap();
    vm.join("p1", None, &mut host).unwrap().done().unwrap();
    vm.handle_input(
        "p1",
        &json!({"action": "move", "dx": 50, "dy": "north"}),
        &mut host,
    )
    .unwrap()
    .done()
    .unwrap();
    for _ in 0..10 {
        vm.tick(&mut host).unwrap().done().unwrap();
    }
    let s = state_of(&mut vm, "p1");
    assert_eq!(s["you"]["x"], 3, "clamped to the arena edge");
    assert_eq!(s["you"]["y"], 0);
}

#[test]
fn a_bot_script_plays_through_handle_input() {
    let game = Game::load(&arena_dir()).unwrap();
    let mode = game.mode("default").unwrap();
    let mut pool = VmPool::new(Budgets::default(), 0).unwrap();
    let mut vm = pool.acquire(mode, "bots").unwrap();
    let mut brain = pool
        .acquire_bot(mode)
        .unwrap()
        .expect("the arena declares a bot script");
    let mut host = Recorder::default();
    vm.init(
        &json!({"width": 10, "height": 10, "target": 3, "seed": 3}),
        &mut host,
    )
    .unwrap()
    .done()
    .unwrap();
    let bot = format!("bot_{}", mode.bot.as_ref().unwrap().names[0]);
    vm.join("human", None, &mut host).unwrap().done().unwrap();
    vm.join(&bot, None, &mut host).unwrap().done().unwrap();
    for _ in 0..500 {
        vm.tick(&mut host).unwrap().done().unwrap();
        if vm.finished().is_some() {
            break;
        }
        let seen = state_of(&mut vm, &bot);
        let input = brain.think(&bot, &seen).unwrap();
        vm.handle_input(&bot, &input, &mut host)
            .unwrap()
            .done()
            .unwrap();
    }
    let result = vm.finished().expect("the bot collects three coins");
    assert_eq!(result["winner"], bot.as_str());
    assert!(!brain.failed());
}
