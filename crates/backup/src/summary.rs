//! What the dashboard shows about backups, read from the catalogue alone
//! (no key needed), so it is cheap and works before a repository exists.

use std::path::Path;

use hearth_store::rusqlite::OptionalExtension;

use crate::{BackupError, repo::store_err};

/// The state of backups at a glance.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Summary {
    pub snapshots: u64,
    /// Ciphertext bytes of all packs.
    pub repository_bytes: u64,
    /// The newest snapshot: (time, source, files, bytes added).
    pub last: Option<(i64, String, u64, u64)>,
    /// Folders added for automatic backups.
    pub sources: u64,
}

/// Reads the summary from Hearth's database.
pub fn summary(db: &Path) -> Result<Summary, BackupError> {
    let c = hearth_store::open_reader(db).map_err(store_err)?;
    let count = |sql: &str| -> Result<u64, BackupError> {
        Ok(c.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64)
    };
    let last = c
        .query_row(
            "SELECT time, source, files, added FROM backup_snapshots ORDER BY time DESC, id DESC LIMIT 1",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)? as u64,
                    r.get::<_, i64>(3)? as u64,
                ))
            },
        )
        .optional()?;
    Ok(Summary {
        snapshots: count("SELECT count(*) FROM backup_snapshots")?,
        repository_bytes: count("SELECT coalesce(sum(size), 0) FROM backup_packs")?,
        last,
        sources: count("SELECT count(*) FROM backup_sources")?,
    })
}
