//! The bare baseline: the smallest WebSocket server built on the same stack as asobi-rs
//! (a glommio executor pinned to a core, async-tungstenite over glommio's `TcpStream`,
//! serde_json for the envelope), answering only `session.connect` and `session.heartbeat`.
//! Every result is reported as a ratio to this server measured by the same client, so the
//! numbers say what asobi-rs costs on top of the transport, not what the machine can do.
//!
//! Replies are fed without flushing and the socket is flushed only when its buffered input
//! runs dry, which is what a server should do under pipelined load. tungstenite's read
//! buffer is 8 KiB unless told otherwise (its 128 KiB default is zero-filled on every read).

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::tungstenite::Message;
use futures::{FutureExt as _, SinkExt as _, StreamExt as _};
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};
use serde::{Deserialize, Serialize};

/// io_uring buffer memory per executor; the baseline does no file I/O, so 2 MiB is plenty
/// and stays well inside a default 8 MiB `RLIMIT_MEMLOCK`.
const IO_MEMORY: usize = 2 << 20;

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    #[serde(borrow, default)]
    cid: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct Reply<'a, P: Serialize> {
    #[serde(rename = "type")]
    ty: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cid: Option<&'a str>,
    payload: P,
}

#[derive(Serialize)]
struct Ts {
    ts: u64,
}

#[derive(Serialize)]
struct Connected {
    player_id: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    reason: &'a str,
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
    details: serde_json::Map<String, serde_json::Value>,
}

/// Runs the baseline on `bind:port`, one executor per core in `cores` (SO_REUSEPORT
/// spreads connections), with tungstenite's read buffer of `read_buffer` bytes (its default
/// when `None`). Blocks until the executors stop.
pub fn run(
    bind: &str,
    port: u16,
    cores: &[usize],
    read_buffer: Option<usize>,
) -> anyhow::Result<()> {
    crate::sys::raise_nofile();
    crate::sys::raise_memlock();
    let cores: Vec<usize> = if cores.is_empty() {
        vec![0]
    } else {
        cores.to_vec()
    };
    let mut handles = Vec::new();
    for core in cores {
        let addr = format!("{bind}:{port}");
        let h = LocalExecutorBuilder::new(Placement::Fixed(core))
            .name("baseline")
            .io_memory(IO_MEMORY)
            .spawn(move || async move {
                if let Err(e) = serve(&addr, read_buffer).await {
                    eprintln!("baseline on {addr}: {e:#}");
                }
            })
            .map_err(|e| anyhow::anyhow!("starting executor on core {core}: {e}"))?;
        handles.push(h);
    }
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

async fn serve(addr: &str, read_buffer: Option<usize>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
    let mut next_id: u64 = 0;
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Running out of descriptors must not kill the accept loop; back off briefly.
                eprintln!("baseline accept: {e}");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        next_id += 1;
        let id = next_id;
        glommio::spawn_local(async move {
            let _ = session(stream, id, read_buffer).await;
        })
        .detach();
    }
}

async fn session(stream: TcpStream, id: u64, read_buffer: Option<usize>) -> anyhow::Result<()> {
    stream
        .set_nodelay(true)
        .map_err(|e| anyhow::anyhow!("nodelay: {e}"))?;
    let mut config = WebSocketConfig::default();
    if let Some(n) = read_buffer {
        config = config.read_buffer_size(n);
    }
    let mut ws = async_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    loop {
        // Flush only when no further input is already buffered: pipelined requests then
        // share one write.
        let next = match ws.next().now_or_never() {
            Some(m) => m,
            None => {
                ws.flush().await?;
                ws.next().await
            }
        };
        let Some(msg) = next else { return Ok(()) };
        match msg? {
            Message::Text(text) => {
                if let Some(reply) = answer(text.as_str(), id) {
                    ws.feed(Message::text(reply)).await?;
                }
            }
            Message::Close(_) => return Ok(()),
            _ => {}
        }
    }
}

/// The reply to one client frame, as JSON text.
fn answer(text: &str, id: u64) -> Option<String> {
    let req: Request<'_> = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(_) => {
            return Some(error_json(
                None,
                "invalid_message",
                "malformed JSON envelope",
            ))
        }
    };
    let cid = req.cid.as_deref();
    let out = match req.ty.as_ref() {
        "session.heartbeat" => serde_json::to_string(&Reply {
            ty: "session.heartbeat",
            cid,
            payload: Ts { ts: now_ms() },
        }),
        "session.connect" => serde_json::to_string(&Reply {
            ty: "session.connected",
            cid,
            payload: Connected {
                player_id: format!("baseline-{id}"),
            },
        }),
        _ => {
            return Some(error_json(
                cid,
                "unknown_type",
                "the baseline answers heartbeats only",
            ))
        }
    };
    out.ok()
}

fn error_json(cid: Option<&str>, code: &str, message: &str) -> String {
    serde_json::to_string(&Reply {
        ty: "error",
        cid,
        payload: ErrorBody {
            reason: code,
            error: ErrorDetail {
                code,
                message,
                details: serde_json::Map::new(),
            },
        },
    })
    .unwrap_or_default()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_heartbeat_and_connect_echoing_cid() {
        let r: serde_json::Value = serde_json::from_str(
            &answer(r#"{"type":"session.heartbeat","cid":"7","payload":{}}"#, 1).unwrap(),
        )
        .unwrap();
        assert_eq!(r["type"], "session.heartbeat");
        assert_eq!(r["cid"], "7");
        assert!(r["payload"]["ts"].as_u64().unwrap() > 1_600_000_000_000);
        let r: serde_json::Value = serde_json::from_str(
            &answer(
                r#"{"type":"session.connect","cid":"1","payload":{"token":"t"}}"#,
                5,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(r["type"], "session.connected");
        assert_eq!(r["payload"]["player_id"], "baseline-5");
    }

    #[test]
    fn answers_garbage_and_unknown_types_with_errors() {
        let r: serde_json::Value = serde_json::from_str(&answer("nope", 1).unwrap()).unwrap();
        assert_eq!(r["payload"]["error"]["code"], "invalid_message");
        let r: serde_json::Value =
            serde_json::from_str(&answer(r#"{"type":"x.y","cid":"3"}"#, 1).unwrap()).unwrap();
        assert_eq!(r["type"], "error");
        assert_eq!(r["cid"], "3");
        assert!(r.get("payload").unwrap().get("reason").is_some());
    }
}
