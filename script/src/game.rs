//! A game directory compiled into modes: [`Game::load`] and [`check`].
//!
//! Every `.lua` file under the directory is compiled at load time into a module table, so
//! `require` never touches the file system from a VM. Mode scripts are then run once in a
//! throw-away sandbox to read their configuration globals. Loading happens off the shards
//! (at start-up and in the watcher thread); the result is immutable and shared by `Arc`.

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use mlua::{ChunkMode, Lua, LuaOptions, MultiValue, StdLib, Value};

use crate::api::{ModuleScope, NullHost};
use crate::bot::{self, BotScript};
use crate::budget::Budgets;
use crate::config::{GlobalReader, ModeConfig, Registration};
use crate::error::{parse_lua_message, CallError, Diagnostic, LoadError, Severity};
use crate::sandbox::Sandbox;

/// Files deeper than this below the game directory are ignored.
const MAX_DIR_DEPTH: usize = 16;
/// More `.lua` files than this is a mistake (a mounted home directory), not a game.
const MAX_FILES: usize = 4096;
/// A single script larger than this is refused.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Longest mode name (asobi's matchmaker bound).
const MAX_MODE_NAME: usize = 64;

/// Every compiled `.lua` file of a game, keyed by its path relative to the game directory
/// with `/` separators (`"arena/physics.lua"`).
pub(crate) struct GameCode {
    pub(crate) files: BTreeMap<String, Arc<[u8]>>,
}

/// A loaded game: its modes, compiled and configured.
#[derive(Debug)]
#[non_exhaustive]
pub struct Game {
    /// Increases by one on every successful reload published by the [`crate::Watcher`]
    /// (a fresh [`Game::load`] is version 1).
    pub version: u64,
    /// The game directory.
    pub dir: PathBuf,
    /// Modes by name (`"default"` for a single `match.lua`).
    pub modes: BTreeMap<String, Arc<CompiledMode>>,
    /// `guest_auth` (game-wide; from `config.lua`, or `match.lua` for a single-mode game).
    pub guest_auth: bool,
    /// `registration` (game-wide, like `guest_auth`).
    pub registration: Registration,
    /// Non-fatal findings (missing callbacks, ignored globals).
    pub warnings: Vec<Diagnostic>,
    /// The game's RPCs (`rpc.lua`), when it declares any.
    pub rpc: Option<Arc<crate::rpc::RpcScript>>,
    /// The game's extensions (`extensions/*.lua`).
    pub extensions: Arc<crate::ext::Extensions>,
    pub(crate) fingerprint: u64,
}

/// One mode: its script compiled, with the game's module table, and its configuration.
#[non_exhaustive]
pub struct CompiledMode {
    /// Mode name.
    pub name: String,
    /// The mode script, relative to the game directory.
    pub file: PathBuf,
    /// The shape declared by the script's globals.
    pub config: ModeConfig,
    /// The [`Game::version`] this was compiled in; reported by [`crate::MatchVm::code_version`].
    pub version: u64,
    /// The bot AI script from `bots.script`, when declared, found and loadable.
    pub bot: Option<BotScript>,
    pub(crate) main: Arc<[u8]>,
    pub(crate) scope: ModuleScope,
    /// `game.<namespace>` of the game's extensions, installed on every (re)load.
    pub(crate) bindings: Arc<crate::ext::Bindings>,
}

impl fmt::Debug for CompiledMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledMode")
            .field("name", &self.name)
            .field("file", &self.file)
            .field("config", &self.config)
            .field("version", &self.version)
            .field("bot", &self.bot)
            .finish_non_exhaustive()
    }
}

impl Game {
    /// Loads and compiles the game in `dir` (version 1). Fails if any script does not
    /// compile, a mode script fails to run, or a mode is misdeclared; the error carries every
    /// finding with file and line.
    pub fn load(dir: &Path) -> Result<Game, LoadError> {
        Self::load_versioned(dir, 1)
    }

    pub(crate) fn load_versioned(dir: &Path, version: u64) -> Result<Game, LoadError> {
        let (game, diagnostics) = analyze(dir, version)?;
        match game {
            Some(game) => {
                for warning in &game.warnings {
                    tracing::warn!(file = %warning.file.display(), line = warning.line, "{}", warning.message);
                }
                Ok(game)
            }
            None => Err(LoadError::Invalid { diagnostics }),
        }
    }

    /// The mode called `name`.
    pub fn mode(&self, name: &str) -> Option<&Arc<CompiledMode>> {
        self.modes.get(name)
    }
}

