//! A world split over two shards (`world_shards = 2`) on the simulation harness, with mesh
//! latency: a walker crossing between the shards' stripes is never missing from a view that
//! holds both its zones and is never shown twice past one mesh round trip; a player placed on
//! the other stripe by a join sees zones of both shards, moves across, keeps being steered,
//! and leaves; the host ends the world on every shard.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use asobi_rules::worlds::{ClientView, Grid, Stripes, ZoneId, REHOME_MARGIN};

use super::sim_tests::{apply, drain, game};
use crate::services::sim::{Client, Sim};
use crate::services::Settings;

/// 6 × 6 zones of 100 units over two shards: columns 0–2 on the host, 3–5 on the other.
/// Players whose id starts with `east` spawn at (350, 250), zone (3, 2); the rest at
/// (250, 250), zone (2, 2).
const SPLIT: &str = r#"
game_type          = "world"
match_size         = 1
max_players        = 16
tick_rate          = 50
grid_size          = 6
zone_size          = 100
view_radius        = 1
broadcast_interval = 1
world_shards       = 2
function init(config) return {} end
function join(player_id, state) return state end
function leave(player_id, state) return state end
function spawn_position(player_id, state)
  if string.sub(player_id, 1, 4) == "east" then return { x = 350, y = 250 } end
  return { x = 250, y = 250 }
end
function handle_input(player_id, input, entities)
  local me = entities[player_id]
  if me then me.x, me.y = input.x, input.y end
  return entities
end
function post_tick(tick, state)
  if state.stop_at and tick >= state.stop_at then
    state._finished = true
    state._result = { reason = "done" }
  end
  return state
end
"#;

/// Mesh latency: longer than the step the tests look at, so a handoff's order shows.
const LATENCY: Duration = Duration::from_millis(5);

fn split_sim(script: &str) -> (tempfile::TempDir, Sim) {
    let dir = game(script);
    let settings = Settings {
        ws_msg_rate: 0,
        ..Settings::default()
    };
    let sim = Sim::new(2, dir.path(), settings).latency(LATENCY);
    (dir, sim)
}

fn join(sim: &mut Sim, c: &mut Client, world_id: &str) -> Value {
    sim.send(
        c,
        json!({"type": "world.join", "cid": 1, "payload": {"world_id": world_id}}),
    );
    c.take("world.joined").expect("joined")
}

fn create(sim: &mut Sim, c: &mut Client) -> String {
    sim.send(
        c,
        json!({"type": "world.create", "cid": 1, "payload": {"mode": "w"}}),
    );
    let joined = c.take("world.joined").expect("joined");
    joined["payload"]["world_id"].as_str().unwrap().to_owned()
}

fn move_to(sim: &mut Sim, c: &mut Client, x: f64, y: f64) {
    sim.send(
        c,
        json!({"type": "world.input", "payload": {"x": x, "y": y}}),
    );
}

/// `f` on world `id`'s part on `shard`; `None` when that shard runs no part of it.
fn on_shard<T>(
    sim: &Sim,
    shard: usize,
    id: &str,
    f: impl FnOnce(&mut super::LiveWorld) -> T,
) -> Option<T> {
    let worlds = &sim.shards[shard].worlds;
    let key = worlds.key_of(id)?;
    worlds.with(key, f)
}

fn zones_on(sim: &Sim, shard: usize, id: &str) -> Option<Vec<ZoneId>> {
    on_shard(sim, shard, id, |w| w.zones.keys().copied().collect())
}

