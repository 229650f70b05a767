//! Voting frames (asobi's `guides/voting.md`): what a client sends to cast or veto. The server's
//! pushes (`match.vote_start`, `match.vote_tally`, `match.vote_result`, `match.vote_vetoed`) are
//! built where the vote runs.

use serde::Deserialize;
use serde_json::Value;

/// `vote.cast`: `{vote_id, option_id}`; `option_id` is a string, or a list for approval and
/// ranked votes. Kept as JSON here: its shape is checked against the vote's method.
#[derive(Debug, Deserialize)]
pub struct VoteCast {
    /// The live vote.
    pub vote_id: String,
    /// The ballot.
    pub option_id: Value,
}

/// `vote.veto`: `{vote_id}`.
#[derive(Debug, Deserialize)]
pub struct VoteVeto {
    /// The live vote.
    pub vote_id: String,
}
