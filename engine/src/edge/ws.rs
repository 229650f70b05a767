//! A WebSocket session: the asobi 1.0 JSON protocol on one socket.
//!
//! The session task owns the socket. It reads frames, answers what it can itself (heartbeats,
//! auth, listings), forwards match and matchmaker requests to the shard that owns them, and writes
//! whatever lands in its [`Outbox`]. Replies are buffered and the socket is flushed only when no
//! further complete frame is waiting, so a client that pipelines gets its answers in a few large
//! writes instead of one syscall per message.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use async_tungstenite::WebSocketStream;
use bytes::{Bytes, BytesMut};
use futures::channel::oneshot;
use futures::{AsyncWriteExt, FutureExt};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tungstenite::protocol::{Role, WebSocketConfig};

use asobi_net::http::{Head, Response};
use asobi_schema::envelope::{encode_frame, encode_heartbeat, Inbound};
use asobi_schema::error::code;
use asobi_schema::payload::{self, MatchInfo};
use asobi_schema::ApiError;

use crate::auth::now_ms;
use crate::frame::{Frame, Wire};
use crate::mesh::{MatchCmd, MeshMsg, Outbound, QueueCmd, SessionRef};
use crate::outbox::{Next, Outbox};
use crate::shard::Shard;
use crate::transport::{Incoming, Transport, WsTransport};

/// A frame for one or many sessions, from its JSON encoding.
pub(crate) fn text(frame: Bytes) -> Option<Frame> {
    Frame::json(frame)
}

pub(crate) async fn upgrade<S: crate::conn::Io>(
    shard: Rc<Shard>,
    mut stream: S,
    head: Head,
    leftover: BytesMut,
    peer: SocketAddr,
) {
    let refuse = |e: ApiError| crate::conn::rest_error(&e);
    let response: Option<Response> = if shard.shutting_down.get() {
        Some(refuse(ApiError::new(
            503,
            code::SHUTTING_DOWN,
            "The server is shutting down.",
        )))
    } else if !shard.allow_connect(peer.ip()) {
        Some(refuse(ApiError::new(
            429,
            code::RATE_LIMITED,
            "Too many WebSocket connections from this address.",
        )))
    } else {
        None
    };
    if let Some(r) = response {
        let mut out = Vec::new();
        r.write_to(&mut out, false, false);
        let _ = stream.write_all(&out).await;
        return;
    }
    let up = match asobi_net::ws::accept(&head) {
        Ok(up) => up,
        Err(e) => {
            let mut out = Vec::new();
            refuse(ApiError::new(400, "bad_websocket_upgrade", e.to_string()))
                .write_to(&mut out, false, false);
            let _ = stream.write_all(&out).await;
            return;
        }
    };
    // A client that offers the binary subprotocol gets FlatBuffers frames; everyone else JSON.
    let wire = if up.protocols.iter().any(|p| p == crate::binary::SUBPROTOCOL) {
        Wire::Fb
    } else {
        Wire::Json
    };
    let chosen = (wire == Wire::Fb).then_some(crate::binary::SUBPROTOCOL);
    if stream
        .write_all(&asobi_net::ws::switching_protocols(&up, chosen))
        .await
        .is_err()
    {
        return;
    }
    // Keep only the bytes already read, not the HTTP read buffer, for the session's lifetime.
    let part = leftover.to_vec();
    drop(leftover);
    let max = shard.global.cfg.ws_max_frame;
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        .read_buffer_size(WS_READ_BUFFER)
        // Replies are flushed explicitly when input runs dry; the buffer only bounds a burst.
        .write_buffer_size(64 * 1024);
    let ws = WebSocketStream::from_partially_read(stream, part, Role::Server, Some(config)).await;
    run(shard, WsTransport { ws, wire }, peer).await;
}

/// tungstenite allocates its read buffer up front for every connection (128 KiB by default).
/// Client frames are small (a heartbeat is ~60 bytes, an input ~100), so 8 KiB still takes
/// a hundred pipelined frames per read while keeping an idle socket at a few KiB.
const WS_READ_BUFFER: usize = 8 * 1024;

/// Per-connection message budget: a token bucket refilled at the configured rate.
struct RateLimit {
    rate: f64,
    tokens: f64,
    last: Instant,
    last_error: Option<Instant>,
}

