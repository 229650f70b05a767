//! Ending access: logout (one token and its refresh family), a password change and a ban (every
//! token of the player), and erasure (the player and its rows in every feature). Each writes to
//! storage first, then broadcasts the revocation to every shard (`access::broadcast`), which
//! refuses the tokens on REST at once and closes the sockets that used them.

use std::rc::Rc;

use asobi_net::http::Head;
use asobi_schema::error::code;
use asobi_schema::ApiError;
use asobi_storage::{EraseOutcome, RevokedToken, StoreError};
use serde::Deserialize;
use serde_json::{json, Value};

use super::access::{self, broadcast};
use super::cmd::{Revoke, Scope};
use super::tokens::{self as auth, now_ms};
use crate::services::error::store_error;
use crate::services::rest::{ok, RestResult};
use crate::services::Shard;

/// Logout, as asobi: always 200 `{success:true}`. The bearer token on the request (if any and
/// valid) dies at once everywhere; a `refresh_token` in the body (if any) ends its family.
pub(crate) async fn logout(shard: &Rc<Shard>, head: &Head, body: Value) -> RestResult {
    let store = &shard.ctx.store;
    if let Some(a) = head.bearer().and_then(|t| access::verify(shard, t)) {
        if !a.token_id.is_empty() {
            store
                .revoke_access_token(RevokedToken {
                    token_id: a.token_id.clone(),
                    player_id: a.player_id.clone(),
                    expires_at_ms: a.expires_ms,
                })
                .await
                .map_err(store_error)?;
            broadcast(
                shard,
                Revoke {
                    player_id: a.player_id,
                    scope: Scope::Token {
                        id: a.token_id,
                        expires_ms: a.expires_ms,
                    },
                    reason: "logged_out",
                },
            );
        }
    }
    if let Some(refresh) = body.get("refresh_token").and_then(Value::as_str) {
        store
            .revoke_refresh_family_of(&auth::hash_refresh(refresh))
            .await
            .map_err(store_error)?;
    }
    ok(&json!({ "success": true }))
}

/// Ends every token of a player issued until now, durably and on every shard. Returns the
/// cut-off, so a fresh pair can be issued after it.
pub(crate) async fn end_all_sessions(
    shard: &Rc<Shard>,
    player_id: &str,
    reason: &'static str,
    actor: &str,
) -> Result<i64, ApiError> {
    let cut = now_ms();
    shard
        .ctx
        .store
        .revoke_player_access(player_id, cut, reason, actor)
        .await
        .map_err(store_error)?;
    broadcast(
        shard,
        Revoke {
            player_id: player_id.to_owned(),
            scope: Scope::Before(cut),
            reason,
        },
    );
    Ok(cut)
}

#[derive(Deserialize)]
pub(crate) struct EraseBody {
    #[serde(default)]
    password: Option<String>,
}

fn confirmation_failed() -> ApiError {
    ApiError::new(
        403,
        code::PLAYER_CONFIRMATION_FAILED,
        "The password does not match. Nothing was deleted.",
    )
}

fn credentials_changed() -> ApiError {
    ApiError::new(
        409,
        code::PLAYER_CREDENTIALS_CHANGED,
        "The password changed while the request was in flight. Nothing was deleted; retry.",
    )
}

/// Checks `password` against the stored hash on the bounded hashing pool.
async fn password_matches(shard: &Shard, password: String, hash: String) -> Result<bool, ApiError> {
    shard
        .ctx
        .accounts
        .hashing
        .run(&shard.ctx.store, move || auth::verify_any(&password, &hash))
        .await
}

/// Self-erasure: a password account confirms with its password. Deletes the player and its
/// rows in every feature, writes an audit row, and kills every token (a retry gets 401).
pub(crate) async fn erase(shard: &Rc<Shard>, me: &str, body: EraseBody) -> RestResult {
    let store = &shard.ctx.store;
    let Some(state) = store.sign_in_state(me).await.map_err(store_error)? else {
        return Err(ApiError::unauthenticated());
    };
    if let Some(hash) = &state.password_hash {
        let Some(password) = body.password else {
            return Err(ApiError::missing_field("password"));
        };
        if !password_matches(shard, password, hash.clone()).await? {
            return Err(confirmation_failed());
        }
    }
    let cut = now_ms();
    match store
        .erase_account(me, state.password_hash.as_deref(), me, cut)
        .await
        .map_err(store_error)?
    {
        EraseOutcome::Erased => {}
        EraseOutcome::CredentialsChanged => return Err(credentials_changed()),
        EraseOutcome::NotFound => return Err(ApiError::unauthenticated()),
    }
    broadcast(
        shard,
        Revoke {
            player_id: me.to_owned(),
            scope: Scope::Before(cut),
            reason: "erased",
        },
    );
    ok(&json!({ "deleted": true }))
}

