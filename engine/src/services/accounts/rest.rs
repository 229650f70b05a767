//! Accounts over REST: register, login, refresh, logout, guests, profiles, erasure.
//!
//! Password hashing runs on the storage bridge's blocking pool (`StoreHandle::blocking`), so a
//! shard answering a login keeps serving every other socket it owns meanwhile.

use std::rc::Rc;

use serde::Deserialize;
use serde_json::{json, Value};

use asobi_net::http::Method;
use asobi_schema::ApiError;
use asobi_storage::{NewPlayer, NewRefreshToken, Player, PlayerPatch, RotateOutcome, StoreError};

use super::error::Error;
use super::tokens::{self as auth, now_ms};
use crate::services::error::store_error;
use crate::services::rest::{handler, ok, RestResult, Route};
use crate::services::Shard;

pub(crate) const ROUTES: &[Route] = &[
    Route {
        method: Method::Post,
        path: "/auth/register",
        handler: register_route,
    },
    Route {
        method: Method::Post,
        path: "/auth/login",
        handler: login_route,
    },
    Route {
        method: Method::Post,
        path: "/auth/refresh",
        handler: refresh_route,
    },
    Route {
        method: Method::Post,
        path: "/auth/logout",
        handler: logout_route,
    },
    Route {
        method: Method::Post,
        path: "/auth/guest",
        handler: guest_route,
    },
    Route {
        method: Method::Post,
        path: "/auth/guest/upgrade",
        handler: upgrade_route,
    },
    Route {
        method: Method::Post,
        path: "/players/me/erase",
        handler: erase_route,
    },
    Route {
        method: Method::Get,
        path: "/players/:id",
        handler: get_player_route,
    },
    Route {
        method: Method::Put,
        path: "/players/:id",
        handler: put_player_route,
    },
    Route {
        method: Method::Post,
        path: "/auth/oauth",
        handler: oauth_route,
    },
    Route {
        method: Method::Post,
        path: "/auth/link",
        handler: link_route,
    },
    Route {
        method: Method::Delete,
        path: "/auth/unlink",
        handler: unlink_route,
    },
    Route {
        method: Method::Put,
        path: "/players/me/password",
        handler: password_route,
    },
];

handler!(register_route, |s, r| register(s, r.json()?).await);
handler!(login_route, |s, r| login(s, r.json()?).await);
handler!(refresh_route, |s, r| refresh(s, r.json()?).await);
handler!(logout_route, |s, r| {
    // As asobi: no body, or one that is not JSON, still logs out.
    let body = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    super::lifecycle::logout(s, r.head, body).await
});
handler!(guest_route, |s, r| guest(s, r.json()?).await);
handler!(upgrade_route, |s, r| upgrade(s, &r.player(s)?, r.json()?)
    .await);
handler!(erase_route, |s, r| super::lifecycle::erase(
    s,
    &r.player(s)?,
    r.json()?
)
.await);
handler!(oauth_route, |s, r| super::signin::oauth(s, r.json()?).await);
handler!(link_route, |s, r| super::signin::link(
    s,
    &r.player(s)?,
    r.json()?
)
.await);
handler!(unlink_route, |s, r| super::signin::unlink(
    s,
    &r.player(s)?,
    r.head.query_param("provider")
)
.await);
handler!(password_route, |s, r| super::lifecycle::change_password(
    s,
    &r.player(s)?,
    r.json()?
)
.await);
handler!(get_player_route, |s, r| {
    r.player(s)?;
    get_player(s, r.param(0)).await
});
handler!(put_player_route, |s, r| put_player(
    s,
    &r.player(s)?,
    r.param(0),
    r.json()?
)
.await);

/// Bodies shared by several auth routes.
#[derive(Debug, Deserialize)]
pub(crate) struct Credentials {
    pub(crate) username: String,
    pub(crate) password: String,
    #[serde(default)]
    pub(crate) display_name: Option<String>,
}

fn invalid_credentials() -> ApiError {
    Error::InvalidCredentials.into()
}

/// Issues an access token (after `not_before_ms`) and a refresh token in a new family.
async fn token_pair(
    shard: &Shard,
    player_id: &str,
    not_before_ms: i64,
) -> Result<(String, String), ApiError> {
    let g = &shard.ctx;
    let refresh = g.tokens.new_refresh();
    g.store
        .insert_refresh_token(NewRefreshToken {
            token_hash: refresh.hash,
            player_id: player_id.to_owned(),
            family_id: uuid::Uuid::now_v7().to_string(),
            expires_at_ms: refresh.expires_at_ms,
            now_ms: now_ms(),
        })
        .await
        .map_err(store_error)?;
    Ok((
        g.tokens.issue_access_after(player_id, not_before_ms),
        refresh.token,
    ))
}