impl RateLimit {
    fn new(per_second: u32) -> RateLimit {
        RateLimit {
            rate: f64::from(per_second),
            tokens: f64::from(per_second),
            last: Instant::now(),
            last_error: None,
        }
    }

    fn allow(&mut self) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// At most one rate-limit error per second, so the errors cannot become a flood themselves.
    fn should_report(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last_error
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return false;
        }
        self.last_error = Some(now);
        true
    }
}

struct Session {
    shard: Rc<Shard>,
    me: SessionRef,
    player_id: Option<String>,
    authed: Rc<Cell<bool>>,
    current: Option<(String, usize)>,
    tickets: Vec<(String, String)>,
    rate: RateLimit,
    last_not_in_match: Option<Instant>,
    replies: Vec<Frame>,
    close: Option<(u16, String)>,
    wire: Wire,
    /// Wall clock read once per batch of ready messages; heartbeat replies carry it.
    batch_now_ms: i64,
}

pub(crate) async fn run<T: Transport>(shard: Rc<Shard>, mut t: T, peer: SocketAddr) {
    let outbox = Rc::new(Outbox::new(shard.global.cfg.ws_outbox));
    let me = shard.add_session(outbox.clone());
    let authed = Rc::new(Cell::new(false));
    {
        // The connect deadline: a socket that never authenticates is closed with 1008.
        let (outbox, authed) = (outbox.clone(), authed.clone());
        let wait = Duration::from_millis(shard.global.cfg.ws_connect_timeout_ms);
        glommio::spawn_local(async move {
            glommio::timer::sleep(wait).await;
            if !authed.get() {
                outbox.push(Outbound::Close {
                    code: 1008,
                    reason: "session.connect timeout".into(),
                });
            }
        })
        .detach();
    }
    let mut s = Session {
        rate: RateLimit::new(shard.global.cfg.ws_msg_rate),
        shard,
        me,
        player_id: None,
        authed,
        current: None,
        tickets: Vec::new(),
        last_not_in_match: None,
        replies: Vec::new(),
        close: None,
        wire: t.wire(),
        batch_now_ms: now_ms(),
    };
    tracing::trace!(%peer, "session open");

    'session: loop {
        enum Event {
            In(Incoming),
            Out(Next),
        }
        let event = {
            let out = outbox.next().fuse();
            let inbound = t.recv().fuse();
            futures::pin_mut!(out);
            futures::pin_mut!(inbound);
            futures::select_biased! {
                o = out => Event::Out(o),
                m = inbound => Event::In(m),
            }
        };
        let mut next = Some(event);
        s.batch_now_ms = now_ms();
        // Handle everything that is ready now, then write once.
        while let Some(ev) = next.take() {
            match ev {
                Event::In(Incoming::Gone) => break 'session,
                Event::In(incoming) => s.on_incoming(incoming).await,
                Event::Out(Next::Overflowed) => {
                    s.close = Some((1008, "slow_consumer: outbound queue full".into()));
                }
                Event::Out(Next::Item(item)) => s.on_outbound(item),
            }
            if s.close.is_some() {
                break;
            }
            next = match t.recv().now_or_never() {
                Some(m) => Some(Event::In(m)),
                None => outbox.try_pop().map(Event::Out),
            };
        }
        while let Some(n) = (s.close.is_none()).then(|| outbox.try_pop()).flatten() {
            match n {
                Next::Item(item) => s.on_outbound(item),
                Next::Overflowed => {
                    s.close = Some((1008, "slow_consumer: outbound queue full".into()))
                }
            }
        }
        let mut failed = false;
        for frame in s.replies.drain(..) {
            if !t.feed(&frame).await {
                failed = true;
                break;
            }
        }
        if failed || !t.flush().await {
            break;
        }
        if let Some((code, reason)) = s.close.take() {
            t.close(code, reason).await;
            break;
        }
    }
    s.cleanup();
}

impl Session {
    fn reply(&mut self, frame: Bytes) {
        if let Some(f) = Frame::json(frame) {
            self.replies.push(f);
        }
    }

    fn error(&mut self, cid: Option<&RawValue>, e: &ApiError) {
        let reason = (e.code == code::REQUEST_FAILED)
            .then(|| e.details["reason"].as_str())
            .flatten()
            .map(str::to_owned);
        self.reply(e.to_ws_frame(cid, reason.as_deref(), None));
    }