/// Checks every script of the game in `dir` and returns all findings (errors and warnings),
/// in file order. Empty means the game loads cleanly. Backs `asobi check [game-dir]`.
pub fn check(dir: &Path) -> Vec<Diagnostic> {
    match analyze(dir, 0) {
        Ok((_, diagnostics)) => diagnostics,
        Err(e) => e.diagnostics(),
    }
}

fn io_error(path: &Path, source: std::io::Error) -> LoadError {
    LoadError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `.lua` files as (path relative to the game directory, path on disk).
type ScriptFiles = Vec<(String, PathBuf)>;

/// Lists `.lua` files below `root` (relative paths with `/`), skipping dot-entries and
/// following symlinks only when they resolve inside the game directory.
fn walk(root: &Path) -> Result<(ScriptFiles, Vec<Diagnostic>), LoadError> {
    let canonical_root = fs::canonicalize(root).map_err(|e| io_error(root, e))?;
    let mut files = Vec::new();
    let mut diagnostics = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new(), 0usize)];
    while let Some((dir, prefix, depth)) = stack.pop() {
        let entries = fs::read_dir(&dir).map_err(|e| io_error(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&dir, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                diagnostics.push(Diagnostic::warning(
                    entry.path(),
                    None,
                    "non-UTF-8 file name; ignored",
                ));
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let rel = format!("{prefix}{name}");
            let mut meta = fs::symlink_metadata(&path).map_err(|e| io_error(&path, e))?;
            if meta.file_type().is_symlink() {
                match fs::canonicalize(&path) {
                    Ok(target) if target.starts_with(&canonical_root) => {
                        meta = fs::metadata(&path).map_err(|e| io_error(&path, e))?;
                    }
                    _ => {
                        diagnostics.push(Diagnostic::warning(
                            rel,
                            None,
                            "symlink leading outside the game directory; ignored",
                        ));
                        continue;
                    }
                }
            }
            if meta.is_dir() {
                if depth + 1 < MAX_DIR_DEPTH {
                    stack.push((path, format!("{rel}/"), depth + 1));
                }
            } else if meta.is_file() && name.ends_with(".lua") {
                if meta.len() > MAX_FILE_BYTES {
                    diagnostics.push(Diagnostic::error(rel, None, "script is larger than 4 MiB"));
                    continue;
                }
                if files.len() >= MAX_FILES {
                    diagnostics.push(Diagnostic::error(
                        rel,
                        None,
                        "more than 4096 scripts in the game directory",
                    ));
                    break;
                }
                files.push((rel, path));
            }
        }
    }
    files.sort();
    Ok((files, diagnostics))
}

