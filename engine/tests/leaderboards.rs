//! Leaderboard REST routes against the real binary, on SQLite and PostgreSQL: asobi's shapes,
//! codes and statuses, client submits off by default, and a restart that keeps every board and
//! rank (the write-behind copy is flushed on SIGTERM and read back on first use).

mod common;

use common::{copy_example_game, pg_db, Opts, Player, Server};
use serde_json::{json, Value};

fn start(
    db: Option<String>,
    data: &std::path::Path,
    game: &std::path::Path,
    env: &[(&str, &str)],
) -> Server {
    Server::start(
        data,
        game,
        &Opts {
            shards: Some(2),
            database_url: db,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
    )
}

const ENV: &[(&str, &str)] = &[
    ("ASOBI_LEADERBOARD_CLIENT_SUBMIT", "open, weekly"),
    (
        "ASOBI_LEADERBOARDS",
        r#"{"weekly": {"operator": "best"}, "times": {"order": "asc"}}"#,
    ),
];

fn get(s: &Server, p: &Player, path: &str) -> (u16, Value) {
    s.http("GET", path, Some(&p.access), None)
}

fn submit(s: &Server, p: &Player, board: &str, body: Value) -> (u16, Value) {
    s.http(
        "POST",
        &format!("/api/v1/leaderboards/{board}"),
        Some(&p.access),
        Some(&body.to_string()),
    )
}

fn ranking(v: &Value) -> Vec<(u64, String, i64)> {
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["rank"].as_u64().unwrap(),
                e["player_id"].as_str().unwrap().to_owned(),
                e["score"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn around_of(s: &Server, viewer: &Player, p: &Player, q: &str) -> Vec<(u64, String, i64)> {
    let (status, v) = get(
        s,
        viewer,
        &format!("/api/v1/leaderboards/open/around/{}{q}", p.id),
    );
    assert_eq!(status, 200, "{v}");
    ranking(&v)
}

fn boards_over_rest(db: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("game");
    copy_example_game(&game);
    let data = dir.path().join("data");
    let s = start(db.clone(), &data, &game, ENV);
    let players: Vec<Player> = (0..5).map(|i| s.register(&format!("lb{i}"))).collect();
    let [a, b, c, d, e] = &players[..] else {
        unreachable!()
    };

    // Off by default for every board not opted in; a token is needed either way.
    let (status, body) = submit(&s, a, "closed", json!({"score": 5}));
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "leaderboard.client_submit_disabled");
    let (status, _) = s.http(
        "POST",
        "/api/v1/leaderboards/open",
        None,
        Some("{\"score\":1}"),
    );
    assert_eq!(status, 401);
    let (status, _) = s.http("GET", "/api/v1/leaderboards/open", None, None);
    assert_eq!(status, 401);

    for (p, score) in [(a, 30), (b, 50), (c, 40), (d, 10), (e, 20)] {
        let (status, body) = submit(&s, p, "open", json!({"score": score}));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["leaderboard_id"], "open");
        assert_eq!(body["player_id"], p.id.as_str());
        assert_eq!(body["score"], score);
        assert_eq!(body["sub_score"], 0);
        assert!(
            body["updated_at"].as_str().unwrap().ends_with('Z'),
            "{body}"
        );
    }
    let (status, body) = submit(
        &s,
        a,
        "open",
        json!({"score": 45, "sub_score": 3, "metadata": {"car": "red"}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rank"], 2);
    assert_eq!(body["sub_score"], 3);

    let expect = vec![
        (1, b.id.clone(), 50),
        (2, a.id.clone(), 45),
        (3, c.id.clone(), 40),
        (4, e.id.clone(), 20),
        (5, d.id.clone(), 10),
    ];
    let (status, top) = get(&s, a, "/api/v1/leaderboards/open");
    assert_eq!(status, 200, "{top}");
    assert_eq!(ranking(&top), expect);
    assert_eq!(top["entries"][1]["metadata"], json!({"car": "red"}));
    assert_eq!(top["entries"][1]["leaderboard_id"], "open");
    // ?limit is clamped to 1..=100 and a non-number falls back to the default.
    assert_eq!(
        ranking(&get(&s, a, "/api/v1/leaderboards/open?limit=2").1),
        expect[..2]
    );
    assert_eq!(
        ranking(&get(&s, a, "/api/v1/leaderboards/open?limit=0").1),
        expect[..1]
    );
    assert_eq!(
        ranking(&get(&s, a, "/api/v1/leaderboards/open?limit=abc").1),
        expect
    );
    // Around: ?range either side, clamped to 1..=50, default 5.
    let around = |p: &Player, q: &str| around_of(&s, a, p, q);
    assert_eq!(around(c, "?range=1"), expect[1..4]);
    assert_eq!(around(b, "?range=1"), expect[..2]);
    assert_eq!(around(d, ""), expect);
    assert_eq!(around(c, "?range=0"), expect[1..4]);
    let (status, v) = get(&s, a, "/api/v1/leaderboards/open/around/nobody");
    assert_eq!((status, v), (200, json!({"entries": []})));
    let (status, v) = get(&s, a, "/api/v1/leaderboards/never-written");
    assert_eq!((status, v), (200, json!({"entries": []})));

    // A `best` board keeps the better score; a non-numeric score counts as 0 (asobi).
    submit(&s, a, "weekly", json!({"score": 10}));
    let (_, body) = submit(&s, a, "weekly", json!({"score": 5}));
    assert_eq!(body["score"], 10);
    let (status, body) = submit(&s, b, "weekly", json!({"score": "lots"}));
    assert_eq!((status, body["score"].clone()), (200, json!(0)));
    let long = "x".repeat(200);
    let (status, body) = submit(
        &s,
        a,
        "weekly",
        json!({"score": 1, "metadata": long.repeat(30)}),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_payload");
    let (status, body) = s.http(
        "POST",
        "/api/v1/leaderboards/weekly",
        Some(&a.access),
        Some("[1]"),
    );
    assert_eq!(status, 400, "{body}");

    // SIGTERM flushes; a new process rebuilds every board with the same ranks.
    assert!(s.stop().success());
    let s = start(db, &data, &game, ENV);
    let (status, top) = get(&s, a, "/api/v1/leaderboards/open");
    assert_eq!(status, 200, "{top}");
    assert_eq!(ranking(&top), expect);
    assert_eq!(top["entries"][1]["metadata"], json!({"car": "red"}));
    assert_eq!(top["entries"][1]["sub_score"], 3);
    assert_eq!(around_of(&s, a, e, "?range=1"), expect[2..]);
    let (_, weekly) = get(&s, a, "/api/v1/leaderboards/weekly");
    assert_eq!(
        ranking(&weekly),
        [(1, a.id.clone(), 10), (2, b.id.clone(), 0)]
    );
    assert!(s.stop().success());
}

#[test]
fn leaderboards_over_rest_and_a_restart_on_sqlite() {
    boards_over_rest(None);
}

#[test]
fn leaderboards_over_rest_and_a_restart_on_postgres() {
    let Some(db) = pg_db() else { return };
    boards_over_rest(Some(db.url.clone()));
}

#[test]
fn a_full_server_refuses_new_boards_with_503() {
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("game");
    copy_example_game(&game);
    let env = [
        ("ASOBI_LEADERBOARD_CLIENT_SUBMIT", "all"),
        ("ASOBI_LEADERBOARD_MAX_BOARDS", "4"),
    ];
    let s = start(None, &dir.path().join("data"), &game, &env);
    let p = s.register("cap");
    let mut refused = 0;
    for i in 0..12 {
        let (status, body) = submit(&s, &p, &format!("cap-{i}"), json!({"score": i}));
        match status {
            200 => {}
            503 => {
                assert_eq!(body["error"]["code"], "leaderboard.capacity_reached");
                refused += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(refused, 8, "two boards per shard on two shards");
    // Boards that exist keep working.
    let (status, _) = submit(&s, &p, "cap-0", json!({"score": 99}));
    assert!(status == 200 || status == 503);
    assert!(s.stop().success());
}
