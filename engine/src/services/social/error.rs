//! What can go wrong in social operations, and how each failure meets the wire (asobi's codes
//! and statuses).

use serde_json::json;

use asobi_schema::error::code;
use asobi_schema::ApiError;
use asobi_storage::StoreError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Error {
    /// The channel id is empty, too long, or has no known prefix.
    #[error("The channel id is not valid.")]
    InvalidChannelId,
    /// The player may not read or write this channel.
    #[error("You may not use this channel.")]
    NotAuthorized,
    /// The connection joined as many channels as it may.
    #[error("This connection has joined too many channels.")]
    TooManyChannels,
    /// The channel, or its shard's channel table, is full.
    #[error("The channel cannot take more members.")]
    ChannelFull,
    /// A direct message without content.
    #[error("A direct message needs content.")]
    ContentEmpty,
    /// A direct message over the size limit.
    #[error("The message is longer than the server accepts.")]
    ContentTooLarge,
    /// The recipient blocked the sender.
    #[error("The recipient blocked this sender.")]
    Blocked,
    /// No player with this id.
    #[error("No player exists with this id.")]
    PlayerNotFound,
    /// A player cannot befriend themselves.
    #[error("A player cannot befriend themselves.")]
    CannotFriendSelf,
    /// No player exists with the friend id.
    #[error("No player exists with this friend id.")]
    FriendNotFound,
    /// No friendship between these players.
    #[error("No friendship exists between these players.")]
    FriendshipNotFound,
    /// No group with this id.
    #[error("No group exists with this id.")]
    GroupNotFound,
    /// The group is closed.
    #[error("This group is closed and needs an invite.")]
    GroupClosed,
    /// The group is full.
    #[error("This group already holds as many members as allowed.")]
    GroupFull,
    /// Already a member.
    #[error("This player is already a member of the group.")]
    AlreadyMember,
    /// Not a role groups define.
    #[error("That is not a role this group defines.")]
    InvalidRole,
    /// No such member.
    #[error("No such member in this group.")]
    MemberNotFound,
    /// The actor's role does not allow this.
    #[error("Your role does not allow this.")]
    Forbidden,
    /// No notification with this id.
    #[error("No notification exists with this id.")]
    NotificationNotFound,
    /// A field failed validation (asobi's changeset errors: 422 `validation_failed`).
    #[error("`{field}` {message}.")]
    Validation {
        field: &'static str,
        message: &'static str,
    },
    /// A field of the wrong type or size.
    #[error("`{0}` is missing, of the wrong type or too long.")]
    InvalidField(&'static str),
    /// The sender used up their budget for this operation.
    #[error("Too many messages; slow down.")]
    RateLimited,
    /// The owning shard cannot take more work right now.
    #[error("overloaded")]
    Overloaded(ApiError),
    /// The database failed or could not be reached.
    #[error("storage: {0}")]
    Storage(#[from] StoreError),
}

fn err(status: u16, c: &'static str, e: &Error) -> ApiError {
    ApiError::new(status, c, e.to_string())
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        use Error as E;
        match e {
            E::InvalidChannelId => err(400, code::CHAT_INVALID_CHANNEL_ID, &e),
            E::NotAuthorized | E::Forbidden => err(403, code::FORBIDDEN, &e),
            E::TooManyChannels => err(429, code::CHAT_TOO_MANY_CHANNELS, &e),
            E::ChannelFull => err(503, code::CHAT_CHANNEL_FULL, &e),
            E::ContentEmpty => err(400, code::DM_CONTENT_EMPTY, &e),
            E::ContentTooLarge => err(413, code::DM_CONTENT_TOO_LARGE, &e),
            E::Blocked => err(403, code::DM_BLOCKED, &e),
            E::PlayerNotFound => err(404, code::PLAYER_NOT_FOUND, &e),
            E::CannotFriendSelf => err(400, code::SOCIAL_CANNOT_FRIEND_SELF, &e),
            E::FriendNotFound => err(404, code::SOCIAL_FRIEND_NOT_FOUND, &e),
            E::FriendshipNotFound => err(404, code::SOCIAL_FRIENDSHIP_NOT_FOUND, &e),
            E::GroupNotFound => err(404, code::SOCIAL_GROUP_NOT_FOUND, &e),
            E::GroupClosed => err(403, code::SOCIAL_GROUP_CLOSED, &e),
            E::GroupFull => err(409, code::SOCIAL_GROUP_FULL, &e),
            E::AlreadyMember => err(409, code::SOCIAL_ALREADY_MEMBER, &e),
            E::InvalidRole => err(400, code::SOCIAL_INVALID_ROLE, &e),
            E::MemberNotFound => err(404, code::SOCIAL_MEMBER_NOT_FOUND, &e),
            E::NotificationNotFound => err(404, code::NOTIFICATION_NOT_FOUND, &e),
            E::Validation { field, message } => {
                err(422, code::VALIDATION_FAILED, &e).with_details(json!({
                    "errors": { field: [message] }
                }))
            }
            E::InvalidField(field) => {
                err(400, code::INVALID_FIELD, &e).with_details(json!({ "field": field }))
            }
            E::RateLimited => err(429, code::RATE_LIMITED, &e),
            E::Overloaded(api) => api,
            E::Storage(s) => crate::services::error::store_error(s),
        }
    }
}

impl Error {
    /// The reason a script reads in `{error = reason}` (asobi's flat reasons where it has one).
    pub(crate) fn lua_reason(&self) -> String {
        let r = match self {
            Error::Storage(StoreError::Unavailable(_)) => "storage_unavailable",
            Error::Storage(_) => "internal_error",
            Error::Overloaded(_) => "overloaded",
            Error::RateLimited => "rate_limited",
            Error::InvalidField(f) | Error::Validation { field: f, .. } => {
                return format!("invalid_{f}")
            }
            Error::InvalidChannelId => "invalid_channel_id",
            Error::NotAuthorized | Error::Forbidden => "not_authorized",
            Error::TooManyChannels => "too_many_channels",
            Error::ChannelFull => "channel_full",
            Error::ContentEmpty => "content_empty",
            Error::ContentTooLarge => "content_too_large",
            Error::Blocked => "blocked",
            Error::PlayerNotFound
            | Error::FriendNotFound
            | Error::FriendshipNotFound
            | Error::GroupNotFound
            | Error::MemberNotFound
            | Error::NotificationNotFound => "not_found",
            Error::CannotFriendSelf => "cannot_friend_self",
            Error::GroupClosed => "group_closed",
            Error::GroupFull => "group_full",
            Error::AlreadyMember => "already_member",
            Error::InvalidRole => "invalid_role",
        };
        r.to_owned()
    }
}
