//! A vote's configuration as a script or a template gives it, checked once when the vote opens.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value};

/// asobi's default window (`window_ms`).
pub const DEFAULT_WINDOW: Duration = Duration::from_millis(15_000);
/// asobi's default minimum window of a `hybrid` vote (`min_window_ms`).
pub const DEFAULT_MIN_WINDOW: Duration = Duration::from_millis(5_000);
/// Longest window a vote may ask for: a vote lives in a running match, and a window of hours
/// would only pin its state (and the `Instant` arithmetic stays far from overflow).
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// asobi's default number of times a voter may change their ballot.
pub const DEFAULT_MAX_REVOTES: u32 = 3;
/// Most options one vote may offer; a ballot is checked against every one of them.
pub const MAX_OPTIONS: usize = 64;
/// Longest option, template or vote id (bytes).
pub const MAX_ID: usize = 128;

/// How ballots are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// One option per voter; most ballots wins.
    Plurality,
    /// A list of approved options per voter; most approvals wins.
    Approval,
    /// Like plurality, each ballot multiplied by its voter's weight (1 when absent).
    Weighted,
    /// A ranked list per voter; instant-runoff elimination until one option has a majority.
    Ranked,
}

impl Method {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Plurality => "plurality",
            Method::Approval => "approval",
            Method::Weighted => "weighted",
            Method::Ranked => "ranked",
        }
    }
}

/// When the window closes (`window_ms` is always the upper bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowType {
    /// When `window_ms` elapses.
    Fixed,
    /// When every eligible voter has voted.
    ReadyUp,
    /// As `ReadyUp`, but not before `min_window_ms`.
    Hybrid,
    /// Shrinks to [`super::ADAPTIVE_SHRINK`] once one option holds the supermajority.
    Adaptive,
}

/// Whether running tallies are sent while the vote is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// `vote_tally` after every cast.
    Live,
    /// Counts only in the result.
    Hidden,
}

/// How a tie between leading options is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TieBreaker {
    /// A seeded random pick among the tied options.
    Random,
    /// The tied option listed first in `options`.
    First,
}

/// One voter's ballot: one option, or a list (approval and ranked).
#[derive(Debug, Clone, PartialEq)]
pub enum Ballot {
    /// A single option id.
    One(String),
    /// Approved options, or preferences in order.
    Many(Vec<String>),
}

impl Ballot {
    /// Reads `option_id` as a client sends it: a string or a list of strings.
    pub fn from_json(v: &Value) -> Option<Ballot> {
        match v {
            Value::String(s) => Some(Ballot::One(s.clone())),
            Value::Array(items) if items.len() <= MAX_OPTIONS => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(Ballot::Many),
            _ => None,
        }
    }

    /// The ballot as JSON, as it is stored in `votes_cast`.
    pub fn to_json(&self) -> Value {
        match self {
            Ballot::One(s) => Value::String(s.clone()),
            Ballot::Many(l) => Value::Array(l.iter().cloned().map(Value::String).collect()),
        }
    }

    /// The options it names, in order.
    pub fn ids(&self) -> &[String] {
        match self {
            Ballot::One(s) => std::slice::from_ref(s),
            Ballot::Many(l) => l,
        }
    }

    /// Its first (or only) choice.
    pub fn first(&self) -> Option<&str> {
        self.ids().first().map(String::as_str)
    }
}

