//! Persistent worlds across restarts, on SQLite and PostgreSQL, against the real binary:
//! start, change the world (entities dropped and moved across zone borders, zone state), stop,
//! start, and find the world back under its id with its entities and zone state, the script's
//! `on_world_recovered` called; then a crash (SIGKILL) loses at most one snapshot interval; a
//! world that finishes on its own does not come back, nor does a non-persistent one.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use asobi_rules::worlds::{ClientView, Fields, Op, Received, ZoneId};
use common::{own_pg_db, Opts, Server, Ws};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(15);

/// A 4 × 4 grid of 100-unit zones that one player sees whole (view radius 3). Snapshots every
/// 4 ticks (200 ms). Inputs: `drop` an entity, `push` one elsewhere, `dig` (the zone's
/// `ore` goes up by one at its next tick and a `gauge` entity shows it), `report` (broadcasts
/// what `on_world_recovered` saw), `end`.
const REALM: &str = r#"
game_type          = "world"
match_size         = 1
max_players        = 8
tick_rate          = 50
grid_size          = 4
zone_size          = 100
view_radius        = 3
broadcast_interval = 1
persistent         = true
snapshot_interval  = 4

local ending = false
recovered = nil

function init(config) return { world_id = config.world_id } end
function join(player_id, state) return state end
function leave(player_id, state) return state end
function spawn_position(player_id, state) return { x = 50, y = 50 } end
function generate_world(seed, config) return { ["0,0"] = { ore = 0, generated = true } } end

function on_world_recovered(snapshot, state)
  local ids, zones, tick = {}, 0, 0
  for key, z in pairs(snapshot) do
    zones = zones + 1
    if z.tick > tick then tick = z.tick end
    for id, _ in pairs(z.entities) do ids[#ids + 1] = id end
  end
  table.sort(ids)
  local calls = (recovered and recovered.calls or 0) + 1
  recovered = { zones = zones, ids = ids, tick = tick, calls = calls,
                had_state = state.world_id ~= nil }
  state.recovered = true
  return state
end

function handle_input(player_id, input, entities)
  if input.kind == "drop" then
    entities[input.id] = { x = input.x, y = input.y, type = "crate", persistent = input.persistent }
  elseif input.kind == "push" then
    local e = entities[input.id]
    if e then e.x, e.y = input.x, input.y end
  elseif input.kind == "dig" then
    local me = entities[player_id]
    if me then me.dig = true end
  elseif input.kind == "report" then
    game.broadcast("report", { recovered = recovered or false })
  elseif input.kind == "end" then
    ending = true
  end
  return entities
end

function zone_tick(entities, zone_state)
  local diggers = {}
  for id, e in pairs(entities) do
    if e.dig then diggers[#diggers + 1] = e end
  end
  for _, e in ipairs(diggers) do
    e.dig = nil
    zone_state.ore = (zone_state.ore or 0) + 1
    entities.gauge = { x = e.x, y = e.y, type = "gauge", ore = zone_state.ore }
  end
  return entities, zone_state
end

function post_tick(tick, state)
  if ending then
    state._finished = true
    state._result = { reason = "ended" }
  end
  return state
end
"#;

fn fleeting() -> String {
    REALM.replace("persistent         = true", "persistent         = false")
}

fn write_game(dir: &Path) {
    std::fs::write(
        dir.join("config.lua"),
        "return { realm = \"realm.lua\", fleeting = \"fleeting.lua\" }\n",
    )
    .unwrap();
    std::fs::write(dir.join("realm.lua"), REALM).unwrap();
    std::fs::write(dir.join("fleeting.lua"), fleeting()).unwrap();
}

fn start(data: &Path, game: &Path, db: &Option<String>) -> Server {
    Server::start(
        data,
        game,
        &Opts {
            shards: Some(2),
            database_url: db.clone(),
            ..Opts::default()
        },
    )
}

/// A client keeping asobi's per-zone tables from the `world.tick` frames it reads.
struct Client {
    ws: Ws,
    view: ClientView,
    events: Vec<Value>,
    finished: Option<Value>,
}

fn ops(updates: &Value) -> Vec<Op> {
    updates
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
                "r" => Op::Remove(id),
                other => panic!("unknown op {other}"),
            }
        })
        .collect()
}

impl Client {
    fn connect(s: &Server, prefix: &str) -> (Client, String) {
        let p = s.register(prefix);
        let (mut ws, _) = s.ws();
        ws.connect(&p.access);
        let c = Client {
            ws,
            view: ClientView::new(),
            events: Vec::new(),
            finished: None,
        };
        (c, p.id)
    }

