//! Running a match's script callbacks, including the ones that wait for an answer.
//!
//! Input is held until the match's next tick, which first runs `handle_input` for each held
//! input in arrival order and then `tick`, as asobi's match server does (it queues `match.input`
//! and applies the queue at the tick). A tick runs one match's callbacks back to back, while its
//! VM is warm in the cache, instead of entering the VM once per client frame.
//!
//! A callback that makes a `game.*` service call (`game.economy.grant`, ...) suspends: the VM
//! returns [`Call::Waiting`], the call goes to the owning service through
//! [`crate::services::script::call`], and the match waits — it runs no other callback until the
//! reply resumes it, so its callbacks stay ordered. Joins and leaves that arrive meanwhile, and
//! the rest of a tick's callbacks, wait in the match's backlog (bounded); ticks that come due
//! are skipped, like late ticks, and input keeps being held for the next one. Every other match
//! on the shard keeps running. The wait does not count against the callback's running time; it
//! is bounded on its own: at
//! [`MatchVm::wait_deadline`](asobi_script::MatchVm::wait_deadline) (`service_wait` after the
//! call) a timer abandons the callback as an overrun.
//!
//! A long callback is **time-sliced** the same way: when it has run for its slice, the VM
//! yields it as a [`ServiceCall::slice`](asobi_script::ServiceCall::slice), which
//! `services::script::call` answers through the timer queue just after the work already due.
//! The match waits as it does for a service; its neighbours' ticks and the shard's sockets run
//! in between, so a 200 ms `tick` delays only its own match.

use std::collections::VecDeque;
use std::rc::Rc;

use serde_json::Value;

use asobi_rules::phases::Transition;
use asobi_script::{Call, CallError, JoinOutcome, Resumed};

use super::error::Error;
use super::script::Effects;
use super::{Caller, LiveMatch, Timer};
use crate::services::script::{self as service, Answer};
use crate::services::{Shard, Timer as ShardTimer};
use crate::shard::answer;
use crate::shard::mesh::{ReplyTo, SessionRef};

/// Joins and leaves a waiting match holds back; past this the match is not keeping up, and a
/// joiner is told the shard is overloaded.
pub(super) const MAX_BACKLOG: usize = 256;

/// Input held for the next tick, per match. A 20 Hz client of a 10 Hz match sends two per
/// tick, so this leaves room for 500 such players, or for ticks skipped while a callback
/// waits; past it the match is flooded, and further input is dropped (and counted) until the
/// tick takes what is held.
pub(crate) const MAX_HELD_INPUT: usize = 1024;

/// Bytes of input text held for the next tick, per match: room for 64 inputs at the largest
/// frame a client may send (64 KiB), so a burst of large inputs cannot grow a match's memory
/// without bound either.
pub(crate) const MAX_HELD_INPUT_BYTES: usize = 4 << 20;

/// A callback the match has to run, in arrival order.
pub(super) enum Op {
    /// `join`; `reply` answers the joiner's request (none for matchmaker groups).
    Join {
        player_id: String,
        session: Option<SessionRef>,
        ctx: Option<Value>,
        reply: Option<ReplyTo>,
    },
    Input {
        player_id: String,
        input: Input,
    },
    /// `leave` for a seat already off the roster.
    Leave {
        player_id: String,
    },
    Tick,
    /// `vote_requested`, after a tick, for a script that defines it.
    VoteRequested,
    /// `vote_resolved` for a vote that closed.
    VoteResolved {
        template: String,
        result: Value,
    },
    /// `on_phase_started` / `on_phase_ended`.
    Phase(asobi_rules::phases::Transition),
}

/// A player's input as it reached the match.
pub(super) enum Input {
    /// A client's object, still JSON text (checked by the session): parsed straight into Lua.
    Text(Box<str>),
    /// A bot's decision.
    Value(Value),
}

/// What completes when the suspended callback does.
pub(super) enum After {
    Init,
    VoteRequested,
    VoteResolved,
    Phase,
    Join {
        player_id: String,
        session: Option<SessionRef>,
        reply: Option<ReplyTo>,
    },
    Input {
        player_id: String,
    },
    Leave,
    Tick,
}