async fn hash_off_shard(shard: &Shard, password: String) -> Result<String, ApiError> {
    shard
        .ctx
        .accounts
        .hashing
        .run(&shard.ctx.store, move || auth::hash_password(&password))
        .await?
        .ok_or_else(ApiError::internal)
}

fn validate(shard: &Shard, body: &Credentials) -> Result<(), ApiError> {
    let min = shard.ctx.settings.password_min_len;
    let check = auth::check_username(&body.username)
        .map_err(|m| ("username", m.to_owned()))
        .and_then(|()| auth::check_password(&body.password, min).map_err(|m| ("password", m)));
    if let Err((field, message)) = check {
        return Err(Error::Validation {
            key: "fields",
            field,
            message: message.into(),
        }
        .into());
    }
    if let Some(d) = &body.display_name {
        if d.chars().count() > 64 {
            return Err(Error::Validation {
                key: "fields",
                field: "display_name",
                message: "display_name is at most 64 characters".into(),
            }
            .into());
        }
    }
    Ok(())
}

pub(crate) async fn register(shard: &Rc<Shard>, body: Credentials) -> RestResult {
    super::signin::may_create(shard, super::signin::Creation::Password)?;
    validate(shard, &body)?;
    let hash = hash_off_shard(shard, body.password.clone()).await?;
    let player = shard
        .ctx
        .store
        .create_player(NewPlayer {
            id: uuid::Uuid::now_v7().to_string(),
            username: body.username.clone(),
            display_name: body.display_name.clone(),
            password_hash: Some(hash),
            is_guest: false,
            now_ms: now_ms(),
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => username_taken(),
            other => store_error(other),
        })?;
    session_reply(shard, &player, json!({})).await
}

fn username_taken() -> ApiError {
    Error::UsernameTaken.into()
}

pub(crate) async fn session_reply(shard: &Shard, player: &Player, extra: Value) -> RestResult {
    session_reply_after(shard, player, 0, extra).await
}

