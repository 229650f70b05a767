use std::time::{Duration, Instant};

use super::*;

const GRACE: Duration = Duration::from_secs(10);

fn party(privacy: Privacy, max: usize) -> (Party, Instant) {
    let t0 = Instant::now();
    (Party::new("p1".into(), "a".into(), privacy, max, GRACE), t0)
}

fn ticket(id: &str) -> Ticket {
    Ticket {
        mode: "arena".into(),
        ticket_id: id.into(),
    }
}

#[test]
fn open_party_takes_joiners_up_to_its_size() {
    let (mut p, t0) = party(Privacy::Open, 3);
    assert!(p.join(t0, "b").unwrap().updated);
    p.join(t0, "c").unwrap();
    assert_eq!(p.join(t0, "d"), Err(PartyError::Full));
    assert_eq!(p.join(t0, "b"), Err(PartyError::AlreadyMember));
    assert_eq!(p.member_ids(), ["a", "b", "c"]);
    assert_eq!(p.leader(), "a");
}

#[test]
fn invite_only_needs_a_live_invite_which_join_uses_up() {
    let (mut p, t0) = party(Privacy::InviteOnly, 4);
    assert_eq!(p.join(t0, "b"), Err(PartyError::InviteOnly));
    assert_eq!(p.invite(t0, "b", "c"), Err(PartyError::NotMember));
    p.invite(t0, "a", "b").unwrap();
    assert!(p.invited(t0, "b"));
    p.join(t0, "b").unwrap();
    assert!(!p.invited(t0, "b"), "the invite is used up");
    assert_eq!(p.invite(t0, "b", "c"), Err(PartyError::NotLeader));
    assert_eq!(p.invite(t0, "a", "b"), Err(PartyError::AlreadyMember));
    assert_eq!(p.invite(t0, "a", "a"), Err(PartyError::SelfTarget));
}

#[test]
fn invites_lapse_and_can_be_declined() {
    let (mut p, t0) = party(Privacy::InviteOnly, 4);
    p.invite(t0, "a", "b").unwrap();
    p.invite(t0, "a", "c").unwrap();
    assert_eq!(p.decline(t0, "b").map(|c| c.updated), Ok(true));
    assert_eq!(p.decline(t0, "b"), Err(PartyError::NoInvite));
    assert_eq!(p.join(t0, "b"), Err(PartyError::InviteOnly));
    assert_eq!(p.next_deadline(), Some(t0 + INVITE_TTL));
    let late = t0 + INVITE_TTL;
    assert!(!p.invited(late, "c"));
    assert_eq!(p.join(late, "c"), Err(PartyError::InviteOnly));
    assert!(p.tick(late).updated);
    assert!(p.invitees(late).is_empty());
    assert_eq!(p.next_deadline(), None);
}

#[test]
fn invites_are_bounded() {
    let (mut p, t0) = party(Privacy::InviteOnly, 4);
    for i in 0..MAX_INVITES {
        p.invite(t0, "a", &format!("x{i}")).unwrap();
    }
    assert_eq!(p.invite(t0, "a", "y"), Err(PartyError::TooManyInvites));
    // Re-inviting someone already invited is a refresh, not a new slot.
    p.invite(t0, "a", "x0").unwrap();
    // Lapsed invites free their slots.
    p.invite(t0 + INVITE_TTL, "a", "y").unwrap();
}

#[test]
fn leader_leaving_hands_over_to_the_longest_standing_member() {
    let (mut p, t0) = party(Privacy::Open, 4);
    p.join(t0, "b").unwrap();
    p.join(t0, "c").unwrap();
    let c = p.leave(t0, "a").unwrap();
    assert_eq!(c.new_leader.as_deref(), Some("b"));
    assert_eq!(c.removed, [("a".to_owned(), LeaveReason::Left)]);
    assert_eq!(p.leader(), "b");
    assert_eq!(p.leave(t0, "a"), Err(PartyError::NotMember));
}