    fn take(&mut self, f: &Value) {
        let p = &f["payload"];
        match f["type"].as_str().unwrap_or_default() {
            "world.tick" => {
                let z = &p["zone"];
                let zone =
                    ZoneId::new(z[0].as_u64().unwrap() as u32, z[1].as_u64().unwrap() as u32);
                let got = self.view.apply(
                    zone,
                    p["frame_seq"].as_u64(),
                    p["kf"].as_bool().unwrap_or(false),
                    &ops(&p["updates"]),
                );
                assert_eq!(got, Received::Applied, "{f}");
            }
            "world.finished" => self.finished = Some(p.clone()),
            k if k.starts_with("world.") => self.events.push(f.clone()),
            _ => {}
        }
    }

    fn until(&mut self, what: &str, done: impl Fn(&Client) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            let f = self.ws.recv(left).unwrap_or_else(|| {
                panic!("timed out waiting for {what}; view {:?}", self.visible())
            });
            self.take(&f);
        }
    }

    fn call(&mut self, kind: &str, cid: &str, payload: Value) -> Value {
        self.ws
            .send(json!({"type": kind, "cid": cid, "payload": payload}));
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let f = self
                .ws
                .recv(left)
                .unwrap_or_else(|| panic!("no reply to {kind}"));
            if f["cid"] == cid {
                return f;
            }
            self.take(&f);
        }
    }

    fn input(&mut self, payload: Value) {
        self.ws
            .send(json!({"type": "world.input", "payload": payload}));
    }

    fn visible(&self) -> BTreeMap<String, Fields> {
        self.view.visible()
    }

    fn pos(&self, id: &str) -> Option<(f64, f64)> {
        let v = self.visible();
        let e = v.get(id)?;
        Some((e["x"].as_f64()?, e["y"].as_f64()?))
    }

    fn ore(&self) -> Option<i64> {
        self.visible().get("gauge")?["ore"].as_i64()
    }

    /// Asks the script what `on_world_recovered` saw.
    fn report(&mut self) -> Value {
        self.events.clear();
        self.input(json!({"kind": "report"}));
        self.until("the report", |c| {
            c.events.iter().any(|e| e["type"] == "world.report")
        });
        let e = self
            .events
            .iter()
            .find(|e| e["type"] == "world.report")
            .unwrap();
        e["payload"]["recovered"].clone()
    }
}

