//! The tournaments file: tournaments and seasons an operator declares, created at start.
//!
//! asobi creates tournaments through its ops plane; asobi-rs has none yet, so they are declared
//! in a JSON file: `ASOBI_TOURNAMENTS_FILE` if set, else `tournaments.json` in the game
//! directory, else none. Each entry is created once, by id (a restart, or an edited entry whose
//! id already exists, changes nothing stored: a running tournament's terms never move under its
//! entrants). A file that does not parse stops the server at start.
//!
//! ```json
//! { "tournaments": [{ "id": "weekly-cup-48", "name": "Weekly Cup", "leaderboard_id": "cup-48",
//!     "max_entries": 100, "entry_fee": {"currency": "gold", "amount": 50},
//!     "rewards": [{"rank": 1, "currency": "gold", "amount": 2000},
//!                 {"from": 2, "to": 10, "currency": "gold", "amount": 200}],
//!     "start_at": "2026-11-30T00:00:00Z", "end_at": "2026-12-07T00:00:00Z", "metadata": {} }],
//!   "seasons": [{ "id": "s1", "name": "Season 1", "boards": ["ranked"],
//!     "rewards": [{"rank": 1, "currency": "gems", "amount": 100}],
//!     "start_at": "2026-11-01T00:00:00Z", "end_at": "2027-02-01T00:00:00Z" }] }
//! ```
//!
//! Times are UTC text or unix milliseconds.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use asobi_rules::tournaments::{parse_time, Rewards};
use asobi_storage::{Season, Tournament};

