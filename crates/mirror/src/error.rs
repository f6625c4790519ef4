//! The crate's one error type, [`MirrorError`].
//!
//! It sits in a module of its own, below everything that fails, so the
//! service, the peer list, both sides of the protocol and the client can all
//! return it without importing one another. Its texts are shown on the admin
//! page, so they are sentences, not debug dumps.

use crate::pairing::PairError;

/// What can go wrong; the texts are for the admin page.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("{0}")]
    Pair(#[from] PairError),
    #[error("cannot reach {address}: {message}")]
    Unreachable { address: String, message: String },
    /// The peer answered with a refusal; its words.
    #[error("{0}")]
    Refused(String),
    #[error("the other device answered something this version does not understand: {0}")]
    Protocol(String),
    #[error("{0}")]
    Invalid(String),
    /// A peer's update was refused or could not be staged: the update
    /// crate's sentence.
    #[error("{0}")]
    Update(#[from] hearth_update::UpdateError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<hearth_store::StoreError> for MirrorError {
    fn from(e: hearth_store::StoreError) -> Self {
        MirrorError::Internal(e.to_string())
    }
}

impl From<hearth_store::rusqlite::Error> for MirrorError {
    fn from(e: hearth_store::rusqlite::Error) -> Self {
        MirrorError::Internal(e.to_string())
    }
}

impl From<std::io::Error> for MirrorError {
    fn from(e: std::io::Error) -> Self {
        MirrorError::Internal(e.to_string())
    }
}
