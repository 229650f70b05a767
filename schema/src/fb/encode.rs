//! Encoding payloads: JSON text → the typed tables of `asobi.fbs`.
//!
//! Encoding looks up the table registered for the message type and direction, and uses it only
//! when the JSON fits that table exactly (known keys, each once, of the right JSON type), so that
//! decoding gives back the same JSON value. Everything else — game messages, unknown types, a
//! known type with an extra key — travels as a `Json` table holding the text verbatim, which is
//! lossless by construction. Fields are extracted completely before anything is written, because
//! a FlatBuffers builder cannot take back what it has written.

use std::borrow::Cow;
use std::fmt;

use asobi_fbs as t;
use flatbuffers::{FlatBufferBuilder, UnionWIPOffset, Vector, WIPOffset};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Which side produces the frame; `match.list` is a query one way and a listing the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// Server to client.
    ToClient,
    /// Client to server.
    ToServer,
}

/// The typed tables, with their fields already read out of the JSON.
enum Fit<'a> {
    SessionConnect {
        token: Cow<'a, str>,
    },
    SessionConnected {
        player_id: Cow<'a, str>,
    },
    Heartbeat {
        ts: Option<i64>,
    },
    MatchmakerAdd {
        mode: Cow<'a, str>,
        properties: Option<&'a RawValue>,
    },
    MatchmakerQueued {
        ticket_id: Cow<'a, str>,
        status: Cow<'a, str>,
        players_needed: Option<u32>,
        already_queued: bool,
    },
    MatchmakerRemove {
        ticket_id: Option<Cow<'a, str>>,
    },
    Success {
        success: bool,
    },
    MatchMatched {
        match_id: Cow<'a, str>,
        mode: Cow<'a, str>,
        players: Vec<Cow<'a, str>>,
    },
    MatchListQuery {
        mode: Option<Cow<'a, str>>,
        has_capacity: Option<bool>,
    },
    MatchList {
        matches: Vec<Info<'a>>,
    },
    MatchJoin {
        match_id: Cow<'a, str>,
        ctx: Option<&'a RawValue>,
    },
    MatchFindOrCreate {
        mode: Cow<'a, str>,
        ctx: Option<&'a RawValue>,
    },
    MatchJoined {
        info: Info<'a>,
        players: Vec<Cow<'a, str>>,
        listed: bool,
    },
    MatchFinished {
        match_id: Cow<'a, str>,
        result: &'a RawValue,
    },
    ModuleMessage {
        module: Cow<'a, str>,
        message: &'a RawValue,
    },
    MatchmakerExpired {
        ticket_id: Cow<'a, str>,
    },
    MatchmakerFailed {
        reason: Cow<'a, str>,
    },
    ErrorFrame {
        request_type: Option<Cow<'a, str>>,
        reason: Cow<'a, str>,
        code: Cow<'a, str>,
        message: Cow<'a, str>,
        details: &'a RawValue,
    },
}

/// The fields shared by `MatchInfo` and `MatchJoined`.
struct Info<'a> {
    match_id: Cow<'a, str>,
    mode: Cow<'a, str>,
    status: Cow<'a, str>,
    player_count: u32,
    max_players: u32,
    joinable: bool,
}

/// The typed table a message type is carried in, per direction.
#[derive(Debug, Clone, Copy)]
enum Shape {
    SessionConnect,
    SessionConnected,
    Heartbeat,
    MatchmakerAdd,
    MatchmakerQueued,
    MatchmakerRemove,
    Success,
    MatchMatched,
    MatchListQuery,
    MatchList,
    MatchJoin,
    MatchFindOrCreate,
    MatchJoined,
    MatchFinished,
    ModuleMessage,
    MatchmakerExpired,
    MatchmakerFailed,
    ErrorFrame,
}

