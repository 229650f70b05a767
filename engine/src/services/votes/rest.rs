//! `GET /api/v1/matches/:id/votes` (participants only, newest 50) and `GET /api/v1/votes/:id`.

use serde_json::json;

use asobi_net::http::Method;
use asobi_schema::error::code;
use asobi_schema::ApiError;

use super::error::Error;
use crate::services::error::store_error;
use crate::services::rest::{handler, ok, Route};

pub(crate) const ROUTES: &[Route] = &[
    Route {
        method: Method::Get,
        path: "/matches/:id/votes",
        handler: for_match,
    },
    Route {
        method: Method::Get,
        path: "/votes/:id",
        handler: by_id,
    },
];

handler!(for_match, |s, r| {
    let player = r.player(s)?;
    let match_id = r.param(0);
    // A participant is on the live match's roster, or on its record once it finished.
    let participant = match s.ctx.matches.get(match_id) {
        Some(entry) => entry.players.contains(&player),
        None => s
            .ctx
            .store
            .match_record(match_id)
            .await
            .map_err(store_error)?
            .is_some_and(|rec| rec.players.contains(&player)),
    };
    if !participant {
        return Err(ApiError::new(
            403,
            code::FORBIDDEN,
            "Only the match's players may read its votes.",
        ));
    }
    let votes = s
        .ctx
        .store
        .votes_for_match(match_id, asobi_storage::MAX_VOTE_LIST)
        .await
        .map_err(store_error)?;
    let votes: Vec<_> = votes.into_iter().map(super::public).collect();
    ok(&json!({ "votes": votes }))
});

handler!(by_id, |s, r| {
    r.player(s)?;
    match s.ctx.store.vote(r.param(0)).await.map_err(store_error)? {
        Some(v) => ok(&super::public(v)),
        None => Err(Error::NoRecord.into()),
    }
});
