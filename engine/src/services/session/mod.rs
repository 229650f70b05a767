//! A session's protocol state and the WebSocket handler table: asobi 1.0 messages in, replies and
//! pushes out. The socket itself belongs to the edge (`edge::ws`), which feeds this decoded
//! frames and writes what it leaves in [`Session::replies`]; handlers live with their feature
//! (`<feature>/ws.rs`) and register in [`table`].
//!
//! Handlers that finish at once (heartbeat, match input) return [`Handled::Done`] and cost no
//! allocation; the ones that wait on another shard return a boxed future.

pub(crate) mod ws;

use std::rc::Rc;
use std::sync::OnceLock;

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use serde_json::json;
use serde_json::value::RawValue;

use asobi_rules::session::RateLimit;
use asobi_schema::envelope::{EnvelopeError, Inbound};
use asobi_schema::error::code;
use asobi_schema::ApiError;

use super::{Event, Shard};
use crate::shard::mesh::{Outbound, SessionRef};
use crate::wire::{Frame, Wire, WorldWire};

/// What a handler did with a frame.
pub(crate) enum Handled<'a> {
    Done(Result<(), ApiError>),
    Later(LocalBoxFuture<'a, Result<(), ApiError>>),
}

pub(crate) type WsHandler = for<'a> fn(&'a mut Session, &'a Inbound<'a>) -> Handled<'a>;

/// Every WebSocket message type, from each feature's list. A few dozen entries compared by
/// length first cost less per message than hashing the type; the hot ones (heartbeat, input)
/// come first.
fn table() -> &'static [(&'static str, WsHandler)] {
    static TABLE: OnceLock<Vec<(&'static str, WsHandler)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let lists: [&[(&'static str, WsHandler)]; 8] = [
            ws::HANDLERS,
            super::matches::ws::HANDLERS,
            super::matchmaker::ws::HANDLERS,
            super::social::ws::HANDLERS,
            super::rpc::ws::HANDLERS,
            super::votes::ws::HANDLERS,
            super::parties::ws::HANDLERS,
            super::worlds::ws::HANDLERS,
        ];
        let mut t: Vec<(&'static str, WsHandler)> = Vec::new();
        for list in lists {
            for (kind, h) in list {
                assert!(t.iter().all(|(k, _)| k != kind), "{kind} registered twice");
                t.push((kind, *h));
            }
        }
        t
    })
}

fn handler(kind: &str) -> Option<WsHandler> {
    table()
        .iter()
        .find(|(k, _)| k.len() == kind.len() && *k == kind)
        .map(|(_, h)| *h)
}

/// Longest message type echoed back in an `unknown_type` error; anything longer is not a type
/// this server could know, and echoing attacker-sized input fills the client's socket for free.
const MAX_ECHOED_TYPE: usize = 64;

/// Longest `cid` echoed back in a reply. Correlation ids are short (a counter or a UUID).
const MAX_ECHOED_CID: usize = 128;

/// Close code for a client that stopped reading: 1013, "try again later".
pub(crate) const CLOSE_SLOW_CONSUMER: u16 = 1013;

/// A `cid` is echoed only when it is small: it is the client's correlation id, not a payload,
/// and an error must never cost more bytes than the request that caused it.
fn echoed(cid: Option<&RawValue>) -> Option<&RawValue> {
    cid.filter(|c| c.get().len() <= MAX_ECHOED_CID)
}

pub(crate) struct Session {
    pub(crate) shard: Rc<Shard>,
    pub(crate) me: SessionRef,
    pub(crate) player_id: Option<String>,
    /// Signed in at least once; read by the edge's `session.connect` deadline.
    pub(crate) authed: bool,
    pub(crate) matches: super::matches::ws::SessionPart,
    pub(crate) matchmaker: super::matchmaker::ws::SessionPart,
    pub(crate) social: super::social::ws::SessionPart,
    pub(crate) accounts: super::accounts::ws::SessionPart,
    pub(crate) worlds: super::worlds::ws::SessionPart,
    rate: RateLimit,
    replies: Vec<Frame>,
    /// Set when the socket must close after the pending replies are written.
    pub(crate) close: Option<(u16, String)>,
    wire: Wire,
    /// The `world.tick` encoding and carrier granted at `session.connect`.
    pub(crate) world_wire: WorldWire,
    /// Whether the transport can carry datagrams (QUIC); set by the edge.
    pub(crate) datagrams_possible: bool,
    /// Wall clock read once per batch of ready messages; heartbeat replies carry it.
    pub(crate) batch_now_ms: i64,
}

