//! A mode's shape, read from the globals its script declares (`match_size = 4`, ...).
//!
//! Lenient where asobi is lenient: a global of the wrong type is ignored with a warning and
//! the default applies, so a script that runs on asobi loads here unchanged. Only a missing
//! or non-positive `match_size` is an error, as in asobi.

use mlua::{Table, Value};
use serde_json::Map;

use crate::error::Diagnostic;
use crate::json::{self, Marks};

/// Matchmaking strategy of a mode.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strategy {
    /// First come, first matched (default).
    Fill,
    /// Group tickets by skill window.
    SkillBased,
    /// Any other name; asobi lets an Erlang module implement it. The engine decides what to
    /// do with it (falling back to `Fill` is reasonable).
    Custom(String),
}

/// How per-tick state reaches players.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateStrategy {
    /// `get_state(player_id, state)` once per player per tick (default).
    PerPlayer,
    /// `get_state(state)` once per tick, the same bytes sent to everyone.
    Shared,
}

/// Which transport carries state frames, when the client negotiated a choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateTransport {
    /// The reliable stream (WebSocket or the QUIC stream). Default.
    Stream,
    /// QUIC datagrams: a lost state frame is superseded by the next one.
    Datagram,
}

/// Whether the script is a match script or a world script (`game_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GameType {
    /// `tick(state)` and friends (default).
    Match,
    /// A world script (`zone_tick`, `post_tick`, ...); not run by [`crate::MatchVm`].
    World,
}

/// Sign-up posture a game declares (`registration` global).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Registration {
    /// Anyone may sign up (default).
    #[default]
    Open,
    /// Only through OAuth/OIDC providers.
    OauthOnly,
    /// No new players at all.
    Closed,
}

/// The shape of one game mode. Applies to matches created after it was read; a hot reload
/// replaces code in live matches but not their shape.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ModeConfig {
    /// `match_size` (required): players needed to start a match.
    pub match_size: u32,
    /// `max_players` (default `match_size`).
    pub max_players: u32,
    /// `min_players` (default `match_size`).
    pub min_players: u32,
    /// `strategy` (default `"fill"`).
    pub strategy: Strategy,
    /// `tick_rate` in milliseconds (default 100 for matches, 50 for worlds).
    pub tick_rate_ms: u64,
    /// `state_strategy` (`"per_player"` default, or `"shared"`).
    pub state_strategy: StateStrategy,
    /// `listed` (default false): whether matches of this mode appear in `match.list`.
    pub listed: bool,
    /// `quick_play` (default false, as in asobi): whether `match.find_or_create` may be used
    /// for this mode at all; a ranked mode stays behind the matchmaker unless it opts in.
    pub quick_play: bool,
    /// `bots` as declared (e.g. `{"script": "bots/ai.lua"}`), `null` when absent.
    pub bots: serde_json::Value,
    /// `state_transport` (`"stream"` default, or `"datagram"`).
    pub state_transport: StateTransport,
    /// `max_wait_seconds`: matchmaker ticket expiry for this mode, when set.
    pub max_wait_seconds: Option<u64>,
    /// `skill_window`: initial skill difference allowed (skill_based).
    pub skill_window: Option<u32>,
    /// `skill_expand_rate`: window growth per 5 seconds (skill_based).
    pub skill_expand_rate: Option<u32>,
    /// `game_type` (`"match"` default, or `"world"`).
    pub game_type: GameType,
    /// `reconnect = { grace_period = ms }`: how long a dropped player keeps their seat. Absent,
    /// as in asobi, a disconnect is a leave (unless the server sets a default grace).
    pub reconnect_grace_ms: Option<u64>,
    /// World/zone globals asobi documents, passed through as JSON: `lazy_zones`,
    /// `zone_idle_timeout`, `max_active_zones`, `spatial_grid_cell_size`,
    /// `cold_tick_divisor`, `empty_grace_ms`, `player_ttl_ms`.
    pub extra: Map<String, serde_json::Value>,
}

