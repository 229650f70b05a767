//! A stand-in game server for developing and testing the tool without the real one: REST
//! register/login/refresh with fake tokens, `session.connect`, heartbeats, a matchmaker that
//! groups players by mode (duel 2, brawl 8), matches that tick and broadcast the arena-shaped
//! `match.state` (with each player's last input `seq` and the `rules` version read from
//! `arena.lua`'s `RULES_VERSION`, polled every 50 ms). Hidden subcommand; never a benchmark
//! subject — it is deliberately simple (tokio, one flush per frame).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::scenario::play::default_match_size;
use crate::scenario::reload::rules_version;

#[derive(Default)]
struct Pos {
    x: i64,
    y: i64,
    seq: u64,
}

struct Match {
    tick: u64,
    players: BTreeMap<String, Pos>,
}

#[derive(Default)]
struct World {
    users: HashMap<String, String>,
    rules: i64,
    queues: HashMap<String, Vec<(u64, String)>>,
    sessions: HashMap<u64, mpsc::UnboundedSender<String>>,
    session_match: HashMap<u64, u64>,
    matches: HashMap<u64, (Match, Vec<(u64, String)>)>,
    next_id: u64,
}

/// Serves on 127.0.0.1:`port` until killed.
pub fn run(port: u16, game_dir: &Path, tick_ms: u64) -> anyhow::Result<()> {
    crate::sys::raise_nofile();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, serve(port, game_dir.join("arena.lua"), tick_ms))
}

async fn serve(port: u16, rules_file: PathBuf, tick_ms: u64) -> anyhow::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let world = Rc::new(RefCell::new(World::default()));
    let w = world.clone();
    tokio::task::spawn_local(async move {
        let mut t = tokio::time::interval(Duration::from_millis(50));
        loop {
            t.tick().await;
            if let Some(v) = std::fs::read_to_string(&rules_file)
                .ok()
                .and_then(|s| rules_version(&s))
            {
                w.borrow_mut().rules = v;
            }
        }
    });
    let w = world.clone();
    tokio::task::spawn_local(async move {
        let mut t = tokio::time::interval(Duration::from_millis(tick_ms.max(1)));
        loop {
            t.tick().await;
            broadcast_tick(&mut w.borrow_mut());
        }
    });
    loop {
        let (stream, _) = listener.accept().await?;
        let w = world.clone();
        tokio::task::spawn_local(async move {
            let _ = connection(stream, w).await;
        });
    }
}

async fn connection(mut stream: TcpStream, world: Rc<RefCell<World>>) -> anyhow::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(2048);
    let (head_len, method, path, key, content_length) = loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(n) = req.parse(&buf)? {
            let h = |name: &str| {
                req.headers
                    .iter()
                    .find(|x| x.name.eq_ignore_ascii_case(name))
                    .map(|x| String::from_utf8_lossy(x.value).into_owned())
            };
            break (
                n,
                req.method.unwrap_or("").to_string(),
                req.path.unwrap_or("").to_string(),
                h("sec-websocket-key"),
                h("content-length")
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0),
            );
        }
    };
    if path == "/ws" {
        let Some(key) = key else { return Ok(()) };
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        stream.write_all(resp.as_bytes()).await?;
        let ws = WebSocketStream::from_raw_socket(stream, Role::Server, None).await;
        return session(ws, world).await;
    }
    while buf.len() < head_len + content_length {
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
    let body: Value =
        serde_json::from_slice(&buf[head_len..head_len + content_length]).unwrap_or(Value::Null);
    let (status, reply) = rest(&method, &path, &body, &world);
    let text = reply.to_string();
    let resp = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
    stream.write_all(resp.as_bytes()).await?;
    Ok(())
}

fn rest(method: &str, path: &str, body: &Value, world: &Rc<RefCell<World>>) -> (u16, Value) {
    let user = body
        .get("username")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let tokens = |u: &str| {
        json!({"player_id": format!("p-{u}"), "access_token": format!("tok-{u}"),
               "refresh_token": format!("ref-{u}"), "username": u})
    };
    let mut w = world.borrow_mut();
    match (method, path) {
        ("GET", "/api/v1/health") => (200, json!({"status": "ok"})),
        ("POST", "/api/v1/auth/register") if !user.is_empty() => {
            if w.users.contains_key(&user) {
                return (409, json!({"error": {"code": "auth.username_taken"}}));
            }
            w.users.insert(user.clone(), format!("p-{user}"));
            (200, tokens(&user))
        }
        ("POST", "/api/v1/auth/login") if w.users.contains_key(&user) => (200, tokens(&user)),
        ("POST", "/api/v1/auth/refresh") => {
            let r = body
                .get("refresh_token")
                .and_then(Value::as_str)
                .unwrap_or("");
            match r.strip_prefix("ref-") {
                Some(u) if w.users.contains_key(u) => (200, tokens(u)),
                _ => (401, json!({"error": {"code": "auth.invalid_token"}})),
            }
        }
        _ => (401, json!({"error": {"code": "auth.invalid_credentials"}})),
    }
}

