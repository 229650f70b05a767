//! What can go wrong with a leaderboard request, before it meets the wire in `services::error`.

/// A leaderboard request that cannot be served.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Clients may not submit to this board (`POST` is off unless a setting opts it in).
    #[error("Client score submission is disabled for this leaderboard.")]
    ClientSubmitDisabled,
    /// The owner holds its share of the boards the server may keep.
    #[error("Too many leaderboards are active; this one cannot start.")]
    CapacityReached,
    /// A board id that is empty or longer than the server accepts.
    #[error("The leaderboard id must be 1 to {max} bytes.", max = super::MAX_BOARD_ID)]
    InvalidBoardId,
    /// Metadata larger than the server keeps per entry.
    #[error("Metadata must be at most {max} bytes of JSON.", max = super::MAX_METADATA_BYTES)]
    MetadataTooLarge,
    /// The database could not be read or written.
    #[error("storage: {0}")]
    Storage(#[from] asobi_storage::StoreError),
}
