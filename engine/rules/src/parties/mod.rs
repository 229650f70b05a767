//! A party: a few players who queue together, as a sans-IO state machine.
//!
//! A [`Party`] owns its roster (members, leader, pending invites), its privacy and size bound,
//! each member's reconnect grace, and which matchmaker ticket (if any) it holds. It never reads
//! a clock, sends a frame or cancels a ticket itself: time comes in as `now`, and every
//! operation returns a [`Change`] saying whom to tell and what to undo outside (a ticket to
//! cancel, a party to forget).
//!
//! asobi documents no parties; the behaviour follows what players of other backends expect
//! (Nakama's parties): the leader invites, kicks, promotes, queues and closes; anyone may
//! leave; when the leader goes, the longest-standing member leads; a member whose socket drops
//! keeps the seat for the grace window. Any change of roster while the party holds a
//! matchmaker ticket cancels that ticket, so a match never receives a party that changed under
//! it; joining a queued party is refused instead, so a stranger cannot keep cancelling it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[cfg(test)]
mod tests;

/// Largest party anyone may create. Parties exist to queue together, and no mode seats a team
/// larger than this; it also bounds every per-party list a push carries.
pub const MAX_PARTY_SIZE: usize = 16;
/// Party size when the creator names none (a typical squad).
pub const DEFAULT_PARTY_SIZE: usize = 4;
/// How long an invite stays valid. Long enough to read a notification and answer it.
pub const INVITE_TTL: Duration = Duration::from_secs(300);
/// Pending invites per party. Each costs a push and a record; the leader gets a bound so an
/// invite loop cannot grow the party without limit.
pub const MAX_INVITES: usize = 32;

/// Who may join without an invite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privacy {
    /// Anyone with the party id may join.
    Open,
    /// Only invited players may join.
    InviteOnly,
}

impl Privacy {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::InviteOnly => "invite_only",
        }
    }
}

/// Why an operation was refused. Each has a stable machine code ([`PartyError::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartyError {
    /// The party holds `max_size` members already.
    #[error("the party is full")]
    Full,
    /// Only the leader may do this.
    #[error("only the party leader may do this")]
    NotLeader,
    /// The caller (or the player acted on) is not a member.
    #[error("not a member of the party")]
    NotMember,
    /// The player is a member already.
    #[error("already a member of the party")]
    AlreadyMember,
    /// The party is invite-only and the player holds no invite.
    #[error("the party is invite-only")]
    InviteOnly,
    /// No live invite for this player.
    #[error("no pending invite")]
    NoInvite,
    /// The party holds [`MAX_INVITES`] pending invites.
    #[error("too many pending invites")]
    TooManyInvites,
    /// The party is in a matchmaking queue; cancel first.
    #[error("the party is queued for a match")]
    Queued,
    /// The leader cannot kick or invite themselves.
    #[error("cannot do this to yourself")]
    SelfTarget,
}

impl PartyError {
    /// Stable machine code (asobi's `<feature>.<reason>` naming).
    pub fn code(self) -> &'static str {
        match self {
            Self::Full => "party.full",
            Self::NotLeader => "party.not_leader",
            Self::NotMember => "party.not_member",
            Self::AlreadyMember => "party.already_member",
            Self::InviteOnly => "party.invite_only",
            Self::NoInvite => "party.invite_not_found",
            Self::TooManyInvites => "party.too_many_invites",
            Self::Queued => "party.queued",
            Self::SelfTarget => "party.self_target",
        }
    }

    /// The HTTP status a REST route answers with.
    pub fn http_status(self) -> u16 {
        match self {
            Self::NotLeader | Self::NotMember => 403,
            Self::NoInvite => 404,
            Self::Full | Self::AlreadyMember | Self::Queued => 409,
            Self::InviteOnly => 403,
            Self::TooManyInvites => 429,
            Self::SelfTarget => 400,
        }
    }
}

/// One seat in the party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The player.
    pub player_id: String,
    /// Order of joining; the lowest remaining one succeeds a departing leader.
    pub seq: u64,
    /// `Some(deadline)` while the member's socket is gone; the seat is lost at the deadline.
    pub away_until: Option<Instant>,
}

