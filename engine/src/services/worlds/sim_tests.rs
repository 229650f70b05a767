//! Worlds on the simulation harness (virtual clock, no sockets): a walker wanders a seeded
//! random path across zone borders while observers stand still, and after every tick each
//! observer's per-zone tables must show the walker exactly when the walker's zone is in view,
//! at the position it was moved to, and never twice; lazy zones load on demand and are reaped
//! on asobi's schedule, under the active-zone ceiling; idle zones tick at the cold divisor;
//! terrain chunks reach the players who subscribe to a zone.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use asobi_rules::worlds::{ClientView, Fields, Grid, Op, Received, ZoneId, REHOME_MARGIN};

use crate::services::sim::{Client, Sim};
use crate::services::Settings;

const WORLD: &str = r#"
game_type          = "world"
match_size         = 1
max_players        = 8
tick_rate          = 50
grid_size          = 6
zone_size          = 100
view_radius        = 1
broadcast_interval = 1
function init(config) return {} end
function join(player_id, state) return state end
function leave(player_id, state) return state end
function spawn_position(player_id, state) return { x = 250, y = 250 } end
function handle_input(player_id, input, entities)
  local me = entities[player_id]
  if me then me.x, me.y = input.x, input.y end
  return entities
end
function post_tick(tick, state) return state end
"#;

pub(super) fn apply(view: &mut ClientView, frames: &[Value]) {
    for f in frames.iter().filter(|f| f["type"] == "world.tick") {
        let p = &f["payload"];
        let zone = ZoneId::new(
            p["zone"][0].as_u64().unwrap() as u32,
            p["zone"][1].as_u64().unwrap() as u32,
        );
        let ops: Vec<Op> = p["updates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                let id = u["id"].as_str().unwrap().to_owned();
                let mut fields: Fields = u.as_object().unwrap().clone();
                fields.remove("id");
                match fields.remove("op").unwrap().as_str().unwrap() {
                    "a" => Op::Add(id, fields),
                    "u" => Op::Update(id, fields),
                    _ => Op::Remove(id),
                }
            })
            .collect();
        let got = view.apply(zone, p["frame_seq"].as_u64(), p["kf"] == true, &ops);
        assert_eq!(got, Received::Applied, "{f}");
    }
}

pub(super) fn drain(sim: &mut Sim, c: &mut Client, view: &mut ClientView) {
    sim.collect(c);
    let frames = std::mem::take(&mut c.received);
    apply(view, &frames);
}

#[test]
fn observers_see_a_random_walker_exactly_within_view_across_borders() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.lua"),
        "return { walk = \"walk.lua\" }\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("walk.lua"), WORLD).unwrap();
    let settings = Settings {
        ws_msg_rate: 0,
        ..Settings::default()
    };
    let mut sim = Sim::new(2, dir.path(), settings).latency(Duration::ZERO);
    let mut walker = sim.signed_in(0, "walker");
    sim.send(
        &mut walker,
        json!({"type": "world.create", "cid": 1, "payload": {"mode": "walk"}}),
    );
    let joined = walker.take("world.joined").expect("joined");
    let world_id = joined["payload"]["world_id"].as_str().unwrap().to_owned();

    // Observers on both shards, parked in different zones.
    let spots = [(50.0, 50.0), (250.0, 250.0), (550.0, 450.0)];
    let grid = Grid::new(6, 100.0);
    let mut observers = Vec::new();
    for (i, (x, y)) in spots.iter().enumerate() {
        let mut c = sim.signed_in(i % 2, &format!("obs{i}"));
        sim.send(
            &mut c,
            json!({"type": "world.join", "cid": 1, "payload": {"world_id": world_id}}),
        );
        assert!(c.take("world.joined").is_some(), "{:?}", c.received);
        sim.send(
            &mut c,
            json!({"type": "world.input", "payload": {"x": x, "y": y}}),
        );
        observers.push((c, ClientView::new(), grid.zone_of(*x, *y)));
    }
    sim.advance(Duration::from_millis(200));
    let mut wview = ClientView::new();
    drain(&mut sim, &mut walker, &mut wview);

    let mut rng = StdRng::seed_from_u64(20);
    let (mut x, mut y) = (250.0f64, 250.0f64);
    let mut home = grid.zone_of(x, y);
    let mut crossings = 0;
    let mut seen_and_unseen = (0, 0);
    for _ in 0..400 {
        x = (x + rng.random_range(-40.0..40.0)).clamp(0.0, 599.0);
        y = (y + rng.random_range(-40.0..40.0)).clamp(0.0, 599.0);
        x = x.round();
        y = y.round();
        sim.send(
            &mut walker,
            json!({"type": "world.input", "payload": {"x": x, "y": y}}),
        );
        if let Some(to) = grid.rehome(home, x, y, REHOME_MARGIN) {
            home = to;
            crossings += 1;
        }
        sim.advance(Duration::from_millis(50));
        for (c, view, at) in &mut observers {
            drain(&mut sim, c, view);
            assert!(view.duplicates().is_empty(), "{:?}", view.duplicates());
            let visible = view.visible();
            let expect = Grid::in_ring(*at, 1, home);
            assert_eq!(
                visible.contains_key("walker"),
                expect,
                "walker in {home:?}, observer in {at:?}"
            );
            if expect {
                seen_and_unseen.0 += 1;
                let w = &visible["walker"];
                assert_eq!((w["x"].as_f64(), w["y"].as_f64()), (Some(x), Some(y)));
            } else {
                seen_and_unseen.1 += 1;
            }
        }
        drain(&mut sim, &mut walker, &mut wview);
        assert_eq!(
            wview.visible().get("walker").and_then(|w| w["x"].as_f64()),
            Some(x)
        );
    }
    assert!(crossings > 10, "{crossings} crossings");
    assert!(
        seen_and_unseen.0 > 50 && seen_and_unseen.1 > 50,
        "{seen_and_unseen:?}"
    );
}

/// A game directory holding one world mode `w` with `script`.
pub(super) fn game(script: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.lua"), "return { w = \"w.lua\" }\n").unwrap();
    std::fs::write(dir.path().join("w.lua"), script).unwrap();
    dir
}

fn sim(dir: &tempfile::TempDir) -> Sim {
    let settings = Settings {
        ws_msg_rate: 0,
        ..Settings::default()
    };
    Sim::new(1, dir.path(), settings).latency(Duration::ZERO)
}

/// Reads the world `id` on shard 0.
fn world<T>(sim: &Sim, id: &str, f: impl FnOnce(&mut super::LiveWorld) -> T) -> T {
    let worlds = &sim.shards[0].worlds;
    let key = worlds.key_of(id).expect("world is live");
    worlds.with(key, f).expect("world is live")
}