    fn on_outbound(&mut self, item: Outbound) {
        match item {
            Outbound::Frame(f) => self.replies.push(f),
            Outbound::Entered { match_id, shard } => self.current = Some((match_id, shard)),
            Outbound::Left { match_id } => {
                if self.current.as_ref().is_some_and(|(m, _)| *m == match_id) {
                    self.current = None;
                }
            }
            Outbound::Close { code, reason } => self.close = Some((code, reason)),
        }
    }

    async fn on_incoming(&mut self, incoming: Incoming) {
        match incoming {
            Incoming::Text(_) | Incoming::Binary(_) if !self.rate.allow() => {
                if self.rate.should_report() {
                    let e = ApiError::new(429, code::RATE_LIMITED, "Too many messages; slow down.");
                    self.error(None, &e);
                }
            }
            Incoming::Text(t) => {
                if self.wire == Wire::Fb {
                    let e = ApiError::new(
                        400,
                        code::INVALID_MESSAGE,
                        "This session speaks asobi.fb.1: send binary frames.",
                    );
                    return self.error(None, &e);
                }
                match Inbound::parse(t.as_str()) {
                    Ok(frame) => self.on_frame(frame).await,
                    Err(e) => {
                        let cid = match &e {
                            asobi_schema::envelope::EnvelopeError::MissingType(c) => c.clone(),
                            _ => None,
                        };
                        self.error(cid.as_deref(), &e.to_api_error());
                    }
                }
            }
            Incoming::Binary(b) => {
                if self.wire == Wire::Json {
                    let e = ApiError::new(
                        400,
                        code::INVALID_MESSAGE,
                        "Binary frames need the asobi.fb.1 subprotocol.",
                    );
                    return self.error(None, &e);
                }
                match crate::binary::Decoded::parse(&b) {
                    Ok(d) => self.on_frame(d.inbound()).await,
                    Err((e, cid)) => self.error(cid.as_deref(), &e),
                }
            }
            Incoming::TooLarge => {
                let max = self.shard.global.cfg.ws_max_frame;
                let err = ApiError::new(
                    400,
                    code::FRAME_TOO_LARGE,
                    format!("Frames are limited to {max} bytes."),
                )
                .with_details(json!({ "max_bytes": max }));
                self.error(None, &err);
                self.close = Some((1009, "frame_too_large".into()));
            }
            Incoming::Close => self.close = Some((1000, String::new())),
            Incoming::Nothing | Incoming::Gone => {}
        }
    }

    async fn on_frame(&mut self, frame: Inbound<'_>) {
        let cid = frame.cid;
        let kind = frame.kind();
        if self.player_id.is_none() {
            match kind {
                "session.connect" => self.connect(&frame),
                _ => self.error(
                    cid,
                    &ApiError::new(
                        401,
                        code::UNAUTHENTICATED,
                        "Send session.connect with a valid token first.",
                    ),
                ),
            }
            return;
        }
        let result = match kind {
            "session.heartbeat" => {
                self.reply(encode_heartbeat(cid, self.batch_now_ms));
                Ok(())
            }
            "match.input" => self.match_input(&frame),
            "session.connect" => Err(ApiError::new(
                400,
                code::ALREADY_CONNECTED,
                "This session is already authenticated.",
            )),
            "matchmaker.add" => self.matchmaker_add(&frame).await,
            "matchmaker.remove" => self.matchmaker_remove(&frame).await,
            "match.list" => self.match_list(&frame),
            "match.join" => self.match_join(&frame).await,
            "match.find_or_create" => self.match_find_or_create(&frame).await,
            "match.leave" => self.match_leave(&frame).await,
            other => Err(ApiError::new(
                400,
                code::UNKNOWN_TYPE,
                format!("Unknown message type `{other}`."),
            )
            .with_details(json!({ "type": other }))),
        };
        if let Err(e) = result {
            self.error(cid, &e);
        }
    }