/// A checked vote configuration (asobi's config keys; see `guides/voting.md`).
#[derive(Debug, Clone)]
pub struct VoteConfig {
    /// `vote_id`, when the script chose one.
    pub vote_id: Option<String>,
    /// `template`, `"default"` when absent.
    pub template: String,
    /// The options exactly as given (`{id, label, ...}`), sent in `vote_start`.
    pub options: Vec<Value>,
    /// Their ids, in order.
    pub option_ids: Vec<String>,
    /// `window_ms`.
    pub window: Duration,
    /// `method`.
    pub method: Method,
    /// `visibility`.
    pub visibility: Visibility,
    /// `tie_breaker`.
    pub tie_breaker: TieBreaker,
    /// `veto_enabled`.
    pub veto_enabled: bool,
    /// `weights`: voter → weight (read by `weighted` only).
    pub weights: HashMap<String, f64>,
    /// `max_revotes`.
    pub max_revotes: u32,
    /// `window_type`.
    pub window_type: WindowType,
    /// `min_window_ms`.
    pub min_window: Duration,
    /// `supermajority`.
    pub supermajority: f64,
    /// `require_supermajority`.
    pub require_supermajority: bool,
    /// `spectators`: a separate pool of voters.
    pub spectators: Vec<String>,
    /// `spectator_weight`, 0.0–1.0.
    pub spectator_weight: f64,
    /// `quorum`, 0.0 = none.
    pub quorum: f64,
    /// `default_votes`: voter → ballot applied at resolution to absentees.
    pub default_votes: HashMap<String, Ballot>,
    /// `delegation`: delegator → delegate.
    pub delegation: HashMap<String, String>,
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration is not a table.
    #[error("a vote configuration must be a table")]
    NotAnObject,
    /// `options` is missing, empty, too long, or an option has no string `id`.
    #[error("options must be a list of 1-{MAX_OPTIONS} tables with distinct string ids")]
    Options,
    /// A key has the wrong type or is out of range; the key is named.
    #[error("invalid vote config key `{0}`")]
    Key(&'static str),
}

fn get<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
    m.get(k).filter(|v| !v.is_null())
}

fn string(m: &Map<String, Value>, k: &'static str, default: &str) -> Result<String, ConfigError> {
    match get(m, k) {
        None => Ok(default.to_owned()),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID => Ok(s.clone()),
        Some(_) => Err(ConfigError::Key(k)),
    }
}

fn millis(
    m: &Map<String, Value>,
    k: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match get(m, k) {
        None => Ok(default),
        Some(v) => match v.as_f64() {
            Some(ms) if ms >= 1.0 && ms <= MAX_WINDOW.as_millis() as f64 => {
                Ok(Duration::from_millis(ms as u64))
            }
            _ => Err(ConfigError::Key(k)),
        },
    }
}

fn fraction(m: &Map<String, Value>, k: &'static str, default: f64) -> Result<f64, ConfigError> {
    match get(m, k) {
        None => Ok(default),
        Some(v) => match v.as_f64() {
            Some(f) if (0.0..=1.0).contains(&f) => Ok(f),
            _ => Err(ConfigError::Key(k)),
        },
    }
}

fn boolean(m: &Map<String, Value>, k: &'static str) -> Result<bool, ConfigError> {
    match get(m, k) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ConfigError::Key(k)),
    }
}

/// A map that Lua may encode as `{}` (an empty table) or an object.
fn table<'a>(
    m: &'a Map<String, Value>,
    k: &'static str,
) -> Result<Option<&'a Map<String, Value>>, ConfigError> {
    match get(m, k) {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(Value::Array(a)) if a.is_empty() => Ok(None),
        Some(_) => Err(ConfigError::Key(k)),
    }
}

fn names(m: &Map<String, Value>, k: &'static str) -> Result<Vec<String>, ConfigError> {
    match get(m, k) {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or(ConfigError::Key(k)))
            .collect(),
        Some(Value::Object(o)) if o.is_empty() => Ok(Vec::new()),
        Some(_) => Err(ConfigError::Key(k)),
    }
}

