//! `matchmaker.add` and `matchmaker.remove`, and what a session remembers of its tickets.

use std::rc::Rc;

use serde_json::json;

use asobi_schema::envelope::{encode_frame, Inbound};
use asobi_schema::payload;
use asobi_schema::ApiError;

use crate::services::session::{Handled, Session, WsHandler};
use crate::services::Shard;

pub(crate) const HANDLERS: &[(&str, WsHandler)] =
    &[("matchmaker.add", add), ("matchmaker.remove", remove)];

/// The session's live tickets, one per mode at most (the queue keeps one per player per mode,
/// so a repeated add answers `already_queued` with the same ticket and nothing grows).
#[derive(Default)]
pub(crate) struct SessionPart {
    tickets: Vec<(String, String)>,
}

impl SessionPart {
    /// Live tickets the session holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.tickets.len()
    }

    fn remember(&mut self, mode: String, ticket: String) {
        self.tickets.retain(|(m, _)| *m != mode);
        self.tickets.push((mode, ticket));
    }
}

fn add<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Later(Box::pin(async move {
        let body: payload::MatchmakerAdd = f.decode()?;
        let shard = s.shard.clone();
        let queued = super::add(
            &shard,
            &body.mode,
            &s.player(),
            body.properties.unwrap_or(json!({})),
        )
        .await?;
        if let Some(ticket) = queued["ticket_id"].as_str() {
            s.matchmaker.remember(body.mode, ticket.to_owned());
        }
        s.reply(encode_frame("matchmaker.queued", f.cid, &queued));
        Ok(())
    }))
}

fn remove<'a>(s: &'a mut Session, f: &'a Inbound<'a>) -> Handled<'a> {
    Handled::Later(Box::pin(async move {
        let body: payload::MatchmakerRemove = f.decode()?;
        let shard: Rc<Shard> = s.shard.clone();
        let tickets: Vec<String> = match body.ticket_id {
            Some(t) => vec![t],
            None => s
                .matchmaker
                .tickets
                .iter()
                .map(|(_, t)| t.clone())
                .collect(),
        };
        let me = s.player();
        for ticket in tickets {
            let result: Result<(), ApiError> = super::remove(&shard, &ticket, &me).await;
            result?;
            s.matchmaker.tickets.retain(|(_, id)| *id != ticket);
        }
        s.reply(encode_frame(
            "matchmaker.removed",
            f.cid,
            &payload::Success { success: true },
        ));
        Ok(())
    }))
}

/// The socket dropped: the player's tickets leave the queues.
pub(crate) fn session_closed(s: &mut Session, player_id: &str) {
    for (mode, _) in s.matchmaker.tickets.drain(..) {
        super::remove_player(&s.shard, &mode, player_id);
    }
}
