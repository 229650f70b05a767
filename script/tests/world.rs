//! World scripts: the callbacks a world runs, one zone's tick with its inputs, `game.zone.*`
//! and the zone forms of `game.spatial.*`, on real Lua.

mod common;

use asobi_script::{Budgets, JoinOutcome, VmPool, WorldVm, ZoneEntities, ZoneInput};
use serde_json::{json, Value};

use common::{single, Recorder};

const WORLD: &str = r#"
game_type   = "world"
match_size  = 1
grid_size   = 4
zone_size   = 100
view_radius = 1

function spawn_templates(config)
  return {
    goblin = { type = "npc", base_state = { health = 100, ai = "patrol" } },
  }
end

function init(config) return { ticks = 0, joined = {} } end
function join(player_id, state)
  if player_id == "banned" then return nil, "banned" end
  state.joined[#state.joined + 1] = player_id
  return state
end
function leave(player_id, state) return state end
function spawn_position(player_id, state) return { x = 150, y = 50 } end

function zone_tick(entities, zone_state)
  zone_state.seen = (zone_state.seen or 0) + 1
  if not zone_state.seeded then
    zone_state.spawned = game.zone.spawn("goblin", 120, 60, { health = 7 })
    zone_state.unknown = game.zone.spawn("dragon", 1, 1)
    zone_state.seeded = true
  end
  local near = game.spatial.query_radius(150, 50, 10)
  zone_state.near = #near
  zone_state.rect = #game.spatial.query_rect(0, 0, 200, 200)
  return entities, zone_state
end

function handle_input(player_id, input, entities)
  if input.kind == "boom" then error("bad input") end
  local e = entities[player_id]
  if e and input.kind == "move" then
    e.x, e.y = input.x, input.y
  end
  if input.kind == "gone" then game.zone.despawn(player_id) end
  if input.consumed then return entities, input.consumed end
  return entities
end

function post_tick(tick, state)
  state.ticks = tick
  if tick >= 3 then
    state._finished = true
    state._result = { reason = "done", ticks = tick }
  end
  return state
end
"#;

fn start() -> (tempfile::TempDir, VmPool, WorldVm) {
    let (dir, mode) = single(WORLD);
    let mut pool = VmPool::new(Budgets::default(), 1).unwrap();
    let mut vm = pool.acquire_world(&mode, "w-1").unwrap();
    vm.init(&json!({"world_id": "w-1"}), &mut Recorder::default())
        .unwrap();
    (dir, pool, vm)
}

fn entities(v: Value) -> ZoneEntities {
    serde_json::from_value(v).unwrap()
}

#[test]
fn world_globals_are_read() {
    let (_dir, mode) = single(WORLD);
    let extra = &mode.config.extra;
    assert_eq!(extra["grid_size"], json!(4));
    assert_eq!(extra["zone_size"], json!(100));
    assert_eq!(extra["view_radius"], json!(1));
}

#[test]
fn join_spawn_position_and_refusal() {
    let (_d, _p, mut vm) = start();
    let mut host = Recorder::default();
    assert_eq!(
        vm.join("p1", None, &mut host).unwrap(),
        JoinOutcome::Accepted
    );
    assert_eq!(
        vm.join("banned", None, &mut host).unwrap(),
        JoinOutcome::Refused(Some("banned".into()))
    );
    assert_eq!(vm.spawn_position("p1", &mut host).unwrap(), (150.0, 50.0));
    vm.leave("p1", &mut host).unwrap();
}

#[test]
fn a_zone_tick_runs_zone_tick_then_inputs_with_zone_calls() {
    let (_d, _p, mut vm) = start();
    let mut host = Recorder::default();
    let templates = vm.spawn_templates(&json!({}), &mut host).unwrap().unwrap();
    assert_eq!(templates["goblin"]["type"], json!("npc"));
    let ents = entities(json!({
        "p1": {"x": 150, "y": 50, "type": "player"},
        "p2": {"x": 10, "y": 10, "type": "player"},
    }));
    let inputs = vec![
        ZoneInput {
            player_id: "p1".into(),
            input: json!({"kind": "move", "x": 160, "y": 55}),
            seq: Some(7),
        },
        ZoneInput {
            player_id: "p2".into(),
            input: json!({"kind": "boom"}),
            seq: Some(1),
        },
        ZoneInput {
            player_id: "p2".into(),
            input: json!({"kind": "move", "x": 11, "y": 12, "consumed": 40}),
            seq: Some(41),
        },
        ZoneInput {
            player_id: "p1".into(),
            input: json!({"kind": "gone"}),
            seq: None,
        },
    ];
    let step = vm
        .zone_tick((1, 0), 5, &ents, &json!({}), inputs, &mut host)
        .unwrap();
    assert_eq!(step.entities["p1"]["x"], json!(160));
    assert_eq!(step.entities["p2"]["y"], json!(12));
    // zone_tick ran before the inputs: p1 was at (150, 50), so one hit in radius 10; both
    // players are inside the rectangle.
    assert_eq!(step.zone_state["near"], json!(1));
    assert_eq!(step.zone_state["rect"], json!(2));
    assert_eq!(step.zone_state["tick"], json!(5));
    assert_eq!(step.zone_state["spawned"], json!(true));
    assert_eq!(step.zone_state["unknown"], json!(false));
    // The stamped seq, then the one the script said it consumed; the failing input is not
    // acknowledged and did not stop the others.
    assert_eq!(step.acks, vec![("p1".to_owned(), 7), ("p2".to_owned(), 40)]);
    assert_eq!(step.errors.len(), 1);
    assert_eq!(step.despawns, vec!["p1".to_owned()]);
    assert_eq!(step.spawns.len(), 1);
    let s = &step.spawns[0];
    assert_eq!((s.template.as_str(), s.x, s.y), ("goblin", 120.0, 60.0));
    assert_eq!(s.overrides["health"], json!(7));
    // The zone state comes back next tick: seeded once.
    let again = vm
        .zone_tick(
            (1, 0),
            6,
            &step.entities,
            &step.zone_state,
            vec![],
            &mut host,
        )
        .unwrap();
    assert_eq!(again.zone_state["seen"], json!(2));
    assert!(again.spawns.is_empty());
}

#[test]
fn zone_calls_outside_a_zone_answer_errors() {
    let (dir, mode) = single(
        r#"
game_type = "world"
match_size = 1
function init(c) return {} end
function join(p, s) return s end
function spawn_position(p, s) return {x = 0, y = 0} end
function post_tick(t, s)
  s.spawn = game.zone.spawn("x", 1, 2)
  s.rect = game.spatial.query_rect(0, 0, 1, 1)
  s.radius = game.spatial.query_radius(0, 0, 1)
  return s
end
function get_state(p, s) return s end
"#,
    );
    let _keep = dir;
    let mut pool = VmPool::new(Budgets::default(), 1).unwrap();
    let mut vm = pool.acquire_world(&mode, "w-2").unwrap();
    let mut host = Recorder::default();
    vm.init(&json!({}), &mut host).unwrap();
    vm.post_tick(1, &mut host).unwrap();
    let s = vm.get_state("p", &mut host).unwrap().unwrap();
    assert_eq!(
        s["spawn"]["error"],
        json!("game.zone.spawn requires zone context")
    );
    assert_eq!(
        s["rect"]["error"],
        json!("query_rect requires zone context")
    );
    assert!(s["radius"]["error"]
        .as_str()
        .unwrap()
        .contains("requires zone context"));
}

#[test]
fn post_tick_finishes_the_world() {
    let (_d, _p, mut vm) = start();
    let mut host = Recorder::default();
    for t in 1..=2 {
        vm.post_tick(t, &mut host).unwrap();
        assert!(vm.finished().is_none());
    }
    vm.post_tick(3, &mut host).unwrap();
    assert_eq!(vm.finished(), Some(&json!({"reason": "done", "ticks": 3})));
}

#[test]
fn generate_world_returns_zone_states() {
    let (dir, mode) = single(
        r#"
game_type = "world"
match_size = 1
function init(c) return {} end
function join(p, s) return s end
function spawn_position(p, s) return {x = 0, y = 0} end
function post_tick(t, s) return s end
function generate_world(seed, config)
  return { ["0,0"] = { biome = "forest" }, ["1,0"] = { biome = "sea", seed = seed } }
end
"#,
    );
    let _keep = dir;
    let mut pool = VmPool::new(Budgets::default(), 1).unwrap();
    let mut vm = pool.acquire_world(&mode, "w-3").unwrap();
    let mut host = Recorder::default();
    vm.init(&json!({}), &mut host).unwrap();
    let zones = vm
        .generate_world(84, &json!({}), &mut host)
        .unwrap()
        .unwrap();
    assert_eq!(zones["0,0"]["biome"], json!("forest"));
    assert_eq!(zones["1,0"]["seed"], json!(42));
}
