//! Worlds on the simulation harness (virtual clock, no sockets): a walker wanders a seeded
//! random path across zone borders while observers stand still; after every tick each
//! observer's per-zone tables must show the walker exactly when the walker's zone is in view,
//! at the position it was moved to, and never twice.

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

fn apply(view: &mut ClientView, frames: &[Value]) {
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

fn drain(sim: &mut Sim, c: &mut Client, view: &mut ClientView) {
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