impl Member {
    /// Whether the member is connected now (not inside a grace window).
    pub fn online(&self) -> bool {
        self.away_until.is_none()
    }
}

/// The matchmaker ticket a queued party holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The mode it queued for.
    pub mode: String,
    /// The ticket id.
    pub ticket_id: String,
}

/// Why a member left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// They asked to.
    Left,
    /// The leader removed them.
    Kicked,
    /// Their grace window ran out without a reconnect.
    TimedOut,
}

/// What the runtime must do after an operation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Change {
    /// Cancel this matchmaker ticket (the roster changed while queued, or the party closed).
    pub cancel_ticket: Option<Ticket>,
    /// Players who are no longer members (push `party.closed` or a final view to them).
    pub removed: Vec<(String, LeaveReason)>,
    /// The leader changed to this player.
    pub new_leader: Option<String>,
    /// The party is gone: forget it after telling everyone.
    pub closed: bool,
    /// Whether members should get a fresh view (`party.updated`).
    pub updated: bool,
}

/// One party.
///
/// # Method kinds and call order
///
/// - **Inputs from players** (each with `now`): [`invite`](Self::invite),
///   [`decline`](Self::decline), [`join`](Self::join) (also accepts an invite),
///   [`leave`](Self::leave), [`kick`](Self::kick), [`promote`](Self::promote),
///   [`close`](Self::close), [`queued`](Self::queued), [`unqueued`](Self::unqueued).
/// - **Inputs from the runtime**: [`disconnected`](Self::disconnected) and
///   [`reconnected`](Self::reconnected) as a member's last socket closes or a new one opens.
/// - **Timer input**: [`tick`](Self::tick) at [`next_deadline`](Self::next_deadline): drops
///   members whose grace ran out and invites past their time.
/// - **Queries**: [`leader`](Self::leader), [`members`](Self::members),
///   [`is_member`](Self::is_member), [`ticket`](Self::ticket), [`invited`](Self::invited).
///
/// Every input returns a [`Change`] (or an error and no change). A party whose last member
/// leaves closes itself (`Change::closed`); the runtime then drops it.
#[derive(Debug, Clone)]
pub struct Party {
    id: String,
    privacy: Privacy,
    max_size: usize,
    grace: Duration,
    leader: String,
    members: Vec<Member>,
    /// Invited player → when the invite lapses.
    invites: BTreeMap<String, Instant>,
    ticket: Option<Ticket>,
    next_seq: u64,
    closed: bool,
}

impl Party {
    /// A new party led by `leader`. `max_size` is clamped to `1..=MAX_PARTY_SIZE`; `grace` is
    /// how long a disconnected member keeps the seat.
    pub fn new(
        id: String,
        leader: String,
        privacy: Privacy,
        max_size: usize,
        grace: Duration,
    ) -> Self {
        Party {
            id,
            privacy,
            max_size: max_size.clamp(1, MAX_PARTY_SIZE),
            grace,
            members: vec![Member {
                player_id: leader.clone(),
                seq: 0,
                away_until: None,
            }],
            leader,
            invites: BTreeMap::new(),
            ticket: None,
            next_seq: 1,
            closed: false,
        }
    }

    /// The party id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Open or invite-only.
    pub fn privacy(&self) -> Privacy {
        self.privacy
    }

    /// Most members allowed.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// The current leader.
    pub fn leader(&self) -> &str {
        &self.leader
    }

    /// Members in joining order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Player ids of the members, in joining order.
    pub fn member_ids(&self) -> Vec<String> {
        self.members.iter().map(|m| m.player_id.clone()).collect()
    }

    /// Whether `player` holds a seat (connected or inside grace).
    pub fn is_member(&self, player: &str) -> bool {
        self.members.iter().any(|m| m.player_id == player)
    }

    /// The ticket the party holds, if queued.
    pub fn ticket(&self) -> Option<&Ticket> {
        self.ticket.as_ref()
    }

    /// Whether `player` holds a live invite at `now`.
    pub fn invited(&self, now: Instant, player: &str) -> bool {
        self.invites.get(player).is_some_and(|&until| now < until)
    }

