//! Where a script's `game.*` service calls go. A suspended match callback hands its
//! [`ServiceCall`] here; the feature that owns the service answers now (a local, synchronous
//! answer) or later (a request to another shard or to the storage bridge, whose reply reaches
//! the match through `matches::answer_later`). A service no feature provides yet answers asobi's
//! failure shape at once, so scripts see what asobi's own runtime answers without the feature.
//!
//! A feature registers its service with one arm in [`call`].

use std::rc::Rc;

use serde_json::{json, Value};

use asobi_script::ServiceCall;

use super::matches::Caller;
use super::Shard;

/// How a service call is answered.
pub(crate) enum Answer {
    /// The reply, at once.
    Now(Value),
    /// The reply will come through `matches::answer_later` (a feature awaiting
    /// `shard::request` in a task, or the storage bridge, hands it over that way).
    Later,
}

/// How long after its slice ends a time-sliced callback continues: past everything already
/// due, so the shard reads its sockets and runs the timers due before it goes on.
pub(crate) const SLICE_GAP: std::time::Duration = std::time::Duration::from_micros(1);

/// Routes one service call from the match `from`.
pub(crate) fn call(shard: &Rc<Shard>, from: Caller, call: &ServiceCall) -> Answer {
    if call.is_slice() {
        // The callback used its time slice: it continues after the work due now.
        super::matches::answer_later(shard, from, Value::Null, shard.rt.now() + SLICE_GAP);
        return Answer::Later;
    }
    #[cfg(test)]
    if let Some(answer) = test_service::answer(shard, from, call) {
        return answer;
    }
    match call.service.as_str() {
        "economy" => super::economy::script::call(shard, from, call),
        "leaderboard" => super::leaderboards::script::call(shard, from, call),
        "notify" => super::social::script::notify_call(shard, from, call),
        "chat" => super::social::script::chat_call(shard, from, call),
        "storage" => super::storage::script::call(shard, from, call),
        "ext" => super::ext::script::call(shard, from, call),
        "emit" => Answer::Now(super::ext::script::emit_outside()),
        "tournament" => super::tournaments::script::call(shard, from, call),
        // Features add their arm here.
        _ => Answer::Now(unavailable(call)),
    }
}

/// asobi's failure shape for a call no feature serves (the text its runtime uses).
pub(crate) fn unavailable(call: &ServiceCall) -> Value {
    let name = if call.service == call.op {
        format!("game.{}", call.op)
    } else {
        format!("game.{}.{}", call.service, call.op)
    };
    json!({ "error": format!("{name} is not available in this runtime") })
}

/// A stand-in service for the seam's tests: answers after a (virtual) delay, or never.
#[cfg(test)]
pub(crate) mod test_service {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    use serde_json::Value;

    use asobi_script::ServiceCall;

    use super::Answer;
    use crate::services::matches::Caller;
    use crate::services::Shard;

    /// What the stand-in does with a call: `None` lets the normal routing answer; `Some((delay,
    /// Some(reply)))` answers after `delay`; `Some((_, None))` never answers.
    pub(crate) type Behaviour = Box<dyn Fn(&ServiceCall) -> Option<(Duration, Option<Value>)>>;

    thread_local! {
        static BEHAVIOUR: RefCell<Option<Behaviour>> = const { RefCell::new(None) };
    }

    pub(crate) fn install(b: Behaviour) {
        BEHAVIOUR.with(|s| *s.borrow_mut() = Some(b));
    }

    pub(super) fn answer(shard: &Rc<Shard>, from: Caller, call: &ServiceCall) -> Option<Answer> {
        let decided = BEHAVIOUR.with(|s| s.borrow().as_ref().and_then(|b| b(call)))?;
        if let (delay, Some(reply)) = decided {
            crate::services::matches::answer_later(shard, from, reply, shard.rt.now() + delay);
        }
        Some(Answer::Later)
    }
}
