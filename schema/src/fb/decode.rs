//! Decoding payloads: a verified frame's payload → JSON text.
//!
//! Any variant is accepted for any type (the engine checks payload shapes the same way for both
//! wires). Every embedded JSON field is validated before it is spliced into the output, so a peer
//! cannot inject keys into the payload through a `(json)` field; the output is built in a `String`
//! directly, so it needs no second UTF-8 pass.

use std::fmt;

use asobi_fbs as t;
use flatbuffers::Vector;
use serde::de::IgnoredAny;

/// Why a verified payload could not be turned into JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadError {
    /// A `(json)` field is not one UTF-8 JSON value; carries the field name.
    Json(&'static str),
    /// A union tag this version does not know.
    Unknown(u8),
}

/// Writes the payload of a verified frame as JSON text.
pub(super) fn read(frame: &t::Frame<'_>, out: &mut String) -> Result<(), ReadError> {
    let tag = frame.payload_type();
    // Every accessor below returns Some for its own tag once the frame is verified (the verifier
    // rejects a tag without a table); `missing` keeps that an error instead of a panic anyway.
    let missing = ReadError::Unknown(tag.0);
    if tag == t::Payload::Json {
        let json = frame.payload_as_json().ok_or(missing)?;
        out.push_str(checked_json(json.value().bytes(), "value")?);
        return Ok(());
    }
    let mut w = ObjWriter::new(out);
    match tag {
        t::Payload::NONE => {}
        t::Payload::SessionConnect => {
            let p = frame.payload_as_session_connect().ok_or(missing)?;
            w.str("token", p.token());
        }
        t::Payload::SessionConnected => {
            let p = frame.payload_as_session_connected().ok_or(missing)?;
            w.str("player_id", p.player_id());
        }
        t::Payload::Heartbeat => {
            let p = frame.payload_as_heartbeat().ok_or(missing)?;
            if let Some(ts) = p.ts() {
                w.num("ts", ts);
            }
        }
        t::Payload::MatchmakerAdd => {
            let p = frame.payload_as_matchmaker_add().ok_or(missing)?;
            w.str("mode", p.mode());
            if let Some(props) = p.properties() {
                w.raw("properties", props)?;
            }
        }
        t::Payload::MatchmakerQueued => {
            let p = frame.payload_as_matchmaker_queued().ok_or(missing)?;
            w.str("ticket_id", p.ticket_id());
            w.str("status", p.status());
            match p.players_needed() {
                Some(n) => w.num("players_needed", n),
                None => w.null("players_needed"),
            }
            w.bool("already_queued", p.already_queued());
        }
        t::Payload::MatchmakerRemove => {
            let p = frame.payload_as_matchmaker_remove().ok_or(missing)?;
            if let Some(ticket) = p.ticket_id() {
                w.str("ticket_id", ticket);
            }
        }
        t::Payload::Success => {
            let p = frame.payload_as_success().ok_or(missing)?;
            w.bool("success", p.success());
        }
        t::Payload::MatchMatched => {
            let p = frame.payload_as_match_matched().ok_or(missing)?;
            w.str("match_id", p.match_id());
            w.str("mode", p.mode());
            w.strs("players", p.players());
        }
        t::Payload::MatchListQuery => {
            let p = frame.payload_as_match_list_query().ok_or(missing)?;
            if let Some(mode) = p.mode() {
                w.str("mode", mode);
            }
            if let Some(cap) = p.has_capacity() {
                w.bool("has_capacity", cap);
            }
        }
        t::Payload::MatchList => {
            let p = frame.payload_as_match_list().ok_or(missing)?;
            w.key("matches");
            w.out.push('[');
            for (i, m) in p.matches().iter().enumerate() {
                if i > 0 {
                    w.out.push(',');
                }
                let mut mw = ObjWriter::new(&mut *w.out);
                mw.str("match_id", m.match_id());
                mw.str("mode", m.mode());
                mw.str("status", m.status());
                mw.num("player_count", m.player_count());
                mw.num("max_players", m.max_players());
                mw.bool("joinable", m.joinable());
                mw.close();
            }
            w.out.push(']');
        }
        t::Payload::MatchJoin => {
            let p = frame.payload_as_match_join().ok_or(missing)?;
            w.str("match_id", p.match_id());
            if let Some(ctx) = p.ctx() {
                w.raw("ctx", ctx)?;
            }
        }
        t::Payload::MatchFindOrCreate => {
            let p = frame.payload_as_match_find_or_create().ok_or(missing)?;
            w.str("mode", p.mode());
            if let Some(ctx) = p.ctx() {
                w.raw("ctx", ctx)?;
            }
        }
        t::Payload::MatchJoined => {
            let p = frame.payload_as_match_joined().ok_or(missing)?;
            w.str("match_id", p.match_id());
            w.str("mode", p.mode());
            w.str("status", p.status());
            w.num("player_count", p.player_count());
            w.num("max_players", p.max_players());
            w.strs("players", p.players());
            w.bool("listed", p.listed());
            w.bool("joinable", p.joinable());
        }
        t::Payload::MatchFinished => {
            let p = frame.payload_as_match_finished().ok_or(missing)?;
            w.str("match_id", p.match_id());
            w.raw("result", p.result())?;
        }
        t::Payload::ModuleMessage => {
            let p = frame.payload_as_module_message().ok_or(missing)?;
            w.str("module", p.module());
            w.raw("message", p.message())?;
        }
        t::Payload::MatchmakerExpired => {
            let p = frame.payload_as_matchmaker_expired().ok_or(missing)?;
            w.str("ticket_id", p.ticket_id());
        }
        t::Payload::MatchmakerFailed => {
            let p = frame.payload_as_matchmaker_failed().ok_or(missing)?;
            w.str("reason", p.reason());
        }
        t::Payload::ErrorFrame => {
            let p = frame.payload_as_error_frame().ok_or(missing)?;
            if let Some(request_type) = p.request_type() {
                w.str("type", request_type);
            }
            w.str("reason", p.reason());
            let e = p.error();
            w.key("error");
            let mut ew = ObjWriter::new(&mut *w.out);
            ew.str("code", e.code());
            ew.str("message", e.message());
            ew.raw("details", e.details())?;
            ew.close();
        }
        other => return Err(ReadError::Unknown(other.0)),
    }
    w.close();
    Ok(())
}