    fn connect(&mut self, frame: &Inbound<'_>) {
        let cid = frame.cid;
        let body: payload::SessionConnect = match frame.decode() {
            Ok(b) => b,
            Err(e) => return self.error(cid, &e),
        };
        let Some(player_id) = self.shard.global.tokens.verify_access(&body.token) else {
            return self.error(
                cid,
                &ApiError::new(
                    401,
                    code::UNAUTHENTICATED,
                    "The token is invalid or expired.",
                ),
            );
        };
        self.authed.set(true);
        if let Some(slot) = self.shard.sessions.borrow_mut().get_mut(self.me.slot) {
            slot.player_id = Some(player_id.clone());
        }
        let shard = self.shard.clone();
        let g = &shard.global;
        g.directory.session_up(&player_id, self.me);
        self.reply(encode_frame(
            "session.connected",
            cid,
            &payload::SessionConnected {
                player_id: &player_id,
            },
        ));
        // A player with a seat in a live match (reconnecting within the grace window) is put back.
        if let Some((match_id, host)) = g.directory.seat_of(&player_id) {
            self.shard.route(
                host,
                MeshMsg::Match(MatchCmd::Reattach {
                    match_id,
                    player_id: player_id.clone(),
                    session: self.me,
                }),
            );
        }
        self.player_id = Some(player_id);
    }

    fn player(&self) -> String {
        self.player_id.clone().unwrap_or_default()
    }