impl After {
    /// The player whose request drove the callback, for `dev_errors`.
    fn player(&self) -> Option<&str> {
        match self {
            After::Join { player_id, .. } | After::Input { player_id } => Some(player_id),
            _ => None,
        }
    }
}

/// Queues `op` behind a suspended callback, or runs it now.
pub(super) fn submit(shard: &Rc<Shard>, lm: &mut LiveMatch, op: Op) {
    if lm.waiting.is_some() {
        if lm.backlog.len() >= MAX_BACKLOG {
            if let Op::Join {
                reply: Some(reply), ..
            } = op
            {
                answer(shard, reply, Err(crate::shard::overloaded()));
            }
            return;
        }
        lm.backlog.push_back(op);
        return;
    }
    run(shard, lm, op);
    drain(shard, lm);
}

/// Input waiting for the match's next tick, in arrival order, within both bounds.
#[derive(Default)]
pub(super) struct HeldInput {
    queue: VecDeque<(String, Input)>,
    /// Bytes of input text in `queue`.
    bytes: usize,
}

impl HeldInput {
    /// Holds `input`; false when either bound is reached (the input is dropped).
    fn hold(&mut self, player_id: String, input: Input) -> bool {
        let bytes = match &input {
            Input::Text(text) => text.len(),
            Input::Value(_) => 0, // a bot's decision, built by the engine
        };
        if self.queue.len() >= MAX_HELD_INPUT || self.bytes + bytes > MAX_HELD_INPUT_BYTES {
            return false;
        }
        self.bytes += bytes;
        self.queue.push_back((player_id, input));
        true
    }

    /// The oldest held input, taken.
    fn take(&mut self) -> Option<(String, Input)> {
        let (player_id, input) = self.queue.pop_front()?;
        if let Input::Text(text) = &input {
            self.bytes -= text.len();
        }
        Some((player_id, input))
    }
}

/// Holds a player's input for the match's next tick; input past the bounds is dropped and
/// counted.
pub(super) fn hold_input(shard: &Shard, lm: &mut LiveMatch, player_id: String, input: Input) {
    if !lm.held_input.hold(player_id, input) {
        crate::services::ops::metrics::bump(&shard.ops.metrics.inputs_dropped);
    }
}

/// A tick: `handle_input` for the input held since the last one, in arrival order, then `tick`.
/// A callback that suspends holds the rest back in the backlog, in order.
pub(super) fn tick(shard: &Rc<Shard>, lm: &mut LiveMatch) {
    while let Some((player_id, input)) = lm.held_input.take() {
        push(shard, lm, Op::Input { player_id, input });
    }
    push(shard, lm, Op::Tick);
    drain(shard, lm);
}

/// Runs `op` now, or behind the callback that waits (a tick's callbacks are bounded already).
fn push(shard: &Rc<Shard>, lm: &mut LiveMatch, op: Op) {
    if lm.waiting.is_some() {
        lm.backlog.push_back(op);
    } else {
        run(shard, lm, op);
    }
}

/// Runs queued operations until one suspends or none is left.
pub(super) fn drain(shard: &Rc<Shard>, lm: &mut LiveMatch) {
    while lm.waiting.is_none() && !lm.life.is_over() {
        let Some(op) = lm.backlog.pop_front() else {
            return;
        };
        run(shard, lm, op);
    }
}