    /// Players with live invites at `now`.
    pub fn invitees(&self, now: Instant) -> Vec<String> {
        self.invites
            .iter()
            .filter(|(_, &until)| now < until)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Whether the party has closed (no further input is accepted).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn require_leader(&self, by: &str) -> Result<(), PartyError> {
        if !self.is_member(by) {
            return Err(PartyError::NotMember);
        }
        if self.leader != by {
            return Err(PartyError::NotLeader);
        }
        Ok(())
    }

    /// The leader invites `who` (valid for [`INVITE_TTL`]). Re-inviting refreshes the invite.
    pub fn invite(&mut self, now: Instant, by: &str, who: &str) -> Result<Change, PartyError> {
        self.require_leader(by)?;
        if by == who {
            return Err(PartyError::SelfTarget);
        }
        if self.is_member(who) {
            return Err(PartyError::AlreadyMember);
        }
        self.invites.retain(|_, until| now < *until);
        if !self.invites.contains_key(who) && self.invites.len() >= MAX_INVITES {
            return Err(PartyError::TooManyInvites);
        }
        self.invites.insert(who.to_owned(), now + INVITE_TTL);
        Ok(Change {
            updated: true,
            ..Change::default()
        })
    }

    /// `who` turns an invite down.
    pub fn decline(&mut self, now: Instant, who: &str) -> Result<Change, PartyError> {
        if !self.invited(now, who) {
            return Err(PartyError::NoInvite);
        }
        self.invites.remove(who);
        Ok(Change {
            updated: true,
            ..Change::default()
        })
    }

    /// `who` takes a seat: in an open party anyone may, in an invite-only one only with a live
    /// invite (which this uses up). A queued party takes nobody new.
    pub fn join(&mut self, now: Instant, who: &str) -> Result<Change, PartyError> {
        if self.is_member(who) {
            return Err(PartyError::AlreadyMember);
        }
        let invited = self.invited(now, who);
        if self.privacy == Privacy::InviteOnly && !invited {
            return Err(PartyError::InviteOnly);
        }
        if self.ticket.is_some() {
            return Err(PartyError::Queued);
        }
        if self.members.len() >= self.max_size {
            return Err(PartyError::Full);
        }
        self.invites.remove(who);
        self.members.push(Member {
            player_id: who.to_owned(),
            seq: self.next_seq,
            away_until: None,
        });
        self.next_seq += 1;
        Ok(Change {
            updated: true,
            ..Change::default()
        })
    }

    /// `who` leaves.
    pub fn leave(&mut self, _now: Instant, who: &str) -> Result<Change, PartyError> {
        if !self.is_member(who) {
            return Err(PartyError::NotMember);
        }
        Ok(self.remove(who, LeaveReason::Left))
    }

    /// The leader removes `who`.
    pub fn kick(&mut self, _now: Instant, by: &str, who: &str) -> Result<Change, PartyError> {
        self.require_leader(by)?;
        if by == who {
            return Err(PartyError::SelfTarget);
        }
        if !self.is_member(who) {
            return Err(PartyError::NotMember);
        }
        Ok(self.remove(who, LeaveReason::Kicked))
    }

    /// The leader hands leadership to another member.
    pub fn promote(&mut self, _now: Instant, by: &str, who: &str) -> Result<Change, PartyError> {
        self.require_leader(by)?;
        if !self.is_member(who) {
            return Err(PartyError::NotMember);
        }
        if by == who {
            return Ok(Change::default());
        }
        self.leader = who.to_owned();
        Ok(Change {
            new_leader: Some(who.to_owned()),
            updated: true,
            ..Change::default()
        })
    }

    /// The leader ends the party: everyone is removed and any ticket cancelled.
    pub fn close(&mut self, _now: Instant, by: &str) -> Result<Change, PartyError> {
        self.require_leader(by)?;
        Ok(self.close_now())
    }

    /// The party entered a matchmaking queue with `ticket` (the runtime queued it for the
    /// leader). Only the leader may queue a party.
    pub fn queued(&mut self, by: &str, ticket: Ticket) -> Result<Option<Ticket>, PartyError> {
        self.require_leader(by)?;
        Ok(self.ticket.replace(ticket))
    }

    /// Checks that `by` may queue the party now (the leader), before the runtime asks the
    /// matchmaker; the ticket itself is recorded with [`queued`](Self::queued).
    pub fn may_queue(&self, by: &str) -> Result<(), PartyError> {
        self.require_leader(by)
    }

    /// The party's ticket resolved (matched, expired, cancelled). Returns it if it was the one
    /// the party held; a stale report for an older ticket changes nothing.
    pub fn unqueued(&mut self, ticket_id: &str) -> Option<Ticket> {
        if self
            .ticket
            .as_ref()
            .is_some_and(|t| t.ticket_id == ticket_id)
        {
            self.ticket.take()
        } else {
            None
        }
    }

    /// The member's last socket closed: the seat is kept until `now + grace`. Not a roster
    /// change, so a queued party stays queued through a short drop.
    pub fn disconnected(&mut self, now: Instant, who: &str) -> Change {
        let grace = self.grace;
        match self.members.iter_mut().find(|m| m.player_id == who) {
            Some(m) if m.away_until.is_none() => {
                m.away_until = Some(now + grace);
                Change {
                    updated: true,
                    ..Change::default()
                }
            }
            _ => Change::default(),
        }
    }

    /// The member is back within grace: the seat is theirs again. Returns whether they hold a
    /// seat at all (a member whose grace ran out before the tick that drops them is still
    /// welcome back: the seat is only gone once [`tick`](Self::tick) removed it).
    pub fn reconnected(&mut self, _now: Instant, who: &str) -> Change {
        match self.members.iter_mut().find(|m| m.player_id == who) {
            Some(m) if m.away_until.is_some() => {
                m.away_until = None;
                Change {
                    updated: true,
                    ..Change::default()
                }
            }
            _ => Change::default(),
        }
    }

    /// Drops members whose grace ran out (`now >= deadline`) and lapsed invites.
    pub fn tick(&mut self, now: Instant) -> Change {
        let lapsed = self.invites.len();
        self.invites.retain(|_, until| now < *until);
        let mut change = Change {
            updated: self.invites.len() != lapsed,
            ..Change::default()
        };
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.away_until.is_some_and(|d| now >= d))
            .map(|m| m.player_id.clone())
            .collect();
        for who in gone {
            if self.closed {
                break;
            }
            let c = self.remove(&who, LeaveReason::TimedOut);
            change.merge(c);
        }
        change
    }