    fn match_input(&mut self, frame: &Inbound<'_>) -> Result<(), ApiError> {
        let Some((match_id, host)) = self.current.clone() else {
            let now = Instant::now();
            if self
                .last_not_in_match
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(5))
            {
                self.last_not_in_match = Some(now);
                let e = ApiError::new(
                    400,
                    code::MATCH_NOT_IN_MATCH,
                    "This connection is not joined to a match.",
                );
                self.reply(e.to_ws_frame(frame.cid, None, Some("match.input")));
            }
            return Ok(());
        };
        let input: Value =
            serde_json::from_str(frame.payload_str()).map_err(|e| ApiError::invalid_payload(&e))?;
        let input = payload::unwrap_match_input(input);
        self.shard.route(
            host,
            MeshMsg::Match(MatchCmd::Input {
                match_id,
                player_id: self.player(),
                input,
            }),
        );
        Ok(())
    }

    fn check_mode(&self, mode: &str) -> Result<(), ApiError> {
        if mode.len() > 64 || self.shard.game.borrow().mode(mode).is_none() {
            return Err(
                ApiError::new(404, code::UNKNOWN_MODE, format!("No game mode `{mode}`."))
                    .with_details(json!({ "mode": mode })),
            );
        }
        Ok(())
    }

    async fn matchmaker_add(&mut self, frame: &Inbound<'_>) -> Result<(), ApiError> {
        let body: payload::MatchmakerAdd = frame.decode()?;
        self.check_mode(&body.mode)?;
        let queued = crate::queues::add(
            &self.shard,
            &body.mode,
            &self.player(),
            body.properties.unwrap_or(json!({})),
        )
        .await?;
        if let Some(ticket) = queued["ticket_id"].as_str() {
            self.tickets.push((body.mode, ticket.to_owned()));
        }
        self.reply(encode_frame("matchmaker.queued", frame.cid, &queued));
        Ok(())
    }

    async fn matchmaker_remove(&mut self, frame: &Inbound<'_>) -> Result<(), ApiError> {
        let body: payload::MatchmakerRemove = frame.decode()?;
        let tickets: Vec<(String, String)> = match &body.ticket_id {
            Some(t) => {
                let mode = self
                    .tickets
                    .iter()
                    .find(|(_, id)| id == t)
                    .map(|(m, _)| m.clone())
                    .or_else(|| self.shard.global.directory.ticket_mode(t))
                    .ok_or_else(|| ApiError::new(404, code::TICKET_NOT_FOUND, "No such ticket."))?;
                vec![(mode, t.clone())]
            }
            None => std::mem::take(&mut self.tickets),
        };
        for (mode, ticket_id) in tickets {
            let (tx, rx) = oneshot::channel();
            let host = self.shard.queue_shard(&mode);
            self.shard.route(
                host,
                MeshMsg::Queue(QueueCmd::Remove {
                    mode,
                    ticket_id: ticket_id.clone(),
                    player_id: self.player(),
                    reply: tx,
                }),
            );
            await_reply(rx).await?;
            self.tickets.retain(|(_, id)| *id != ticket_id);
        }
        self.reply(encode_frame(
            "matchmaker.removed",
            frame.cid,
            &payload::Success { success: true },
        ));
        Ok(())
    }

    fn match_list(&mut self, frame: &Inbound<'_>) -> Result<(), ApiError> {
        let q: payload::MatchListQuery = frame.decode()?;
        let mode = q.mode.filter(|m| m.len() <= 64);
        let matches: Vec<MatchInfo> = self
            .shard
            .global
            .directory
            .list_matches(mode.as_deref(), q.has_capacity.unwrap_or(false));
        self.reply(encode_frame(
            "match.list",
            frame.cid,
            &json!({ "matches": matches }),
        ));
        Ok(())
    }

    async fn join(
        &mut self,
        match_id: String,
        ctx: Option<Value>,
        cid: Option<&RawValue>,
    ) -> Result<(), ApiError> {
        if let Some(ctx) = &ctx {
            payload::check_join_ctx(ctx)
                .map_err(|c| ApiError::new(400, c, "The join context is outside its bounds."))?;
        }
        if let Some((current, _)) = &self.current {
            if *current != match_id {
                return Err(ApiError::new(
                    409,
                    code::MATCH_ALREADY_IN_MATCH,
                    "Leave the current match first.",
                ));
            }
        }
        let entry = self
            .shard
            .global
            .directory
            .match_entry(&match_id)
            .ok_or_else(|| {
                ApiError::new(
                    404,
                    code::MATCH_NOT_FOUND,
                    "No live match exists with this id.",
                )
            })?;
        let (tx, rx) = oneshot::channel();
        self.shard.route(
            entry.shard,
            MeshMsg::Match(MatchCmd::Join {
                match_id: match_id.clone(),
                player_id: self.player(),
                session: self.me,
                ctx,
                reply: tx,
            }),
        );
        let joined = await_reply(rx).await?;
        self.current = Some((match_id, entry.shard));
        self.reply(encode_frame("match.joined", cid, &joined));
        Ok(())
    }

    async fn match_join(&mut self, frame: &Inbound<'_>) -> Result<(), ApiError> {
        let body: payload::MatchJoin = frame.decode()?;
        self.join(body.match_id, body.ctx, frame.cid).await
    }

    async fn match_find_or_create(&mut self, frame: &Inbound<'_>) -> Result<(), ApiError> {
        let body: payload::MatchFindOrCreate = frame.decode()?;
        self.check_mode(&body.mode)?;
        let directory = &self.shard.global.directory;
        let match_id = match directory.find_open(&body.mode) {
            Some((id, _)) => id,
            None => {
                let id = uuid::Uuid::now_v7().to_string();
                crate::live::create(&self.shard, &body.mode, &id, Vec::new(), false)?;
                id
            }
        };
        self.join(match_id, body.ctx, frame.cid).await
    }

    async fn match_leave(&mut self, frame: &Inbound<'_>) -> Result<(), ApiError> {
        let Some((match_id, host)) = self.current.take() else {
            return Err(ApiError::new(
                400,
                code::MATCH_NOT_IN_MATCH,
                "This connection is not joined to a match.",
            ));
        };
        let (tx, rx) = oneshot::channel();
        self.shard.route(
            host,
            MeshMsg::Match(MatchCmd::Leave {
                match_id,
                player_id: self.player(),
                reply: Some(tx),
            }),
        );
        // Leaving a match that just finished is still a successful leave.
        let _ = await_reply(rx).await;
        self.reply(encode_frame(
            "match.left",
            frame.cid,
            &payload::Success { success: true },
        ));
        Ok(())
    }

    fn cleanup(&mut self) {
        let shard = self.shard.clone();
        if let Some(player_id) = self.player_id.take() {
            shard.global.directory.session_down(&player_id, self.me);
            if let Some((match_id, host)) = self.current.take() {
                shard.route(
                    host,
                    MeshMsg::Match(MatchCmd::Disconnected {
                        match_id,
                        player_id: player_id.clone(),
                        session: self.me,
                    }),
                );
            }
            for (mode, _) in self.tickets.drain(..) {
                let host = shard.queue_shard(&mode);
                shard.route(
                    host,
                    MeshMsg::Queue(QueueCmd::RemovePlayer {
                        mode,
                        player_id: player_id.clone(),
                    }),
                );
            }
        }
        shard.remove_session(self.me);
    }
}

/// Awaits a cross-shard reply; a dropped sender means the owner went away.
pub(crate) async fn await_reply<T>(
    rx: oneshot::Receiver<Result<T, ApiError>>,
) -> Result<T, ApiError> {
    rx.await.unwrap_or_else(|_| {
        Err(ApiError::new(
            503,
            code::SHUTTING_DOWN,
            "The owner of this request went away.",
        ))
    })
}
