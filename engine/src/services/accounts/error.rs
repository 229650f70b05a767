//! What can go wrong in accounts. Mapped to codes and statuses in `services::error`.

use std::borrow::Cow;

use asobi_storage::StoreError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Error {
    /// Wrong username or password; an unknown username answers the same, so accounts cannot be
    /// probed.
    #[error("Wrong username or password.")]
    InvalidCredentials,
    /// A field failed validation (422). `key` is where asobi lists the fields: `fields` on
    /// account routes, `errors` on profile updates.
    #[error("{message}")]
    Validation {
        key: &'static str,
        field: &'static str,
        message: Cow<'static, str>,
    },
    /// A field has the wrong type or shape.
    #[error("{message}")]
    InvalidField {
        field: &'static str,
        message: &'static str,
    },
    /// The username is registered already.
    #[error("This username is already registered.")]
    UsernameTaken,
    /// The refresh token is unknown, spent, revoked or expired.
    #[error("The refresh token is invalid, spent or expired.")]
    InvalidRefreshToken,
    /// Guest sign-in is off (the game or the pepper does not enable it).
    #[error("Guest auth is not enabled on this server.")]
    GuestAuthDisabled,
    /// A guest sign-in without its device id or secret.
    #[error("device_id and device_secret are required.")]
    MissingDeviceFields,
    /// The device id is empty or too long.
    #[error("device_id must be 1 to 255 bytes.")]
    InvalidDeviceId,
    /// The device secret is not base64 of 32 to 512 bytes.
    #[error("device_secret must be base64 of at least 32 bytes.")]
    WeakDeviceSecret,
    /// The device's verifier was revoked.
    #[error("This device can no longer sign in.")]
    GuestRevoked,
    /// The device secret does not match the device's verifier.
    #[error("Wrong secret for this device.")]
    InvalidDeviceSecret,
    /// A device points at a player that no longer exists (a server-side inconsistency).
    #[error("The device's player no longer exists.")]
    GuestPlayerMissing,
    /// The guest was upgraded to a password account.
    #[error("This guest was upgraded; log in with its credentials.")]
    GuestUpgraded,
    /// Two guest sign-ins for one new device raced; the loser retries.
    #[error("This device registered concurrently; retry.")]
    DeviceAlreadyRegistered,
    /// No such player, or the player was erased.
    #[error("No such player.")]
    PlayerNotFound,
    /// Only an unclaimed guest can be upgraded.
    #[error("Only an unclaimed guest can be upgraded.")]
    NotAnUnclaimedGuest,
    /// A profile can only be changed by its owner.
    #[error("You can only change your own profile.")]
    NotYourProfile,
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StoreError),
}