/// The variable naming the tournaments file.
pub(crate) const TOURNAMENTS_FILE_ENV: &str = "ASOBI_TOURNAMENTS_FILE";
/// The file looked for in the game directory when the variable is unset.
pub(crate) const DEFAULT_FILE: &str = "tournaments.json";
/// Longest id or name accepted.
pub(crate) const MAX_TEXT: usize = 128;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tournaments: Vec<TournamentFile>,
    #[serde(default)]
    seasons: Vec<SeasonFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TournamentFile {
    id: String,
    name: String,
    leaderboard_id: String,
    #[serde(default)]
    max_entries: Option<i64>,
    #[serde(default)]
    entry_fee: Option<Value>,
    #[serde(default)]
    rewards: Option<Value>,
    start_at: Value,
    end_at: Value,
    #[serde(default)]
    metadata: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeasonFile {
    id: String,
    name: String,
    boards: Vec<String>,
    #[serde(default)]
    rewards: Option<Value>,
    start_at: Value,
    end_at: Value,
}

/// What the file declares.
#[derive(Debug, Default)]
pub(crate) struct Setup {
    pub(crate) tournaments: Vec<Tournament>,
    pub(crate) seasons: Vec<Season>,
}

fn text(what: &str, v: &str) -> Result<(), String> {
    if v.is_empty() || v.len() > MAX_TEXT {
        return Err(format!("{what} must be 1 to {MAX_TEXT} bytes"));
    }
    Ok(())
}

fn window(id: &str, start: &Value, end: &Value) -> Result<(i64, i64), String> {
    let start = parse_time(start).ok_or(format!("{id}: start_at is not a time"))?;
    let end = parse_time(end).ok_or(format!("{id}: end_at is not a time"))?;
    if end <= start {
        return Err(format!("{id}: end_at must follow start_at"));
    }
    Ok((start, end))
}

/// Checks an entry fee: absent/`{}` (free) or `{"currency", "amount" > 0}`.
pub(crate) fn check_fee(fee: &Value) -> Result<(), String> {
    match fee {
        Value::Null => Ok(()),
        Value::Object(o) if o.is_empty() => Ok(()),
        Value::Object(o) => {
            let currency = o.get("currency").and_then(Value::as_str).unwrap_or("");
            text("entry_fee.currency", currency)?;
            let amount = o.get("amount").and_then(Value::as_i64).unwrap_or(0);
            if !(1..=asobi_rules::tournaments::MAX_REWARD).contains(&amount) {
                return Err("entry_fee.amount must be a positive integer".into());
            }
            if o.len() != 2 {
                return Err("entry_fee has only currency and amount".into());
            }
            Ok(())
        }
        _ => Err("entry_fee must be an object".into()),
    }
}

impl Setup {
    /// Reads the file for the game in `dir` (see the module notes).
    pub(crate) fn load(dir: &Path, now_ms: i64) -> Result<Setup, String> {
        let path = match std::env::var_os(TOURNAMENTS_FILE_ENV) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => {
                let p = dir.join(DEFAULT_FILE);
                if !p.exists() {
                    return Ok(Setup::default());
                }
                p
            }
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("tournaments file {}: {e}", path.display()))?;
        Setup::parse(&text, now_ms).map_err(|e| format!("tournaments file {}: {e}", path.display()))
    }

    /// One tournament in the file's shape (the ops plane creates them from the same JSON).
    pub(crate) fn one_tournament(v: Value, now_ms: i64) -> Result<Tournament, String> {
        let file = serde_json::json!({ "tournaments": [v] }).to_string();
        Self::parse(&file, now_ms)?
            .tournaments
            .pop()
            .ok_or_else(|| "no tournament".to_owned())
    }

    pub(crate) fn parse(text_in: &str, now_ms: i64) -> Result<Setup, String> {
        let file: File = serde_json::from_str(text_in).map_err(|e| e.to_string())?;
        let mut setup = Setup::default();
        for t in file.tournaments {
            text("tournament id", &t.id)?;
            text("tournament name", &t.name)?;
            text("leaderboard_id", &t.leaderboard_id)?;
            let (start_at, end_at) = window(&t.id, &t.start_at, &t.end_at)?;
            if t.max_entries.is_some_and(|m| m < 1) {
                return Err(format!("{}: max_entries must be at least 1", t.id));
            }
            let entry_fee = t.entry_fee.unwrap_or(Value::Object(Default::default()));
            check_fee(&entry_fee).map_err(|e| format!("{}: {e}", t.id))?;
            let rewards = t.rewards.unwrap_or(Value::Array(vec![]));
            Rewards::parse(&rewards).map_err(|e| format!("{}: {e}", t.id))?;
            let metadata = t.metadata.unwrap_or(Value::Object(Default::default()));
            if !metadata.is_object() {
                return Err(format!("{}: metadata must be an object", t.id));
            }
            if setup.tournaments.iter().any(|o| o.id == t.id) {
                return Err(format!("tournament {} is declared twice", t.id));
            }
            setup.tournaments.push(Tournament {
                id: t.id,
                name: t.name,
                leaderboard_id: t.leaderboard_id,
                max_entries: t.max_entries,
                entry_fee,
                rewards,
                status: "pending".into(),
                start_at,
                end_at,
                metadata,
                inserted_at: now_ms,
                settled_at: None,
                entrants: 0,
            });
        }
        for s in file.seasons {
            text("season id", &s.id)?;
            text("season name", &s.name)?;
            if s.boards.is_empty() {
                return Err(format!("season {}: boards is empty", s.id));
            }
            for b in &s.boards {
                text("season board", b)?;
            }
            let (start_at, end_at) = window(&s.id, &s.start_at, &s.end_at)?;
            let rewards = s.rewards.unwrap_or(Value::Array(vec![]));
            Rewards::parse(&rewards).map_err(|e| format!("season {}: {e}", s.id))?;
            if setup.seasons.iter().any(|o| o.id == s.id) {
                return Err(format!("season {} is declared twice", s.id));
            }
            setup.seasons.push(Season {
                id: s.id,
                name: s.name,
                boards: s.boards,
                rewards,
                start_at,
                end_at,
                inserted_at: now_ms,
                settled_at: None,
                reset_at: None,
            });
        }
        Ok(setup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let s = Setup::parse(
            r#"{"tournaments": [{"id": "c", "name": "Cup", "leaderboard_id": "b",
                "max_entries": 2, "entry_fee": {"currency": "gold", "amount": 5},
                "rewards": [{"rank": 1, "currency": "gold", "amount": 9}],
                "start_at": "2026-01-01T00:00:00Z", "end_at": 1767312000000}],
                "seasons": [{"id": "s", "name": "S", "boards": ["b"],
                "start_at": 0, "end_at": 10}]}"#,
            7,
        )
        .unwrap();
        assert_eq!(s.tournaments[0].start_at, 1_767_225_600_000);
        assert_eq!(s.tournaments[0].inserted_at, 7);
        assert_eq!(s.seasons[0].boards, ["b"]);
    }

    #[test]
    fn mistakes_stop_the_start() {
        let base = |extra: &str| {
            format!(
                r#"{{"tournaments": [{{"id": "c", "name": "Cup", "leaderboard_id": "b",
                "start_at": 0, "end_at": 10 {extra}}}]}}"#
            )
        };
        assert!(Setup::parse(&base(""), 0).is_ok());
        for bad in [
            r#", "max_entries": 0"#,
            r#", "entry_fee": {"currency": "gold", "amount": 0}"#,
            r#", "entry_fee": {"currency": "gold"}"#,
            r#", "rewards": [{"rank": 1, "currency": "gold", "amount": -1}]"#,
            r#", "metadata": []"#,
            r#", "colour": "red""#,
        ] {
            assert!(Setup::parse(&base(bad), 0).is_err(), "{bad}");
        }
        assert!(Setup::parse(
            r#"{"tournaments": [{"id": "c", "name": "Cup", "leaderboard_id": "b", "start_at": 10, "end_at": 10}]}"#,
            0
        )
        .is_err());
        assert!(Setup::parse(
            r#"{"seasons": [{"id": "s", "name": "S", "boards": [], "start_at": 0, "end_at": 1}]}"#,
            0
        )
        .is_err());
    }
}
