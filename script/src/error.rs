//! Typed errors and diagnostics of the script runtime.
//!
//! Three families, kept apart because the caller reacts differently to each:
//! [`LoadError`] (a game directory could not be turned into a [`crate::Game`]),
//! [`ScriptError`] (the runtime itself could not provide a VM) and [`CallError`]
//! (one call into script code did not complete).

use std::fmt;
use std::path::PathBuf;

/// How serious a [`Diagnostic`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Severity {
    /// The game cannot be loaded while this stands.
    Error,
    /// The game loads, but something is likely wrong (a missing callback, an ignored global).
    Warning,
}

/// One finding about one script file, as printed by `asobi check`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, relative to the game directory (`match.lua`, `arena/physics.lua`).
    pub file: PathBuf,
    /// 1-based line, when the finding points at one.
    pub line: Option<u32>,
    /// What is wrong, without the `file:line:` prefix.
    pub message: String,
    /// Whether this blocks loading.
    pub severity: Severity,
}

impl Diagnostic {
    pub(crate) fn error(
        file: impl Into<PathBuf>,
        line: Option<u32>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            line,
            message: message.into(),
            severity: Severity::Error,
        }
    }

    pub(crate) fn warning(
        file: impl Into<PathBuf>,
        line: Option<u32>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            line,
            message: message.into(),
            severity: Severity::Warning,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        let tag = match self.severity {
            Severity::Error => "",
            Severity::Warning => "warning: ",
        };
        write!(f, ": {tag}{}", self.message)
    }
}

/// A game directory could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The directory holds neither `config.lua` nor `match.lua`.
    #[error("{}: no config.lua or match.lua in the game directory", dir.display())]
    NoGame {
        /// The directory that was searched.
        dir: PathBuf,
    },
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// What was being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// One or more scripts failed to compile, to run, or declared an invalid mode.
    #[error("{}", summarize(diagnostics))]
    Invalid {
        /// Every finding, errors and warnings, in file order.
        diagnostics: Vec<Diagnostic>,
    },
}

impl LoadError {
    /// The findings as diagnostics (an I/O problem becomes one diagnostic without a line).
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            LoadError::Invalid { diagnostics } => diagnostics.clone(),
            LoadError::NoGame { dir } => vec![Diagnostic::error(
                dir.clone(),
                None,
                "no config.lua or match.lua in the game directory",
            )],
            LoadError::Io { path, source } => {
                vec![Diagnostic::error(path.clone(), None, source.to_string())]
            }
        }
    }
}

fn summarize(diagnostics: &[Diagnostic]) -> String {
    let mut errors = diagnostics.iter().filter(|d| d.severity == Severity::Error);
    match errors.next() {
        None => "invalid game".to_owned(),
        Some(first) => {
            let more = errors.count();
            if more == 0 {
                first.to_string()
            } else {
                format!("{first} (and {more} more)")
            }
        }
    }
}

/// The runtime could not provide a VM for a match.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScriptError {
    /// Creating or preparing a Lua state failed (usually out of memory).
    #[error("lua runtime: {0}")]
    Lua(#[from] mlua::Error),
    /// The mode's chunk failed when run in the fresh VM.
    #[error("loading the mode script: {0}")]
    Chunk(#[source] CallError),
    /// The file-system watcher could not be started.
    #[error("watching the game directory: {0}")]
    Watch(#[from] notify::Error),
    /// The watcher thread could not be spawned.
    #[error("spawning the watcher thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Which budget a callback ran out of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BudgetKind {
    /// The instruction count budget.
    Instructions,
    /// The wall-clock budget.
    WallTime,
    /// The VM's memory limit.
    Memory,
}

impl fmt::Display for BudgetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BudgetKind::Instructions => "instruction budget",
            BudgetKind::WallTime => "wall-clock budget",
            BudgetKind::Memory => "memory limit",
        })
    }
}