#[test]
fn a_walker_crossing_between_shards_is_never_lost_and_never_doubled_for_long() {
    let (_dir, mut sim) = split_sim(SPLIT);
    let mut walker = sim.signed_in(0, "walker");
    let world_id = create(&mut sim, &mut walker);
    sim.advance(Duration::from_millis(100));
    let west = zones_on(&sim, 0, &world_id).expect("host part");
    let east = zones_on(&sim, 1, &world_id).expect("second part");
    assert!(west.iter().all(|z| z.x <= 2) && east.iter().all(|z| z.x >= 3));
    assert_eq!(
        (west.len(), east.len()),
        (18, 18),
        "each shard holds its stripe"
    );
    let stripes = Stripes::new(6, 2, 0, 2).unwrap();

    // Observers on both shards' sessions, parked on both stripes and on the seam.
    let spots = [(50.0, 50.0), (250.0, 250.0), (350.0, 250.0), (550.0, 450.0)];
    let grid = Grid::new(6, 100.0);
    let mut observers = Vec::new();
    for (i, (x, y)) in spots.iter().enumerate() {
        let mut c = sim.signed_in(i % 2, &format!("obs{i}"));
        join(&mut sim, &mut c, &world_id);
        move_to(&mut sim, &mut c, *x, *y);
        observers.push((c, ClientView::new(), grid.zone_of(*x, *y)));
    }
    sim.advance(Duration::from_millis(300));
    let mut wview = ClientView::new();
    drain(&mut sim, &mut walker, &mut wview);

    let mut rng = StdRng::seed_from_u64(7);
    let (mut x, mut y) = (250.0f64, 250.0f64);
    let mut home = grid.zone_of(x, y);
    let (mut crossings, mut shard_crossings, mut checked_gaps) = (0, 0, 0);
    let mut doubled_for = vec![0u32; observers.len()];
    for _ in 0..400 {
        x = (x + rng.random_range(-40.0..40.0))
            .clamp(0.0, 599.0)
            .round();
        y = (y + rng.random_range(-40.0..40.0))
            .clamp(0.0, 599.0)
            .round();
        move_to(&mut sim, &mut walker, x, y);
        let before = home;
        if let Some(to) = grid.rehome(home, x, y, REHOME_MARGIN) {
            home = to;
            crossings += 1;
            if stripes.owner(before) != stripes.owner(to) {
                shard_crossings += 1;
            }
        }
        // In 1 ms steps: an observer holding both zones of a crossing always shows the
        // walker, and shows it twice for no longer than the handoff takes to reach it (the
        // new zone's frame, the release and the old zone's frame: three mesh hops).
        for _ in 0..50 {
            sim.advance(Duration::from_millis(1));
            for (i, (c, view, at)) in observers.iter_mut().enumerate() {
                drain(&mut sim, c, view);
                if view.duplicates().is_empty() {
                    doubled_for[i] = 0;
                } else {
                    doubled_for[i] += 1;
                    assert!(
                        u128::from(doubled_for[i]) <= 3 * LATENCY.as_millis() + 1,
                        "walker doubled past the handoff"
                    );
                }
                if Grid::in_ring(*at, 1, before) && Grid::in_ring(*at, 1, home) {
                    checked_gaps += 1;
                    assert!(
                        view.visible().contains_key("walker"),
                        "walker lost between {before:?} and {home:?}, observer in {at:?}"
                    );
                }
            }
        }
        for (c, view, at) in &mut observers {
            drain(&mut sim, c, view);
            assert!(view.duplicates().is_empty(), "{:?}", view.duplicates());
            let expect = Grid::in_ring(*at, 1, home);
            let visible = view.visible();
            assert_eq!(
                visible.contains_key("walker"),
                expect,
                "walker in {home:?}, observer in {at:?}"
            );
            if expect {
                let w = &visible["walker"];
                assert_eq!((w["x"].as_f64(), w["y"].as_f64()), (Some(x), Some(y)));
            }
        }
        // The walker's own input keeps reaching whichever shard holds it.
        drain(&mut sim, &mut walker, &mut wview);
        assert_eq!(
            wview.visible().get("walker").and_then(|w| w["x"].as_f64()),
            Some(x)
        );
    }
    assert!(crossings > 10, "{crossings} crossings");
    assert!(
        shard_crossings > 4,
        "{shard_crossings} crossings between shards"
    );
    assert!(checked_gaps > 5000, "{checked_gaps}");
    assert_eq!(sim.ctx.worlds.get(&world_id).unwrap().info.player_count, 5);
}