fn run(shard: &Rc<Shard>, lm: &mut LiveMatch, op: Op) {
    if lm.life.is_over() {
        if let Op::Join {
            reply: Some(reply), ..
        } = op
        {
            answer(shard, reply, Err(Error::NotFound.into()));
        }
        return;
    }
    let mut fx = Effects::default();
    let Some(vm) = lm.vm.as_mut() else { return };
    let started = std::time::Instant::now();
    let (after, step) = match op {
        Op::Join {
            player_id,
            session,
            ctx,
            reply,
        } => {
            let step = vm
                .join(&player_id, ctx.as_ref(), &mut fx)
                .map(|c| c.map(Resumed::Join));
            let after = After::Join {
                player_id,
                session,
                reply,
            };
            (after, step)
        }
        Op::Input { player_id, input } => {
            if !lm.roster.contains(&player_id) {
                return;
            }
            let step = match &input {
                Input::Text(text) => vm.handle_input_json(&player_id, text, &mut fx),
                Input::Value(value) => vm.handle_input(&player_id, value, &mut fx),
            }
            .map(|c| c.map(|()| Resumed::HandleInput));
            (After::Input { player_id }, step)
        }
        Op::Leave { player_id } => {
            let step = vm
                .leave(&player_id, &mut fx)
                .map(|c| c.map(|()| Resumed::Leave));
            (After::Leave, step)
        }
        Op::Tick => {
            let step = vm.tick(&mut fx).map(|c| c.map(|()| Resumed::Tick));
            (After::Tick, step)
        }
        Op::VoteRequested => {
            let step = vm
                .vote_requested(&mut fx)
                .map(|c| c.map(Resumed::VoteRequested));
            (After::VoteRequested, step)
        }
        Op::Phase(t) => {
            let step = match &t {
                Transition::Started(name) => vm
                    .on_phase_started(name, &mut fx)
                    .map(|c| c.map(|()| Resumed::PhaseStarted)),
                Transition::Ended(name) => vm
                    .on_phase_ended(name, &mut fx)
                    .map(|c| c.map(|()| Resumed::PhaseEnded)),
            };
            (After::Phase, step)
        }
        Op::VoteResolved { template, result } => {
            let step = vm
                .vote_resolved(&template, &result, &mut fx)
                .map(|c| c.map(|()| Resumed::VoteResolved));
            (After::VoteResolved, step)
        }
    };
    shard.ops.metrics.lua_callback.observe(started.elapsed());
    settle(shard, lm, after, step, fx);
}

/// Starts `init` (from `create`).
pub(super) fn init(shard: &Rc<Shard>, lm: &mut LiveMatch, config: &Value) -> Result<(), CallError> {
    let mut fx = Effects::default();
    let Some(vm) = lm.vm.as_mut() else {
        return Ok(());
    };
    let step = vm.init(config, &mut fx)?;
    settle(shard, lm, After::Init, Ok(step.map(|()| Resumed::Init)), fx);
    Ok(())
}

/// Follows a callback through its service calls: answers that are at hand resume it at once;
/// otherwise the match waits with `after` noted. On completion, `after` is carried out.
fn settle(
    shard: &Rc<Shard>,
    lm: &mut LiveMatch,
    after: After,
    mut step: Result<Call<Resumed>, CallError>,
    mut fx: Effects,
) {
    loop {
        match step {
            Ok(Call::Waiting(call)) => match service::call(
                shard,
                Caller {
                    key: lm.key,
                    wait: lm.waits + 1,
                },
                &call,
            ) {
                Answer::Now(reply) => {
                    lm.apply(shard, std::mem::take(&mut fx), None);
                    let Some(vm) = lm.vm.as_mut() else { return };
                    step = vm.resume(reply, &mut fx);
                }
                Answer::Later => {
                    lm.apply(shard, fx, None);
                    lm.waiting = Some(after);
                    lm.waits += 1;
                    // A service call may wait `service_wait` (a slice's continuation is
                    // already armed). The VM measures on the wall clock, the timer on the
                    // shard's clock (the same one, except under the simulation harness): arm
                    // it after the remainder.
                    let deadline = if call.is_slice() {
                        None
                    } else {
                        lm.vm.as_ref().and_then(|vm| vm.wait_deadline())
                    };
                    if let Some(at) = deadline {
                        let left = at.saturating_duration_since(std::time::Instant::now());
                        shard.rt.arm(
                            shard.rt.now() + left,
                            ShardTimer::Matches(Timer::WaitDeadline(lm.key, lm.waits)),
                        );
                    }
                    return;
                }
            },
            Ok(Call::Done(done)) => {
                // A player the script accepted is seated before its effects go out, so a
                // `game.send` to them from `join` reaches them.
                let seat_first = matches!(
                    (&after, &done),
                    (After::Join { .. }, Resumed::Join(JoinOutcome::Accepted))
                );
                if seat_first {
                    complete(shard, lm, after, Ok(done));
                    lm.apply(shard, fx, None);
                } else {
                    lm.apply(shard, fx, None);
                    complete(shard, lm, after, Ok(done));
                }
                return;
            }
            Err(e) => {
                lm.apply(shard, fx, Some((&e, after.player())));
                complete(shard, lm, after, Err(e));
                return;
            }
        }
    }
}