impl Session {
    /// The protocol state of a session the runtime registered as `me`.
    pub(crate) fn open(shard: Rc<Shard>, me: SessionRef, wire: Wire) -> Session {
        let now = shard.rt.now();
        crate::shard::registry::bump(&shard.ctx.stats(shard.id()).sessions, 1);
        Session {
            rate: RateLimit::new(now, shard.ctx.settings.ws_msg_rate),
            shard,
            me,
            player_id: None,
            authed: false,
            matches: Default::default(),
            matchmaker: Default::default(),
            social: Default::default(),
            accounts: Default::default(),
            worlds: Default::default(),
            replies: Vec::new(),
            close: None,
            wire,
            world_wire: WorldWire::default(),
            datagrams_possible: false,
            batch_now_ms: 0,
        }
    }

    /// The session's encoding.
    pub(crate) fn wire(&self) -> Wire {
        self.wire
    }

    /// Replies and pushes waiting to be written, in order.
    pub(crate) fn replies(&mut self) -> std::vec::Drain<'_, Frame> {
        self.replies.drain(..)
    }

    pub(crate) fn reply(&mut self, frame: Bytes) {
        if let Some(f) = Frame::json(frame) {
            self.replies.push(f);
        }
    }

    pub(crate) fn error(&mut self, cid: Option<&RawValue>, e: &ApiError) {
        self.reply(e.to_ws_frame(echoed(cid), None, None));
    }

    /// An error whose flat `reason` is not derived from its code (asobi's `invalid_token`).
    pub(crate) fn error_with_reason(&mut self, cid: Option<&RawValue>, e: &ApiError, reason: &str) {
        self.reply(e.to_ws_frame(echoed(cid), Some(reason), None));
    }

    /// The player this session is signed in as (empty before `session.connect`).
    pub(crate) fn player(&self) -> String {
        self.player_id.clone().unwrap_or_default()
    }

    /// Something a service pushed to this session.
    pub(crate) fn on_outbound(&mut self, item: Outbound<Event>) {
        match item {
            Outbound::Frame(f) => self.replies.push(f),
            Outbound::Event(Event::Matches(e)) => self.matches.on_event(e),
            Outbound::Event(Event::Accounts(r)) => super::accounts::ws::on_revoke(self, &r),
            Outbound::Event(Event::Worlds(e)) => self.worlds.on_event(e),
            Outbound::Close { code, reason } => self.close = Some((code, reason)),
        }
    }

    /// The outbox overflowed: the client stopped reading. Closed with 1013 (try again later),
    /// never 1008: asobi uses 1008 only for policy refusals, and its JS SDK reads any 1008 as an
    /// auth failure and stops reconnecting, while a slow reader should simply reconnect.
    pub(crate) fn on_overflow(&mut self) {
        self.close = Some((CLOSE_SLOW_CONSUMER, "slow_consumer".into()));
    }

    /// A frame over the size limit arrived. Up to the transport's hard limit it is refused and
    /// the socket stays open, as in asobi; past it the transport gave up on the stream (the rest
    /// of the frame was never read), so the socket closes with 1009.
    pub(crate) fn on_too_large(&mut self) {
        self.refuse_too_large();
        self.close = Some((1009, "frame_too_large".into()));
    }

    /// A frame larger than `ws_max_frame`: refused with asobi's `payload_too_large`.
    fn refuse_too_large(&mut self) {
        let max = self.shard.ctx.settings.ws_max_frame;
        let err = ApiError::new(
            400,
            code::FRAME_TOO_LARGE,
            format!("Frames are limited to {max} bytes."),
        )
        .with_details(json!({ "max_bytes": max }));
        self.error(None, &err);
    }

    fn limited(&mut self) -> bool {
        let now = self.shard.rt.now();
        if self.rate.allow(now) {
            return false;
        }
        if self.rate.should_report(now) {
            let e = ApiError::new(429, code::RATE_LIMITED, "Too many messages; slow down.");
            self.error(None, &e);
        }
        true
    }

    /// A text frame: the two steps the socket loop runs itself, for the simulation harness.
    #[cfg(test)]
    pub(crate) async fn on_text(&mut self, text: &str) {
        if let Some(frame) = self.text_frame(text) {
            self.on_frame(&frame).await;
        }
    }

    /// The checks a text frame passes before its handler (rate, size, wire, envelope), done
    /// without awaiting: refusals are replied here and give `None`. The socket loop runs these
    /// itself and awaits only [`Session::on_frame`], so their state is never part of the
    /// session's future, which every open socket holds.
    pub(crate) fn text_frame<'t>(&mut self, text: &'t str) -> Option<Inbound<'t>> {
        if self.limited() {
            return None;
        }
        if text.len() > self.shard.ctx.settings.ws_max_frame {
            self.refuse_too_large();
            return None;
        }
        if self.wire == Wire::Fb {
            let e = ApiError::new(
                400,
                code::INVALID_MESSAGE,
                "This session speaks asobi.fb.1: send binary frames.",
            );
            self.error(None, &e);
            return None;
        }
        match Inbound::parse(text) {
            Ok(frame) => Some(frame),
            Err(e) => {
                let cid = match &e {
                    EnvelopeError::MissingType(c) => c.clone(),
                    _ => None,
                };
                self.error(cid.as_deref(), &e.to_api_error());
                None
            }
        }
    }

    /// The same for a binary frame: its decoded envelope, or `None` once refused.
    pub(crate) fn binary_frame(&mut self, bytes: &[u8]) -> Option<crate::wire::binary::Decoded> {
        if self.limited() {
            return None;
        }
        if bytes.len() > self.shard.ctx.settings.ws_max_frame {
            self.refuse_too_large();
            return None;
        }
        if self.wire == Wire::Json {
            let e = ApiError::new(
                400,
                code::INVALID_MESSAGE,
                "Binary frames need the asobi.fb.1 subprotocol.",
            );
            self.error(None, &e);
            return None;
        }
        match crate::wire::binary::Decoded::parse(bytes) {
            Ok(d) => Some(d),
            Err((e, cid)) => {
                self.error(cid.as_deref(), &e);
                None
            }
        }
    }

    /// Runs a checked frame's handler and reports its error; suspends only when the handler
    /// waits on another shard. Takes the frame by reference: the caller holds it across that
    /// wait anyway, and a second copy here would be carried in every session's state.
    pub(crate) async fn on_frame(&mut self, frame: &Inbound<'_>) {
        // Only the handler's future is held across its wait: a finished result (an `ApiError`
        // is ~90 bytes) is moved out of the way before it, so it takes no room in the
        // session's future.
        let result = {
            let (later, done) = match self.dispatch(frame) {
                Handled::Later(f) => (Some(f), None),
                Handled::Done(r) => (None, Some(r)),
            };
            match later {
                Some(f) => {
                    drop(done);
                    f.await
                }
                None => done.unwrap_or(Ok(())),
            }
        };
        if let Err(e) = result {
            self.error(frame.cid, &e);
        }
    }

    /// The frame's handler, called; refusals (not signed in, unknown type) come back as
    /// `Done(Err(..))`.
    fn dispatch<'a>(&'a mut self, frame: &'a Inbound<'a>) -> Handled<'a> {
        let kind = frame.kind();
        // asobi answers heartbeats before authentication too (a client's keep-alive starts
        // with the socket).
        if self.player_id.is_none() && kind != "session.connect" && kind != "session.heartbeat" {
            return Handled::Done(Err(ApiError::new(
                401,
                code::UNAUTHENTICATED,
                "Send session.connect with a valid token first.",
            )));
        }
        match handler(kind) {
            Some(h) => h(self, frame),
            None => {
                let shown: String = kind.chars().take(MAX_ECHOED_TYPE).collect();
                Handled::Done(Err(ApiError::new(
                    400,
                    code::UNKNOWN_TYPE,
                    format!("Unknown message type `{shown}`."),
                )
                .with_details(json!({ "type": shown }))))
            }
        }
    }

    /// The signed-in player lets go of this session: presence, match seat, tickets. The socket
    /// stays open (a `session.connect` for another player follows).
    pub(crate) fn sign_out(&mut self) {
        if let Some(player_id) = self.player_id.take() {
            self.shard.ctx.registry.session_down(&player_id, self.me);
            super::matches::ws::session_closed(self, &player_id);
            super::matchmaker::ws::session_closed(self, &player_id);
            super::social::ws::session_closed(self, &player_id);
            super::parties::ws::session_closed(self, &player_id);
            super::worlds::ws::session_closed(self, &player_id);
        }
    }

    /// The socket is gone: every feature lets go of this session.
    pub(crate) fn cleanup(&mut self) {
        let shard = self.shard.clone();
        self.sign_out();
        if shard.rt.remove_session(self.me) {
            crate::shard::registry::bump(&shard.ctx.stats(shard.id()).sessions, -1);
        }
    }
}

impl Drop for Session {
    /// Also on the way out of a contained panic: the shard forgets the session either way.
    fn drop(&mut self) {
        self.cleanup();
    }
}