#[test]
fn a_player_placed_on_the_other_shard_sees_both_crosses_over_and_leaves() {
    let (_dir, mut sim) = split_sim(SPLIT);
    let mut west = sim.signed_in(0, "west");
    let world_id = create(&mut sim, &mut west);
    sim.advance(Duration::from_millis(100));
    let mut east = sim.signed_in(0, "east-1");
    let joined = join(&mut sim, &mut east, &world_id);
    assert_eq!(joined["payload"]["player_count"], 2, "{joined}");
    assert_eq!(joined["payload"]["players"], json!(["east-1", "west"]));
    sim.advance(Duration::from_millis(200));

    // Keyframes for its nine zones came from both shards; it sees itself and west.
    let mut eview = ClientView::new();
    sim.collect(&mut east);
    let frames = std::mem::take(&mut east.received);
    let keyframes: Vec<(u64, u64)> = frames
        .iter()
        .filter(|f| f["type"] == "world.tick" && f["payload"]["kf"] == true)
        .map(|f| {
            let z = &f["payload"]["zone"];
            (z[0].as_u64().unwrap(), z[1].as_u64().unwrap())
        })
        .collect();
    for zx in 2..=4 {
        for zy in 1..=3 {
            assert!(keyframes.contains(&(zx, zy)), "{keyframes:?}");
        }
    }
    apply(&mut eview, &frames);
    let seen = eview.visible();
    assert!(
        seen.contains_key("east-1") && seen.contains_key("west"),
        "{seen:?}"
    );
    let mut wview = ClientView::new();
    drain(&mut sim, &mut west, &mut wview);
    assert!(wview.visible().contains_key("east-1"));

    // East steps west, across the seam onto the host's stripe, and keeps moving there.
    for (x, y) in [
        (320.0, 250.0),
        (260.0, 250.0),
        (150.0, 250.0),
        (120.0, 220.0),
    ] {
        move_to(&mut sim, &mut east, x, y);
        sim.advance(Duration::from_millis(60));
        drain(&mut sim, &mut east, &mut eview);
        drain(&mut sim, &mut west, &mut wview);
        for view in [&eview, &wview] {
            assert!(view.duplicates().is_empty());
            let me = &view.visible()["east-1"];
            assert_eq!((me["x"].as_f64(), me["y"].as_f64()), (Some(x), Some(y)));
        }
    }
    let resident = on_shard(&sim, 0, &world_id, |w| w.players.contains_key("east-1")).unwrap();
    assert!(resident, "east-1 now lives on the host's stripe");
    assert_eq!(
        sim.ctx.worlds.seat_of("east-1").map(|(_, s)| s),
        Some(0),
        "its seat follows it"
    );

    // A second east player placed on shard 1 leaves from there.
    let mut east2 = sim.signed_in(1, "east-2");
    join(&mut sim, &mut east2, &world_id);
    sim.advance(Duration::from_millis(200));
    assert_eq!(sim.ctx.worlds.seat_of("east-2").map(|(_, s)| s), Some(1));
    assert_eq!(sim.ctx.worlds.get(&world_id).unwrap().info.player_count, 3);
    sim.send(
        &mut east2,
        json!({"type": "world.leave", "cid": 2, "payload": {}}),
    );
    assert!(east2.take("world.left").is_some());
    sim.advance(Duration::from_millis(200));
    assert_eq!(sim.ctx.worlds.get(&world_id).unwrap().info.player_count, 2);
    assert_eq!(sim.ctx.worlds.seat_of("east-2"), None);
    drain(&mut sim, &mut west, &mut wview);
    assert!(!wview.visible().contains_key("east-2"));
}

#[test]
fn the_host_ends_the_world_on_every_shard() {
    let script = SPLIT.replace(
        "function init(config) return {} end",
        "function init(config) return { stop_at = 30 } end",
    );
    let (_dir, mut sim) = split_sim(&script);
    let mut west = sim.signed_in(0, "west");
    let world_id = create(&mut sim, &mut west);
    let mut east = sim.signed_in(1, "east-1");
    join(&mut sim, &mut east, &world_id);
    sim.advance(Duration::from_millis(100));
    assert!(zones_on(&sim, 1, &world_id).is_some());
    sim.advance(Duration::from_secs(2));
    for c in [&mut west, &mut east] {
        sim.collect(c);
        let f = c.last("world.finished").expect("world.finished");
        assert_eq!(f["payload"]["result"]["reason"], "done");
    }
    assert!(zones_on(&sim, 0, &world_id).is_none());
    assert!(zones_on(&sim, 1, &world_id).is_none());
    assert!(sim.ctx.worlds.get(&world_id).is_none());
    assert_eq!(sim.ctx.worlds.seat_of("east-1"), None);
}

/// The other shard's stripe is at its active-zone ceiling: a walker crossing into it comes
/// back to the zone it left (never lost), and crosses once the stripe has room again.
#[test]
fn a_crossing_refused_at_the_other_shards_ceiling_comes_back_and_retries() {
    let script = SPLIT
        .replace("view_radius        = 1", "view_radius        = 0")
        .replace(
            "world_shards       = 2",
            "world_shards       = 2\nlazy_zones = true\nmax_active_zones = 2\nzone_idle_timeout = 1000",
        );
    let (_dir, mut sim) = split_sim(&script);
    let mut west = sim.signed_in(0, "west");
    let world_id = create(&mut sim, &mut west);
    // East holds the other stripe's only zone (the ceiling of 2 is one zone per shard).
    let mut east = sim.signed_in(1, "east-1");
    join(&mut sim, &mut east, &world_id);
    sim.advance(Duration::from_millis(200));
    assert_eq!(zones_on(&sim, 1, &world_id), Some(vec![ZoneId::new(3, 2)]));

    let mut wview = ClientView::new();
    move_to(&mut sim, &mut west, 460.0, 250.0);
    for _ in 0..20 {
        sim.advance(Duration::from_millis(50));
        drain(&mut sim, &mut west, &mut wview);
        let me = wview.visible();
        assert_eq!(me["west"]["x"].as_f64(), Some(460.0), "{me:?}");
    }
    assert_eq!(zones_on(&sim, 1, &world_id), Some(vec![ZoneId::new(3, 2)]));
    assert!(
        wview.zones().contains(&ZoneId::new(2, 2)),
        "still shown in the zone it left"
    );

    // East leaves; its zone is reaped and the walker's next attempt lands.
    sim.send(
        &mut east,
        json!({"type": "world.leave", "cid": 2, "payload": {}}),
    );
    sim.advance(Duration::from_secs(25));
    drain(&mut sim, &mut west, &mut wview);
    assert_eq!(zones_on(&sim, 1, &world_id), Some(vec![ZoneId::new(4, 2)]));
    assert_eq!(wview.visible()["west"]["x"].as_f64(), Some(460.0));
    assert_eq!(sim.ctx.worlds.seat_of("west").map(|(_, s)| s), Some(1));
}

