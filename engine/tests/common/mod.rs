//! Test harness: runs the real `asobi` binary on a free port and talks to it over real sockets.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub data_dir: PathBuf,
    pub game_dir: PathBuf,
    pub log: mpsc::Receiver<String>,
    /// Log lines up to and including the "listening on" line.
    pub startup: Vec<String>,
}

#[derive(Clone, Default)]
pub struct Opts {
    pub shards: Option<usize>,
    pub env: Vec<(String, String)>,
    /// PostgreSQL URL; SQLite in `data_dir` when None.
    pub database_url: Option<String>,
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A private copy of the example game, so tests can rewrite its files.
pub fn copy_example_game(into: &Path) {
    let src = workspace_root().join("examples/arena");
    std::fs::create_dir_all(into).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), into.join(entry.file_name())).unwrap();
    }
}

/// A PostgreSQL database for one test: `ASOBI_TEST_DATABASE_URL` when set (CI makes a fresh
/// one), otherwise a throwaway database created on the local server (127.0.0.1:5432, user
/// postgres) and dropped afterwards. No server is a failure, not a silent pass, unless
/// `ASOBI_TEST_ALLOW_NO_PG=1` says skipping is intended.
pub struct PgDb {
    pub url: String,
    created: Option<String>,
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Some(name) = &self.created {
            let _ = psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

fn psql(sql: &str) -> bool {
    Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn pg_db() -> Option<PgDb> {
    if let Ok(url) = std::env::var("ASOBI_TEST_DATABASE_URL") {
        if !url.is_empty() {
            return Some(PgDb { url, created: None });
        }
    }
    own_pg_db()
}

/// A database of its own on the local server, even when `ASOBI_TEST_DATABASE_URL` names a shared
/// one: for a test that builds another schema (asobi's, for the import) beside ours.
pub fn own_pg_db() -> Option<PgDb> {
    let name = unique("asobi_engine_t");
    if psql(&format!("CREATE DATABASE {name}")) {
        return Some(PgDb {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            created: Some(name),
        });
    }
    if std::env::var("ASOBI_TEST_ALLOW_NO_PG").as_deref() == Ok("1") {
        eprintln!("NOTE: no PostgreSQL at 127.0.0.1:5432; PostgreSQL variant skipped (ASOBI_TEST_ALLOW_NO_PG=1)");
        return None;
    }
    panic!(
        "no PostgreSQL at 127.0.0.1:5432 (user postgres) and ASOBI_TEST_DATABASE_URL is unset; \
         start it (pg_ctlcluster ... main start) or set ASOBI_TEST_ALLOW_NO_PG=1 to skip"
    );
}

pub fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}{}", n % 10_000_000_000)
}

/// Every thread's stack of a process that seems stuck, from gdb when the machine has it (a
/// start-up that hangs is otherwise a bare timeout).
fn thread_stacks(pid: u32) -> String {
    let out = Command::new("timeout")
        .args([
            "30",
            "gdb",
            "-p",
            &pid.to_string(),
            "-batch",
            "-ex",
            "thread apply all bt 30",
        ])
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            let frames: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("Thread ") || l.starts_with('#'))
                .collect();
            frames.join("\n")
        }
        Err(e) => format!("(no gdb: {e})"),
    }
}

