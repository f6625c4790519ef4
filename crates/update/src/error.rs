//! Why an update was refused. Each variant renders as the one sentence the
//! admin page and the CLI show, so it says what is wrong and, where there
//! is one, what to do.

use std::path::PathBuf;

/// A refused or failed update. Nothing has been staged or switched when
/// one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("this is not a Hearth update file (expected manifest.toml first, found {0})")]
    NotABundle(String),
    #[error("the update file is incomplete: it ends early ({0}); copy or download it again")]
    Truncated(String),
    #[error("the update file is damaged ({0}); copy or download it again")]
    Damaged(String),
    #[error(
        "the update is signed with a key this Hearth does not trust (key {0}); only Hearth's release key{1} is accepted"
    )]
    UntrustedKey(String, &'static str),
    #[error(
        "the update's signature does not match its manifest: the manifest was altered or damaged"
    )]
    BadSignature,
    #[error(
        "the update's {0} does not match the checksum in its signed manifest: the file is damaged"
    )]
    PayloadMismatch(String),
    #[error("the update's manifest is not valid: {0}")]
    BadManifest(String),
    #[error("this update is for {offered} computers; this Hearth runs on {running}")]
    WrongArchitecture { offered: String, running: String },
    #[error(
        "this update is version {offered}, not newer than the running {running}; tick \"install an older version\" to install it anyway"
    )]
    Downgrade { offered: String, running: String },
    #[error(
        "this update needs Hearth {min_from} or later to be installed first; this Hearth runs {running}"
    )]
    TooOld { min_from: String, running: String },
    #[error(
        "not enough free space for the update: it needs {need_mb} MB and {free_mb} MB is free; delete files or old backups first"
    )]
    NoSpace { need_mb: u64, free_mb: u64 },
    #[error("the disk filled up while writing the update; nothing was changed")]
    DiskFull,
    #[error("no update is staged; upload one first")]
    NothingStaged,
    #[error("the configured update_extra_key is not a minisign public key: {0}")]
    BadExtraKey(String),
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot copy the database before switching: {0}")]
    Database(String),
}

impl UpdateError {
    /// An I/O failure on Hearth's own side (never the bundle's fault).
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        if source.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) {
            // The space check passed but the disk filled meanwhile.
            return UpdateError::DiskFull;
        }
        UpdateError::Io {
            what,
            path: path.into(),
            source,
        }
    }

    /// Whether the admin can fix this by choosing another file or ticking
    /// a box (400), rather than a fault of the device (500).
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            UpdateError::Io { .. } | UpdateError::Database(_) | UpdateError::BadExtraKey(_)
        )
    }
}

/// Errors while reading the bundle itself: an early end is a truncated
/// file, anything else a damaged one.
pub(crate) fn reading(e: std::io::Error, what: &str) -> UpdateError {
    // The tar reader says "failed to read entire block" or "unexpected EOF
    // during skip" when the file stops inside a header or padding.
    let text = e.to_string();
    if e.kind() == std::io::ErrorKind::UnexpectedEof
        || text.contains("entire block")
        || text.contains("unexpected EOF")
    {
        UpdateError::Truncated(what.to_string())
    } else {
        UpdateError::Damaged(format!("{what}: {e}"))
    }
}