#[derive(Deserialize)]
pub(crate) struct PasswordChange {
    #[serde(default)]
    password: Option<String>,
    new_password: String,
}

/// `PUT /players/me/password` (ours: asobi has no self-service password change). Confirms the
/// current password, stores the new one, ends every other session of the player and answers a
/// fresh token pair.
pub(crate) async fn change_password(
    shard: &Rc<Shard>,
    me: &str,
    body: PasswordChange,
) -> RestResult {
    let min = shard.ctx.settings.password_min_len;
    if let Err(message) = auth::check_password(&body.new_password, min) {
        return Err(super::error::Error::Validation {
            key: "fields",
            field: "new_password",
            message: message.into(),
        }
        .into());
    }
    let store = &shard.ctx.store;
    let Some(state) = store.sign_in_state(me).await.map_err(store_error)? else {
        return Err(ApiError::unauthenticated());
    };
    if let Some(hash) = &state.password_hash {
        let Some(password) = body.password else {
            return Err(ApiError::missing_field("password"));
        };
        if !password_matches(shard, password, hash.clone()).await? {
            return Err(confirmation_failed());
        }
    }
    let new_password = body.new_password;
    let new_hash = shard
        .ctx
        .accounts
        .hashing
        .run(store, move || auth::hash_password(&new_password))
        .await?
        .ok_or_else(ApiError::internal)?;
    let replaced = store
        .replace_password(me, state.password_hash.as_deref(), &new_hash, now_ms())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::unauthenticated(),
            other => store_error(other),
        })?;
    if !replaced {
        return Err(credentials_changed());
    }
    let cut = end_all_sessions(shard, me, "password_changed", me).await?;
    let player = store
        .player(me)
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::unauthenticated)?;
    super::rest::session_reply_after(shard, &player, cut, json!({})).await
}

/// Bans or unbans a player. A ban ends every session of the player at once (REST and open
/// sockets, which close with reason `banned`), and login, refresh and provider sign-in refuse
/// the player until unbanned.
pub(crate) async fn set_ban(
    shard: &Rc<Shard>,
    player_id: &str,
    banned: bool,
    actor: &str,
) -> Result<Value, ApiError> {
    let cut = now_ms();
    shard
        .ctx
        .store
        .set_ban(player_id, banned, actor, cut)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::new(404, code::PLAYER_NOT_FOUND, "No such player."),
            other => store_error(other),
        })?;
    if banned {
        broadcast(
            shard,
            Revoke {
                player_id: player_id.to_owned(),
                scope: Scope::Before(cut),
                reason: "banned",
            },
        );
    }
    Ok(json!({ "player_id": player_id, "banned": banned }))
}

/// An operator erases a player (the ops plane checked the credential and the confirmation):
/// every row of the player in every feature is deleted, an audit row names `actor`, and the
/// player's tokens and sockets end at once on every shard.
pub(crate) async fn operator_erase(
    shard: &Rc<Shard>,
    player_id: &str,
    actor: &str,
) -> Result<(), ApiError> {
    let cut = now_ms();
    match shard
        .ctx
        .store
        .erase_account(player_id, None, actor, cut)
        .await
        .map_err(store_error)?
    {
        EraseOutcome::Erased => {}
        EraseOutcome::CredentialsChanged | EraseOutcome::NotFound => {
            return Err(ApiError::new(
                404,
                code::PLAYER_NOT_FOUND,
                "No such player.",
            ));
        }
    }
    broadcast(
        shard,
        Revoke {
            player_id: player_id.to_owned(),
            scope: Scope::Before(cut),
            reason: "erased",
        },
    );
    Ok(())
}
