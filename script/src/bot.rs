//! Bot AI scripts: `think(bot_id, state)` returns the input a bot sends.
//!
//! A mode opts in with `bots = { script = "bots/chaser.lua" }`; the script is resolved next
//! to the mode script and compiled with the game. It runs in the same sandbox as a match
//! script but without the `game` table (asobi gives bots no API), under the same budgets.
//! What a bot sees is the state as broadcast to players; spawning bots, queue fill and the
//! built-in fallback AI belong to the engine.

use std::path::PathBuf;
use std::sync::Arc;

use mlua::{IntoLuaMulti, MultiValue, Value};

use crate::api::{ModuleScope, NullHost};
use crate::budget::{Budgets, SETUP_FACTOR};
use crate::error::{CallError, Diagnostic};
use crate::game::{normalize, GameCode};
use crate::json;
use crate::sandbox::Sandbox;

/// Names used when the bot script declares none (asobi's defaults).
pub const DEFAULT_BOT_NAMES: &[&str] = &["Spark", "Blitz", "Volt", "Neon", "Pulse"];

/// A mode's bot script, compiled.
#[derive(Clone)]
#[non_exhaustive]
pub struct BotScript {
    /// The script, relative to the game directory.
    pub file: PathBuf,
    /// The script's `names` global (display names; bot ids are `bot_<name>`), or
    /// [`DEFAULT_BOT_NAMES`].
    pub names: Vec<String>,
    pub(crate) main: Arc<[u8]>,
    pub(crate) scope: ModuleScope,
}

impl std::fmt::Debug for BotScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotScript")
            .field("file", &self.file)
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

fn dir_of(rel: &str) -> String {
    rel.rfind('/')
        .map(|i| rel[..=i].to_owned())
        .unwrap_or_default()
}

/// Consecutive `think` overruns after which a bot falls back to the default AI: a bot's script
/// costs its shard CPU and nothing depends on its own moves, so it is not given a match
/// script's patience.
pub const MAX_BOT_OVERRUNS: u32 = 3;

/// Runs a bot script's chunk in a fresh bot sandbox.
fn bot_sandbox(main: &[u8], scope: &ModuleScope, budgets: &Budgets) -> Result<Sandbox, CallError> {
    let sandbox = Sandbox::new(budgets).map_err(|e| crate::sandbox::classify("load", None, &e))?;
    let _ = sandbox.globals().raw_set("game", Value::Nil);
    *sandbox.shared.scope.borrow_mut() = Some(scope.clone());
    let func = sandbox
        .load_bytecode(main)
        .map_err(|e| crate::sandbox::classify("load", None, &e))?;
    let result = sandbox.run("load", budgets.scaled(SETUP_FACTOR), func, |_| {
        Ok(MultiValue::new())
    });
    sandbox.shared.flush(&mut NullHost);
    result.map(|_| sandbox)
}

/// Resolves and probes the bot script a mode declares. Problems are warnings: asobi falls
/// back to its built-in AI rather than refusing the game.
pub(crate) fn resolve(
    code: &Arc<GameCode>,
    mode_file: &str,
    bots: &serde_json::Value,
    budgets: &Budgets,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<BotScript> {
    // `enabled` governs queue fill only (asobi): a mode with fill off still runs its script for
    // the bots `game.bots.add` places.
    let script = bots.get("script")?.as_str()?;
    let Some(rel) = normalize(&format!("{}{script}", dir_of(mode_file))) else {
        diagnostics.push(Diagnostic::warning(
            mode_file,
            None,
            format!("bots.script {script:?} leaves the game directory; bots use the default AI"),
        ));
        return None;
    };
    let Some(main) = code.files.get(&rel).cloned() else {
        diagnostics.push(Diagnostic::warning(
            mode_file,
            None,
            format!("bots.script {rel:?} not found; bots use the default AI"),
        ));
        return None;
    };
    let scope = ModuleScope {
        code: code.clone(),
        dir: dir_of(&rel),
    };
    let sandbox = match bot_sandbox(&main, &scope, budgets) {
        Ok(sandbox) => sandbox,
        Err(e) => {
            let (file, line) = match &e {
                CallError::Lua {
                    file: Some(f),
                    line,
                    ..
                } => (f.clone(), *line),
                _ => (rel.clone(), None),
            };
            diagnostics.push(Diagnostic::warning(
                file,
                line,
                format!("bot script failed to load ({e}); bots use the default AI"),
            ));
            return None;
        }
    };
    let names: Vec<String> = match sandbox.globals().raw_get::<Value>("names") {
        Ok(Value::Table(t)) => t
            .sequence_values::<Value>()
            .filter_map(|v| match v {
                Ok(Value::String(s)) => Some(s.to_string_lossy()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let names = if names.is_empty() {
        DEFAULT_BOT_NAMES.iter().map(|n| (*n).to_owned()).collect()
    } else {
        names
    };
    if sandbox.function("think").is_none() {
        diagnostics.push(Diagnostic::warning(
            rel.as_str(),
            None,
            "bot script does not define `think`",
        ));
    }
    Some(BotScript {
        file: PathBuf::from(&rel),
        names,
        main,
        scope,
    })
}

/// One bot's VM. Not `Send`, like [`crate::MatchVm`].
pub struct BotVm {
    sandbox: Sandbox,
    file: PathBuf,
    overruns: u32,
}

impl std::fmt::Debug for BotVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotVm")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl BotVm {
    pub(crate) fn start(script: &BotScript, budgets: &Budgets) -> Result<BotVm, CallError> {
        let sandbox = bot_sandbox(&script.main, &script.scope, budgets)?;
        Ok(BotVm {
            sandbox,
            file: script.file.clone(),
            overruns: 0,
        })
    }

    /// `think(bot_id, state)`: the input to send for this bot (`{}` when it returns `nil`).
    /// `state` is the state as broadcast to players. On `Err` the engine uses its default AI
    /// for this turn.
    pub fn think(
        &mut self,
        bot_id: &str,
        state: &serde_json::Value,
    ) -> Result<serde_json::Value, CallError> {
        let func = self
            .sandbox
            .function("think")
            .ok_or(CallError::MissingCallback { callback: "think" })?;
        let shared = self.sandbox.shared.clone();
        let result = self.sandbox.run(
            "think",
            self.sandbox.shared.budgets.scaled(1),
            func,
            |lua| {
                let state = json::to_lua(lua, state, &shared.marks)?;
                (bot_id, state).into_lua_multi(lua)
            },
        );
        self.sandbox.shared.flush(&mut NullHost);
        match &result {
            Err(CallError::Budget { .. }) => self.overruns += 1,
            _ => self.overruns = 0,
        }
        let value = result?.into_iter().next().unwrap_or(Value::Nil);
        if value.is_nil() {
            return Ok(serde_json::json!({}));
        }
        json::to_json(&value, &shared.marks).map_err(|e| CallError::BadReturn {
            callback: "think",
            message: e.to_string(),
        })
    }

    /// Whether `think` overran its budget [`MAX_BOT_OVERRUNS`] times in a row (or fewer,
    /// when the budgets stop match scripts sooner); the engine should switch this bot to its
    /// default AI and drop the VM.
    pub fn failed(&self) -> bool {
        let limit = self
            .sandbox
            .shared
            .budgets
            .max_consecutive_overruns
            .min(MAX_BOT_OVERRUNS);
        self.overruns >= limit
    }
}
