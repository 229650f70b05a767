//! In-match voting (asobi's `guides/voting.md`): a vote's configuration, its window, and the
//! count by plurality, approval, weight or instant runoff.
//!
//! The engine drives a [`Vote`]: [`Vote::open`] with the match's players, [`Vote::cast`] /
//! [`Vote::check_veto`] as frames arrive, one timer at [`Vote::close_at`] (re-read after every
//! cast, since ready-up, hybrid and adaptive windows close early), then [`Vote::close`], which
//! returns the [`Closed`] outcome to broadcast, store and hand to the script. Nothing here
//! reads a clock or draws randomness of its own: ties are settled by a seeded [`TieRng`].

mod config;
mod tally;
mod vote;

#[cfg(test)]
mod tests;

pub use config::{
    Ballot, ConfigError, Method, TieBreaker, Visibility, VoteConfig, WindowType,
    DEFAULT_MAX_REVOTES, DEFAULT_MIN_WINDOW, DEFAULT_WINDOW, MAX_ID, MAX_OPTIONS, MAX_WINDOW,
};
pub use tally::{has_supermajority, live, resolve, Outcome, TieRng};
pub use vote::{Closed, Refused, Vote, ADAPTIVE_SHRINK};