/// One call into script code did not complete normally.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The script raised an error (or a runtime error happened inside it).
    #[error("{}", lua_display(file, *line, message))]
    Lua {
        /// The callback that was running (`tick`, `handle_input`, ... or `load` for a chunk).
        callback: &'static str,
        /// The script file the error points at, as Lua reported it.
        file: Option<String>,
        /// The line in that file.
        line: Option<u32>,
        /// The message without the `file:line:` prefix and without the traceback.
        message: String,
    },
    /// The callback was aborted because it exceeded a budget.
    #[error("{callback}: aborted, exceeded the {kind}")]
    Budget {
        /// Which budget.
        kind: BudgetKind,
        /// The callback that was aborted.
        callback: &'static str,
    },
    /// The script does not define a callback the runtime needed to call.
    #[error("the script does not define `{callback}`")]
    MissingCallback {
        /// The callback name.
        callback: &'static str,
    },
    /// The callback returned something the runtime cannot use.
    #[error("{callback}: {message}")]
    BadReturn {
        /// The callback name.
        callback: &'static str,
        /// What was wrong with the returned value.
        message: String,
    },
    /// The VM has failed too often; the match must be finished with [`crate::MatchVm::finished`].
    #[error("the match script has failed too often and is stopped")]
    VmFailed,
    /// Misuse: a callback was called while another is suspended on a service call
    /// ([`crate::MatchVm::waiting`]); resume or abandon that one first.
    #[error("a callback is waiting for a service reply")]
    Waiting,
    /// Misuse: [`crate::MatchVm::resume`] or [`crate::MatchVm::abandon`] was called while
    /// no callback was waiting.
    #[error("no callback is waiting for a service reply")]
    NotWaiting,
}

fn lua_display(file: &Option<String>, line: Option<u32>, message: &str) -> String {
    match (file, line) {
        (Some(file), Some(line)) => format!("{file}:{line}: {message}"),
        (Some(file), None) => format!("{file}: {message}"),
        _ => message.to_owned(),
    }
}

impl CallError {
    /// The callback name this error belongs to, when it has one.
    pub fn callback(&self) -> Option<&'static str> {
        match self {
            CallError::Lua { callback, .. }
            | CallError::Budget { callback, .. }
            | CallError::MissingCallback { callback }
            | CallError::BadReturn { callback, .. } => Some(callback),
            CallError::VmFailed | CallError::Waiting | CallError::NotWaiting => None,
        }
    }
}

/// Longest error message kept from a script: messages can embed player input
/// (`error(input.text)`), and they travel into logs and results.
pub(crate) const MAX_MESSAGE_BYTES: usize = 1024;

fn capped(text: &str) -> String {
    if text.len() <= MAX_MESSAGE_BYTES {
        return text.to_owned();
    }
    let mut cut = MAX_MESSAGE_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

/// Splits a Lua error string (`"match.lua:12: attempt to ...\nstack traceback:..."`) into
/// file, line and message.
pub(crate) fn parse_lua_message(raw: &str) -> (Option<String>, Option<u32>, String) {
    let first = raw.lines().next().unwrap_or("").trim_end();
    // The first `:<digits>:` is the position; chunk names never contain that sequence in
    // practice, and messages that lack it (errors with a non-string value) are kept whole.
    let bytes = first.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b':' {
            let start = i + 1;
            let mut j = start;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            if j > start && j < bytes.len() && bytes[j] == b':' {
                let file = &first[..i];
                if let Ok(line) = first[start..j].parse::<u32>() {
                    let message = capped(first[j + 1..].trim_start());
                    return (Some(capped(file)), Some(line), message);
                }
            }
        }
        i += 1;
    }
    (None, None, capped(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_position_prefix() {
        let (f, l, m) =
            parse_lua_message("match.lua:12: attempt to index a nil value\nstack traceback:\n x");
        assert_eq!(f.as_deref(), Some("match.lua"));
        assert_eq!(l, Some(12));
        assert_eq!(m, "attempt to index a nil value");
    }

    #[test]
    fn keeps_messages_without_position() {
        let (f, l, m) = parse_lua_message("boom");
        assert_eq!((f, l, m.as_str()), (None, None, "boom"));
    }

    #[test]
    fn long_messages_are_capped() {
        let long = format!("match.lua:1: {}", "é".repeat(2000));
        let (_, _, m) = parse_lua_message(&long);
        assert!(m.len() <= MAX_MESSAGE_BYTES + 3);
        assert!(m.ends_with('…'));
    }

    #[test]
    fn nested_paths_and_colons_in_message() {
        let (f, l, m) = parse_lua_message("arena/rules.lua:3: bad value: 4:5");
        assert_eq!(f.as_deref(), Some("arena/rules.lua"));
        assert_eq!(l, Some(3));
        assert_eq!(m, "bad value: 4:5");
    }
}
