//! When a match ends, and with which outcome.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long a match may exist without a single seated player before it ends as abandoned.
/// asobi ends a match that is still `waiting` after 60 s; the same minute here covers the only
/// legitimate empty period (a `match.find_or_create` or script-created match between creation
/// and its first join, normally milliseconds) many times over, while capping how long a client
/// that creates matches and never joins them keeps each one's VM alive.
pub const EMPTY_MATCH_IDLE: Duration = Duration::from_secs(60);

/// How a match ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The script declared a result.
    Finished,
    /// The script's VM failed (a callback erred or ran past its budget too often).
    Failed,
    /// Nobody is left to play it: the last seated player left, or nobody ever sat down within
    /// [`EMPTY_MATCH_IDLE`].
    Abandoned,
    /// The server shut the match down.
    Aborted,
}

impl Outcome {
    /// The `status` recorded with the match (the values the engine has always stored).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Finished => "finished",
            Self::Failed => "error",
            Self::Abandoned => "abandoned",
            Self::Aborted => "aborted",
        }
    }
}

/// The end of a match: its outcome and the `result` sent in `match.finished` and recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    /// How it ended.
    pub outcome: Outcome,
    /// The result payload.
    pub result: Value,
}

/// The lifecycle of one match: running until one of the ending rules fires, then over.
///
/// # Method kinds and call order
///
/// - **Inputs**: [`roster_changed`](Self::roster_changed) after every join, leave and grace
///   expiry with the number of seats left; [`script_finished`](Self::script_finished) /
///   [`script_failed`](Self::script_failed) after any callback that finished or failed the
///   script; [`abort`](Self::abort) on shutdown.
/// - **Output**: [`poll`](Self::poll) after inputs and on timer wake-ups: the [`Ending`], once.
///   A failure outranks a result, a result outranks abandonment.
/// - **Next deadline**: [`next_deadline`](Self::next_deadline), when an empty match will be
///   abandoned.
/// - **Queries**: [`is_over`](Self::is_over) (refuse joins and inputs once true).
#[derive(Debug, Clone)]
pub struct Lifecycle {
    idle: Duration,
    /// Seats needed before the match starts running (asobi's `min_players`).
    min_players: usize,
    /// Since when the match has been waiting for `min_players`; `None` once it started.
    waiting_since: Option<Instant>,
    /// Set by the roster change that started the match, until taken.
    just_started: bool,
    /// Since when the match has had no seat, while it never had one.
    empty_since: Option<Instant>,
    ever_seated: bool,
    last_left: bool,
    finished: Option<Value>,
    failed: Option<Value>,
    aborted: Option<Value>,
    over: bool,
}

impl Lifecycle {
    /// A running match created at `now` with `seated` seats (a matchmaker group seats its
    /// players at once; `match.find_or_create` starts with none).
    pub fn new(now: Instant, seated: usize) -> Self {
        Self::with_idle(now, seated, EMPTY_MATCH_IDLE)
    }

    /// As [`new`](Self::new), with a different empty-match window.
    pub fn with_idle(now: Instant, seated: usize, idle: Duration) -> Self {
        Self {
            idle,
            min_players: 0,
            waiting_since: None,
            just_started: false,
            empty_since: (seated == 0).then_some(now),
            ever_seated: seated > 0,
            last_left: false,
            finished: None,
            failed: None,
            aborted: None,
            over: false,
        }
    }

    /// The match waits, created at `now` with `seated` seats, until `min_players` are seated:
    /// until then it does not run (no ticks, inputs dropped), and if it is still waiting after
    /// the idle window it ends as abandoned with reason `waiting_timeout`, as asobi's does.
    pub fn needing(mut self, now: Instant, seated: usize, min_players: usize) -> Self {
        self.min_players = min_players;
        if seated < min_players {
            self.waiting_since = Some(now);
        }
        self
    }

    /// True once `min_players` have been seated (and from the start when none are needed),
    /// until the match is over.
    pub fn is_running(&self) -> bool {
        self.waiting_since.is_none() && !self.over
    }

    /// True once, right after the roster change that started a waiting match.
    pub fn take_started(&mut self) -> bool {
        std::mem::take(&mut self.just_started)
    }

    /// The roster now holds `seated` seats. Dropping to zero after someone sat down means the
    /// last player left for good (a mere disconnect keeps the seat, so it is not reported here).
    pub fn roster_changed(&mut self, seated: usize) {
        if self.waiting_since.is_some() && seated >= self.min_players && seated > 0 {
            self.waiting_since = None;
            self.just_started = true;
        }
        if seated > 0 {
            self.ever_seated = true;
            self.empty_since = None;
        } else if self.ever_seated {
            self.last_left = true;
        }
    }

    /// The script reported a result.
    pub fn script_finished(&mut self, result: Value) {
        self.finished.get_or_insert(result);
    }

    /// The script's VM failed; `result` is what it had declared, if anything.
    pub fn script_failed(&mut self, result: Option<Value>) {
        self.failed
            .get_or_insert_with(|| result.unwrap_or_else(|| json!({ "error": "script_failed" })));
    }

    /// The server is shutting the match down.
    pub fn abort(&mut self) {
        self.aborted
            .get_or_insert_with(|| json!({ "reason": "server_shutdown" }));
    }

    /// The ending, the first time one applies at `now`; `None` while running and after.
    pub fn poll(&mut self, now: Instant) -> Option<Ending> {
        if self.over {
            return None;
        }
        let ending = if let Some(result) = self.failed.take() {
            (Outcome::Failed, result)
        } else if let Some(result) = self.finished.take() {
            (Outcome::Finished, result)
        } else if let Some(result) = self.aborted.take() {
            (Outcome::Aborted, result)
        } else if self.last_left || self.empty_deadline().is_some_and(|end| now >= end) {
            (Outcome::Abandoned, json!({ "reason": "abandoned" }))
        } else if self.waiting_deadline().is_some_and(|end| now >= end) {
            (Outcome::Abandoned, json!({ "reason": "waiting_timeout" }))
        } else {
            return None;
        };
        self.over = true;
        Some(Ending {
            outcome: ending.0,
            result: ending.1,
        })
    }

    /// When an empty match, or one still waiting for players, will be abandoned.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.over {
            None
        } else {
            self.idle_deadline()
        }
    }

    /// True once [`poll`](Self::poll) has returned the ending.
    pub fn is_over(&self) -> bool {
        self.over
    }

    fn idle_deadline(&self) -> Option<Instant> {
        [self.empty_deadline(), self.waiting_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    fn empty_deadline(&self) -> Option<Instant> {
        self.empty_since.map(|t| t + self.idle)
    }

    fn waiting_deadline(&self) -> Option<Instant> {
        self.waiting_since.map(|t| t + self.idle)
    }
}
