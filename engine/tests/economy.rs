//! The economy over real sockets, on SQLite and PostgreSQL: a match script grants gold through
//! `game.economy.grant` (the suspend-and-resume seam in the real binary), then every REST route
//! with its failure cases: wallets, history, store, purchase, inventory, consume.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::{pg_db, read_response, Opts, Server};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

const SHOP: &str = r#"
match_size = 1
max_players = 4
function init(config) return { log = {} } end
function join(p, state) return state end
function leave(p, state) return state end
function handle_input(p, input, state)
  local r = game.economy.grant(p, "gold", input.amount, "match_reward", input.key)
  state.log[#state.log + 1] = r.ok and ("gold=" .. r.ok.balance) or r.error
  return state
end
function tick(state) return state end
function get_state(p, state) return { log = state.log } end
"#;

const ECONOMY: &str = r#"{
  "currencies": ["gold", "gems"],
  "items": [
    {"id": "item-sword", "slug": "sword", "name": "Sword", "category": "weapon", "rarity": "rare", "stackable": false},
    {"id": "item-potion", "slug": "potion", "name": "Potion", "category": "consumable"}
  ],
  "listings": [
    {"id": "list-sword", "item": "sword", "currency": "gold", "price": 500},
    {"id": "list-potion", "item": "potion", "currency": "gold", "price": 10},
    {"id": "list-gem-potion", "item": "potion", "currency": "gems", "price": 1},
    {"id": "list-retired", "item": "sword", "currency": "gold", "price": 1, "active": false}
  ]
}"#;

fn start(db: Option<String>, data: &Path, game: &Path) -> Server {
    std::fs::write(game.join("config.lua"), "return { shop = \"shop.lua\" }\n").unwrap();
    std::fs::write(game.join("shop.lua"), SHOP).unwrap();
    std::fs::write(game.join("economy.json"), ECONOMY).unwrap();
    // A `game.economy.grant` waits for its commit, and that wait counts against the callback's
    // wall budget (50 ms by default); one slow fsync on a busy disk would abandon the funding
    // callback. These tests are about money, not budgets: give callbacks 2 s.
    let opts = Opts {
        shards: Some(2),
        database_url: db,
        env: vec![("ASOBI_LUA_MAX_CALL_MS".into(), "2000".into())],
    };
    Server::start(data, game, &opts)
}

/// A request with an `Idempotency-Key` header.
fn post_with_key(s: &Server, path: &str, token: &str, key: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let mut conn = TcpStream::connect(s.addr()).unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\nIdempotency-Key: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).unwrap();
    read_response(&mut conn)
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