fn shape_of(kind: &str, dir: Direction) -> Option<Shape> {
    use Direction::{ToClient, ToServer};
    Some(match (dir, kind) {
        (_, "session.heartbeat") => Shape::Heartbeat,
        (ToServer, "session.connect") => Shape::SessionConnect,
        (ToServer, "matchmaker.add") => Shape::MatchmakerAdd,
        (ToServer, "matchmaker.remove") => Shape::MatchmakerRemove,
        (ToServer, "match.list") => Shape::MatchListQuery,
        (ToServer, "match.join") => Shape::MatchJoin,
        (ToServer, "match.find_or_create") => Shape::MatchFindOrCreate,
        (ToClient, "session.connected") => Shape::SessionConnected,
        (ToClient, "matchmaker.queued") => Shape::MatchmakerQueued,
        (
            ToClient,
            "matchmaker.removed" | "match.left" | "world.left" | "vote.cast_ok" | "vote.veto_ok",
        ) => Shape::Success,
        (ToClient, "match.matched") => Shape::MatchMatched,
        (ToClient, "match.list") => Shape::MatchList,
        (ToClient, "match.joined") => Shape::MatchJoined,
        (ToClient, "match.finished") => Shape::MatchFinished,
        (ToClient, "module.message" | "game.message") => Shape::ModuleMessage,
        (ToClient, "match.matchmaker_expired") => Shape::MatchmakerExpired,
        (ToClient, "match.matchmaker_failed") => Shape::MatchmakerFailed,
        (ToClient, "error") => Shape::ErrorFrame,
        _ => return None,
    })
}

/// Writes the payload of a `kind` frame and returns its union tag and table.
pub(super) fn build<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    kind: &str,
    payload_json: &[u8],
    dir: Direction,
) -> (t::Payload, Option<WIPOffset<UnionWIPOffset>>) {
    match shape_of(kind, dir) {
        Some(shape) => {
            if let Some(fit) = Obj::parse(payload_json).and_then(|obj| fit(shape, obj)) {
                let (tag, table) = write_fit(fbb, fit);
                return (tag, Some(table));
            }
        }
        // `{}` is what a missing payload means, so it costs nothing on the wire.
        None if payload_json.trim_ascii() == b"{}" => return (t::Payload::NONE, None),
        None => {}
    }
    let value = fbb.create_vector(payload_json);
    let table = t::Json::create(fbb, &t::JsonArgs { value: Some(value) });
    (t::Payload::Json, Some(table.as_union_value()))
}

/// The fast path for the server's heartbeat reply.
pub(super) fn build_heartbeat(
    fbb: &mut FlatBufferBuilder<'_>,
    ts_ms: i64,
) -> (t::Payload, Option<WIPOffset<UnionWIPOffset>>) {
    let table = t::Heartbeat::create(fbb, &t::HeartbeatArgs { ts: Some(ts_ms) });
    (t::Payload::Heartbeat, Some(table.as_union_value()))
}