fn zones_of(sim: &Sim, id: &str) -> Vec<ZoneId> {
    world(sim, id, |w| {
        assert_eq!(
            w.zones.len(),
            w.life.active(),
            "runtime and lifecycle agree"
        );
        w.zones.keys().copied().collect()
    })
}

/// 200 × 200 zones of 100 units (above asobi's threshold of 100, so lazy); the player spawns
/// at (250, 250); `on_zone_loaded` gives each zone its coordinates as zone state and counts,
/// `on_zone_unloaded` counts.
const LAZY: &str = r#"
game_type          = "world"
match_size         = 1
max_players        = 8
tick_rate          = 50
grid_size          = 200
zone_size          = 100
view_radius        = 1
broadcast_interval = 1
function init(config) return { loaded = 0, unloaded = 0 } end
function join(player_id, state) return state end
function leave(player_id, state) return state end
function spawn_position(player_id, state) return { x = 250, y = 250 } end
function on_zone_loaded(cx, cy, state)
  state.loaded = state.loaded + 1
  return { cx = cx, cy = cy }, state
end
function on_zone_unloaded(cx, cy, state)
  state.unloaded = state.unloaded + 1
  return state
end
function handle_input(player_id, input, entities)
  local me = entities[player_id]
  if me then me.x, me.y = input.x, input.y end
  return entities
end
function zone_tick(entities, zone_state) return entities, zone_state end
function post_tick(tick, state)
  if tick % 20 == 0 then game.broadcast("counts", { loaded = state.loaded, unloaded = state.unloaded }) end
  return state
end
"#;

fn ring(cx: u32, cy: u32) -> Vec<ZoneId> {
    let mut out = Vec::new();
    for y in cy - 1..=cy + 1 {
        for x in cx - 1..=cx + 1 {
            out.push(ZoneId::new(x, y));
        }
    }
    out.sort();
    out
}

fn last_counts(c: &Client) -> (u64, u64) {
    let p = &c.last("world.counts").expect("a counts broadcast")["payload"];
    (
        p["loaded"].as_u64().unwrap(),
        p["unloaded"].as_u64().unwrap(),
    )
}