#[test]
fn succession_prefers_a_connected_member() {
    let (mut p, t0) = party(Privacy::Open, 4);
    p.join(t0, "b").unwrap();
    p.join(t0, "c").unwrap();
    p.disconnected(t0, "b");
    let c = p.leave(t0, "a").unwrap();
    assert_eq!(c.new_leader.as_deref(), Some("c"));
}

#[test]
fn last_member_leaving_closes_the_party() {
    let (mut p, t0) = party(Privacy::Open, 4);
    let c = p.leave(t0, "a").unwrap();
    assert!(c.closed);
    assert!(p.is_closed());
}

#[test]
fn kick_and_promote_are_for_the_leader_only() {
    let (mut p, t0) = party(Privacy::Open, 4);
    p.join(t0, "b").unwrap();
    p.join(t0, "c").unwrap();
    assert_eq!(p.kick(t0, "b", "c"), Err(PartyError::NotLeader));
    assert_eq!(p.kick(t0, "a", "a"), Err(PartyError::SelfTarget));
    assert_eq!(p.kick(t0, "a", "z"), Err(PartyError::NotMember));
    let c = p.kick(t0, "a", "c").unwrap();
    assert_eq!(c.removed, [("c".to_owned(), LeaveReason::Kicked)]);
    assert_eq!(p.promote(t0, "b", "b"), Err(PartyError::NotLeader));
    assert_eq!(p.promote(t0, "a", "z"), Err(PartyError::NotMember));
    let c = p.promote(t0, "a", "b").unwrap();
    assert_eq!(c.new_leader.as_deref(), Some("b"));
    assert_eq!(p.leader(), "b");
    assert_eq!(p.kick(t0, "a", "b"), Err(PartyError::NotLeader));
}

#[test]
fn close_removes_everyone_and_cancels_the_ticket() {
    let (mut p, t0) = party(Privacy::Open, 4);
    p.join(t0, "b").unwrap();
    p.queued("a", ticket("t1")).unwrap();
    assert_eq!(p.close(t0, "b"), Err(PartyError::NotLeader));
    let c = p.close(t0, "a").unwrap();
    assert!(c.closed);
    assert_eq!(c.removed.len(), 2);
    assert_eq!(c.cancel_ticket, Some(ticket("t1")));
}

#[test]
fn roster_changes_cancel_the_ticket_and_a_queued_party_takes_nobody() {
    let (mut p, t0) = party(Privacy::Open, 4);
    p.join(t0, "b").unwrap();
    p.join(t0, "c").unwrap();
    assert_eq!(p.queued("b", ticket("t0")), Err(PartyError::NotLeader));
    assert_eq!(p.queued("a", ticket("t1")), Ok(None));
    assert_eq!(p.join(t0, "d"), Err(PartyError::Queued));
    let c = p.leave(t0, "c").unwrap();
    assert_eq!(c.cancel_ticket, Some(ticket("t1")));
    assert_eq!(p.ticket(), None);
    p.queued("a", ticket("t2")).unwrap();
    let c = p.kick(t0, "a", "b").unwrap();
    assert_eq!(c.cancel_ticket, Some(ticket("t2")));
    p.queued("a", ticket("t3")).unwrap();
    assert_eq!(p.unqueued("t2"), None, "a stale report changes nothing");
    assert_eq!(p.unqueued("t3"), Some(ticket("t3")));
}

#[test]
fn a_drop_inside_grace_keeps_the_seat_and_the_ticket() {
    let (mut p, t0) = party(Privacy::Open, 4);
    p.join(t0, "b").unwrap();
    p.queued("a", ticket("t1")).unwrap();
    assert!(p.disconnected(t0, "b").updated);
    assert_eq!(p.next_deadline(), Some(t0 + GRACE));
    let almost = t0 + GRACE - Duration::from_millis(1);
    assert_eq!(p.tick(almost), Change::default());
    assert!(p.reconnected(almost, "b").updated);
    assert_eq!(p.next_deadline(), None);
    assert_eq!(p.tick(t0 + GRACE * 2), Change::default());
    assert_eq!(p.member_ids(), ["a", "b"]);
    assert_eq!(p.ticket(), Some(&ticket("t1")));
}