/// A player held on the other shard's stripe (`player_ttl_ms`) signs in again on the host's
/// shard: they are back in their entity, with the keyframes of the zones of both shards, and
/// their input reaches the stripe holding them.
#[test]
fn a_held_player_comes_back_on_a_session_of_the_other_shard() {
    let script = SPLIT.replace(
        "world_shards       = 2",
        "world_shards       = 2\nplayer_ttl_ms = 5000",
    );
    let (_dir, mut sim) = split_sim(&script);
    let mut west = sim.signed_in(0, "west");
    let world_id = create(&mut sim, &mut west);
    let mut east = sim.signed_in(1, "east-1");
    join(&mut sim, &mut east, &world_id);
    sim.advance(Duration::from_millis(200));
    sim.drop_client(east);
    sim.advance(Duration::from_millis(500));
    assert_eq!(sim.ctx.worlds.get(&world_id).unwrap().info.player_count, 2);

    let mut back = sim.signed_in(0, "east-1");
    sim.advance(Duration::from_millis(200));
    let mut view = ClientView::new();
    drain(&mut sim, &mut back, &mut view);
    let zones = view.zones();
    assert!(
        zones.contains(&ZoneId::new(2, 2)) && zones.contains(&ZoneId::new(4, 2)),
        "keyframes from both shards: {zones:?}"
    );
    assert!(view.visible().contains_key("east-1") && view.visible().contains_key("west"));
    move_to(&mut sim, &mut back, 380.0, 260.0);
    sim.advance(Duration::from_millis(100));
    drain(&mut sim, &mut back, &mut view);
    assert_eq!(view.visible()["east-1"]["x"].as_f64(), Some(380.0));
}

/// Entity `e` of zone `z`, on the shard running that zone.
fn entity_on(sim: &Sim, shard: usize, id: &str, z: ZoneId, e: &str) -> Value {
    on_shard(sim, shard, id, |w| {
        w.zones
            .get(&z)
            .and_then(|zone| zone.entities.get(e))
            .map(|f| Value::Object(f.clone()))
    })
    .flatten()
    .unwrap_or(Value::Null)
}

/// The seam between two zones is the seam between two shards: the turret in zone (0, 0), on
/// the host, sees the pilot in zone (1, 0), on the other shard, through the band that shard
/// sends over, and its `game.zone.apply` lands there through `handle_effects`; when the pilot
/// walks out of the band the turret loses sight of it.
#[test]
fn border_bands_and_effects_cross_between_shards() {
    let script = super::sim_tests::SEAM.replace(
        "border_band        = 0.15",
        "border_band        = 0.15\nworld_shards       = 2",
    );
    let (_dir, mut sim) = split_sim(&script);
    let mut p = sim.signed_in(0, "pilot");
    let id = create(&mut sim, &mut p);
    sim.advance(Duration::from_secs(1));
    let east = zones_on(&sim, 1, &id).unwrap();
    assert!(east.contains(&ZoneId::new(1, 0)) && !east.contains(&ZoneId::new(0, 0)));
    let turret = |sim: &Sim| {
        on_shard(sim, 0, &id, |w| {
            w.zones[&ZoneId::new(0, 0)]
                .entities
                .values()
                .find(|e| e["type"] == "npc")
                .map(|f| Value::Object(f.clone()))
        })
        .flatten()
        .unwrap_or(Value::Null)
    };
    let t = turret(&sim);
    assert_eq!(t["sees"], json!("pilot"), "{t}");
    assert_eq!(t["shots"], json!(1));
    let pilot = entity_on(&sim, 1, &id, ZoneId::new(1, 0), "pilot");
    assert_eq!(pilot["hp"], json!(88), "{pilot}");

    // The script ignores input: the pilot is moved out of the band (x 150) on its shard.
    on_shard(&sim, 1, &id, |w| {
        if let Some(e) = w
            .zones
            .get_mut(&ZoneId::new(1, 0))
            .and_then(|z| z.entities.get_mut("pilot"))
        {
            e.insert("x".into(), json!(150.0));
        }
    });
    sim.advance(Duration::from_millis(300));
    assert_eq!(turret(&sim)["sees"], json!(""));
}