impl VoteConfig {
    /// Checks a configuration; `template`'s keys (from `vote_templates`) fill in whatever the
    /// call leaves out, as in asobi.
    pub fn parse(call: &Value, templates: &Map<String, Value>) -> Result<VoteConfig, ConfigError> {
        let call = call.as_object().ok_or(ConfigError::NotAnObject)?;
        let template = string(call, "template", "default")?;
        let merged;
        let m = match templates.get(&template).and_then(Value::as_object) {
            Some(defaults) => {
                let mut all = defaults.clone();
                for (k, v) in call {
                    all.insert(k.clone(), v.clone());
                }
                merged = all;
                &merged
            }
            None => call,
        };
        let options = match get(m, "options") {
            Some(Value::Array(a)) if !a.is_empty() && a.len() <= MAX_OPTIONS => a.clone(),
            _ => return Err(ConfigError::Options),
        };
        let mut option_ids: Vec<String> = Vec::with_capacity(options.len());
        for o in &options {
            let id = o
                .get("id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty() && id.len() <= MAX_ID)
                .ok_or(ConfigError::Options)?;
            if option_ids.iter().any(|x| x == id) {
                return Err(ConfigError::Options);
            }
            option_ids.push(id.to_owned());
        }
        let method = match string(m, "method", "plurality")?.as_str() {
            "plurality" => Method::Plurality,
            "approval" => Method::Approval,
            "weighted" => Method::Weighted,
            "ranked" => Method::Ranked,
            _ => return Err(ConfigError::Key("method")),
        };
        let window_type = match string(m, "window_type", "fixed")?.as_str() {
            "fixed" => WindowType::Fixed,
            "ready_up" => WindowType::ReadyUp,
            "hybrid" => WindowType::Hybrid,
            "adaptive" => WindowType::Adaptive,
            _ => return Err(ConfigError::Key("window_type")),
        };
        let visibility = match string(m, "visibility", "live")?.as_str() {
            "live" => Visibility::Live,
            "hidden" => Visibility::Hidden,
            _ => return Err(ConfigError::Key("visibility")),
        };
        // asobi treats any unknown tie breaker as random.
        let tie_breaker = match string(m, "tie_breaker", "random")?.as_str() {
            "first" => TieBreaker::First,
            _ => TieBreaker::Random,
        };
        let mut weights = HashMap::new();
        if let Some(w) = table(m, "weights")? {
            for (k, v) in w {
                let f = v.as_f64().filter(|f| f.is_finite() && *f >= 0.0);
                weights.insert(k.clone(), f.ok_or(ConfigError::Key("weights"))?);
            }
        }
        let max_revotes = match get(m, "max_revotes") {
            None => DEFAULT_MAX_REVOTES,
            Some(v) => v
                .as_u64()
                .filter(|n| *n <= u32::MAX as u64)
                .ok_or(ConfigError::Key("max_revotes"))? as u32,
        };
        let mut default_votes = HashMap::new();
        if let Some(d) = table(m, "default_votes")? {
            for (k, v) in d {
                let b = Ballot::from_json(v).ok_or(ConfigError::Key("default_votes"))?;
                default_votes.insert(k.clone(), b);
            }
        }
        let mut delegation = HashMap::new();
        if let Some(d) = table(m, "delegation")? {
            for (k, v) in d {
                let to = v.as_str().ok_or(ConfigError::Key("delegation"))?;
                delegation.insert(k.clone(), to.to_owned());
            }
        }
        let vote_id = match get(m, "vote_id") {
            None => None,
            Some(_) => Some(string(m, "vote_id", "")?),
        };
        Ok(VoteConfig {
            vote_id,
            template,
            options,
            option_ids,
            window: millis(m, "window_ms", DEFAULT_WINDOW)?,
            method,
            visibility,
            tie_breaker,
            veto_enabled: boolean(m, "veto_enabled")?,
            weights,
            max_revotes,
            window_type,
            min_window: millis(m, "min_window_ms", DEFAULT_MIN_WINDOW)?,
            supermajority: fraction(m, "supermajority", 0.75)?,
            require_supermajority: boolean(m, "require_supermajority")?,
            spectators: names(m, "spectators")?,
            spectator_weight: fraction(m, "spectator_weight", 0.3)?,
            quorum: fraction(m, "quorum", 0.0)?,
            default_votes,
            delegation,
        })
    }

    /// Whether `ballot` fits this vote: one option for plurality and weighted; for approval
    /// and ranked one option or a list of distinct options (at least one); every id one of
    /// this vote's options.
    pub fn valid(&self, ballot: &Ballot) -> bool {
        if matches!(ballot, Ballot::Many(_))
            && matches!(self.method, Method::Plurality | Method::Weighted)
        {
            return false;
        }
        let ids = ballot.ids();
        !ids.is_empty()
            && ids.iter().all(|id| self.option_ids.contains(id))
            && ids.iter().enumerate().all(|(i, id)| !ids[..i].contains(id))
    }
}
