//! Backup errors. Each says what was being done and to which file, because
//! a backup failure that cannot be located cannot be fixed.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("no backup repository at {0}; run 'hearth backup init' first")]
    NoRepository(PathBuf),
    #[error("a backup repository already exists at {0}")]
    AlreadyInitialised(PathBuf),
    #[error("the recovery passphrase must be at least 12 characters")]
    WeakPassphrase,
    #[error("the recovery passphrase is not right, or {0} is not a Hearth key file")]
    WrongPassphrase(PathBuf),
    #[error("the key file {path} is damaged: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("the key does not belong to the repository at {0}")]
    KeyMismatch(PathBuf),
    #[error("pack {pack} is damaged: {reason}")]
    BadPack { pack: String, reason: String },
    /// The bucket did not answer a read of a pack (a restore straight
    /// from it): not damage, and worth trying again.
    #[error("reading pack {pack} from the S3 target failed: {reason}")]
    Fetch { pack: String, reason: String },
    #[error("pack {0} is missing")]
    MissingPack(String),
    #[error("chunk {0} is not in the index")]
    MissingChunk(String),
    #[error("the tree {id} is damaged: {reason}")]
    BadTree { id: String, reason: String },
    #[error("no snapshot {0}")]
    NoSnapshot(String),
    #[error("there is no snapshot yet")]
    NoSnapshots,
    #[error("{0} is not in that snapshot")]
    NoSuchPath(String),
    #[error("{path} cannot be backed up: {reason}")]
    BadSource { path: PathBuf, reason: String },
    #[error("another backup is running on this repository")]
    Locked,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("encryption: {0}")]
    Crypto(String),
    #[error("index database: {0}")]
    Sql(#[from] hearth_store::rusqlite::Error),
}

/// Attaches a path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T, BackupError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T, BackupError> {
        self.map_err(|source| BackupError::Io {
            path: path.into(),
            source,
        })
    }
}