async fn session(
    mut ws: WebSocketStream<TcpStream>,
    world: Rc<RefCell<World>>,
) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let sid = {
        let mut w = world.borrow_mut();
        w.next_id += 1;
        let id = w.next_id;
        w.sessions.insert(id, tx);
        id
    };
    let mut player: Option<String> = None;
    let result = loop {
        tokio::select! {
            m = ws.next() => {
                let Some(Ok(m)) = m else { break Ok(()) };
                let Message::Text(t) = m else { continue };
                let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else { continue };
                let mut failed = false;
                for reply in handle(&v, sid, &mut player, &world) {
                    if ws.send(Message::text(reply)).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                if failed {
                    break Ok(());
                }
            }
            Some(out) = rx.recv() => {
                if ws.send(Message::text(out)).await.is_err() {
                    break Ok(());
                }
            }
        }
    };
    leave(sid, &world);
    result
}

fn leave(sid: u64, world: &Rc<RefCell<World>>) {
    let mut w = world.borrow_mut();
    w.sessions.remove(&sid);
    for q in w.queues.values_mut() {
        q.retain(|(s, _)| *s != sid);
    }
    if let Some(mid) = w.session_match.remove(&sid) {
        if let Some((m, members)) = w.matches.get_mut(&mid) {
            if let Some(pos) = members.iter().position(|(s, _)| *s == sid) {
                let (_, pid) = members.remove(pos);
                m.players.remove(&pid);
            }
            if members.is_empty() {
                w.matches.remove(&mid);
            }
        }
    }
}

fn handle(
    v: &Value,
    sid: u64,
    player: &mut Option<String>,
    world: &Rc<RefCell<World>>,
) -> Vec<String> {
    let ty = v.get("type").and_then(Value::as_str).unwrap_or("");
    let cid = v.get("cid").cloned();
    let payload = v.get("payload").cloned().unwrap_or(Value::Null);
    let reply = |t: &str, p: Value| {
        let mut o = json!({"type": t, "payload": p});
        if let Some(c) = &cid {
            o["cid"] = c.clone();
        }
        o.to_string()
    };
    let err = |code: &str| {
        reply(
            "error",
            json!({"reason": code, "error": {"code": code, "message": code, "details": {}}}),
        )
    };
    let mut w = world.borrow_mut();
    match ty {
        "session.heartbeat" => vec![reply("session.heartbeat", json!({"ts": now_ms()}))],
        "session.connect" => {
            let token = payload.get("token").and_then(Value::as_str).unwrap_or("");
            let pid = match token.strip_prefix("tok-") {
                Some(u) => w.users.get(u).cloned(),
                None if token == "loadtest-placeholder" => Some(format!("anon-{sid}")),
                None => None,
            };
            match pid {
                Some(p) => {
                    *player = Some(p.clone());
                    vec![reply("session.connected", json!({"player_id": p}))]
                }
                None => vec![err("auth.invalid_token")],
            }
        }
        _ if player.is_none() => vec![err("unauthenticated")],
        "matchmaker.add" => {
            let mode = payload
                .get("mode")
                .and_then(Value::as_str)
                .unwrap_or("duel")
                .to_string();
            let pid = player.clone().unwrap_or_default();
            let size = default_match_size(&mode);
            let q = w.queues.entry(mode.clone()).or_default();
            q.push((sid, pid));
            let out = vec![reply(
                "matchmaker.queued",
                json!({"ticket_id": format!("t-{sid}"), "status": "pending", "players_needed": size, "already_queued": false}),
            )];
            if q.len() >= size {
                let members: Vec<(u64, String)> = q.drain(..size).collect();
                w.next_id += 1;
                let mid = w.next_id;
                let ids: Vec<&String> = members.iter().map(|(_, p)| p).collect();
                let matched = json!({"type": "match.matched", "payload": {"match_id": format!("m-{mid}"), "mode": mode, "players": ids}}).to_string();
                for (s, _) in &members {
                    if let Some(tx) = w.sessions.get(s) {
                        let _ = tx.send(matched.clone());
                    }
                }
                let m = Match {
                    tick: 0,
                    players: members
                        .iter()
                        .map(|(_, p)| (p.clone(), Pos::default()))
                        .collect(),
                };
                for (s, _) in &members {
                    w.session_match.insert(*s, mid);
                }
                w.matches.insert(mid, (m, members));
            }
            out
        }
        "match.input" => {
            let pid = player.clone().unwrap_or_default();
            if let Some(mid) = w.session_match.get(&sid).copied() {
                if let Some((m, _)) = w.matches.get_mut(&mid) {
                    if let Some(p) = m.players.get_mut(&pid) {
                        p.x += payload.get("dx").and_then(Value::as_i64).unwrap_or(0);
                        p.y += payload.get("dy").and_then(Value::as_i64).unwrap_or(0);
                        p.seq = p
                            .seq
                            .max(payload.get("seq").and_then(Value::as_u64).unwrap_or(0));
                    }
                }
            }
            vec![]
        }
        _ => vec![err("unknown_type")],
    }
}

/// Advances every match one tick and broadcasts its state.
fn broadcast_tick(w: &mut World) {
    let rules = w.rules;
    let World {
        matches, sessions, ..
    } = w;
    for (m, members) in matches.values_mut() {
        m.tick += 1;
        let players: serde_json::Map<String, Value> = m
            .players
            .iter()
            .map(|(id, p)| {
                (
                    id.clone(),
                    json!({"x": p.x, "y": p.y, "score": 0, "seq": p.seq}),
                )
            })
            .collect();
        let frame = json!({"type": "match.state", "payload": {"tick": m.tick, "rules": rules, "players": players}}).to_string();
        for (s, _) in members.iter() {
            if let Some(tx) = sessions.get(s) {
                let _ = tx.send(frame.clone());
            }
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