fn fit<'a>(shape: Shape, mut o: Obj<'a>) -> Option<Fit<'a>> {
    let fit = match shape {
        Shape::SessionConnect => Fit::SessionConnect {
            token: o.str("token")?,
        },
        Shape::SessionConnected => Fit::SessionConnected {
            player_id: o.str("player_id")?,
        },
        Shape::Heartbeat => Fit::Heartbeat {
            ts: o.opt(json_i64, "ts")?,
        },
        Shape::MatchmakerAdd => Fit::MatchmakerAdd {
            mode: o.str("mode")?,
            properties: o.opt(Some, "properties")?,
        },
        Shape::MatchmakerQueued => Fit::MatchmakerQueued {
            ticket_id: o.str("ticket_id")?,
            status: o.str("status")?,
            players_needed: match o.take("players_needed")? {
                raw if raw.get() == "null" => None,
                raw => Some(json_u32(raw)?),
            },
            already_queued: json_bool(o.take("already_queued")?)?,
        },
        Shape::MatchmakerRemove => Fit::MatchmakerRemove {
            ticket_id: o.opt(json_str, "ticket_id")?,
        },
        Shape::Success => Fit::Success {
            success: json_bool(o.take("success")?)?,
        },
        Shape::MatchMatched => Fit::MatchMatched {
            match_id: o.str("match_id")?,
            mode: o.str("mode")?,
            players: json_strs(o.take("players")?)?,
        },
        Shape::MatchListQuery => Fit::MatchListQuery {
            mode: o.opt(json_str, "mode")?,
            has_capacity: o.opt(json_bool, "has_capacity")?,
        },
        Shape::MatchList => {
            let list: Vec<&RawValue> = serde_json::from_str(o.take("matches")?.get()).ok()?;
            let matches = list
                .into_iter()
                .map(|raw| {
                    let mut m = Obj::parse(raw.get().as_bytes())?;
                    let info = info(&mut m)?;
                    m.is_empty().then_some(info)
                })
                .collect::<Option<Vec<_>>>()?;
            Fit::MatchList { matches }
        }
        Shape::MatchJoin => Fit::MatchJoin {
            match_id: o.str("match_id")?,
            ctx: o.opt(Some, "ctx")?,
        },
        Shape::MatchFindOrCreate => Fit::MatchFindOrCreate {
            mode: o.str("mode")?,
            ctx: o.opt(Some, "ctx")?,
        },
        Shape::MatchJoined => Fit::MatchJoined {
            info: info(&mut o)?,
            players: json_strs(o.take("players")?)?,
            listed: json_bool(o.take("listed")?)?,
        },
        Shape::MatchFinished => Fit::MatchFinished {
            match_id: o.str("match_id")?,
            result: o.take("result")?,
        },
        Shape::ModuleMessage => Fit::ModuleMessage {
            module: o.str("module")?,
            message: o.take("message")?,
        },
        Shape::MatchmakerExpired => Fit::MatchmakerExpired {
            ticket_id: o.str("ticket_id")?,
        },
        Shape::MatchmakerFailed => Fit::MatchmakerFailed {
            reason: o.str("reason")?,
        },
        Shape::ErrorFrame => {
            let mut body = Obj::parse(o.take("error")?.get().as_bytes())?;
            let fit = Fit::ErrorFrame {
                request_type: o.opt(json_str, "type")?,
                reason: o.str("reason")?,
                code: body.str("code")?,
                message: body.str("message")?,
                details: body.take("details")?,
            };
            if !body.is_empty() {
                return None;
            }
            fit
        }
    };
    o.is_empty().then_some(fit)
}

fn info<'a>(o: &mut Obj<'a>) -> Option<Info<'a>> {
    Some(Info {
        match_id: o.str("match_id")?,
        mode: o.str("mode")?,
        status: o.str("status")?,
        player_count: json_u32(o.take("player_count")?)?,
        max_players: json_u32(o.take("max_players")?)?,
        joinable: json_bool(o.take("joinable")?)?,
    })
}