/// The reply to the match's service call arrived.
pub(super) fn resume(shard: &Rc<Shard>, lm: &mut LiveMatch, wait: u64, reply: Value) {
    // A reply to an abandoned wait must not resume the call that waits now.
    if lm.waits != wait {
        return;
    }
    let Some(after) = lm.waiting.take() else {
        return;
    };
    let mut fx = Effects::default();
    let Some(vm) = lm.vm.as_mut() else { return };
    let step = vm.resume(reply, &mut fx);
    settle(shard, lm, after, step, fx);
    drain(shard, lm);
}

/// The reply to wait number `wait` did not come within the callback's budget: the callback is
/// abandoned as an overrun (a timer from an earlier wait finds a newer one and does nothing).
pub(super) fn give_up(shard: &Rc<Shard>, lm: &mut LiveMatch, wait: u64) {
    if lm.waits != wait || lm.waiting.is_none() {
        return;
    }
    let Some(vm) = lm.vm.as_mut() else { return };
    let Some(after) = lm.waiting.take() else {
        return;
    };
    let mut fx = Effects::default();
    let e = vm.abandon(&mut fx);
    lm.apply(shard, fx, Some((&e, after.player())));
    complete(shard, lm, after, Err(e));
    drain(shard, lm);
}

/// Carries out what a completed callback leads to.
fn complete(
    shard: &Rc<Shard>,
    lm: &mut LiveMatch,
    after: After,
    result: Result<Resumed, CallError>,
) {
    match after {
        After::Join {
            player_id,
            session,
            reply,
        } => {
            let outcome = match result {
                Ok(Resumed::Join(JoinOutcome::Accepted)) => Ok(lm.seat(shard, &player_id, session)),
                Ok(Resumed::Join(JoinOutcome::Refused(reason))) => Err(Error::ScriptRefused(
                    reason.unwrap_or_else(|| "join_refused".to_owned()),
                )),
                Ok(_) => Err(Error::ScriptFailed),
                Err(e) => {
                    tracing::info!(match_id = %lm.id, player = %player_id, "join failed: {e}");
                    Err(Error::ScriptFailed)
                }
            };
            if outcome.is_err() && crate::services::bots::is_bot(&player_id) {
                lm.bots.forget(&player_id);
            }
            if let Some(reply) = reply {
                answer(shard, reply, outcome.map_err(Into::into));
            }
        }
        After::Tick => {
            if result.is_ok() {
                super::send_state(shard, lm);
                // asobi polls `vote_requested` after every tick; only scripts that define it
                // pay for the call.
                if lm.polls_votes {
                    lm.backlog.push_front(Op::VoteRequested);
                }
            }
        }
        After::VoteRequested => {
            if let Ok(Resumed::VoteRequested(Some(config))) = &result {
                super::start_vote(shard, lm, config);
            }
        }
        After::Init | After::Input { .. } | After::Leave | After::VoteResolved | After::Phase => {}
    }
    lm.heard_script();
}

/// The reply of a later answer, kept until the match's timer takes it.
pub(super) fn answer_later(shard: &Rc<Shard>, from: Caller, reply: Value, at: std::time::Instant) {
    shard.matches.answers.borrow_mut().insert(from, reply);
    shard.rt.arm(at, ShardTimer::Matches(Timer::Answer(from)));
}

/// The match ended with callbacks still held back: every joiner among them is answered (the
/// match is gone), so no request waits forever on a match that no longer exists.
pub(super) fn release_waiters(shard: &Rc<Shard>, lm: &mut LiveMatch) {
    let waiting = lm.waiting.take().and_then(|after| match after {
        After::Join { reply, .. } => reply,
        _ => None,
    });
    let held = lm.backlog.drain(..).filter_map(|op| match op {
        Op::Join { reply, .. } => reply,
        _ => None,
    });
    for reply in waiting.into_iter().chain(held) {
        answer(shard, reply, Err(Error::NotFound.into()));
    }
}