/// Compiles every file; returns the module table, a fingerprint of the sources, findings.
fn compile(files: &[(String, PathBuf)]) -> Result<(GameCode, u64, Vec<Diagnostic>), LoadError> {
    let lua = Lua::new_with(StdLib::NONE, LuaOptions::new())
        .map_err(|e| io_error(Path::new("<lua>"), std::io::Error::other(e.to_string())))?;
    let mut hasher = DefaultHasher::new();
    let mut code = BTreeMap::new();
    let mut diagnostics = Vec::new();
    for (rel, path) in files {
        let source = fs::read(path).map_err(|e| io_error(path, e))?;
        rel.hash(&mut hasher);
        source.hash(&mut hasher);
        // Text mode: a `.lua` file holding bytecode must not be loaded as bytecode.
        let chunk = lua
            .load(&source[..])
            .set_name(format!("@{rel}"))
            .set_mode(ChunkMode::Text);
        match chunk.into_function() {
            Ok(func) => {
                code.insert(rel.clone(), Arc::from(func.dump(false)));
            }
            Err(e) => {
                let raw = match &e {
                    mlua::Error::SyntaxError { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                let (_, line, message) = parse_lua_message(&raw);
                diagnostics.push(Diagnostic::error(rel.as_str(), line, message));
            }
        }
    }
    Ok((GameCode { files: code }, hasher.finish(), diagnostics))
}

/// Normalises a manifest path (`"./arena/match.lua"`) to a key of the module table.
pub(crate) fn normalize(script: &str) -> Option<String> {
    let path = Path::new(script);
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(p) => parts.push(p.to_str()?.to_owned()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(parts.join("/"))
}

fn call_error_diagnostic(file: &str, e: &CallError) -> Diagnostic {
    match e {
        CallError::Lua {
            file: Some(f),
            line,
            message,
            ..
        } => Diagnostic::error(f.as_str(), *line, message.clone()),
        other => Diagnostic::error(file, None, other.to_string()),
    }
}

/// Runs `rel` in a fresh sandbox and hands back the sandbox (for reading globals) and the
/// chunk's return values.
fn probe(
    code: &Arc<GameCode>,
    rel: &str,
    budgets: &Budgets,
) -> Result<(Sandbox, MultiValue), Diagnostic> {
    let sandbox = Sandbox::new(budgets)
        .map_err(|e| Diagnostic::error(rel, None, format!("creating a Lua state: {e}")))?;
    let dir = match rel.rfind('/') {
        Some(i) => rel[..=i].to_owned(),
        None => String::new(),
    };
    *sandbox.shared.scope.borrow_mut() = Some(ModuleScope {
        code: code.clone(),
        dir,
    });
    let bytecode = code
        .files
        .get(rel)
        .ok_or_else(|| Diagnostic::error(rel, None, "script not found in the game directory"))?;
    let func = sandbox
        .load_bytecode(bytecode)
        .map_err(|e| Diagnostic::error(rel, None, e.to_string()))?;
    let result = sandbox.run("load", budgets.allowance(budgets.limits.init), func, |_| {
        Ok(MultiValue::new())
    });
    sandbox.shared.flush(&mut NullHost);
    match result {
        Ok(values) => Ok((sandbox, values)),
        Err(e) => Err(call_error_diagnostic(rel, &e)),
    }
}

struct Manifest {
    modes: Vec<(String, String)>,
    guest_auth: Option<bool>,
    registration: Option<Registration>,
}

fn read_manifest(
    code: &Arc<GameCode>,
    budgets: &Budgets,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Manifest> {
    const FILE: &str = "config.lua";
    let (sandbox, values) = match probe(code, FILE, budgets) {
        Ok(ok) => ok,
        Err(d) => {
            diagnostics.push(d);
            return None;
        }
    };
    let Some(Value::Table(table)) = values.into_iter().next() else {
        diagnostics.push(Diagnostic::error(
            FILE,
            None,
            "config.lua must return a table of mode_name = \"script.lua\"",
        ));
        return None;
    };
    let globals = sandbox.globals().clone();
    let mut reader = GlobalReader {
        globals: &globals,
        marks: &sandbox.shared.marks,
        file: FILE,
        diagnostics,
    };
    let mut manifest = Manifest {
        modes: Vec::new(),
        guest_auth: reader.bool("guest_auth"),
        registration: reader.registration(),
    };
    let mut settings = BTreeMap::new();
    let pairs: Vec<(Value, Value)> = table
        .pairs::<Value, Value>()
        .filter_map(Result::ok)
        .collect();
    for (k, v) in pairs {
        let name = match &k {
            Value::String(s) => s.to_string_lossy(),
            other => {
                diagnostics.push(Diagnostic::error(
                    FILE,
                    None,
                    format!("mode names must be strings, got {}", other.type_name()),
                ));
                continue;
            }
        };
        if name == "guest_auth" || name == "registration" {
            settings.insert(name, v);
            continue;
        }
        match v {
            Value::String(script) => {
                if name.is_empty() || name.len() > MAX_MODE_NAME {
                    diagnostics.push(Diagnostic::error(
                        FILE,
                        None,
                        format!("mode name {name:?} must be 1-64 bytes"),
                    ));
                    continue;
                }
                manifest.modes.push((name, script.to_string_lossy()));
            }
            other => diagnostics.push(Diagnostic::error(
                FILE,
                None,
                format!(
                    "mode {name:?}: value must be a script path string, got {}",
                    other.type_name()
                ),
            )),
        }
    }
    // Settings may also sit in the returned table; read them with the same rules.
    if !settings.is_empty() {
        let table = sandbox.lua.create_table().ok()?;
        for (k, v) in settings {
            let _ = table.raw_set(k, v);
        }
        let mut reader = GlobalReader {
            globals: &table,
            marks: &sandbox.shared.marks,
            file: FILE,
            diagnostics,
        };
        manifest.guest_auth = reader.bool("guest_auth").or(manifest.guest_auth);
        manifest.registration = reader.registration().or(manifest.registration);
    }
    manifest.modes.sort();
    Some(manifest)
}

fn analyze(dir: &Path, version: u64) -> Result<(Option<Game>, Vec<Diagnostic>), LoadError> {
    let budgets = Budgets::default();
    let (files, mut diagnostics) = walk(dir)?;
    let has = |name: &str| files.iter().any(|(rel, _)| rel == name);
    let (has_config, has_match) = (has("config.lua"), has("match.lua"));
    if !has_config && !has_match {
        return Err(LoadError::NoGame {
            dir: dir.to_owned(),
        });
    }
    let (code, fingerprint, compile_diagnostics) = compile(&files)?;
    let syntax_errors = !compile_diagnostics.is_empty();
    diagnostics.extend(compile_diagnostics);
    if syntax_errors {
        // Running modes now would only add "module not found" echoes of these.
        return Ok((None, diagnostics));
    }
    let code = Arc::new(code);

    let manifest = if has_config {
        read_manifest(&code, &budgets, &mut diagnostics)
    } else {
        Some(Manifest {
            modes: vec![("default".to_owned(), "match.lua".to_owned())],
            guest_auth: None,
            registration: None,
        })
    };

    let extensions = crate::ext::resolve(&code, version, &budgets, &mut diagnostics);
    let mut modes = BTreeMap::new();
    let mut guest_auth = manifest.as_ref().and_then(|m| m.guest_auth);
    let mut registration = manifest.as_ref().and_then(|m| m.registration);
    for (name, script) in manifest.map(|m| m.modes).unwrap_or_default() {
        let Some(rel) = normalize(&script) else {
            diagnostics.push(Diagnostic::error(
                "config.lua",
                None,
                format!("mode {name:?}: invalid script path {script:?}"),
            ));
            continue;
        };
        if !files.iter().any(|(f, _)| *f == rel) {
            diagnostics.push(Diagnostic::error(
                "config.lua",
                None,
                format!("mode {name:?}: script {rel:?} not found"),
            ));
            continue;
        }
        let (sandbox, _) = match probe(&code, &rel, &budgets) {
            Ok(ok) => ok,
            Err(d) => {
                diagnostics.push(d);
                continue;
            }
        };
        let globals = sandbox.globals().clone();
        let mut reader = GlobalReader {
            globals: &globals,
            marks: &sandbox.shared.marks,
            file: &rel,
            diagnostics: &mut diagnostics,
        };
        let Some(config) = reader.mode_config() else {
            continue;
        };
        if !has_config {
            guest_auth = reader.bool("guest_auth");
            registration = reader.registration();
        }
        let scope = ModuleScope {
            code: code.clone(),
            dir: rel
                .rfind('/')
                .map(|i| rel[..=i].to_owned())
                .unwrap_or_default(),
        };
        let Some(main) = code.files.get(&rel).cloned() else {
            continue; // unreachable in practice: every listed file compiled
        };
        let bot = bot::resolve(&code, &rel, &config.bots, &budgets, &mut diagnostics);
        modes.insert(
            name.clone(),
            Arc::new(CompiledMode {
                name,
                file: PathBuf::from(&rel),
                config,
                version,
                bot,
                main,
                scope,
                bindings: extensions.bindings.clone(),
            }),
        );
    }

    let rpc = crate::rpc::resolve(
        &code,
        version,
        &budgets,
        &extensions.bindings,
        &mut diagnostics,
    );
    if let Some(rpc) = &rpc {
        for method in &rpc.methods {
            if let Some((ext, _)) = extensions.rpc(method) {
                diagnostics.push(Diagnostic::error(
                    crate::rpc::RPC_FILE,
                    None,
                    format!("rpc method {method:?} is also declared by {}", ext.file),
                ));
            }
        }
    }
    let failed = diagnostics.iter().any(|d| d.severity == Severity::Error);
    if failed {
        return Ok((None, diagnostics));
    }
    let warnings = diagnostics.clone();
    let game = Game {
        version,
        dir: dir.to_owned(),
        modes,
        guest_auth: guest_auth.unwrap_or(false),
        registration: registration.unwrap_or_default(),
        warnings,
        rpc,
        extensions: Arc::new(extensions),
        fingerprint,
    };
    Ok((Some(game), diagnostics))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_manifest_paths() {
        assert_eq!(
            normalize("arena/match.lua").as_deref(),
            Some("arena/match.lua")
        );
        assert_eq!(
            normalize("./arena/match.lua").as_deref(),
            Some("arena/match.lua")
        );
        assert_eq!(normalize("../x.lua"), None);
        assert_eq!(normalize("/etc/x.lua"), None);
        assert_eq!(normalize(""), None);
    }
}