/// The callbacks a match script is expected to define. `leave` and `get_state` are optional:
/// without `get_state` every player receives the whole state.
pub(crate) const MATCH_CALLBACKS: &[&str] = &["init", "join", "handle_input", "tick"];

const EXTRA_KEYS: &[&str] = &[
    "vote_templates",
    "veto_tokens_per_player",
    "frustration_bonus",
    "lazy_zones",
    "zone_idle_timeout",
    "max_active_zones",
    "spatial_grid_cell_size",
    "cold_tick_divisor",
    "empty_grace_ms",
    "player_ttl_ms",
    "teams",
    "party_rating",
    "grid_size",
    "zone_size",
    "view_radius",
    "broadcast_interval",
    "persistent",
    "border_band",
    "listed",
    "quick_play",
    "snapshot_interval",
    "world_shards",
];

/// Reads globals of one script, recording findings against `file`.
pub(crate) struct GlobalReader<'a> {
    pub(crate) globals: &'a Table,
    pub(crate) marks: &'a Marks,
    pub(crate) file: &'a str,
    pub(crate) diagnostics: &'a mut Vec<Diagnostic>,
}

impl GlobalReader<'_> {
    fn get(&self, name: &str) -> Value {
        self.globals.raw_get::<Value>(name).unwrap_or(Value::Nil)
    }

    fn warn(&mut self, message: String) {
        self.diagnostics
            .push(Diagnostic::warning(self.file, None, message));
    }

    /// A number truncated to an integer, like asobi's `read_global_int`.
    fn int(&mut self, name: &str) -> Option<i64> {
        match self.get(name) {
            Value::Nil => None,
            Value::Integer(i) => Some(i),
            Value::Number(n) if n.is_finite() => Some(n.trunc() as i64),
            other => {
                self.warn(format!(
                    "`{name}` must be a number, got {}; ignored",
                    other.type_name()
                ));
                None
            }
        }
    }

    fn positive(&mut self, name: &str) -> Option<u64> {
        match self.int(name) {
            Some(n) if n > 0 => Some(n as u64),
            Some(n) => {
                self.warn(format!("`{name}` must be positive, got {n}; ignored"));
                None
            }
            None => None,
        }
    }

    fn positive_u32(&mut self, name: &str) -> Option<u32> {
        self.positive(name)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    }

    pub(crate) fn bool(&mut self, name: &str) -> Option<bool> {
        match self.get(name) {
            Value::Nil => None,
            Value::Boolean(b) => Some(b),
            other => {
                self.warn(format!(
                    "`{name}` must be a boolean, got {}; ignored",
                    other.type_name()
                ));
                None
            }
        }
    }

    pub(crate) fn string(&mut self, name: &str) -> Option<String> {
        match self.get(name) {
            Value::Nil => None,
            Value::String(s) => Some(s.to_string_lossy()),
            other => {
                self.warn(format!(
                    "`{name}` must be a string, got {}; ignored",
                    other.type_name()
                ));
                None
            }
        }
    }

    fn json(&mut self, name: &str) -> Option<serde_json::Value> {
        match self.get(name) {
            Value::Nil => None,
            other => match json::to_json(&other, self.marks) {
                Ok(v) => Some(v),
                Err(e) => {
                    self.warn(format!(
                        "`{name}` cannot be represented as JSON ({e}); ignored"
                    ));
                    None
                }
            },
        }
    }

    pub(crate) fn registration(&mut self) -> Option<Registration> {
        let value = self.string("registration")?;
        match value.as_str() {
            "open" => Some(Registration::Open),
            "oauth_only" => Some(Registration::OauthOnly),
            "closed" => Some(Registration::Closed),
            other => {
                self.warn(format!(
                    "`registration` must be \"open\", \"oauth_only\" or \"closed\", got {other:?}; ignored"
                ));
                None
            }
        }
    }

    /// Reads a mode's configuration; `None` (with an error diagnostic) when `match_size` is
    /// missing or invalid.
    pub(crate) fn mode_config(&mut self) -> Option<ModeConfig> {
        let match_size = match self.get("match_size") {
            Value::Nil => {
                self.diagnostics.push(Diagnostic::error(
                    self.file,
                    None,
                    "match_size global is required",
                ));
                return None;
            }
            _ => match self.int("match_size") {
                Some(n) if n > 0 => u32::try_from(n).unwrap_or(u32::MAX),
                _ => {
                    self.diagnostics.push(Diagnostic::error(
                        self.file,
                        None,
                        "match_size must be a positive integer",
                    ));
                    return None;
                }
            },
        };
        let game_type = match self.string("game_type").as_deref() {
            None | Some("match") => GameType::Match,
            Some("world") => GameType::World,
            Some(other) => {
                self.warn(format!(
                    "`game_type` must be \"match\" or \"world\", got {other:?}; ignored"
                ));
                GameType::Match
            }
        };
        let strategy = match self.string("strategy").as_deref() {
            None | Some("fill") => Strategy::Fill,
            Some("skill_based") => Strategy::SkillBased,
            Some(other) => Strategy::Custom(other.to_owned()),
        };
        let state_strategy = match self.string("state_strategy").as_deref() {
            None | Some("per_player") => StateStrategy::PerPlayer,
            Some("shared") => StateStrategy::Shared,
            Some(other) => {
                self.warn(format!(
                    "`state_strategy` must be \"per_player\" or \"shared\", got {other:?}; ignored"
                ));
                StateStrategy::PerPlayer
            }
        };
        let state_transport = match self.string("state_transport").as_deref() {
            None | Some("stream") => StateTransport::Stream,
            Some("datagram") => StateTransport::Datagram,
            Some(other) => {
                self.warn(format!(
                    "`state_transport` must be \"stream\" or \"datagram\", got {other:?}; ignored"
                ));
                StateTransport::Stream
            }
        };
        let default_tick = match game_type {
            GameType::Match => 100,
            GameType::World => 50,
        };
        let mut extra = Map::new();
        for key in EXTRA_KEYS {
            if let Some(v) = self.json(key) {
                extra.insert((*key).to_owned(), v);
            }
        }
        let reconnect_grace_ms = self.reconnect_grace();
        let config = ModeConfig {
            match_size,
            max_players: self.positive_u32("max_players").unwrap_or(match_size),
            min_players: self.positive_u32("min_players").unwrap_or(match_size),
            strategy,
            tick_rate_ms: self.positive("tick_rate").unwrap_or(default_tick),
            state_strategy,
            listed: self.bool("listed").unwrap_or(false),
            quick_play: self.bool("quick_play").unwrap_or(false),
            bots: self.json("bots").unwrap_or(serde_json::Value::Null),
            state_transport,
            max_wait_seconds: self.positive("max_wait_seconds"),
            skill_window: self.positive_u32("skill_window"),
            skill_expand_rate: self.positive_u32("skill_expand_rate"),
            game_type,
            reconnect_grace_ms,
            extra,
        };
        if game_type == GameType::Match {
            for callback in MATCH_CALLBACKS {
                if !matches!(self.get(callback), Value::Function(_)) {
                    self.warn(format!("callback `{callback}` is not defined"));
                }
            }
        }
        Some(config)
    }

    /// asobi's reconnect policy table; only `grace_period` changes what the engine does (its
    /// other keys describe what a game does with a player in grace, which the script decides).
    fn reconnect_grace(&mut self) -> Option<u64> {
        let policy = self.json("reconnect")?;
        match policy
            .get("grace_period")
            .and_then(serde_json::Value::as_u64)
        {
            Some(ms) if ms > 0 => Some(ms),
            _ => {
                self.warn(
                    "`reconnect` needs `grace_period`, a positive number of milliseconds; ignored"
                        .to_owned(),
                );
                None
            }
        }
    }
}
