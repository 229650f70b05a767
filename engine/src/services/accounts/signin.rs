//! Provider sign-in over REST: `POST /auth/oauth` (OIDC ID tokens and Steam tickets),
//! `POST /auth/link`, `DELETE /auth/unlink?provider=`, and the registration posture every
//! route that creates an account asks ([`may_create`]).

use std::rc::Rc;

use asobi_schema::error::code;
use asobi_schema::ApiError;
use asobi_script::Registration;
use asobi_storage::{NewPlayer, StoreError};
use rand::Rng;
use serde_json::{json, Value};

use super::oidc::{self, Identity, Rejection};
use super::rest::session_reply;
use super::tokens::now_ms;
use crate::services::error::store_error;
use crate::services::rest::{ok, RestResult};
use crate::services::Shard;

/// How an account is about to be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Creation {
    Password,
    Provider,
    Guest,
}

/// The posture in force: the operator's `ASOBI_REGISTRATION` wins wherever it is set, the
/// game's `registration` global otherwise.
pub(crate) fn posture(shard: &Shard) -> Registration {
    shard
        .ctx
        .settings
        .accounts
        .registration
        .unwrap_or_else(|| shard.game.borrow().registration)
}

/// Whether the registration posture lets this kind of account be created (asobi's table in
/// security-auth.md: `oauth_only` refuses password sign-up only; `closed` refuses all three).
pub(crate) fn may_create(shard: &Shard, how: Creation) -> Result<(), ApiError> {
    match (posture(shard), how) {
        (Registration::Closed, _) => Err(ApiError::new(
            403,
            code::AUTH_REGISTRATION_CLOSED,
            "This deployment is not accepting new players.",
        )),
        (Registration::OauthOnly, Creation::Password) => Err(ApiError::new(
            403,
            code::AUTH_PASSWORD_REGISTRATION_DISABLED,
            "Sign up with an identity provider; password registration is off.",
        )),
        _ => Ok(()),
    }
}

pub(crate) fn banned() -> ApiError {
    ApiError::new(403, code::AUTH_BANNED, "This player is banned.")
}

/// Refuses a banned player at sign-in.
pub(crate) async fn refuse_banned(shard: &Shard, player_id: &str) -> Result<(), ApiError> {
    match shard
        .ctx
        .store
        .sign_in_state(player_id)
        .await
        .map_err(store_error)?
    {
        Some(st) if st.banned_at.is_some() => Err(banned()),
        _ => Ok(()),
    }
}

fn rejection(r: Rejection) -> ApiError {
    match r {
        Rejection::Unsupported => ApiError::new(
            401,
            code::AUTH_UNSUPPORTED_PROVIDER,
            "No identity provider is configured under this name.",
        ),
        Rejection::Rejected(reason) => ApiError::new(
            401,
            code::AUTH_PROVIDER_REJECTED,
            "The identity provider rejected the token.",
        )
        .with_details(json!({ "reason": reason })),
    }
}

/// `provider` and `token`, each a non-empty string (asobi: 400 `missing_field` otherwise).
fn provider_and_token(body: &Value) -> Result<(String, String), ApiError> {
    let field = |name: &str| match body.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(ApiError::missing_field(name)),
    };
    Ok((field("provider")?, field("token")?))
}

async fn prove(shard: &Shard, body: &Value) -> Result<Identity, ApiError> {
    let (provider, token) = provider_and_token(body)?;
    oidc::verify(shard, &provider, &token)
        .await
        .map_err(rejection)
}

/// A username for a provider-only player, as asobi makes them: `<provider>_<8 of uid>_<4 digits>`.
fn provider_username(id: &Identity) -> String {
    let tag: String = id
        .uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    let n: u16 = rand::rng().random_range(0..10_000);
    format!("{}_{}_{n:04}", id.provider, tag)
}

pub(crate) async fn oauth(shard: &Rc<Shard>, body: Value) -> RestResult {
    let id = prove(shard, &body).await?;
    let store = &shard.ctx.store;
    if let Some(player_id) = store
        .identity_player(&id.provider, &id.uid)
        .await
        .map_err(store_error)?
    {
        return sign_in_existing(shard, &player_id).await;
    }
    may_create(shard, Creation::Provider)?;
    // A username clash with an existing player is retried with new digits.
    for _ in 0..3 {
        let new = NewPlayer {
            id: uuid::Uuid::now_v7().to_string(),
            username: provider_username(&id),
            display_name: None,
            password_hash: None,
            is_guest: false,
            now_ms: now_ms(),
        };
        match store
            .create_identity_player(new, &id.provider, &id.uid)
            .await
        {
            Ok(player) => return session_reply(shard, &player, json!({ "created": true })).await,
            Err(StoreError::Conflict(_)) => {
                if store
                    .identity_player(&id.provider, &id.uid)
                    .await
                    .map_err(store_error)?
                    .is_some()
                {
                    return Err(ApiError::new(
                        409,
                        code::AUTH_ALREADY_REGISTERING,
                        "A concurrent sign-in is already creating this player; retry.",
                    ));
                }
            }
            Err(e) => {
                tracing::warn!(provider = %id.provider, "creating a provider player failed: {e}");
                return Err(ApiError::new(
                    500,
                    code::AUTH_REGISTRATION_FAILED,
                    "The player could not be created.",
                ));
            }
        }
    }
    Err(ApiError::new(
        500,
        code::AUTH_REGISTRATION_FAILED,
        "The player could not be created.",
    ))
}

async fn sign_in_existing(shard: &Rc<Shard>, player_id: &str) -> RestResult {
    refuse_banned(shard, player_id).await?;
    let player = shard
        .ctx
        .store
        .player(player_id)
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::internal)?;
    session_reply(shard, &player, json!({})).await
}

pub(crate) async fn link(shard: &Rc<Shard>, me: &str, body: Value) -> RestResult {
    let id = prove(shard, &body).await?;
    shard
        .ctx
        .store
        .link_identity(me, &id.provider, &id.uid, now_ms())
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::new(
                409,
                code::AUTH_PROVIDER_ALREADY_LINKED,
                "That provider account is linked to another player.",
            ),
            StoreError::NotFound => ApiError::unauthenticated(),
            other => store_error(other),
        })?;
    ok(&json!({ "provider": id.provider, "provider_uid": id.uid, "linked": true }))
}

pub(crate) async fn unlink(shard: &Rc<Shard>, me: &str, provider: Option<String>) -> RestResult {
    let Some(provider) = provider.filter(|p| !p.is_empty()) else {
        return Err(ApiError::missing_field("provider"));
    };
    shard
        .ctx
        .store
        .unlink_identity(me, &provider)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::new(
                404,
                code::AUTH_IDENTITY_NOT_FOUND,
                "No linked identity exists for this provider.",
            ),
            StoreError::Precondition(_) => ApiError::new(
                422,
                code::AUTH_LAST_AUTH_METHOD,
                "Unlinking this provider would leave no way to sign in.",
            ),
            other => store_error(other),
        })?;
    ok(&json!({ "success": true }))
}