    /// When [`tick`](Self::tick) next has work: the earliest grace deadline or invite lapse.
    pub fn next_deadline(&self) -> Option<Instant> {
        let grace = self.members.iter().filter_map(|m| m.away_until).min();
        let invite = self.invites.values().copied().min();
        match (grace, invite) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn remove(&mut self, who: &str, why: LeaveReason) -> Change {
        self.members.retain(|m| m.player_id != who);
        let mut change = Change {
            removed: vec![(who.to_owned(), why)],
            cancel_ticket: self.ticket.take(),
            updated: true,
            ..Change::default()
        };
        if self.members.is_empty() {
            self.closed = true;
            change.closed = true;
            self.invites.clear();
            return change;
        }
        if self.leader == who {
            // The longest-standing member leads; one who is connected is preferred over one
            // inside a grace window, who may never come back.
            let next = self
                .members
                .iter()
                .filter(|m| m.online())
                .min_by_key(|m| m.seq)
                .or_else(|| self.members.iter().min_by_key(|m| m.seq))
                .map(|m| m.player_id.clone());
            if let Some(next) = next {
                self.leader = next.clone();
                change.new_leader = Some(next);
            }
        }
        change
    }

    fn close_now(&mut self) -> Change {
        let removed = self
            .members
            .drain(..)
            .map(|m| (m.player_id, LeaveReason::Left))
            .collect();
        self.closed = true;
        self.invites.clear();
        Change {
            cancel_ticket: self.ticket.take(),
            removed,
            new_leader: None,
            closed: true,
            updated: false,
        }
    }
}

impl Change {
    fn merge(&mut self, other: Change) {
        if other.cancel_ticket.is_some() {
            self.cancel_ticket = other.cancel_ticket;
        }
        self.removed.extend(other.removed);
        if other.new_leader.is_some() {
            self.new_leader = other.new_leader;
        }
        self.closed |= other.closed;
        self.updated |= other.updated;
    }
}