fn write_fit<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    fit: Fit<'_>,
) -> (t::Payload, WIPOffset<UnionWIPOffset>) {
    match fit {
        Fit::SessionConnect { token } => {
            let token = Some(fbb.create_string(&token));
            let table = t::SessionConnect::create(fbb, &t::SessionConnectArgs { token });
            (t::Payload::SessionConnect, table.as_union_value())
        }
        Fit::SessionConnected { player_id } => {
            let player_id = Some(fbb.create_string(&player_id));
            let table = t::SessionConnected::create(fbb, &t::SessionConnectedArgs { player_id });
            (t::Payload::SessionConnected, table.as_union_value())
        }
        Fit::Heartbeat { ts } => {
            let table = t::Heartbeat::create(fbb, &t::HeartbeatArgs { ts });
            (t::Payload::Heartbeat, table.as_union_value())
        }
        Fit::MatchmakerAdd { mode, properties } => {
            let mode = Some(fbb.create_string(&mode));
            let properties = properties.map(|p| fbb.create_vector(p.get().as_bytes()));
            let table = t::MatchmakerAdd::create(fbb, &t::MatchmakerAddArgs { mode, properties });
            (t::Payload::MatchmakerAdd, table.as_union_value())
        }
        Fit::MatchmakerQueued {
            ticket_id,
            status,
            players_needed,
            already_queued,
        } => {
            let args = t::MatchmakerQueuedArgs {
                ticket_id: Some(fbb.create_string(&ticket_id)),
                status: Some(fbb.create_string(&status)),
                players_needed,
                already_queued,
            };
            let table = t::MatchmakerQueued::create(fbb, &args);
            (t::Payload::MatchmakerQueued, table.as_union_value())
        }
        Fit::MatchmakerRemove { ticket_id } => {
            let ticket_id = ticket_id.map(|s| fbb.create_string(&s));
            let table = t::MatchmakerRemove::create(fbb, &t::MatchmakerRemoveArgs { ticket_id });
            (t::Payload::MatchmakerRemove, table.as_union_value())
        }
        Fit::Success { success } => {
            let table = t::Success::create(fbb, &t::SuccessArgs { success });
            (t::Payload::Success, table.as_union_value())
        }
        Fit::MatchMatched {
            match_id,
            mode,
            players,
        } => {
            let args = t::MatchMatchedArgs {
                match_id: Some(fbb.create_string(&match_id)),
                mode: Some(fbb.create_string(&mode)),
                players: Some(string_vector(fbb, &players)),
            };
            let table = t::MatchMatched::create(fbb, &args);
            (t::Payload::MatchMatched, table.as_union_value())
        }
        Fit::MatchListQuery { mode, has_capacity } => {
            let mode = mode.map(|m| fbb.create_string(&m));
            let args = t::MatchListQueryArgs { mode, has_capacity };
            let table = t::MatchListQuery::create(fbb, &args);
            (t::Payload::MatchListQuery, table.as_union_value())
        }
        Fit::MatchList { matches } => {
            let infos: Vec<_> = matches
                .iter()
                .map(|m| {
                    let args = t::MatchInfoArgs {
                        // Modes and statuses repeat across a listing; store each once.
                        match_id: Some(fbb.create_string(&m.match_id)),
                        mode: Some(fbb.create_shared_string(&m.mode)),
                        status: Some(fbb.create_shared_string(&m.status)),
                        player_count: m.player_count,
                        max_players: m.max_players,
                        joinable: m.joinable,
                    };
                    t::MatchInfo::create(fbb, &args)
                })
                .collect();
            let matches = Some(fbb.create_vector(&infos));
            let table = t::MatchList::create(fbb, &t::MatchListArgs { matches });
            (t::Payload::MatchList, table.as_union_value())
        }
        Fit::MatchJoin { match_id, ctx } => {
            let match_id = Some(fbb.create_string(&match_id));
            let ctx = ctx.map(|c| fbb.create_vector(c.get().as_bytes()));
            let table = t::MatchJoin::create(fbb, &t::MatchJoinArgs { match_id, ctx });
            (t::Payload::MatchJoin, table.as_union_value())
        }
        Fit::MatchFindOrCreate { mode, ctx } => {
            let mode = Some(fbb.create_string(&mode));
            let ctx = ctx.map(|c| fbb.create_vector(c.get().as_bytes()));
            let args = t::MatchFindOrCreateArgs { mode, ctx };
            let table = t::MatchFindOrCreate::create(fbb, &args);
            (t::Payload::MatchFindOrCreate, table.as_union_value())
        }
        Fit::MatchJoined {
            info,
            players,
            listed,
        } => {
            let args = t::MatchJoinedArgs {
                match_id: Some(fbb.create_string(&info.match_id)),
                mode: Some(fbb.create_string(&info.mode)),
                status: Some(fbb.create_string(&info.status)),
                player_count: info.player_count,
                max_players: info.max_players,
                players: Some(string_vector(fbb, &players)),
                listed,
                joinable: info.joinable,
            };
            let table = t::MatchJoined::create(fbb, &args);
            (t::Payload::MatchJoined, table.as_union_value())
        }
        Fit::MatchFinished { match_id, result } => {
            let args = t::MatchFinishedArgs {
                match_id: Some(fbb.create_string(&match_id)),
                result: Some(fbb.create_vector(result.get().as_bytes())),
            };
            let table = t::MatchFinished::create(fbb, &args);
            (t::Payload::MatchFinished, table.as_union_value())
        }
        Fit::ModuleMessage { module, message } => {
            let args = t::ModuleMessageArgs {
                module: Some(fbb.create_shared_string(&module)),
                message: Some(fbb.create_vector(message.get().as_bytes())),
            };
            let table = t::ModuleMessage::create(fbb, &args);
            (t::Payload::ModuleMessage, table.as_union_value())
        }
        Fit::MatchmakerExpired { ticket_id } => {
            let ticket_id = Some(fbb.create_string(&ticket_id));
            let args = t::MatchmakerExpiredArgs { ticket_id };
            let table = t::MatchmakerExpired::create(fbb, &args);
            (t::Payload::MatchmakerExpired, table.as_union_value())
        }
        Fit::MatchmakerFailed { reason } => {
            let reason = Some(fbb.create_string(&reason));
            let table = t::MatchmakerFailed::create(fbb, &t::MatchmakerFailedArgs { reason });
            (t::Payload::MatchmakerFailed, table.as_union_value())
        }
        Fit::ErrorFrame {
            request_type,
            reason,
            code,
            message,
            details,
        } => {
            let body = t::ErrorBodyArgs {
                code: Some(fbb.create_string(&code)),
                message: Some(fbb.create_string(&message)),
                details: Some(fbb.create_vector(details.get().as_bytes())),
            };
            let error = Some(t::ErrorBody::create(fbb, &body));
            let args = t::ErrorFrameArgs {
                request_type: request_type.map(|r| fbb.create_string(&r)),
                reason: Some(fbb.create_string(&reason)),
                error,
            };
            let table = t::ErrorFrame::create(fbb, &args);
            (t::Payload::ErrorFrame, table.as_union_value())
        }
    }
}

