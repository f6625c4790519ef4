//! The board's one error type.
//!
//! A module of its own because every other module returns it (the public
//! `photo` module included): it imports nothing of the crate, so any module
//! may import it without a cycle.

use hearth_store::{StoreError, rusqlite};

/// What can go wrong. `Invalid`, `Refused` and `NotFound` texts are shown
/// to people as they are; `Internal` goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("{0}")]
    Invalid(String),
    /// Not allowed now: banned, locked, slow mode, too fast.
    #[error("{message}")]
    Refused {
        message: String,
        /// Seconds until trying again makes sense, when that is known.
        retry_after: Option<u64>,
    },
    #[error("That post or board does not exist.")]
    NotFound,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for BoardError {
    fn from(e: StoreError) -> Self {
        BoardError::Internal(e.to_string())
    }
}

impl From<rusqlite::Error> for BoardError {
    fn from(e: rusqlite::Error) -> Self {
        BoardError::Internal(e.to_string())
    }
}
