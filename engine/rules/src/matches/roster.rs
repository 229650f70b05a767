//! Seats of one match, their sessions and the reconnection grace of dropped ones.

use std::time::{Duration, Instant};

/// One seat: a player who belongs to the match, connected or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat<S> {
    /// The seated player.
    pub player_id: String,
    /// The session frames for this player go to; `None` while dropped.
    pub session: Option<S>,
    /// When the player lost (or, when seated by the matchmaker while offline, never had) a
    /// session; the grace runs from here. `None` while connected, and always for a bot.
    pub dropped_at: Option<Instant>,
    /// Seated without a session and not connected since: the player is on their way (matched
    /// while offline), so they get at least [`ARRIVAL_GRACE`] even where a drop is a leave.
    pub arriving: bool,
}

/// How long a player seated while offline has to arrive, whatever the reconnection grace.
pub const ARRIVAL_GRACE: Duration = Duration::from_secs(30);

impl<S> Seat<S> {
    /// When this seat's grace runs out, if it is dropped.
    pub fn grace_ends(&self, grace: Duration) -> Option<Instant> {
        let grace = if self.arriving {
            grace.max(ARRIVAL_GRACE)
        } else {
            grace
        };
        self.dropped_at.map(|t| t + grace)
    }
}

/// Whether a player may take a seat, as decided by [`Roster::admit`] before the script is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The player already holds a seat: bind the session with [`Roster::join`], no script call.
    AlreadySeated,
    /// A free seat: ask the script, and on acceptance seat the player with [`Roster::join`].
    Open,
}

/// Why [`Roster::admit`] refused a new player.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinRefused {
    /// The script closed the match to joins (`set_joinable(false)`).
    #[error("the match does not accept joins now")]
    NotJoinable,
    /// Every seat up to `max_players` is taken.
    #[error("the match is full")]
    Full,
}

impl JoinRefused {
    /// Stable machine code (asobi's).
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotJoinable => "match.not_joinable",
            Self::Full => "match.full",
        }
    }

    /// The HTTP status asobi answers with.
    pub fn http_status(&self) -> u16 {
        409
    }
}

/// What [`Roster::join`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// A new seat was added.
    Seated,
    /// The player already had a seat; it now points at the given session (if one was given).
    Rebound,
}

/// The seats of one match.
///
/// # Method kinds and call order
///
/// - **Inputs**: [`join`](Self::join) (after [`admit`](Self::admit) and the script accepted),
///   [`leave`](Self::leave) (the player left for good), [`disconnect`](Self::disconnect) (their
///   session dropped: the seat is kept for the grace), [`reattach`](Self::reattach) (a new
///   session of a dropped player, within the grace).
/// - **Timer input**: [`expire`](Self::expire) removes and returns the seats whose grace ran
///   out; the driver runs the script's `leave` for each.
/// - **Next deadline**: [`next_deadline`](Self::next_deadline), the earliest grace end.
/// - **Queries**: [`connected`](Self::connected), [`session_of`](Self::session_of),
///   [`contains`](Self::contains), [`players`](Self::players), [`seats`](Self::seats),
///   [`len`](Self::len), [`is_empty`](Self::is_empty).
///
/// Seats keep join order. `S` is the engine's session address; the roster only compares it.
#[derive(Debug, Clone)]
pub struct Roster<S> {
    seats: Vec<Seat<S>>,
    grace: Duration,
}

impl<S: Copy + Eq> Roster<S> {
    /// An empty roster whose dropped seats are kept for `grace` (the engine's
    /// `ASOBI_RECONNECT_GRACE_MS`).
    pub fn new(grace: Duration) -> Self {
        Self {
            seats: Vec::new(),
            grace,
        }
    }

    /// The reconnection grace.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Whether `player_id` may join, given the script's `joinable` flag and the mode's
    /// `max_players`. A seated player is always let back in, joinable or not.
    pub fn admit(
        &self,
        player_id: &str,
        joinable: bool,
        max_players: usize,
    ) -> Result<Admission, JoinRefused> {
        if self.contains(player_id) {
            Ok(Admission::AlreadySeated)
        } else if !joinable {
            Err(JoinRefused::NotJoinable)
        } else if self.seats.len() >= max_players {
            Err(JoinRefused::Full)
        } else {
            Ok(Admission::Open)
        }
    }