impl Server {
    pub fn start(data_dir: &Path, game_dir: &Path, opts: &Opts) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_asobi"));
        cmd.arg("serve")
            .env("ASOBI_PORT", "0")
            .env("ASOBI_BIND", "127.0.0.1")
            .env("ASOBI_DATA_DIR", data_dir)
            .env("ASOBI_GAME_DIR", game_dir)
            .env("ASOBI_SHARDS", opts.shards.unwrap_or(1).to_string())
            .env("ASOBI_LOG", "info")
            // Tests stop servers with matches still running; a short drain keeps stops quick.
            .env("ASOBI_DRAIN_TIMEOUT_SECS", "1")
            .env_remove("ASOBI_DB_HOST")
            .env_remove("ASOBI_DATABASE_URL")
            .env_remove("ASOBI_JWT_SECRET")
            // Tests fire bursts from 127.0.0.1; like asobi's test config, lift the per-caller
            // REST limits (a test of the limits sets its own).
            .env(
                "ASOBI_RATE_LIMITS",
                "register=100000/1000,auth=100000/1000,erase=100000/1000,iap=100000/1000,api=100000/1000,join=100000/1000,guest_global=100000/1000",
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(url) = &opts.database_url {
            cmd.env("ASOBI_DATABASE_URL", url);
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn asobi");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var("ASOBI_TEST_ECHO").is_ok() {
                    eprintln!("[server] {line}");
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let port = line.split("listening on ").nth(1).map(|rest| {
                        let addr = rest.split_whitespace().next().unwrap();
                        addr.rsplit(':').next().unwrap().parse::<u16>().unwrap()
                    });
                    seen.push(line);
                    if let Some(p) = port {
                        break p;
                    }
                }
                Err(_) => panic!(
                    "server did not start; log:\n{}\n--- its threads ---\n{}",
                    seen.join("\n"),
                    thread_stacks(child.id())
                ),
            }
        };
        Server {
            child: Some(child),
            port,
            data_dir: data_dir.to_path_buf(),
            game_dir: game_dir.to_path_buf(),
            log: rx,
            startup: seen,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// The server's resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// SIGTERM, then wait for the exit status.
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("server did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit on its own (after a signal the test sent); its status.
    pub fn wait_exit(mut self, within: Duration) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("server did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for a log line containing `needle`.
    pub fn wait_log(&self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while let Ok(line) = self
            .log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if line.contains(needle) {
                return true;
            }
        }
        false
    }

    /// The UDP port of the QUIC endpoint, from the start-up log.
    pub fn quic_port(&self) -> u16 {
        self.startup
            .iter()
            .find_map(|l| l.split("QUIC on udp ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .expect("QUIC is not on")
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut s = TcpStream::connect(self.addr()).unwrap();
        http_on(&mut s, method, path, token, body, false)
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.http("POST", path, None, Some(&body.to_string()))
    }

    /// Registers a fresh player; returns (player_id, access, refresh, username).
    pub fn register(&self, prefix: &str) -> Player {
        let username = unique(prefix);
        let (status, body) = self.post(
            "/api/v1/auth/register",
            json!({"username": username, "password": "secret123"}),
        );
        assert_eq!(status, 200, "{body}");
        Player {
            id: body["player_id"].as_str().unwrap().to_owned(),
            access: body["access_token"].as_str().unwrap().to_owned(),
            refresh: body["refresh_token"].as_str().unwrap().to_owned(),
            username,
        }
    }

    /// Opens a WebSocket; returns it with the shard that accepted the socket.
    pub fn ws(&self) -> (Ws, usize) {
        let mut s = TcpStream::connect(self.addr()).unwrap();
        let (_, health) = http_on(&mut s, "GET", "/api/v1/health", None, None, true);
        let shard = health["served_by"].as_u64().unwrap() as usize;
        let url = format!("ws://{}/ws", self.addr());
        let (ws, _) =
            tungstenite::client(url.as_str(), MaybeTlsStream::Plain(s)).expect("ws handshake");
        (Ws { ws }, shard)
    }

    /// A WebSocket that asks for a subprotocol; returns it with the protocol the server chose.
    pub fn ws_with_protocol(&self, protocol: &str) -> (Ws, Option<String>) {
        use tungstenite::client::IntoClientRequest;
        let s = TcpStream::connect(self.addr()).unwrap();
        let mut req = format!("ws://{}/ws", self.addr())
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
        let (ws, resp) = tungstenite::client(req, MaybeTlsStream::Plain(s)).expect("ws handshake");
        let chosen = resp
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap().to_owned());
        (Ws { ws }, chosen)
    }

    /// A WebSocket on a given shard (retries connections until one lands there).
    pub fn ws_on(&self, shard: usize) -> Ws {
        for _ in 0..200 {
            let (ws, at) = self.ws();
            if at == shard {
                return ws;
            }
        }
        panic!("no connection landed on shard {shard}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // A failing test shows the end of the server's log: a panic or an error there is
        // usually the cause.
        if std::thread::panicking() {
            let lines: Vec<String> = self.log.try_iter().collect();
            let tail = &lines[lines.len().saturating_sub(120)..];
            eprintln!("--- last {} server log lines ---", tail.len());
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
}

pub struct Player {
    pub id: String,
    pub access: String,
    pub refresh: String,
    pub username: String,
}

/// One HTTP/1.1 request on `s`; reads exactly one response.
pub fn http_on(
    s: &mut TcpStream,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
    keep_alive: bool,
) -> (u16, Value) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    if !keep_alive {
        req.push_str("Connection: close\r\n");
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    s.write_all(req.as_bytes()).unwrap();
    read_response(s)
}

pub fn read_response(s: &mut TcpStream) -> (u16, Value) {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).unwrap() == 0 {
            panic!(
                "connection closed before the response head: {:?}",
                String::from_utf8_lossy(&buf)
            );
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or(Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    (status, value)
}

pub struct Ws {
    pub ws: WebSocket<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub fn send(&mut self, v: Value) {
        self.ws.send(Message::Text(v.to_string().into())).unwrap();
    }

    pub fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).unwrap();
    }

    /// Sends a message as an asobi.fb.1 binary frame.
    pub fn send_fb(&mut self, v: Value) {
        let kind = v["type"].as_str().unwrap();
        let cid = v.get("cid").map(|c| c.to_string());
        let payload = v.get("payload").cloned().unwrap_or(json!({})).to_string();
        let buf = asobi_schema::fb::encode_inbound(kind, cid.as_deref(), &payload);
        self.ws.send(Message::Binary(buf)).unwrap();
    }

    /// Next text frame as JSON, or None on timeout/close.
    pub fn recv(&mut self, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            if let MaybeTlsStream::Plain(s) = self.ws.get_mut() {
                s.set_read_timeout(Some(left)).unwrap();
            }
            match self.ws.read() {
                Ok(Message::Text(t)) => return Some(serde_json::from_str(t.as_str()).unwrap()),
                Ok(Message::Binary(b)) => {
                    // asobi.fb.1 frames are shown in their JSON form, marked as binary.
                    let f = asobi_schema::fb::decode_frame(&b).expect("valid asobi.fb.1 frame");
                    let mut v = json!({"type": f.kind, "payload": serde_json::from_str::<Value>(&f.payload_json).unwrap(), "_binary": true});
                    if let Some(c) = f.cid {
                        v["cid"] = serde_json::from_str(&c).unwrap();
                    }
                    return Some(v);
                }
                Ok(Message::Close(_)) => return None,
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(_) => return None,
            }
        }
    }

    /// Reads until a frame of `kind` (optionally matching `pred`) arrives.
    pub fn expect(&mut self, kind: &str, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        while let Some(v) = self.recv(deadline.saturating_duration_since(Instant::now())) {
            if v["type"] == kind && pred(&v) {
                return v;
            }
            if seen.len() < 20 {
                seen.push(v);
            }
        }
        panic!("no `{kind}` frame within {within:?}; saw {seen:?}");
    }

    /// Authenticates with session.connect.
    pub fn connect(&mut self, token: &str) -> Value {
        self.send(json!({"type": "session.connect", "cid": "c0", "payload": {"token": token}}));
        self.expect("session.connected", Duration::from_secs(10), |_| true)
    }

    /// The close frame code the server sent, waiting up to `within`.
    pub fn close_code(&mut self, within: Duration) -> Option<u16> {
        self.close_frame(within).map(|(code, _)| code)
    }

    /// The close frame (code and reason) the server sent, waiting up to `within`.
    pub fn close_frame(&mut self, within: Duration) -> Option<(u16, String)> {
        let deadline = Instant::now() + within;
        loop {
            if let MaybeTlsStream::Plain(s) = self.ws.get_mut() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return None;
                }
                s.set_read_timeout(Some(left)).unwrap();
            }
            match self.ws.read() {
                Ok(Message::Close(Some(f))) => {
                    return Some((u16::from(f.code), f.reason.to_string()))
                }
                Ok(Message::Close(None)) => return Some((1005, String::new())),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }
}
