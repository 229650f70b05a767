//! The Lua match runtime of asobi-rs.
//!
//! Owns everything between a game directory and a running match script: compiling the game
//! ([`Game::load`], [`check`]), the sandbox and its budgets ([`Budgets`]), a per-shard pool
//! of VMs ([`VmPool`]), the callbacks the engine drives ([`MatchVm`]), the `game.*` API whose
//! effects leave through the engine's [`Host`], hot reload ([`Watcher`],
//! [`MatchVm::reload`]) and bot AI scripts ([`BotVm`]). It touches no socket and no
//! database, and keeps no clock of its own beyond the wall-clock budget: the engine decides
//! when to tick.
//!
//! Scripts are asobi scripts, unchanged: same globals, same callbacks, same `game.*` calls.
//! The calls that need another service (`game.economy.*`, `game.storage.*`, leaderboards,
//! notifications, chat) suspend the callback and hand the engine a [`ServiceCall`]
//! ([`Call::Waiting`]); the engine answers through [`MatchVm::resume`] — with asobi's
//! `{"error": "..."}` shape for a service it does not have — and no shard ever blocks on
//! the database.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod api;
mod bot;
mod budget;
mod config;
mod error;
mod ext;
mod game;
mod json;
mod pattern;
mod pool;
mod rpc;
mod sandbox;
mod service;
mod strlib;
mod vm;
mod watcher;
mod world;

pub use api::{validate_event_name, Host, MAX_EVENT_NAME, MAX_PAYLOAD_BYTES, RESERVED_EVENTS};
pub use bot::{BotScript, BotVm, DEFAULT_BOT_NAMES, MAX_BOT_OVERRUNS};
pub use budget::{Budgets, CallbackLimits, SETUP_FACTOR};
pub use config::{GameType, ModeConfig, Registration, StateStrategy, StateTransport, Strategy};
pub use error::{BudgetKind, CallError, Diagnostic, LoadError, ScriptError, Severity};
pub use ext::{
    Bindings, ExtRoute, ExtScript, ExtVm, Extensions, Returned, RouteLookup, RouteMatch, Security,
    EXT_DIR, MAX_EXT_NAME, RESERVED_NAMES,
};
pub use game::{check, CompiledMode, Game};
pub use json::MAX_DEPTH as MAX_JSON_DEPTH;
pub use pool::VmPool;
pub use rpc::{RpcCode, RpcReply, RpcScript, RpcVm, MAX_METHOD, RPC_FILE};
pub use service::{Call, Resumed, ServiceCall, MAX_SERVICE_ARGS_BYTES};
pub use vm::{Envelope, JoinOutcome, MatchVm};
pub use watcher::Watcher;
pub use world::{
    GeneratedChunk, SpawnRequest, TerrainAccess, WorldVm, ZoneApply, ZoneBorder, ZoneCall,
    ZoneEffect, ZoneEntities, ZoneInput, ZoneStep, MAX_EFFECT_BYTES, MAX_EFFECT_SENDS,
    MAX_ZONE_ENTITIES,
};

#[cfg(test)]
mod tests {
    /// Compiled games are shared across shard threads by `Arc`.
    #[test]
    fn compiled_code_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<crate::Game>();
        assert_send_sync::<crate::CompiledMode>();
        assert_send_sync::<crate::ModeConfig>();
        assert_send_sync::<crate::Diagnostic>();
        assert_send_sync::<crate::CallError>();
    }
}