/// The ids of the listed worlds, once `want` holds of them (polls: recovery runs after the
/// server starts listening).
fn listed_until(s: &Server, token: &str, want: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = s.http("GET", "/api/v1/worlds", Some(token), None);
        assert_eq!(status, 200, "{body}");
        let ids: Vec<String> = body["worlds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["world_id"].as_str().unwrap().to_owned())
            .collect();
        if want(&ids) {
            return ids;
        }
        assert!(Instant::now() < deadline, "worlds listed: {ids:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sigkill(s: Server) {
    let status = Command::new("kill")
        .arg("-KILL")
        .arg(s.pid().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = s.wait_exit(Duration::from_secs(10));
    assert!(!exit.success(), "killed, not exited: {exit:?}");
}

fn persistent_world_survives_restarts(db: Option<String>) {
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    write_game(game.path());

    // 1. A persistent world and a fleeting one; the persistent one is changed.
    let s = start(data.path(), game.path(), &db);
    let (mut a, ida) = Client::connect(&s, "sa");
    let joined = a.call("world.create", "c1", json!({"mode": "realm"}));
    assert_eq!(joined["type"], "world.joined", "{joined}");
    let world_id = joined["payload"]["world_id"].as_str().unwrap().to_owned();
    let (mut f, _) = Client::connect(&s, "sf");
    let joined = f.call("world.create", "c2", json!({"mode": "fleeting"}));
    let fleeting_id = joined["payload"]["world_id"].as_str().unwrap().to_owned();

    a.input(json!({"kind": "drop", "id": "c1", "x": 60, "y": 60}));
    a.input(json!({"kind": "drop", "id": "c2", "x": 150, "y": 50}));
    a.input(json!({"kind": "drop", "id": "c3", "x": 350, "y": 350}));
    a.input(json!({"kind": "drop", "id": "spark", "x": 70, "y": 70, "persistent": false}));
    a.input(json!({"kind": "dig"}));
    a.until("the drops", |c| {
        c.pos("c1") == Some((60.0, 60.0)) && c.pos("c3").is_some() && c.ore() == Some(1)
    });
    // c1 crosses into zone (1, 0); a second dig.
    a.input(json!({"kind": "push", "id": "c1", "x": 160, "y": 60}));
    a.input(json!({"kind": "dig"}));
    a.until("the push and the dig", |c| {
        c.pos("c1") == Some((160.0, 60.0)) && c.ore() == Some(2)
    });
    assert_eq!(
        a.report(),
        json!(false),
        "a new world is not a recovered one"
    );
    assert!(s.stop().success());

    // 2. Back after a clean stop: the same id, entities where they were, zone state kept;
    //    the player's own entity and the transient one are not; the fleeting world is gone.
    let s = start(data.path(), game.path(), &db);
    let (mut b, _) = Client::connect(&s, "sb");
    let token = s.register("sl").access;
    let ids = listed_until(&s, &token, |ids| ids.contains(&world_id));
    assert!(
        !ids.contains(&fleeting_id),
        "a non-persistent world does not come back"
    );
    let joined = b.call("world.join", "j1", json!({"world_id": world_id}));
    assert_eq!(joined["type"], "world.joined", "{joined}");
    assert_eq!(joined["payload"]["mode"], "realm");
    b.until("the recovered entities", |c| {
        c.pos("c1").is_some() && c.pos("c2").is_some() && c.pos("c3").is_some() && c.ore().is_some()
    });
    assert_eq!(b.pos("c1"), Some((160.0, 60.0)));
    assert_eq!(b.pos("c2"), Some((150.0, 50.0)));
    assert_eq!(b.pos("c3"), Some((350.0, 350.0)));
    assert_eq!(b.ore(), Some(2));
    assert_eq!(b.visible()["c1"]["type"], "crate");
    assert!(
        !b.visible().contains_key("spark"),
        "persistent = false is not kept"
    );
    assert!(!b.visible().contains_key(&ida), "players are not kept");
    assert!(b.view.duplicates().is_empty(), "{:?}", b.view.duplicates());
    let r = b.report();
    assert_eq!(r["calls"], 1, "{r}");
    assert_eq!(
        r["had_state"], true,
        "on_world_recovered got init's state: {r}"
    );
    assert_eq!(r["zones"], 16, "every zone the world had: {r}");
    assert_eq!(r["ids"], json!(["c1", "c2", "c3", "gauge"]), "{r}");
    assert!(r["tick"].as_u64().unwrap() > 0, "{r}");
    // The zone state came back, not generate_world's: one more dig makes 3.
    b.input(json!({"kind": "dig"}));
    b.until("the third dig", |c| c.ore() == Some(3));
    // c4 is dropped at b's feet and pushed on into zone (2, 2) in the same tick.
    b.input(json!({"kind": "drop", "id": "c4", "x": 60, "y": 70}));
    b.input(json!({"kind": "push", "id": "c4", "x": 250, "y": 250}));
    b.until("c4 moved", |c| c.pos("c4") == Some((250.0, 250.0)));
    // Several snapshot intervals pass, then the server dies without a shutdown.
    std::thread::sleep(Duration::from_millis(1000));
    sigkill(s);

    // 3. After the crash: everything up to the last interval is there.
    let s = start(data.path(), game.path(), &db);
    let (mut c, _) = Client::connect(&s, "sc");
    let token = s.register("sm").access;
    listed_until(&s, &token, |ids| ids.contains(&world_id));
    c.call("world.join", "j2", json!({"world_id": world_id}));
    c.until("the entities after the crash", |c| {
        c.pos("c4").is_some() && c.pos("c1").is_some() && c.ore().is_some()
    });
    assert_eq!(c.pos("c4"), Some((250.0, 250.0)));
    assert_eq!(c.pos("c2"), Some((150.0, 50.0)));
    assert_eq!(c.pos("c1"), Some((160.0, 60.0)));
    assert_eq!(c.ore(), Some(3));
    assert!(c.view.duplicates().is_empty(), "{:?}", c.view.duplicates());
    let r = c.report();
    assert_eq!(r["ids"], json!(["c1", "c2", "c3", "c4", "gauge"]), "{r}");

    // 4. The script ends the world: it is over, and does not come back.
    c.input(json!({"kind": "end"}));
    c.until("world.finished", |c| c.finished.is_some());
    assert_eq!(c.finished.as_ref().unwrap()["result"]["reason"], "ended");
    assert!(s.stop().success());
    let s = start(data.path(), game.path(), &db);
    let recovered = |l: &String| l.contains("world recovered");
    assert!(
        !s.startup.iter().any(recovered) && !s.wait_log("world recovered", Duration::from_secs(3)),
        "a finished world came back"
    );
    let token = s.register("sn").access;
    let ids = listed_until(&s, &token, |_| true);
    assert!(ids.is_empty(), "{ids:?}");
    assert!(s.stop().success());
}

#[test]
fn persistent_world_survives_restarts_on_sqlite() {
    persistent_world_survives_restarts(None);
}

#[test]
fn persistent_world_survives_restarts_on_postgres() {
    let Some(db) = own_pg_db() else { return };
    persistent_world_survives_restarts(Some(db.url.clone()));
}