/// [`session_reply`] with an access token issued after `not_before_ms` (a revocation cut-off).
pub(crate) async fn session_reply_after(
    shard: &Shard,
    player: &Player,
    not_before_ms: i64,
    extra: Value,
) -> RestResult {
    let (access, refresh) = token_pair(shard, &player.id, not_before_ms).await?;
    let mut body = json!({
        "player_id": player.id,
        "access_token": access,
        "refresh_token": refresh,
        "username": player.username,
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    ok(&body)
}

#[derive(Deserialize)]
pub(crate) struct Login {
    username: String,
    password: String,
}

pub(crate) async fn login(shard: &Rc<Shard>, body: Login) -> RestResult {
    let found = shard
        .ctx
        .store
        .player_by_username(&body.username)
        .await
        .map_err(store_error)?;
    let (player, hash) = match found {
        Some((p, Some(h))) => (Some(p), h),
        // Unknown user or no password: verify against a dummy so timing does not tell.
        _ => (None, auth::dummy_hash().to_owned()),
    };
    let password = body.password;
    let (checked, stored) = (hash.clone(), hash);
    let pw = password.clone();
    let valid = shard
        .ctx
        .accounts
        .hashing
        .run(&shard.ctx.store, move || auth::verify_any(&pw, &checked))
        .await?;
    let p = match player {
        Some(p) if valid => p,
        _ => return Err(invalid_credentials()),
    };
    super::signin::refuse_banned(shard, &p.id).await?;
    if auth::needs_rehash(&stored) {
        // A player imported from asobi: its PBKDF2 hash is replaced by argon2id now that the
        // password is known. A failure here costs nothing but a retry at the next login.
        let new_hash = hash_off_shard(shard, password).await?;
        match shard
            .ctx
            .store
            .replace_password(&p.id, Some(&stored), &new_hash, now_ms())
            .await
        {
            Ok(true) => tracing::info!(player = %p.id, "imported password rehashed to argon2id"),
            Ok(false) => {}
            Err(e) => tracing::warn!(player = %p.id, "rehashing an imported password failed: {e}"),
        }
    }
    session_reply(shard, &p, json!({})).await
}

#[derive(Deserialize)]
pub(crate) struct Refresh {
    refresh_token: String,
}

pub(crate) async fn refresh(shard: &Rc<Shard>, body: Refresh) -> RestResult {
    let g = &shard.ctx;
    let next = g.tokens.new_refresh();
    let outcome = g
        .store
        .rotate_refresh_token(
            &auth::hash_refresh(&body.refresh_token),
            NewRefreshToken {
                token_hash: next.hash,
                player_id: String::new(),
                family_id: String::new(),
                expires_at_ms: next.expires_at_ms,
                now_ms: now_ms(),
            },
            now_ms(),
        )
        .await
        .map_err(store_error)?;
    match outcome {
        RotateOutcome::Rotated { player_id } => {
            if super::signin::refuse_banned(shard, &player_id)
                .await
                .is_err()
            {
                return Err(invalid_refresh());
            }
            ok(&json!({
            "player_id": player_id,
            "access_token": g.tokens.issue_access(&player_id),
            "refresh_token": next.token,
            }))
        }
        RotateOutcome::Reused => {
            tracing::warn!("a spent refresh token was presented again; its family is revoked");
            Err(invalid_refresh())
        }
        _ => Err(invalid_refresh()),
    }
}

fn invalid_refresh() -> ApiError {
    Error::InvalidRefreshToken.into()
}

#[derive(Deserialize)]
pub(crate) struct Guest {
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    device_secret: Option<String>,
}

/// Largest decoded device secret accepted; a secret is a random key, not a document.
const MAX_DEVICE_SECRET: usize = 512;

pub(crate) async fn guest(shard: &Rc<Shard>, body: Guest) -> RestResult {
    let g = &shard.ctx;
    let pepper = match (&g.settings.guest_pepper, shard.game.borrow().guest_auth) {
        (Some(p), true) if p.len() >= 32 => p.clone(),
        _ => {
            return Err(Error::GuestAuthDisabled.into());
        }
    };
    let (Some(device_id), Some(secret)) = (body.device_id, body.device_secret) else {
        return Err(Error::MissingDeviceFields.into());
    };
    if device_id.is_empty() || device_id.len() > 255 {
        return Err(Error::InvalidDeviceId.into());
    }
    let secret = match auth::decode_device_secret(&secret) {
        Some(s) if (32..=MAX_DEVICE_SECRET).contains(&s.len()) => s,
        _ => {
            return Err(Error::WeakDeviceSecret.into());
        }
    };
    if let Some(device) = g
        .store
        .guest_device(&device_id)
        .await
        .map_err(store_error)?
    {
        if device.revoked {
            return Err(Error::GuestRevoked.into());
        }
        if !auth::check_guest_verifier(pepper.as_bytes(), &device.verifier, &secret) {
            return Err(Error::InvalidDeviceSecret.into());
        }
        let player = g
            .store
            .player(&device.player_id)
            .await
            .map_err(store_error)?
            .ok_or(Error::GuestPlayerMissing)?;
        if !player.is_guest {
            return Err(Error::GuestUpgraded.into());
        }
        super::signin::refuse_banned(shard, &player.id).await?;
        if let Err(e) = g.store.touch_guest(&device_id, now_ms()).await {
            tracing::warn!("recording a guest resume failed: {e}");
        }
        return session_reply(shard, &player, json!({ "guest": true })).await;
    }
    super::signin::may_create(shard, super::signin::Creation::Guest)?;
    super::limits::allow_guest_create(shard)?;
    guest_cap(shard).await?;
    let id = uuid::Uuid::now_v7().to_string();
    let username = format!("guest_{}", &id.replace('-', "")[20..32]);
    let verifier = auth::guest_verifier(pepper.as_bytes(), &secret);
    let player = g
        .store
        .create_guest(
            NewPlayer {
                id,
                username,
                display_name: None,
                password_hash: None,
                is_guest: true,
                now_ms: now_ms(),
            },
            &device_id,
            &verifier,
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => Error::DeviceAlreadyRegistered.into(),
            other => store_error(other),
        })?;
    session_reply(shard, &player, json!({ "created": true, "guest": true })).await
}

/// asobi's `guest_unlinked_cap`: no new guest past the cap (503 `guest.capacity_reached`), and
/// none when the guests cannot be counted (503 `guest.unavailable`), rather than create without
/// a bound.
async fn guest_cap(shard: &Shard) -> Result<(), ApiError> {
    use asobi_schema::error::code;
    let cap = shard.ctx.settings.accounts.guest_unlinked_cap;
    if cap == 0 {
        return Ok(());
    }
    match shard.ctx.store.count_guests().await {
        Ok(n) if u64::try_from(n).unwrap_or(0) >= cap => {
            tracing::warn!(
                count = n,
                cap,
                "guest_create_denied: the unclaimed-guest cap is reached"
            );
            Err(ApiError::new(
                503,
                code::GUEST_CAPACITY_REACHED,
                "The unclaimed-guest cap is reached.",
            ))
        }
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!("guest_create_denied: counting guests failed: {e}");
            Err(ApiError::new(
                503,
                code::GUEST_UNAVAILABLE,
                "Guests cannot be created right now.",
            ))
        }
    }
}

