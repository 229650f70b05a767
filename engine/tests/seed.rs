//! The quick start of the project asobi-rs is modelled on, played literally against the real
//! binary: its `match.lua` (no `get_state`, no `leave`), register with curl's JSON, a ticket
//! through `POST /api/v1/matchmaker/tickets` with curl's `-d` content type, then two players
//! over WebSocket: input moves, `shoot` reaches the other player as `match.shot`, and a save of
//! the file changes the live match with its state kept.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::{read_response, workspace_root, Opts, Server};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

/// A request as `curl -d` sends it: `application/x-www-form-urlencoded`, whatever the body is.
fn curl_d(s: &Server, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut conn = TcpStream::connect(s.addr()).unwrap();
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n{auth}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).unwrap();
    read_response(&mut conn)
}

#[test]
fn the_seed_quick_start_plays_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("game");
    std::fs::create_dir_all(&game).unwrap();
    let source = std::fs::read_to_string(workspace_root().join("examples/seed/match.lua")).unwrap();
    std::fs::write(game.join("match.lua"), &source).unwrap();
    // The example's password has 7 characters; asobi's minimum (our default) is 8.
    let s = Server::start(
        &dir.path().join("data"),
        &game,
        &Opts {
            env: vec![("ASOBI_PASSWORD_MIN_LENGTH".into(), "6".into())],
            ..Opts::default()
        },
    );

    let (status, alice) = s.http(
        "POST",
        "/api/v1/auth/register",
        None,
        Some(r#"{"username":"alice","password":"hunter2"}"#),
    );
    assert_eq!(status, 200, "{alice}");
    let (status, bob) = curl_d(
        &s,
        "/api/v1/auth/register",
        None,
        r#"{"username":"bob","password":"hunter2"}"#,
    );
    assert_eq!(status, 200, "{bob}");
    let token = |v: &Value| v["access_token"].as_str().unwrap().to_owned();
    let id = |v: &Value| v["player_id"].as_str().unwrap().to_owned();

    let mut wa = s.ws().0;
    let mut wb = s.ws().0;
    wa.connect(&token(&alice));
    wb.connect(&token(&bob));
    // Alice queues over REST as the seed does; Bob over the socket, naming no mode.
    let (status, ticket) = curl_d(
        &s,
        "/api/v1/matchmaker/tickets",
        Some(&token(&alice)),
        r#"{"mode":"default"}"#,
    );
    assert_eq!(status, 200, "{ticket}");
    assert_eq!(ticket["status"], "pending");
    assert!(ticket["ticket_id"].is_string());
    wb.send(json!({"type": "matchmaker.add", "payload": {}}));
    wb.expect("matchmaker.queued", WAIT, |_| true);
    wa.expect("match.matched", WAIT, |_| true);
    wb.expect("match.matched", WAIT, |_| true);

    // Without get_state, both players receive the whole state.
    let (a, b) = (id(&alice), id(&bob));
    wb.expect("match.state", WAIT, |v| {
        v["payload"]["players"][&a].is_object() && v["payload"]["players"][&b].is_object()
    });
    wa.send(json!({"type": "match.input", "payload": {"right": true}}));
    wb.expect("match.state", WAIT, |v| {
        v["payload"]["players"][&a]["x"] == 5
    });
    wa.send(json!({"type": "match.input", "payload": {"shoot": true, "aim": [3, 4]}}));
    let shot = wb.expect("match.shot", WAIT, |_| true);
    assert_eq!(shot["payload"], json!({"by": a, "at": [3, 4]}));

    // A save changes the live match; Alice's x is kept and now moves by 10.
    std::fs::write(
        game.join("match.lua"),
        source.replace("p.x + 5", "p.x + 10"),
    )
    .unwrap();
    let moved = |w: &mut common::Ws| {
        w.send(json!({"type": "match.input", "payload": {"right": true}}));
    };
    let mut x = 5;
    for _ in 0..50 {
        moved(&mut wa);
        let v = wb.expect("match.state", WAIT, |v| {
            v["payload"]["players"][&a]["x"] != x
        });
        let now = v["payload"]["players"][&a]["x"].as_i64().unwrap();
        if now - x == 10 {
            x = now;
            break;
        }
        assert_eq!(now - x, 5, "{v}");
        x = now;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(x >= 15, "the saved file never took effect");
    assert!(s.stop().success());
}