#[test]
fn lazy_zones_load_on_demand_and_idle_ones_are_reaped_after_the_timeout() {
    let dir = game(LAZY);
    let mut sim = sim(&dir);
    let mut p = sim.signed_in(0, "p");
    sim.send(
        &mut p,
        json!({"type": "world.create", "cid": 1, "payload": {"mode": "w"}}),
    );
    let id = p.take("world.joined").expect("joined")["payload"]["world_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Only the player's view ring exists out of 40,000 zones, each with its loaded state.
    assert_eq!(zones_of(&sim, &id), ring(2, 2));
    world(&sim, &id, |w| {
        assert_eq!(w.zones[&ZoneId::new(3, 1)].state, json!({"cx": 3, "cy": 1}));
    });

    // The player jumps far away: a new ring loads, the old one is left unwatched.
    sim.send(
        &mut p,
        json!({"type": "world.input", "payload": {"x": 5050, "y": 5050}}),
    );
    sim.advance(Duration::from_millis(200));
    let both: Vec<ZoneId> = zones_of(&sim, &id);
    assert_eq!(both.len(), 18, "{both:?}");
    assert!(ring(50, 50).iter().all(|z| both.contains(z)));

    // The zone the player left lost its last occupant: it goes at the next sweep (asobi's
    // 10 s), calling on_zone_unloaded. The rest of the old ring is merely unwatched: it goes
    // once idle for 30 s; the watched ring stays.
    sim.advance(Duration::from_secs(11));
    let zones = zones_of(&sim, &id);
    assert_eq!(zones.len(), 17, "{zones:?}");
    assert!(!zones.contains(&ZoneId::new(2, 2)));
    sim.advance(Duration::from_secs(30));
    assert_eq!(zones_of(&sim, &id), ring(50, 50));
    sim.advance(Duration::from_secs(2));
    sim.collect(&mut p);
    assert_eq!(last_counts(&p), (18, 9));

    // Watched zones are never idle: a minute later the ring is still there.
    sim.advance(Duration::from_secs(60));
    assert_eq!(zones_of(&sim, &id), ring(50, 50));
    let stats = world(&sim, &id, |w| w.life.stats());
    assert_eq!((stats.created, stats.reaped), (18, 9));

    // Coming back reloads the first ring, with fresh zone state from on_zone_loaded.
    sim.send(
        &mut p,
        json!({"type": "world.input", "payload": {"x": 250, "y": 250}}),
    );
    sim.advance(Duration::from_millis(200));
    assert!(ring(2, 2).iter().all(|z| zones_of(&sim, &id).contains(z)));
    world(&sim, &id, |w| {
        assert_eq!(w.zones[&ZoneId::new(1, 1)].state, json!({"cx": 1, "cy": 1}));
    });
}

#[test]
fn the_active_zone_ceiling_refuses_zones_until_others_are_reaped() {
    let script = format!("{LAZY}\nmax_active_zones = 12\n");
    let dir = game(&script);
    let mut sim = sim(&dir);
    let mut p = sim.signed_in(0, "p");
    sim.send(
        &mut p,
        json!({"type": "world.create", "cid": 1, "payload": {"mode": "w"}}),
    );
    let id = p.take("world.joined").expect("joined")["payload"]["world_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(zones_of(&sim, &id).len(), 9);
    // Far away: the player's own zone first (it holds their entity), then as much of the ring
    // as fits under the ceiling.
    sim.send(
        &mut p,
        json!({"type": "world.input", "payload": {"x": 5050, "y": 5050}}),
    );
    sim.advance(Duration::from_millis(200));
    let zones = zones_of(&sim, &id);
    assert_eq!(zones.len(), 12, "{zones:?}");
    assert!(zones.contains(&ZoneId::new(50, 50)));
    assert!(world(&sim, &id, |w| w.life.stats().refused) > 0);
    // Once the old ring is reaped (after its 30 s idle timeout), the next step loads the
    // player's new zone and the column that came into view.
    sim.advance(Duration::from_secs(41));
    assert!(zones_of(&sim, &id).len() <= 3);
    sim.send(
        &mut p,
        json!({"type": "world.input", "payload": {"x": 5150, "y": 5050}}),
    );
    sim.advance(Duration::from_millis(200));
    let zones = zones_of(&sim, &id);
    assert!(zones.contains(&ZoneId::new(51, 50)), "{zones:?}");
    assert!(
        (49..=51).all(|y| zones.contains(&ZoneId::new(52, y))),
        "{zones:?}"
    );
    assert!(zones.len() <= 12);
}

/// A 4 × 4 grid (prewarmed: at or below the threshold); every zone counts its ticks in its
/// zone state; zone (3, 3) keeps itself hot.
const COLD: &str = r#"
game_type          = "world"
match_size         = 1
max_players        = 8
tick_rate          = 50
grid_size          = 4
zone_size          = 100
view_radius        = 0
broadcast_interval = 1
function init(config) return {} end
function join(player_id, state) return state end
function leave(player_id, state) return state end
function spawn_position(player_id, state) return { x = 50, y = 50 } end
function on_zone_loaded(cx, cy, state) return { cx = cx, cy = cy, n = 0 }, state end
function zone_tick(entities, zone_state)
  zone_state.n = zone_state.n + 1
  zone_state._keep_hot = zone_state.cx == 3 and zone_state.cy == 3
  return entities, zone_state
end
function handle_input(player_id, input, entities)
  local me = entities[player_id]
  if me then me.x, me.y = input.x, input.y end
  return entities
end
function post_tick(tick, state) return state end
"#;

fn ticks_of(sim: &Sim, id: &str, z: ZoneId) -> u64 {
    world(sim, id, |w| w.zones[&z].state["n"].as_u64().unwrap())
}

#[test]
fn idle_zones_tick_at_the_cold_divisor_and_work_or_keep_hot_keeps_them_hot() {
    let dir = game(COLD);
    let mut sim = sim(&dir);
    let mut p = sim.signed_in(0, "p");
    sim.send(
        &mut p,
        json!({"type": "world.create", "cid": 1, "payload": {"mode": "w"}}),
    );
    let id = p.take("world.joined").expect("joined")["payload"]["world_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Prewarmed: the whole 4 × 4 grid exists from the start.
    assert_eq!(zones_of(&sim, &id).len(), 16);
    let (home, empty, hot) = (ZoneId::new(0, 0), ZoneId::new(2, 1), ZoneId::new(3, 3));
    // (3, 3) asks to stay hot from its first (cold) tick on.
    sim.advance(Duration::from_secs(1));
    let before: Vec<u64> = [home, empty, hot]
        .iter()
        .map(|z| ticks_of(&sim, &id, *z))
        .collect();
    // 200 ticks.
    sim.advance(Duration::from_secs(10));
    let after: Vec<u64> = [home, empty, hot]
        .iter()
        .map(|z| ticks_of(&sim, &id, *z))
        .collect();
    let ran: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    // The occupied zone and the kept-hot one tick every tick; the empty one once in ten.
    assert!((198..=202).contains(&ran[0]), "{ran:?}");
    assert!((198..=202).contains(&ran[2]), "{ran:?}");
    assert!((19..=21).contains(&ran[1]), "{ran:?}");
    assert_eq!(world(&sim, &id, |w| w.life.cold()), 14);

    // The player walks into the empty zone: it is hot from the next tick on, and the zone
    // left behind goes cold.
    sim.send(
        &mut p,
        json!({"type": "world.input", "payload": {"x": 250, "y": 150}}),
    );
    sim.advance(Duration::from_millis(100));
    let (e0, h0) = (ticks_of(&sim, &id, empty), ticks_of(&sim, &id, home));
    sim.advance(Duration::from_secs(5));
    let (e1, h1) = (ticks_of(&sim, &id, empty), ticks_of(&sim, &id, home));
    assert!((98..=102).contains(&(e1 - e0)), "{}", e1 - e0);
    assert!((9..=11).contains(&(h1 - h0)), "{}", h1 - h0);
    // Prewarmed zones that stay empty and unwatched are reaped once idle for 30 s, like any
    // other (`_keep_hot` is about tick rate, not lifetime); the occupied one stays.
    sim.advance(Duration::from_secs(30));
    let zones = zones_of(&sim, &id);
    assert!(zones.contains(&empty), "{zones:?}");
    assert!(!zones.contains(&ZoneId::new(1, 2)), "{zones:?}");
}

/// A 4 × 4 world whose terrain provider is `provider` (Lua source of the returned value);
/// zone (0, 0) asks `game.terrain.get_chunk(3, 3)` every 10th tick and broadcasts the answer.
fn terrain_world(provider: &str) -> String {
    format!(
        r#"
game_type          = "world"
match_size         = 1
max_players        = 8
tick_rate          = 50
grid_size          = 4
zone_size          = 100
view_radius        = 1
broadcast_interval = 1
function init(config) return {{}} end
function join(player_id, state) return state end
function leave(player_id, state) return state end
function spawn_position(player_id, state) return {{ x = 50, y = 50 }} end
function terrain_provider(config) return {provider} end
function generate_chunk(cx, cy, seed)
  return {{ {{ x = 1, y = 2, id = 100 + cx * 10 + cy, flags = 3, elevation = seed }} }}
end
function on_zone_loaded(cx, cy, state) return {{ home = (cx == 0 and cy == 0), n = 0 }}, state end
function zone_tick(entities, zs)
  zs.n = zs.n + 1
  if zs.home and zs.n % 10 == 0 then
    local r = game.terrain.get_chunk(3, 3)
    game.broadcast("chunk", {{ ok = r.ok and #r.ok or nil, error = r.error }})
  end
  return entities, zs
end
function handle_input(player_id, input, entities)
  local me = entities[player_id]
  if me then me.x, me.y = input.x, input.y end
  return entities
end
function post_tick(tick, state) return state end
"#
    )
}

/// `world.terrain` frames a client received: coords → the chunk's tiles.
fn terrain_frames(c: &Client) -> BTreeMap<(i64, i64), Vec<asobi_rules::terrain::Tile>> {
    use asobi_rules::terrain::{decode_chunk, decompress, ChunkFormat};
    use base64::Engine as _;
    let fmt = ChunkFormat::default();
    c.received
        .iter()
        .filter(|f| f["type"] == "world.terrain")
        .map(|f| {
            let p = &f["payload"];
            let data = base64::engine::general_purpose::STANDARD
                .decode(p["data"].as_str().unwrap())
                .unwrap();
            let tiles = decode_chunk(&decompress(&data, fmt.raw_bytes()).unwrap(), fmt).unwrap();
            (
                (
                    p["coords"][0].as_i64().unwrap(),
                    p["coords"][1].as_i64().unwrap(),
                ),
                tiles,
            )
        })
        .collect()
}

fn joined_world(script: &str) -> (tempfile::TempDir, Sim, Client, String) {
    let dir = game(script);
    let mut sim = sim(&dir);
    let mut p = sim.signed_in(0, "p");
    sim.send(
        &mut p,
        json!({"type": "world.create", "cid": 1, "payload": {"mode": "w"}}),
    );
    let id = p.take("world.joined").expect("joined")["payload"]["world_id"]
        .as_str()
        .unwrap()
        .to_owned();
    (dir, sim, p, id)
}

const VIEW: [(i64, i64); 4] = [(0, 0), (0, 1), (1, 0), (1, 1)];

#[test]
fn a_flat_provider_sends_each_zone_in_view_its_chunk_and_answers_get_chunk() {
    let script = terrain_world(
        r#"{ module = "asobi_terrain_flat", args = { tile = 9, flags = 1, elevation = 30 } }"#,
    );
    let (_dir, mut sim, mut p, _id) = joined_world(&script);
    sim.advance(Duration::from_millis(600));
    sim.collect(&mut p);
    let chunks = terrain_frames(&p);
    assert_eq!(chunks.keys().copied().collect::<Vec<_>>(), VIEW);
    for tiles in chunks.values() {
        assert_eq!(tiles.len(), 64 * 64);
        assert!(tiles
            .iter()
            .all(|t| (t.id, t.flags, t.elevation) == (9, 1, 30)));
    }
    // Each chunk is sent once per subscription, not per tick.
    assert_eq!(p.count("world.terrain"), 4);
    // game.terrain.get_chunk answers the compressed chunk at once for a built-in provider.
    let chunk = p.last("world.chunk").expect("a get_chunk answer")["payload"].clone();
    assert!(chunk["ok"].as_u64().is_some_and(|n| n > 10), "{chunk}");
    // Walking east brings zone column x = 2 into view: its chunks arrive.
    sim.send(
        &mut p,
        json!({"type": "world.input", "payload": {"x": 150, "y": 50}}),
    );
    sim.advance(Duration::from_millis(200));
    sim.collect(&mut p);
    let mut keys: Vec<(i64, i64)> = terrain_frames(&p).keys().copied().collect();
    keys.sort();
    assert!(keys.contains(&(2, 0)) && keys.contains(&(2, 1)), "{keys:?}");
}

#[test]
fn a_noise_provider_is_deterministic_by_seed() {
    let script = terrain_world(r#"{ module = "asobi_terrain_perlin", args = { seed = 7 } }"#);
    let (_d1, mut sim1, mut p1, _) = joined_world(&script);
    let (_d2, mut sim2, mut p2, _) = joined_world(&script);
    sim1.advance(Duration::from_millis(200));
    sim2.advance(Duration::from_millis(200));
    sim1.collect(&mut p1);
    sim2.collect(&mut p2);
    let (a, b) = (terrain_frames(&p1), terrain_frames(&p2));
    assert_eq!(a.keys().copied().collect::<Vec<_>>(), VIEW);
    assert_eq!(a, b);
    // Not flat: the noise has relief.
    let first = &a[&(0, 0)];
    assert!(first.iter().any(|t| t.elevation != first[0].elevation));
}

#[test]
fn a_lua_provider_generates_chunks_and_get_chunk_makes_missing_ones_after_the_callback() {
    let script = terrain_world(r#"{ module = "lua", args = { seed = 42 } }"#);
    let (_dir, mut sim, mut p, _id) = joined_world(&script);
    sim.advance(Duration::from_millis(200));
    sim.collect(&mut p);
    let chunks = terrain_frames(&p);
    assert_eq!(chunks.keys().copied().collect::<Vec<_>>(), VIEW);
    for ((cx, cy), tiles) in &chunks {
        let t = tiles[2 * 64 + 1];
        assert_eq!(
            (t.id as i64, t.flags, t.elevation),
            (100 + cx * 10 + cy, 3, 42)
        );
        assert_eq!(tiles.iter().filter(|t| t.id != 0).count(), 1);
    }
    // (3, 3) is outside the preloaded ring: the first ask finds it not made, and it is made
    // after that callback, so the next ask gets it.
    sim.advance(Duration::from_millis(1200));
    sim.collect(&mut p);
    let answers: Vec<Value> = p
        .received
        .iter()
        .filter(|f| f["type"] == "world.chunk")
        .map(|f| f["payload"].clone())
        .collect();
    assert!(answers.len() >= 2, "{answers:?}");
    assert_eq!(answers[0], json!({"error": "not_loaded"}));
    assert!(answers[1]["ok"].as_u64().is_some(), "{answers:?}");
}

#[test]
fn no_provider_or_one_off_the_list_means_no_terrain_at_all() {
    for provider in ["nil", r#"{ module = "gen_server" }"#] {
        let script = terrain_world(provider);
        let (_dir, mut sim, mut p, _id) = joined_world(&script);
        sim.advance(Duration::from_millis(600));
        sim.collect(&mut p);
        assert_eq!(p.count("world.terrain"), 0, "{provider}");
        let chunk = p.last("world.chunk").expect("a get_chunk answer")["payload"].clone();
        assert_eq!(
            chunk,
            json!({"error": "terrain not available (no terrain store)"}),
            "{provider}"
        );
    }
}

/// [`WORLD`] on a 10 × 10 grid (100 zones: two slices of 50, the second due half a period after
/// the tick), no `zone_tick`, a delta every second tick, players starting at (450, 450).
fn sliced_world() -> String {
    let sliced = WORLD
        .replace("grid_size          = 6", "grid_size          = 10")
        .replace("broadcast_interval = 1", "broadcast_interval = 2")
        .replace("{ x = 250, y = 250 }", "{ x = 450, y = 450 }");
    for changed in [
        "grid_size          = 10",
        "broadcast_interval = 2",
        "x = 450, y = 450",
    ] {
        assert!(
            sliced.contains(changed),
            "WORLD no longer has the line behind {changed}"
        );
    }
    sliced
}

/// Applies `c`'s frames in arrival order; at each `world.ack` the view must already show the
/// acknowledged input's position for `who` (the ack follows the delta that carries it).
fn drain_checking_acks(
    sim: &mut Sim,
    c: &mut Client,
    view: &mut ClientView,
    who: &str,
    sent: &BTreeMap<u64, (f64, f64)>,
) -> usize {
    sim.collect(c);
    let mut acks = 0;
    for f in std::mem::take(&mut c.received) {
        match f["type"].as_str() {
            Some("world.tick") => apply(view, std::slice::from_ref(&f)),
            Some("world.ack") => {
                let seq = f["payload"]["seq"].as_u64().unwrap();
                let (x, y) = sent[&seq];
                let me = &view.visible()[who];
                assert_eq!(
                    (me["x"].as_f64(), me["y"].as_f64()),
                    (Some(x), Some(y)),
                    "ack {seq} arrived before the delta holding it"
                );
                acks += 1;
            }
            _ => {}
        }
    }
    acks
}

#[test]
fn a_sliced_tick_keeps_crossings_whole_and_acks_after_their_deltas() {
    assert_eq!(
        asobi_rules::worlds::SlicePlan::new(100, Duration::from_millis(50)).slices(),
        2
    );
    let dir = game(&sliced_world());
    let mut sim = sim(&dir);
    let mut walker = sim.signed_in(0, "walker");
    sim.send(
        &mut walker,
        json!({"type": "world.create", "cid": 1, "payload": {"mode": "w"}}),
    );
    let id = walker.take("world.joined").expect("joined")["payload"]["world_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(zones_of(&sim, &id).len(), 100);
    let grid = Grid::new(10, 100.0);
    let mut observers = Vec::new();
    for (i, (x, y)) in [(450.0, 350.0), (550.0, 550.0), (350.0, 650.0)]
        .into_iter()
        .enumerate()
    {
        let mut c = sim.signed_in(0, &format!("obs{i}"));
        sim.send(
            &mut c,
            json!({"type": "world.join", "cid": 1, "payload": {"world_id": id}}),
        );
        assert!(c.take("world.joined").is_some(), "{:?}", c.received);
        sim.send(
            &mut c,
            json!({"type": "world.input", "payload": {"x": x, "y": y}}),
        );
        observers.push((c, ClientView::new(), grid.zone_of(x, y)));
    }
    sim.advance(Duration::from_millis(300));
    let mut wview = ClientView::new();
    let mut sent = BTreeMap::new();
    drain_checking_acks(&mut sim, &mut walker, &mut wview, "walker", &sent);

    // The walker wanders around the middle columns, where x = 4 (the first slice) meets
    // x = 5 (the second), in steps shorter and longer than the tick.
    let mut rng = StdRng::seed_from_u64(7);
    let (mut x, mut y) = (450.0f64, 450.0f64);
    let mut home = grid.zone_of(x, y);
    let (mut crossings, mut across_slices, mut acks) = (0, 0, 0);
    for seq in 1..=300u64 {
        x = (x + rng.random_range(-45.0..45.0))
            .clamp(300.0, 699.0)
            .round();
        y = (y + rng.random_range(-45.0..45.0))
            .clamp(300.0, 699.0)
            .round();
        sent.insert(seq, (x, y));
        sim.send(
            &mut walker,
            json!({"type": "world.input", "seq": seq, "payload": {"x": x, "y": y}}),
        );
        if let Some(to) = grid.rehome(home, x, y, REHOME_MARGIN) {
            crossings += 1;
            if (home.x < 5) != (to.x < 5) {
                across_slices += 1;
            }
            home = to;
        }
        sim.advance(Duration::from_millis(rng.random_range(10..80)));
        acks += drain_checking_acks(&mut sim, &mut walker, &mut wview, "walker", &sent);
        // What the server last broadcast: the walker is in exactly one zone's baseline, and
        // every observer's tables are exactly the baselines of the zones it sees.
        let baselines: BTreeMap<ZoneId, Vec<String>> = world(&sim, &id, |w| {
            w.zones
                .iter()
                .map(|(z, zone)| (*z, zone.stream.baseline().keys().cloned().collect()))
                .collect()
        });
        let holding: Vec<&ZoneId> = baselines
            .iter()
            .filter(|(_, ids)| ids.iter().any(|i| i == "walker"))
            .map(|(z, _)| z)
            .collect();
        assert_eq!(holding.len(), 1, "walker in the baselines of {holding:?}");
        for (c, view, at) in &mut observers {
            drain(&mut sim, c, view);
            assert!(view.duplicates().is_empty(), "{:?}", view.duplicates());
            let mut expect: Vec<String> = baselines
                .iter()
                .filter(|(z, _)| Grid::in_ring(*at, 1, **z))
                .flat_map(|(_, ids)| ids.iter().cloned())
                .collect();
            expect.sort();
            let seen: Vec<String> = view.visible().keys().cloned().collect();
            assert_eq!(seen, expect, "observer in {at:?}");
        }
    }
    assert!(
        crossings > 20 && across_slices > 5,
        "{crossings} {across_slices}"
    );
    assert!(acks > 100, "{acks} acks");
    // Without `zone_tick`, a zone with no input skipped the Lua round trip, and its zone
    // state's `tick` still moved as the round trip moves it.
    let (skipped, tick, stamped) = world(&sim, &id, |w| {
        let z = &w.zones[&grid.zone_of(550.0, 550.0)];
        (w.scriptless_ticks, w.tick, z.state["tick"].as_u64())
    });
    assert!(skipped > 1000, "{skipped}");
    assert!(
        stamped.is_some_and(|t| t + 1 >= tick),
        "{stamped:?} at {tick}"
    );
}

// ---- Zone effects: respawn timers, the border mirror, handle_effects ----

/// A 2 × 2 world; zone (0, 0) spawns one goblin at (40, 40) with an override on its first
/// tick; the template respawns after 1 s, at most 3 goblins in all (asobi's count); a
/// `kill` input despawns every npc of the player's zone.
const RESPAWN: &str = r#"
game_type          = "world"
match_size         = 1
max_players        = 8
tick_rate          = 50
grid_size          = 2
zone_size          = 100
view_radius        = 1
broadcast_interval = 1
function init(config) return {} end
function join(player_id, state) return state end
function leave(player_id, state) return state end
function spawn_position(player_id, state) return { x = 50, y = 50 } end
function spawn_templates(config)
  return {
    goblin = { type = "npc", base_state = { hp = 100 },
               respawn = { delay = 1000, jitter = 0, max_respawns = 3 } },
  }
end
function on_zone_loaded(cx, cy, state) return { cx = cx, cy = cy }, state end
function zone_tick(entities, zone_state)
  if zone_state.cx == 0 and zone_state.cy == 0 and not zone_state.seeded then
    game.zone.spawn("goblin", 40, 40, { hp = 7 })
    zone_state.seeded = true
  end
  return entities, zone_state
end
function handle_input(player_id, input, entities)
  if input.kill then
    for id, e in pairs(entities) do
      if e.type == "npc" then game.zone.despawn(id) end
    end
  end
  return entities
end
function post_tick(tick, state) return state end
"#;

fn goblins(sim: &Sim, id: &str) -> Vec<(String, Value)> {
    world(sim, id, |w| {
        w.zones[&ZoneId::new(0, 0)]
            .entities
            .iter()
            .filter(|(_, e)| e["type"] == "npc")
            .map(|(id, e)| (id.clone(), Value::Object(e.clone())))
            .collect()
    })
}

/// Steps the clock 10 ms at a time until `f` holds (at most `limit`); the time it took.
fn until(sim: &mut Sim, limit: Duration, mut f: impl FnMut(&Sim) -> bool) -> Option<Duration> {
    let start = sim.now();
    while sim.now() - start <= limit {
        if f(sim) {
            return Some(sim.now() - start);
        }
        sim.advance(Duration::from_millis(10));
    }
    None
}

#[test]
fn a_despawned_template_entity_respawns_after_its_delay_up_to_max_respawns() {
    let dir = game(RESPAWN);
    let mut sim = sim(&dir);
    let mut p = sim.signed_in(0, "p");
    sim.send(
        &mut p,
        json!({"type": "world.create", "cid": 1, "payload": {"mode": "w"}}),
    );
    let id = p.take("world.joined").expect("joined")["payload"]["world_id"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.advance(Duration::from_millis(200));
    let first = goblins(&sim, &id);
    assert_eq!(first.len(), 1, "{first:?}");
    let (gid, g) = first[0].clone();
    assert_eq!(
        (g["x"].clone(), g["y"].clone(), g["hp"].clone()),
        (json!(40.0), json!(40.0), json!(7))
    );

    for round in 1..=3 {
        sim.send(
            &mut p,
            json!({"type": "world.input", "payload": {"kill": true}}),
        );
        let gone = until(&mut sim, Duration::from_millis(200), |s| {
            goblins(s, &id).is_empty()
        });
        assert!(gone.is_some(), "round {round}: the goblin was despawned");
        let back = until(&mut sim, Duration::from_secs(3), |s| {
            !goblins(s, &id).is_empty()
        });
        if round == 3 {
            // Three goblins spawned in the zone (the first and two respawns): the cap.
            assert_eq!(back, None, "no respawn past max_respawns");
            break;
        }
        // Due 1 s after the despawn; picked up by the first zone tick at or after that (50 ms
        // ticks, observed in 10 ms steps).
        let back = back.expect("respawned");
        assert!(
            back >= Duration::from_millis(950) && back <= Duration::from_millis(1060),
            "round {round}: back after {back:?}"
        );
        let again = goblins(&sim, &id);
        assert_eq!(again.len(), 1);
        // The same entity at its first position, built from base_state (asobi drops the
        // overrides of the first spawn).
        assert_eq!(again[0].0, gid);
        assert_eq!(
            (
                again[0].1["x"].clone(),
                again[0].1["y"].clone(),
                again[0].1["hp"].clone()
            ),
            (json!(40.0), json!(40.0), json!(100))
        );
        // The player sees it come back in world.tick.
        sim.collect(&mut p);
        let seen = p
            .received
            .iter()
            .filter(|f| f["type"] == "world.tick")
            .flat_map(|f| {
                f["payload"]["updates"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .any(|u| u["id"] == json!(gid) && u["op"] == "a");
        assert!(seen, "round {round}: the respawn reached the client");
        p.received.clear();
    }
    assert_eq!(
        world(&sim, &id, |w| w.zones[&ZoneId::new(0, 0)]
            .spawner
            .count("goblin")),
        3
    );
}

#[test]
fn a_respawn_waiting_in_a_zone_snapshot_fires_in_the_recovered_world() {
    let script = format!("{RESPAWN}\npersistent = true\nsnapshot_interval = 0\n");
    let dir = game(&script);
    let mut sim = sim(&dir);
    let mut p = sim.signed_in(0, "p");
    sim.send(
        &mut p,
        json!({"type": "world.create", "cid": 1, "payload": {"mode": "w"}}),
    );
    let id = p.take("world.joined").expect("joined")["payload"]["world_id"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.advance(Duration::from_millis(200));
    let gid = goblins(&sim, &id)[0].0.clone();
    sim.send(
        &mut p,
        json!({"type": "world.input", "payload": {"kill": true}}),
    );
    sim.advance(Duration::from_millis(400));
    assert!(goblins(&sim, &id).is_empty());
    // The snapshot taken now carries the queue (about 650 ms left), in asobi's shape.
    let now = sim.now();
    let snap = world(&sim, &id, |w| super::snapshot::take(w, now)).expect("persistent");
    let zone = snap
        .zones
        .iter()
        .find(|z| (z.zone_x, z.zone_y) == (0, 0))
        .expect("zone (0, 0) in the snapshot");
    assert_eq!(zone.spawner_state["spawn_counts"], json!({"goblin": 1}));
    assert_eq!(
        zone.spawner_state["respawn_queue"][0]["entity_id"],
        json!(gid)
    );
    // The world comes back (as a copy under another id) with its queue: the goblin is back
    // when its time comes, not before.
    let mut world_row = snap.world.clone();
    world_row.world_id = "recovered-copy".into();
    let recovered = super::snapshot::Recovered {
        world: world_row,
        zones: snap.zones.clone(),
    };
    let shard = sim.shards[0].clone();
    super::recreate(&shard, recovered).expect("recreated");
    assert!(goblins(&sim, "recovered-copy").is_empty());
    let back = until(&mut sim, Duration::from_secs(2), |s| {
        !goblins(s, "recovered-copy").is_empty()
    })
    .expect("respawned in the recovered world");
    assert!(
        back >= Duration::from_millis(500) && back <= Duration::from_millis(750),
        "{back:?}"
    );
    assert_eq!(goblins(&sim, "recovered-copy")[0].0, gid);
}

/// A 2 × 2 world with a 15-unit border band (0.15 × 100): zone (0, 0) holds a turret at
/// (95, 50) that looks across the seam with `neighbours_radius` and fires once at the first
/// player it sees; the player, spawned at (105, 50) in zone (1, 0), takes the hit through
/// `handle_effects`.
pub(super) const SEAM: &str = r#"
game_type          = "world"
match_size         = 1
max_players        = 8
tick_rate          = 50
grid_size          = 2
zone_size          = 100
view_radius        = 1
broadcast_interval = 1
border_band        = 0.15
function init(config) return {} end
function join(player_id, state) return state end
function leave(player_id, state) return state end
function spawn_position(player_id, state) return { x = 105, y = 50 } end
function spawn_templates(config)
  return { turret = { type = "npc", base_state = { shots = 0 } } }
end
function on_zone_loaded(cx, cy, state) return { cx = cx, cy = cy }, state end
function zone_tick(entities, zone_state)
  if zone_state.cx == 0 and zone_state.cy == 0 and not zone_state.seeded then
    game.zone.spawn("turret", 95, 50)
    zone_state.seeded = true
  end
  for id, e in pairs(entities) do
    if e.type == "npc" then
      local seen = game.spatial.neighbours_radius(e.x, e.y, 30, { type = "player" })
      local own = game.spatial.query_radius(e.x, e.y, 30)
      e.sees = seen[1] and seen[1].id or ""
      e.own_hits = #own
      if seen[1] and e.shots == 0 then
        if game.zone.apply(seen[1].id, { kind = "damage", amount = 12 }) then
          e.shots = 1
        end
      end
    end
  end
  return entities, zone_state
end
function handle_input(player_id, input, entities) return entities end
function handle_effects(effects, entities)
  for _, fx in ipairs(effects) do
    local t = entities[fx.entity_id]
    t.hp = (t.hp or 100) - (fx.event.amount or 0)
  end
  return entities
end
function post_tick(tick, state) return state end
"#;

fn entity(sim: &Sim, id: &str, z: ZoneId, e: &str) -> Value {
    world(sim, id, |w| {
        w.zones[&z]
            .entities
            .get(e)
            .map(|f| Value::Object(f.clone()))
            .unwrap_or(Value::Null)
    })
}

fn turret(sim: &Sim, id: &str) -> Value {
    world(sim, id, |w| {
        w.zones[&ZoneId::new(0, 0)]
            .entities
            .values()
            .find(|e| e["type"] == "npc")
            .map(|f| Value::Object(f.clone()))
            .unwrap_or(Value::Null)
    })
}

#[test]
fn an_npc_sees_a_player_across_the_seam_and_its_effect_lands_through_handle_effects() {
    let dir = game(SEAM);
    let mut sim = sim(&dir);
    let mut p = sim.signed_in(0, "pilot");
    sim.send(
        &mut p,
        json!({"type": "world.create", "cid": 1, "payload": {"mode": "w"}}),
    );
    let id = p.take("world.joined").expect("joined")["payload"]["world_id"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.advance(Duration::from_secs(1));
    let t = turret(&sim, &id);
    // Ten units away, across the seam: seen through the mirror, not by the zone's own query
    // (which finds only the turret itself).
    assert_eq!(t["sees"], json!("pilot"), "{t}");
    assert_eq!(t["own_hits"], json!(1));
    assert_eq!(t["shots"], json!(1));
    // The owner applied the effect, once, in its own tick.
    let pilot = entity(&sim, &id, ZoneId::new(1, 0), "pilot");
    assert_eq!(pilot["hp"], json!(88), "{pilot}");
    // And the client saw it in zone (1, 0)'s stream.
    sim.collect(&mut p);
    let hit = p
        .received
        .iter()
        .filter(|f| f["type"] == "world.tick" && f["payload"]["zone"] == json!([1, 0]))
        .flat_map(|f| {
            f["payload"]["updates"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .any(|u| u["id"] == "pilot" && u["hp"] == json!(88));
    assert!(hit);

    // The pilot walks out of the band (x 150): the turret loses sight of it.
    world(&sim, &id, |w| {
        if let Some(e) = w
            .zones
            .get_mut(&ZoneId::new(1, 0))
            .and_then(|z| z.entities.get_mut("pilot"))
        {
            e.insert("x".into(), json!(150.0));
        }
    });
    sim.advance(Duration::from_millis(200));
    assert_eq!(turret(&sim, &id)["sees"], json!(""));
}

#[test]
fn without_a_border_band_nothing_is_seen_or_applied_across_the_seam() {
    let script = SEAM.replace("border_band        = 0.15", "");
    let dir = game(&script);
    let mut sim = sim(&dir);
    let mut p = sim.signed_in(0, "pilot");
    sim.send(
        &mut p,
        json!({"type": "world.create", "cid": 1, "payload": {"mode": "w"}}),
    );
    let id = p.take("world.joined").expect("joined")["payload"]["world_id"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.advance(Duration::from_secs(1));
    let t = turret(&sim, &id);
    assert_eq!(
        (t["sees"].clone(), t["shots"].clone()),
        (json!(""), json!(0)),
        "{t}"
    );
    assert_eq!(
        entity(&sim, &id, ZoneId::new(1, 0), "pilot").get("hp"),
        None
    );
}

// ---- world.resync: the node-wide limit ----

fn keyframes_of(c: &Client, zone: Value) -> usize {
    c.received
        .iter()
        .filter(|f| {
            f["type"] == "world.tick" && f["payload"]["kf"] == true && f["payload"]["zone"] == zone
        })
        .count()
}

#[test]
fn world_resync_is_limited_for_the_whole_node_after_each_players_own_limit() {
    let dir = game(&RESPAWN.replace("max_players        = 8", "max_players        = 16"));
    let mut sim = sim(&dir);
    let mut players: Vec<Client> = (0..11)
        .map(|i| sim.signed_in(0, &format!("p{i}")))
        .collect();
    sim.send(
        &mut players[0],
        json!({"type": "world.create", "cid": 1, "payload": {"mode": "w"}}),
    );
    let id = players[0].take("world.joined").expect("joined")["payload"]["world_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for c in players.iter_mut().skip(1) {
        sim.send(
            c,
            json!({"type": "world.join", "cid": 1, "payload": {"world_id": id}}),
        );
        assert!(c.take("world.joined").is_some());
    }
    sim.advance(Duration::from_millis(200));
    let resync = json!({"type": "world.resync", "payload": {"zone": [1, 1]}});
    let burst = |sim: &mut Sim, c: &mut Client, n: usize| {
        sim.collect(c);
        c.received.clear();
        for _ in 0..n {
            sim.send(c, resync.clone());
        }
        sim.settle();
        sim.collect(c);
        keyframes_of(c, json!([1, 1]))
    };
    // Each player may send 2 in 10 s (a third is dropped); the node answers 20 a second
    // between them all, so ten players use it up and the eleventh's request gets nothing
    // (it still counts against that player's own two, as asobi checks the player first).
    let answered: Vec<usize> = players
        .iter_mut()
        .take(10)
        .map(|c| burst(&mut sim, c, 3))
        .collect();
    assert_eq!(answered, [2; 10]);
    assert_eq!(burst(&mut sim, &mut players[10], 1), 0);
    // A second on, the node has room again: the first player is still over its own limit,
    // and the eleventh gets its second request answered.
    sim.advance(Duration::from_secs(2));
    assert_eq!(burst(&mut sim, &mut players[0], 1), 0);
    assert_eq!(burst(&mut sim, &mut players[10], 1), 1);
}

// ---- World phases and world.phase_changed ----

/// Phases: `lobby` until two players are in, `combat` for 1 s, `results` for 0.5 s; the
/// callbacks record the transitions in the world state, which `post_tick` broadcasts.
const PHASED: &str = r#"
game_type          = "world"
match_size         = 1
max_players        = 8
tick_rate          = 50
grid_size          = 2
zone_size          = 100
broadcast_interval = 1
function init(config) return { log = {} } end
function join(player_id, state) return state end
function leave(player_id, state) return state end
function spawn_position(player_id, state) return { x = 50, y = 50 } end
function phases(config)
  return {
    { name = "lobby" },
    { name = "combat", duration = 1000, start = { players = 2 }, config = { arena = "pit" } },
    { name = "results", duration = 500 },
  }
end
function on_phase_started(name, state)
  state.log[#state.log + 1] = "+" .. name
  return state
end
function on_phase_ended(name, state)
  state.log[#state.log + 1] = "-" .. name
  return state
end
function post_tick(tick, state)
  if tick % 10 == 0 then game.broadcast("log", { log = state.log }) end
  return state
end
"#;

fn phase_frames(c: &Client) -> Vec<Value> {
    c.received
        .iter()
        .filter(|f| f["type"] == "world.phase_changed")
        .map(|f| f["payload"].clone())
        .collect()
}

#[test]
fn world_phases_walk_their_list_and_announce_each_change_with_world_phase_changed() {
    let script = PHASED.replace(
        "{ name = \"lobby\" },",
        "{ name = \"lobby\", duration = 200 },",
    );
    let dir = game(&script);
    let mut sim = sim(&dir);
    let mut a = sim.signed_in(0, "a");
    sim.send(
        &mut a,
        json!({"type": "world.create", "cid": 1, "payload": {"mode": "w"}}),
    );
    let id = a.take("world.joined").expect("joined")["payload"]["world_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The lobby ends after 200 ms; combat waits for a second player.
    sim.advance(Duration::from_millis(400));
    sim.collect(&mut a);
    let frames = phase_frames(&a);
    let waiting = frames.last().expect("a phase_changed frame");
    assert_eq!(waiting["status"], "waiting", "{frames:?}");
    assert_eq!(waiting["phase"], "combat");
    assert_eq!(
        waiting["start_condition"],
        json!({"type": "players", "value": 2})
    );
    assert_eq!(waiting["world_id"], json!(id));
    a.received.clear();

    let mut b = sim.signed_in(0, "b");
    sim.send(
        &mut b,
        json!({"type": "world.join", "cid": 1, "payload": {"world_id": id}}),
    );
    let joined = b.take("world.joined").expect("joined");
    // The join reply and listings carry the phase block a non-member may see (no config).
    let phase = &joined["payload"]["phase"];
    assert_eq!(phase["phase"], "combat", "{joined}");
    assert!(phase.get("config").is_none(), "{phase}");
    sim.advance(Duration::from_millis(100));
    let listed = serde_json::to_value(sim.ctx.worlds.list(None, false)).unwrap();
    let phase = &listed[0]["phase"];
    assert_eq!(
        (phase["status"].as_str(), phase["phase"].as_str()),
        (Some("active"), Some("combat")),
        "{listed}"
    );
    assert!(
        phase["remaining_ms"].as_u64().is_some_and(|ms| ms <= 1000),
        "{phase}"
    );
    assert!(phase.get("config").is_none() && phase.get("timers").is_none());
    sim.collect(&mut a);
    sim.collect(&mut b);
    for c in [&a, &b] {
        let f = phase_frames(c);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0]["status"], "active");
        assert_eq!(f[0]["phase"], "combat");
        assert_eq!(f[0]["config"], json!({"arena": "pit"}));
        assert_eq!(f[0]["world_id"], json!(id));
        assert!(f[0]["remaining_ms"].as_u64().unwrap() <= 1000);
    }
    // The info block again, about every three seconds, is not a burst: combat ends after 1 s
    // and results after 0.5 s; then the world finishes with phases_complete.
    a.received.clear();
    sim.advance(Duration::from_millis(1000));
    sim.collect(&mut a);
    let f = phase_frames(&a);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0]["phase"].clone(), f[0]["status"].clone()),
        (json!("results"), json!("active"))
    );
    sim.advance(Duration::from_millis(600));
    sim.collect(&mut a);
    let finished = a.last("world.finished").expect("world finished");
    assert_eq!(
        finished["payload"]["result"],
        json!({"status": "phases_complete"})
    );
    let log = a
        .received
        .iter()
        .rev()
        .find(|f| f["type"] == "world.log")
        .expect("a log broadcast")["payload"]["log"]
        .clone();
    assert_eq!(
        log,
        json!(["+lobby", "-lobby", "+combat", "-combat", "+results"])
    );
}

#[test]
fn the_phase_info_is_sent_again_every_three_seconds() {
    let dir = game(PHASED);
    let mut sim = sim(&dir);
    let mut a = sim.signed_in(0, "a");
    sim.send(
        &mut a,
        json!({"type": "world.create", "cid": 1, "payload": {"mode": "w"}}),
    );
    assert!(a.take("world.joined").is_some());
    sim.advance(Duration::from_millis(100));
    sim.collect(&mut a);
    a.received.clear();
    // The lobby has no duration: nothing changes, and the info block comes every 3 s.
    sim.advance(Duration::from_millis(9000));
    sim.collect(&mut a);
    let f = phase_frames(&a);
    assert_eq!(f.len(), 3, "{f:?}");
    assert!(f
        .iter()
        .all(|p| p["phase"] == "lobby" && p["status"] == "active"));
    assert!(f.iter().all(|p| p["remaining_ms"] == "infinity"));
}

#[test]
fn a_split_world_runs_its_phases_on_the_host_and_announces_them_on_every_shard() {
    // Two shards, columns 0 on the host and 1 on the other; "b" spawns on the other stripe.
    let script = PHASED
        .replace("broadcast_interval = 1", "broadcast_interval = 1\nworld_shards = 2")
        .replace("{ name = \"lobby\" },", "{ name = \"lobby\", duration = 200 },")
        .replace(
            "function spawn_position(player_id, state) return { x = 50, y = 50 } end",
            "function spawn_position(player_id, state)\n  if player_id == \"b\" then return { x = 150, y = 50 } end\n  return { x = 50, y = 50 }\nend",
        );
    let dir = game(&script);
    let settings = Settings {
        ws_msg_rate: 0,
        ..Settings::default()
    };
    let mut sim = Sim::new(2, dir.path(), settings).latency(Duration::from_millis(1));
    let mut a = sim.signed_in(0, "a");
    sim.send(
        &mut a,
        json!({"type": "world.create", "cid": 1, "payload": {"mode": "w"}}),
    );
    let id = a.take("world.joined").expect("joined")["payload"]["world_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The lobby ends; combat waits for a second player.
    sim.advance(Duration::from_millis(400));
    let mut b = sim.signed_in(1, "b");
    sim.send(
        &mut b,
        json!({"type": "world.join", "cid": 1, "payload": {"world_id": id}}),
    );
    assert!(b.take("world.joined").is_some(), "{:?}", b.received);
    // The second player starts combat (counted on the host though "b" lives on the other
    // shard), and both players hear of it once.
    sim.advance(Duration::from_millis(200));
    sim.collect(&mut a);
    sim.collect(&mut b);
    for c in [&a, &b] {
        let f: Vec<Value> = phase_frames(c)
            .into_iter()
            .filter(|p| p["phase"] == "combat" && p["status"] == "active")
            .collect();
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0]["world_id"], json!(id));
    }
}