pub(crate) async fn upgrade(shard: &Rc<Shard>, me: &str, body: Credentials) -> RestResult {
    validate(shard, &body)?;
    let hash = hash_off_shard(shard, body.password.clone()).await?;
    let g = &shard.ctx;
    let player = g
        .store
        .upgrade_guest(me, &body.username, &hash)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => username_taken(),
            StoreError::NotFound | StoreError::Gone(_) => Error::PlayerNotFound.into(),
            StoreError::Precondition(_) => Error::NotAnUnclaimedGuest.into(),
            other => store_error(other),
        })?;
    g.store
        .revoke_player_tokens(me)
        .await
        .map_err(store_error)?;
    session_reply(shard, &player, json!({ "upgraded": true })).await
}

fn profile(p: &Player) -> Value {
    json!({
        "id": p.id,
        "player_id": p.id,
        "username": p.username,
        "display_name": p.display_name,
        "avatar_url": p.avatar_url,
        "metadata": p.metadata,
        "guest": p.is_guest,
        "inserted_at": p.created_at,
        "updated_at": p.updated_at,
    })
}

pub(crate) async fn get_player(shard: &Rc<Shard>, id: &str) -> RestResult {
    match shard.ctx.store.player(id).await.map_err(store_error)? {
        Some(p) if p.erased_at.is_none() => ok(&profile(&p)),
        _ => Err(Error::PlayerNotFound.into()),
    }
}

/// The keys a profile update casts; like asobi, any other key is ignored.
#[derive(Deserialize)]
pub(crate) struct ProfilePatch {
    #[serde(default, with = "double_option")]
    display_name: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    avatar_url: Option<Option<String>>,
    #[serde(default)]
    metadata: Option<Value>,
}

/// Distinguishes an absent field (leave as is) from `null` (clear it).
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

/// Largest `metadata` document a profile may carry.
const MAX_METADATA_BYTES: usize = 16 * 1024;

pub(crate) async fn put_player(
    shard: &Rc<Shard>,
    me: &str,
    id: &str,
    body: ProfilePatch,
) -> RestResult {
    let target = if id == "me" { me } else { id };
    if target != me {
        return Err(Error::NotYourProfile.into());
    }
    let too_long = |v: &Option<Option<String>>, max: usize| {
        v.as_ref()
            .and_then(|o| o.as_ref())
            .is_some_and(|s| s.chars().count() > max)
    };
    if too_long(&body.display_name, 64) || too_long(&body.avatar_url, 512) {
        let field = if too_long(&body.display_name, 64) {
            "display_name"
        } else {
            "avatar_url"
        };
        return Err(Error::Validation {
            key: "errors",
            field,
            message: "display_name is at most 64 and avatar_url at most 512 characters.".into(),
        }
        .into());
    }
    if let Some(Some(url)) = &body.avatar_url {
        if !avatar_url_allowed(url) {
            return Err(Error::Validation {
                key: "errors",
                field: "avatar_url",
                message: "avatar_url must be an http or https URL".into(),
            }
            .into());
        }
    }
    if let Some(m) = &body.metadata {
        if !m.is_object() {
            return Err(Error::InvalidField {
                field: "metadata",
                message: "metadata must be an object.",
            }
            .into());
        }
        if serde_json::to_vec(m).map_or(0, |v| v.len()) > MAX_METADATA_BYTES {
            return Err(Error::Validation {
                key: "errors",
                field: "metadata",
                message: "metadata is at most 16 KiB.".into(),
            }
            .into());
        }
    }
    let patch = PlayerPatch {
        display_name: body.display_name,
        avatar_url: body.avatar_url,
        metadata: body.metadata,
        now_ms: now_ms(),
    };
    match shard
        .ctx
        .store
        .update_player(me, patch)
        .await
        .map_err(|e| match e {
            // Erased: the account is gone, whatever its token still says.
            StoreError::Gone(_) => Error::PlayerNotFound.into(),
            other => store_error(other),
        })? {
        Some(p) => ok(&profile(&p)),
        None => Err(Error::PlayerNotFound.into()),
    }
}

/// An avatar is shown by clients, often in a web view: only `http`/`https` URLs (or nothing) are
/// stored, so a `javascript:` or `data:` URL can never be served back.
fn avatar_url_allowed(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    url.is_empty()
        || ((lower.starts_with("https://") || lower.starts_with("http://"))
            && !url.chars().any(|c| c.is_control() || c.is_whitespace()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn avatar_urls_are_http_only() {
        use super::avatar_url_allowed as ok;
        assert!(ok("https://cdn.example.com/a.png"));
        assert!(ok("http://x/y"));
        assert!(ok(""));
        assert!(!ok("javascript:alert(1)"));
        assert!(!ok("JaVaScRiPt:alert(1)"));
        assert!(!ok("data:text/html,<b>"));
        assert!(!ok("https://x/\nInjected"));
        assert!(!ok("https://x/ y"));
    }
}