    /// Seats `player_id`, or rebinds their existing seat to `session`. A player seated without
    /// a session (matched while offline) starts dropped at `now`, so the grace bounds how long
    /// the match waits for them. Capacity is [`admit`](Self::admit)'s job, not this one's.
    pub fn join(&mut self, now: Instant, player_id: &str, session: Option<S>) -> Joined {
        if let Some(seat) = self.seat_mut(player_id) {
            if session.is_some() {
                seat.session = session;
                seat.dropped_at = None;
                seat.arriving = false;
            }
            return Joined::Rebound;
        }
        self.seats.push(Seat {
            player_id: player_id.to_owned(),
            session,
            dropped_at: session.is_none().then_some(now),
            arriving: session.is_none(),
        });
        Joined::Seated
    }

    /// Seats a server-side player (a bot): no session ever, and no grace to run out.
    pub fn join_bot(&mut self, player_id: &str) -> Joined {
        if self.contains(player_id) {
            return Joined::Rebound;
        }
        self.seats.push(Seat {
            player_id: player_id.to_owned(),
            session: None,
            dropped_at: None,
            arriving: false,
        });
        Joined::Seated
    }

    /// Removes the player's seat (they left for good) and returns it.
    pub fn leave(&mut self, player_id: &str) -> Option<Seat<S>> {
        let pos = self.seats.iter().position(|s| s.player_id == player_id)?;
        Some(self.seats.remove(pos))
    }

    /// The player's `session` dropped. Only a seat still bound to that very session is marked
    /// dropped, so a late notice about an old session cannot detach a newer one. Returns whether
    /// a seat was dropped.
    pub fn disconnect(&mut self, now: Instant, player_id: &str, session: S) -> bool {
        match self.seat_mut(player_id) {
            Some(seat) if seat.session == Some(session) => {
                seat.session = None;
                seat.dropped_at = Some(now);
                seat.arriving = false;
                true
            }
            _ => false,
        }
    }

    /// Binds a returning player's new `session` to their seat. Refused (`false`) when they hold
    /// no seat or their grace has run out at `now`, even if [`expire`](Self::expire) has not
    /// run yet, so the answer does not depend on when the driver's timer fired.
    pub fn reattach(&mut self, now: Instant, player_id: &str, session: S) -> bool {
        let grace = self.grace;
        match self.seat_mut(player_id) {
            Some(seat) if seat.grace_ends(grace).is_none_or(|end| now < end) => {
                seat.session = Some(session);
                seat.dropped_at = None;
                seat.arriving = false;
                true
            }
            _ => false,
        }
    }

    /// Removes and returns, in seat order, every seat whose grace has run out at `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Seat<S>> {
        let grace = self.grace;
        let (gone, kept) = std::mem::take(&mut self.seats)
            .into_iter()
            .partition(|s| s.grace_ends(grace).is_some_and(|end| now >= end));
        self.seats = kept;
        gone
    }

    /// The earliest grace end among dropped seats.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.seats
            .iter()
            .filter_map(|s| s.grace_ends(self.grace))
            .min()
    }

    /// Sessions of connected seats, in seat order: the recipients of a broadcast.
    pub fn connected(&self) -> impl Iterator<Item = S> + '_ {
        self.seats.iter().filter_map(|s| s.session)
    }

    /// The session of a seated, connected player.
    pub fn session_of(&self, player_id: &str) -> Option<S> {
        self.seat(player_id).and_then(|s| s.session)
    }

    /// True when `player_id` holds a seat (connected or not).
    pub fn contains(&self, player_id: &str) -> bool {
        self.seat(player_id).is_some()
    }

    /// Seated players in seat order.
    pub fn players(&self) -> impl Iterator<Item = &str> + '_ {
        self.seats.iter().map(|s| s.player_id.as_str())
    }

    /// All seats in seat order.
    pub fn seats(&self) -> &[Seat<S>] {
        &self.seats
    }

    /// Seats taken, connected or not (what `player_count` reports).
    pub fn len(&self) -> usize {
        self.seats.len()
    }

    /// True when nobody holds a seat.
    pub fn is_empty(&self) -> bool {
        self.seats.is_empty()
    }

    fn seat(&self, player_id: &str) -> Option<&Seat<S>> {
        self.seats.iter().find(|s| s.player_id == player_id)
    }

    fn seat_mut(&mut self, player_id: &str) -> Option<&mut Seat<S>> {
        self.seats.iter_mut().find(|s| s.player_id == player_id)
    }
}
