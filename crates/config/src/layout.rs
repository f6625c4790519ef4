//! Where things live inside the data folder.
//!
//! The CLI, the scheduler, the web panel and the mirror all open the same
//! database, repository and key file; naming them here once means a change of
//! layout cannot leave one of them looking in the old place.

use std::path::{Path, PathBuf};

/// The data folder (`/var/lib/hearth` on the device, `./hearth-data` on a
/// laptop) and the names of what Hearth keeps in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir(PathBuf);

impl DataDir {
    /// The data folder at `dir`; nothing is created or checked.
    pub fn new(dir: impl Into<PathBuf>) -> DataDir {
        DataDir(dir.into())
    }

    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The SQLite database: accounts, sessions, board, backup index.
    pub fn db(&self) -> PathBuf {
        self.0.join("hearth.db")
    }

    /// The backup repository: encrypted packs, `key.age`, `HEARTH-REPO`.
    pub fn repo(&self) -> PathBuf {
        self.0.join("repo")
    }

    /// The repository identity, unsealed for unattended backups (mode 0600).
    pub fn backup_key(&self) -> PathBuf {
        self.0.join("backup.key")
    }

    /// The S3 target's secret key (mode 0600; never in the database).
    pub fn s3_secret(&self) -> PathBuf {
        self.0.join("s3-secret")
    }

    /// Peers' encrypted packs that this device holds for them.
    pub fn mirror(&self) -> PathBuf {
        self.0.join("mirror")
    }

    /// Installed and staged versions of Hearth (slots), the `current` and
    /// `previous` links, the trial marker and the database copy taken
    /// before a switch ([updates](../../../docs/updates.md)).
    pub fn update(&self) -> PathBuf {
        self.0.join("update")
    }
}

impl AsRef<Path> for DataDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_inside_the_folder() {
        let d = DataDir::new("/var/lib/hearth");
        for p in [d.db(), d.repo(), d.backup_key(), d.mirror()] {
            assert_eq!(p.parent(), Some(Path::new("/var/lib/hearth")));
        }
        assert_ne!(d.repo(), d.mirror());
    }
}