/// Returns the bytes as text when they are exactly one JSON value.
fn checked_json<'a>(bytes: &'a [u8], field: &'static str) -> Result<&'a str, ReadError> {
    std::str::from_utf8(bytes)
        .ok()
        .filter(|text| serde_json::from_str::<IgnoredAny>(text).is_ok())
        .ok_or(ReadError::Json(field))
}

/// Writes one JSON object into a string, comma by comma.
struct ObjWriter<'o> {
    out: &'o mut String,
    empty: bool,
}

impl<'o> ObjWriter<'o> {
    fn new(out: &'o mut String) -> Self {
        out.push('{');
        ObjWriter { out, empty: true }
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        push_json_str(self.out, key);
        self.out.push(':');
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        push_json_str(self.out, value);
    }

    fn num(&mut self, key: &str, value: impl fmt::Display) {
        use fmt::Write;
        self.key(key);
        // Writing into a String cannot fail.
        let _ = write!(self.out, "{value}");
    }

    fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
    }

    fn null(&mut self, key: &str) {
        self.key(key);
        self.out.push_str("null");
    }

    fn raw(&mut self, key: &'static str, value: Vector<'_, u8>) -> Result<(), ReadError> {
        let text = checked_json(value.bytes(), key)?;
        self.key(key);
        self.out.push_str(text);
        Ok(())
    }

    fn strs(&mut self, key: &str, items: Vector<'_, flatbuffers::ForwardsUOffset<&str>>) {
        self.key(key);
        self.out.push('[');
        for (i, s) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            push_json_str(self.out, s);
        }
        self.out.push(']');
    }

    fn close(self) {
        self.out.push('}');
    }
}

/// Appends `s` as a JSON string literal.
pub(super) fn push_json_str(out: &mut String, s: &str) {
    let plain = s
        .bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b != 0x7f);
    out.push('"');
    if plain {
        out.push_str(s);
    } else {
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    use fmt::Write;
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
    }
    out.push('"');
}