fn string_vector<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    items: &[Cow<'_, str>],
) -> WIPOffset<Vector<'b, flatbuffers::ForwardsUOffset<&'b str>>> {
    let offsets: Vec<_> = items.iter().map(|s| fbb.create_string(s)).collect();
    fbb.create_vector(&offsets)
}

/// The members of one JSON object, values kept as raw text.
struct Obj<'a> {
    entries: Vec<(Cow<'a, str>, &'a RawValue)>,
}

/// No typed table has more keys than this; a larger object is carried as `Json` without
/// scanning it for duplicates.
const MAX_TYPED_KEYS: usize = 12;

impl<'a> Obj<'a> {
    /// Reads an object whose keys are unique; anything else does not fit a table.
    fn parse(json: &'a [u8]) -> Option<Obj<'a>> {
        let obj: Obj<'a> = serde_json::from_slice(json).ok()?;
        let keys = &obj.entries;
        if keys.len() > MAX_TYPED_KEYS {
            return None;
        }
        let unique = keys
            .iter()
            .enumerate()
            .all(|(i, (k, _))| keys[..i].iter().all(|(other, _)| other != k));
        unique.then_some(obj)
    }

    /// Removes and returns the value of `key`.
    fn take(&mut self, key: &str) -> Option<&'a RawValue> {
        let at = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.swap_remove(at).1)
    }

    /// A required string member.
    fn str(&mut self, key: &str) -> Option<Cow<'a, str>> {
        json_str(self.take(key)?)
    }

    /// An optional member: `Some(None)` when absent, `None` when present but not a `T`.
    fn opt<T>(&mut self, read: impl Fn(&'a RawValue) -> Option<T>, key: &str) -> Option<Option<T>> {
        match self.take(key) {
            None => Some(None),
            Some(raw) => read(raw).map(Some),
        }
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<'de> Deserialize<'de> for Obj<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjVisitor;
        impl<'de> Visitor<'de> for ObjVisitor {
            type Value = Obj<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Obj<'de>, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    entries.push((k.0, v));
                }
                Ok(Obj { entries })
            }
        }
        d.deserialize_map(ObjVisitor)
    }
}

/// An object key, borrowed from the input unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

fn json_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    if !text.starts_with('"') {
        return None;
    }
    Key::deserialize(&mut serde_json::Deserializer::from_str(text))
        .ok()
        .map(|k| k.0)
}

fn json_strs(raw: &RawValue) -> Option<Vec<Cow<'_, str>>> {
    let items: Vec<&RawValue> = serde_json::from_str(raw.get()).ok()?;
    items.into_iter().map(json_str).collect()
}

fn json_bool(raw: &RawValue) -> Option<bool> {
    match raw.get() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Only plain integer literals fit an integer field: `1.0`, `1e3` and `-0` decode to a
/// different JSON number, so they stay in the `Json` fallback.
fn json_u32(raw: &RawValue) -> Option<u32> {
    let text = raw.get();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn json_i64(raw: &RawValue) -> Option<i64> {
    parse_i64_literal(raw.get())
}

/// Parses a JSON integer literal that prints back identically.
pub(super) fn parse_i64_literal(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || text == "-0" {
        return None;
    }
    text.parse().ok()
}
