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

// ---- Border band: neighbour reads, game.zone.apply, handle_effects ----

use asobi_script::{ZoneBorder, ZoneCall, ZoneEffect, MAX_EFFECT_SENDS};
use serde_json::Map;

/// Border rows as a neighbour zone (2, 1) would publish them to zone (1, 1).
struct Rows(ZoneEntities);

impl ZoneBorder for Rows {
    fn each_neighbour(&self, f: &mut dyn FnMut(&str, &Map<String, Value>)) {
        for (id, e) in &self.0 {
            f(id, e);
        }
    }
    fn owner(&self, entity_id: &str) -> Option<(u32, u32)> {
        self.0.contains_key(entity_id).then_some((2, 1))
    }
}

const BORDER: &str = r#"
game_type   = "world"
match_size  = 1
grid_size   = 4
zone_size   = 100
border_band = 0.15

function init(config) return {} end
function join(player_id, state) return state end
function spawn_position(player_id, state) return { x = 150, y = 150 } end
function post_tick(tick, state) return state end

function zone_tick(entities, zone_state)
  local r = {}
  local near = game.spatial.neighbours_radius(195, 150, 10)
  r.near = {}
  for i, h in ipairs(near) do r.near[i] = { id = h.id, distance = h.distance, hp = h.entity.hp } end
  r.npcs = #game.spatial.neighbours_radius(195, 150, 1000, { type = "npc" })
  r.capped = #game.spatial.neighbours_radius(195, 150, 1000, { max_results = 1 })
  local rect = game.spatial.neighbours_rect(200, 100, 220, 200)
  r.rect = {}
  for i, h in ipairs(rect) do r.rect[i] = h.id end
  r.rect_shape = game.spatial.neighbours_rect(1, 2, 3)
  r.radius_shape = game.spatial.neighbours_radius("x")
  -- Writing to a copy changes nothing anyone else reads.
  if near[1] then near[1].entity.hp = 0 end
  r.own = #game.spatial.neighbours_radius(150, 150, 1)
  local mode = zone_state.mode
  if mode == "hit" then
    r.hit = game.zone.apply("pilot", { kind = "damage", amount = 12 })
    r.unseen = game.zone.apply("ghost", { kind = "damage", amount = 1 })
    r.empty = game.zone.apply("pilot", {})
    r.bad = game.zone.apply("pilot", 5)
  elseif mode == "big" then
    r.big = game.zone.apply("pilot", { blob = string.rep("x", 5000) })
    r.fits = game.zone.apply("pilot", { blob = string.rep("x", 4000) })
  elseif mode == "flood" then
    local ok = 0
    for i = 1, 100 do
      if game.zone.apply("pilot", { n = i }) then ok = ok + 1 end
    end
    r.flood = ok
  end
  zone_state.r = r
  return entities, zone_state
end

function handle_input(player_id, input, entities)
  if input.kind == "leave" then entities[player_id] = nil end
  return entities
end

function handle_effects(effects, entities)
  for _, e in ipairs(effects) do
    local t = entities[e.entity_id]
    t.hp = t.hp - (e.event.amount or 0)
    t.hits = (t.hits or 0) + 1
  end
  return entities
end
"#;

fn rows() -> Rows {
    Rows(entities(json!({
        "pilot": {"x": 201, "y": 150, "type": "player", "hp": 50},
        "drone": {"x": 210, "y": 195, "type": "npc", "hp": 5},
    })))
}

fn border_vm(script: &str) -> (tempfile::TempDir, VmPool, WorldVm) {
    let (dir, mode) = single(script);
    let mut pool = VmPool::new(Budgets::default(), 1).unwrap();
    let mut vm = pool.acquire_world(&mode, "w-b").unwrap();
    vm.init(&json!({}), &mut Recorder::default()).unwrap();
    (dir, pool, vm)
}

fn tick_with(
    vm: &mut WorldVm,
    ents: &ZoneEntities,
    state: Value,
    inputs: Vec<ZoneInput>,
    effects: Vec<ZoneEffect>,
    border: Option<&dyn ZoneBorder>,
) -> asobi_script::ZoneStep {
    vm.zone_tick_with(
        ZoneCall {
            zone: (1, 1),
            tick: 1,
            entities: ents,
            zone_state: &state,
            inputs,
            effects,
            border,
        },
        &mut Recorder::default(),
    )
    .unwrap()
}

#[test]
fn neighbours_queries_read_copies_of_the_touching_zones_bands() {
    let (_d, _p, mut vm) = border_vm(BORDER);
    let own = entities(json!({ "me": {"x": 150, "y": 150, "type": "player", "hp": 9} }));
    let b = rows();
    let step = tick_with(&mut vm, &own, json!({}), vec![], vec![], Some(&b));
    let r = &step.zone_state["r"];
    assert_eq!(
        r["near"],
        json!([{ "id": "pilot", "distance": 6.0, "hp": 50 }])
    );
    assert_eq!(r["npcs"], json!(1));
    assert_eq!(r["capped"], json!(1));
    assert_eq!(r["rect"], json!(["drone", "pilot"]));
    assert_eq!(
        r["rect_shape"]["error"],
        json!("neighbours_rect requires (x1, y1, x2, y2[, opts])")
    );
    assert_eq!(
        r["radius_shape"]["error"],
        json!("neighbours_radius requires (x, y, radius[, opts])")
    );
    // Never the calling zone's own entities.
    assert_eq!(r["own"], json!(0));
    // The copy was written to; the zone's own entities and the rows are untouched.
    assert_eq!(step.entities["me"]["hp"], json!(9));
    assert_eq!(b.0["pilot"]["hp"], json!(50));
    assert!(step.applies.is_empty());

    // No border band: the queries see nothing, and apply finds no one.
    let step = tick_with(&mut vm, &own, json!({"mode": "hit"}), vec![], vec![], None);
    let r = &step.zone_state["r"];
    assert_eq!(r["near"], json!([]));
    assert_eq!(r["rect"], json!([]));
    assert_eq!(r["hit"], json!(false));
    assert!(step.applies.is_empty());
}