fn economy_end_to_end(s: &Server) {
    let a = s.register("econ_a");
    let b = s.register("econ_b");
    let get = |path: &str, token: &str| s.http("GET", path, Some(token), None);
    let post = |path: &str, token: &str, body: Value| {
        s.http("POST", path, Some(token), Some(&body.to_string()))
    };

    // Nothing yet; every route needs a token.
    assert_eq!(
        get("/api/v1/wallets", &a.access),
        (200, json!({"wallets": []}))
    );
    for path in [
        "/api/v1/wallets",
        "/api/v1/store",
        "/api/v1/inventory",
        "/api/v1/wallets/gold/history",
    ] {
        assert_eq!(s.http("GET", path, None, None).0, 401, "{path}");
    }

    // Money comes from the game: the script grants through game.economy.grant.
    let (mut ws, _) = s.ws();
    ws.connect(&a.access);
    ws.send(json!({"type": "matchmaker.add", "payload": {"mode": "shop"}}));
    ws.expect("match.matched", WAIT, |_| true);
    for amount in [1000, 1000, 7] {
        ws.send(json!({"type": "match.input", "payload": {"amount": amount, "key": "win-1"}}));
    }
    let state = ws.expect("match.state", WAIT, |v| {
        v["payload"]["log"].as_array().is_some_and(|l| l.len() == 3)
    });
    // The retry with the same key was not applied twice; a different amount under it is refused.
    assert_eq!(
        state["payload"]["log"],
        json!(["gold=1000", "gold=1000", "idempotency_key_reused"])
    );
    assert_eq!(
        get("/api/v1/wallets", &a.access),
        (
            200,
            json!({"wallets": [{"currency": "gold", "balance": 1000}]})
        )
    );

    // The store lists active listings only, optionally by currency.
    let (status, store) = get("/api/v1/store", &a.access);
    assert_eq!(status, 200);
    let ids: Vec<&str> = store["listings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["list-sword", "list-potion", "list-gem-potion"]);
    let sword = &store["listings"][0];
    assert_eq!(sword["item_def_id"], "item-sword");
    assert_eq!(sword["price"], 500);
    assert_eq!(sword["active"], true);
    assert_eq!(sword["valid_from"], Value::Null);
    assert_eq!(sword["item"]["slug"], "sword");
    let (_, gems) = get("/api/v1/store?currency=gems", &a.access);
    assert_eq!(gems["listings"].as_array().unwrap().len(), 1);

    // Purchases.
    let (status, bought) = post(
        "/api/v1/store/purchase",
        &a.access,
        json!({"listing_id": "list-sword"}),
    );
    assert_eq!(status, 200, "{bought}");
    assert_eq!(bought["success"], true);
    assert_eq!(bought["item"]["item_def_id"], "item-sword");
    assert_eq!(bought["item"]["player_id"], a.id.as_str());
    assert_eq!(bought["item"]["quantity"], 1);
    // A retried purchase (header key) answers the first item again and is charged once.
    let potions = json!({"listing_id": "list-potion", "quantity": 3});
    let (s1, p1) = post_with_key(
        s,
        "/api/v1/store/purchase",
        &a.access,
        "buy-potions",
        &potions,
    );
    let (s2, p2) = post_with_key(
        s,
        "/api/v1/store/purchase",
        &a.access,
        "buy-potions",
        &potions,
    );
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(p1["item"]["id"], p2["item"]["id"]);
    assert_eq!(p1["item"]["quantity"], 3);
    // The same key for another request: 409.
    let (status, body) = post(
        "/api/v1/store/purchase",
        &a.access,
        json!({"listing_id": "list-sword", "idempotency_key": "buy-potions"}),
    );
    assert_eq!(
        (status, code(&body)),
        (409, "economy.idempotency_key_reused")
    );
    // 1000 - 500 - 30 = 470: not enough for another sword.
    let (status, body) = post(
        "/api/v1/store/purchase",
        &a.access,
        json!({"listing_id": "list-sword"}),
    );
    assert_eq!((status, code(&body)), (402, "economy.insufficient_funds"));
    assert_eq!(body["error"]["details"]["balance"], 470);
    let (status, body) = post(
        "/api/v1/store/purchase",
        &a.access,
        json!({"listing_id": "list-retired"}),
    );
    assert_eq!((status, code(&body)), (400, "economy.listing_inactive"));
    let (status, body) = post(
        "/api/v1/store/purchase",
        &a.access,
        json!({"listing_id": "nope"}),
    );
    assert_eq!((status, code(&body)), (404, "economy.listing_not_found"));
    let (status, body) = post(
        "/api/v1/store/purchase",
        &a.access,
        json!({"listing_id": "list-gem-potion"}),
    );
    assert_eq!(
        (status, code(&body)),
        (402, "economy.insufficient_funds"),
        "no gems wallet"
    );
    let (status, body) = post(
        "/api/v1/store/purchase",
        &a.access,
        json!({"listing_id": "list-potion", "quantity": 0}),
    );
    assert_eq!((status, code(&body)), (400, "inventory.invalid_quantity"));
    let (status, body) = post("/api/v1/store/purchase", &a.access, json!({}));
    assert_eq!((status, code(&body)), (400, "missing_field"));

    // History: newest first, asobi's fields, limit.
    let (status, history) = get("/api/v1/wallets/gold/history", &a.access);
    assert_eq!(status, 200);
    let rows = history["transactions"].as_array().unwrap();
    let amounts: Vec<i64> = rows.iter().map(|r| r["amount"].as_i64().unwrap()).collect();
    assert_eq!(amounts, [-30, -500, 1000]);
    assert_eq!(rows[0]["balance_after"], 470);
    assert_eq!(rows[0]["reason"], "purchase");
    assert_eq!(rows[0]["reference_type"], "store_listing");
    assert_eq!(rows[0]["reference_id"], "list-potion");
    assert_eq!(rows[2]["reason"], "match_reward");
    for field in ["id", "wallet_id", "metadata", "inserted_at"] {
        assert!(!rows[0][field].is_null(), "{field}");
    }
    let (_, one) = get("/api/v1/wallets/gold/history?limit=1", &a.access);
    assert_eq!(one["transactions"].as_array().unwrap().len(), 1);
    let (status, body) = get("/api/v1/wallets/silver/history", &a.access);
    assert_eq!((status, code(&body)), (400, "economy.unknown_currency"));
    assert_eq!(
        get("/api/v1/wallets/gems/history", &a.access),
        (200, json!({"transactions": []}))
    );

    // Inventory and consume.
    let (_, inv) = get("/api/v1/inventory", &a.access);
    let items = inv["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["item_def_id"], "item-potion", "newest first");
    let potion = items[0]["id"].as_str().unwrap().to_owned();
    let (_, inv1) = get("/api/v1/inventory?limit=1", &a.access);
    assert_eq!(inv1["items"].as_array().unwrap().len(), 1);
    let consume = |token: &str, body: Value| post("/api/v1/inventory/consume", token, body);
    let (status, body) = consume(&a.access, json!({"item_id": potion, "quantity": 4}));
    assert_eq!(
        (status, code(&body)),
        (400, "inventory.insufficient_quantity")
    );
    let (status, body) = consume(&b.access, json!({"item_id": potion, "quantity": 1}));
    assert_eq!((status, code(&body)), (403, "forbidden"));
    let (status, body) = consume(&a.access, json!({"item_id": "nope", "quantity": 1}));
    assert_eq!((status, code(&body)), (404, "inventory.item_not_found"));
    for bad in [
        json!(0),
        json!(-1),
        json!(1.5),
        json!("2"),
        json!(1_000_001),
        Value::Null,
    ] {
        let (status, body) = consume(&a.access, json!({"item_id": potion, "quantity": bad}));
        assert_eq!(
            (status, code(&body)),
            (400, "inventory.invalid_quantity"),
            "{bad}"
        );
    }
    let once = json!({"item_id": potion, "quantity": 2, "idempotency_key": "drink-1"});
    assert_eq!(
        consume(&a.access, once.clone()),
        (200, json!({"success": true, "remaining_quantity": 1}))
    );
    assert_eq!(
        consume(&a.access, once),
        (200, json!({"success": true, "remaining_quantity": 1})),
        "replayed, not consumed twice"
    );
    assert_eq!(
        consume(&a.access, json!({"item_id": potion, "quantity": 1})),
        (200, json!({"success": true, "remaining_quantity": 0}))
    );
    let (_, inv) = get("/api/v1/inventory", &a.access);
    assert_eq!(
        inv["items"].as_array().unwrap().len(),
        1,
        "the empty stack is gone"
    );

    // Another player's view is their own.
    assert_eq!(
        get("/api/v1/wallets", &b.access),
        (200, json!({"wallets": []}))
    );
    assert_eq!(
        get("/api/v1/inventory", &b.access),
        (200, json!({"items": []}))
    );
}

#[test]
fn economy_on_sqlite() {
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    let s = start(None, data.path(), game.path());
    economy_end_to_end(&s);
    assert!(s.stop().success());
}

#[test]
fn economy_on_postgres() {
    let Some(db) = pg_db() else { return };
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    let s = start(Some(db.url.clone()), data.path(), game.path());
    economy_end_to_end(&s);
    assert!(s.stop().success());
}

#[test]
fn a_broken_economy_file_stops_the_server_at_start() {
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    std::fs::write(
        game.path().join("config.lua"),
        "return { shop = \"shop.lua\" }\n",
    )
    .unwrap();
    std::fs::write(game.path().join("shop.lua"), SHOP).unwrap();
    std::fs::write(
        game.path().join("economy.json"),
        r#"{"items": [], "listings": [{"id": "l", "item": "ghost", "currency": "gold", "price": 1}]}"#,
    )
    .unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_asobi"))
        .arg("serve")
        .env("ASOBI_PORT", "0")
        .env("ASOBI_BIND", "127.0.0.1")
        .env("ASOBI_DATA_DIR", data.path())
        .env("ASOBI_GAME_DIR", game.path())
        .env("ASOBI_SHARDS", "1")
        .env_remove("ASOBI_DB_HOST")
        .env_remove("ASOBI_DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "a listing naming no item must not start");
}

/// The concurrency proof over real sockets: 10 players funded by the game (500 gold each through
/// `game.economy.grant`), then 1,000 purchases of a 10-gold listing from 20 threads, each request
/// on its own connection, every 10th one sent again concurrently with the same `Idempotency-Key`.
/// Afterwards, for every player: the balance equals the sum of the ledger, is not negative, and
/// is exactly what the successful answers add up to; one item per applied purchase; no retried
/// purchase was applied twice.
fn concurrent_purchases(s: &Server) {
    const PLAYERS: usize = 10;
    const PURCHASES: usize = 1000;
    const THREADS: usize = 20;
    let players: Vec<_> = (0..PLAYERS)
        .map(|i| s.register(&format!("conc{i}_")))
        .collect();
    for p in &players {
        let (mut ws, _) = s.ws();
        ws.connect(&p.access);
        ws.send(json!({"type": "matchmaker.add", "payload": {"mode": "shop"}}));
        ws.expect("match.matched", WAIT, |_| true);
        ws.send(json!({"type": "match.input", "payload": {"amount": 500, "key": "fund"}}));
        ws.expect("match.state", WAIT, |v| {
            v["payload"]["log"][0] == "gold=500"
        });
    }
    let tokens: Vec<String> = players.iter().map(|p| p.access.clone()).collect();
    let addr = s.addr();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let tokens = tokens.clone();
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                for i in (0..PURCHASES).filter(|i| i % THREADS == t) {
                    let player = i % PLAYERS;
                    let key = format!("buy-{i}");
                    let copies = if i % 10 == 0 { 2 } else { 1 };
                    let sends: Vec<_> = (0..copies)
                        .map(|_| {
                            let (token, key, addr) = (tokens[player].clone(), key.clone(), addr.clone());
                            std::thread::spawn(move || {
                                let body = json!({"listing_id": "list-potion"}).to_string();
                                let mut conn = TcpStream::connect(&addr).unwrap();
                                let req = format!(
                                    "POST /api/v1/store/purchase HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
                                     Idempotency-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                                     Connection: close\r\n\r\n{body}",
                                    body.len()
                                );
                                conn.write_all(req.as_bytes()).unwrap();
                                read_response(&mut conn)
                            })
                        })
                        .collect();
                    let results: Vec<(u16, Value)> = sends.into_iter().map(|h| h.join().unwrap()).collect();
                    answers.push((player, results));
                }
                answers
            })
        })
        .collect();
    let mut bought = [0i64; PLAYERS];
    let mut item_ids = std::collections::BTreeSet::new();
    for t in threads {
        for (player, results) in t.join().unwrap() {
            let ok: Vec<&Value> = results
                .iter()
                .filter(|(st, _)| *st == 200)
                .map(|(_, b)| b)
                .collect();
            for (status, body) in &results {
                assert!(
                    *status == 200 || code(body) == "economy.insufficient_funds",
                    "{status} {body}"
                );
            }
            if let Some(first) = ok.first() {
                // Copies that both succeeded answer the same item: applied once.
                assert!(ok.iter().all(|b| b["item"]["id"] == first["item"]["id"]));
                assert!(item_ids.insert(first["item"]["id"].as_str().unwrap().to_owned()));
                bought[player] += 1;
            }
        }
    }
    let get = |path: &str, token: &str| s.http("GET", path, Some(token), None).1;
    for (i, p) in players.iter().enumerate() {
        let balance = get("/api/v1/wallets", &p.access)["wallets"][0]["balance"]
            .as_i64()
            .unwrap();
        let history = get("/api/v1/wallets/gold/history?limit=200", &p.access);
        let rows = history["transactions"].as_array().unwrap();
        let sum: i64 = rows.iter().map(|r| r["amount"].as_i64().unwrap()).sum();
        assert_eq!(balance, sum, "player {i}: balance equals its ledger");
        assert!(balance >= 0);
        assert_eq!(
            balance,
            500 - 10 * bought[i],
            "player {i}: what the answers said"
        );
        assert_eq!(
            rows.len() as i64,
            1 + bought[i],
            "one ledger row per applied purchase"
        );
        let items = get("/api/v1/inventory?limit=200", &p.access);
        assert_eq!(items["items"].as_array().unwrap().len() as i64, bought[i]);
    }
    assert!(
        bought.iter().all(|b| *b == 50),
        "every wallet was spent out: {bought:?}"
    );
}

#[test]
fn concurrent_purchases_on_sqlite() {
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    let s = start(None, data.path(), game.path());
    concurrent_purchases(&s);
    assert!(s.stop().success());
}

#[test]
fn concurrent_purchases_on_postgres() {
    let Some(db) = pg_db() else { return };
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    let s = start(Some(db.url.clone()), data.path(), game.path());
    concurrent_purchases(&s);
    assert!(s.stop().success());
}