#[test]
fn grace_running_out_drops_the_member_and_cancels_the_ticket() {
    let (mut p, t0) = party(Privacy::Open, 4);
    p.join(t0, "b").unwrap();
    p.queued("a", ticket("t1")).unwrap();
    p.disconnected(t0, "a");
    // A second drop notice does not extend the window.
    p.disconnected(t0 + Duration::from_secs(5), "a");
    let c = p.tick(t0 + GRACE);
    assert_eq!(c.removed, [("a".to_owned(), LeaveReason::TimedOut)]);
    assert_eq!(c.new_leader.as_deref(), Some("b"));
    assert_eq!(c.cancel_ticket, Some(ticket("t1")));
    assert!(!c.closed);
}

#[test]
fn everyone_timing_out_closes_the_party() {
    let (mut p, t0) = party(Privacy::Open, 4);
    p.join(t0, "b").unwrap();
    p.disconnected(t0, "a");
    p.disconnected(t0 + Duration::from_secs(1), "b");
    let c = p.tick(t0 + GRACE);
    assert_eq!(c.removed.len(), 1);
    assert!(!c.closed);
    let c = p.tick(t0 + GRACE + Duration::from_secs(1));
    assert!(c.closed);
}

#[test]
fn size_is_clamped() {
    let p = Party::new("x".into(), "a".into(), Privacy::Open, 0, GRACE);
    assert_eq!(p.max_size(), 1);
    let p = Party::new("x".into(), "a".into(), Privacy::Open, 999, GRACE);
    assert_eq!(p.max_size(), MAX_PARTY_SIZE);
}

/// Seeded random walk: any mix of operations keeps one leader who is a member, at most
/// `max_size` members without duplicates, a ticket only while the roster is unchanged since it
/// was taken, and a closed party with no members.
#[test]
fn random_walk_keeps_the_roster_invariants() {
    for seed in 0..200u64 {
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let t0 = Instant::now();
        let mut now = t0;
        let privacy = if next(2) == 0 {
            Privacy::Open
        } else {
            Privacy::InviteOnly
        };
        let max = 1 + next(5) as usize;
        let mut p = Party::new("p".into(), "u0".into(), privacy, max, GRACE);
        let mut roster_at_queue: Option<Vec<String>> = None;
        for step in 0..400 {
            let who = format!("u{}", next(8));
            let leader = p.leader().to_owned();
            let change = match next(11) {
                0 => p.invite(now, &leader, &who).ok(),
                1 => p.decline(now, &who).ok(),
                2 | 3 => p.join(now, &who).ok(),
                4 => p.leave(now, &who).ok(),
                5 => p.kick(now, &leader, &who).ok(),
                6 => p.promote(now, &leader, &who).ok(),
                7 => Some(p.disconnected(now, &who)),
                8 => Some(p.reconnected(now, &who)),
                9 => {
                    if p.queued(&leader, ticket(&format!("t{step}"))).is_ok() {
                        roster_at_queue = Some(p.member_ids());
                    }
                    None
                }
                _ => {
                    now += Duration::from_secs(next(8));
                    Some(p.tick(now))
                }
            };
            if let Some(c) = change {
                if c.cancel_ticket.is_some() {
                    roster_at_queue = None;
                }
            }
            if p.is_closed() {
                assert!(p.members().is_empty(), "seed {seed}");
                assert!(p.ticket().is_none(), "seed {seed}");
                break;
            }
            let ids = p.member_ids();
            assert!(ids.len() <= p.max_size(), "seed {seed}");
            let mut dedup = ids.clone();
            dedup.sort();
            dedup.dedup();
            assert_eq!(dedup.len(), ids.len(), "seed {seed}: duplicate member");
            assert!(p.is_member(p.leader()), "seed {seed}: leader not a member");
            if p.ticket().is_some() {
                assert_eq!(
                    roster_at_queue.as_ref(),
                    Some(&ids),
                    "seed {seed}: the roster changed under a ticket"
                );
            }
            for m in p.members() {
                if let Some(d) = m.away_until {
                    assert!(d > now || p.next_deadline().is_some_and(|n| n <= d));
                }
            }
        }
    }
}