#[test]
fn apply_addresses_the_owner_and_refuses_unseen_oversized_and_flooding_sends() {
    let (_d, _p, mut vm) = border_vm(BORDER);
    let own = ZoneEntities::new();
    let b = rows();
    let step = tick_with(
        &mut vm,
        &own,
        json!({"mode": "hit"}),
        vec![],
        vec![],
        Some(&b),
    );
    let r = &step.zone_state["r"];
    assert_eq!(r["hit"], json!(true));
    assert_eq!(r["unseen"], json!(false));
    assert_eq!(r["empty"], json!(true));
    assert_eq!(
        r["bad"]["error"],
        json!("game.zone.apply requires (entity_id, event_table)")
    );
    assert_eq!(step.applies.len(), 2);
    let a = &step.applies[0];
    assert_eq!((a.zone, a.entity_id.as_str()), ((2, 1), "pilot"));
    assert_eq!(a.event, json!({"kind": "damage", "amount": 12}));
    assert_eq!(step.applies[1].event, json!({}));

    // 4 KB per event.
    let step = tick_with(
        &mut vm,
        &own,
        json!({"mode": "big"}),
        vec![],
        vec![],
        Some(&b),
    );
    let r = &step.zone_state["r"];
    assert_eq!(
        (r["big"].clone(), r["fits"].clone()),
        (json!(false), json!(true))
    );
    assert_eq!(step.applies.len(), 1);
    assert!(step.applies[0].bytes <= asobi_script::MAX_EFFECT_BYTES);

    // 64 sends per zone tick; the next tick has a fresh budget.
    for _ in 0..2 {
        let step = tick_with(
            &mut vm,
            &own,
            json!({"mode": "flood"}),
            vec![],
            vec![],
            Some(&b),
        );
        assert_eq!(step.zone_state["r"]["flood"], json!(MAX_EFFECT_SENDS));
        assert_eq!(step.applies.len(), MAX_EFFECT_SENDS);
    }
}

#[test]
fn handle_effects_runs_after_inputs_with_only_effects_for_entities_still_held() {
    let (_d, _p, mut vm) = border_vm(BORDER);
    let own = entities(json!({
        "a": {"x": 101, "y": 150, "hp": 30},
        "b": {"x": 102, "y": 150, "hp": 30},
    }));
    let fx = |id: &str, amount: i64| ZoneEffect {
        entity_id: id.into(),
        event: json!({ "kind": "damage", "amount": amount }),
    };
    let inputs = vec![ZoneInput {
        player_id: "b".into(),
        input: json!({"kind": "leave"}),
        seq: None,
    }];
    let effects = vec![fx("a", 5), fx("a", 7), fx("b", 1), fx("nobody", 1)];
    let step = tick_with(&mut vm, &own, json!({}), inputs, effects, None);
    assert!(step.errors.is_empty(), "{:?}", step.errors);
    assert_eq!(step.entities["a"]["hp"], json!(18));
    assert_eq!(step.entities["a"]["hits"], json!(2));
    // "b" left during the inputs: its effect was dropped, as was the one for an unknown id.
    assert!(!step.entities.contains_key("b"));
    assert_eq!(step.entities.len(), 1);

    // A script without handle_effects: the batch is dropped and the entities stay as they are.
    let without = BORDER.replace("function handle_effects", "function unused_handler");
    let (_d2, _p2, mut vm) = border_vm(&without);
    let step = tick_with(&mut vm, &own, json!({}), vec![], vec![fx("a", 5)], None);
    assert!(step.errors.is_empty());
    assert_eq!(step.entities["a"]["hp"], json!(30));
}

#[test]
fn neighbour_calls_outside_a_zone_answer_zone_context_errors() {
    let (dir, mode) = single(
        r#"
game_type = "world"
match_size = 1
function init(c) return {} end
function join(p, s) return s end
function spawn_position(p, s) return {x = 0, y = 0} end
function post_tick(t, s)
  s.radius = game.spatial.neighbours_radius(0, 0, 1)
  s.rect = game.spatial.neighbours_rect(0, 0, 1, 1)
  s.apply = game.zone.apply("e", {})
  return s
end
function get_state(p, s) return s end
"#,
    );
    let _keep = dir;
    let mut pool = VmPool::new(Budgets::default(), 1).unwrap();
    let mut vm = pool.acquire_world(&mode, "w-n").unwrap();
    let mut host = Recorder::default();
    vm.init(&json!({}), &mut host).unwrap();
    vm.post_tick(1, &mut host).unwrap();
    let s = vm.get_state("p", &mut host).unwrap().unwrap();
    assert_eq!(
        s["radius"]["error"],
        json!("neighbours_radius requires zone context")
    );
    assert_eq!(
        s["rect"]["error"],
        json!("neighbours_rect requires zone context")
    );
    assert_eq!(
        s["apply"]["error"],
        json!("game.zone.apply requires zone context")
    );
}
