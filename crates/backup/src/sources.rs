//! The folders backed up automatically. Shared by the CLI, the admin panel
//! and the scheduler, so each applies the same checks.

use std::path::{Path, PathBuf};

use hearth_store::rusqlite::Connection;

use crate::BackupError;

/// Adds `path` (made absolute) to the automatic backups. Refuses what is
/// not a folder, and Hearth's own data folder, inside or around it: that
/// holds the live database and the repository itself.
pub fn add_source(c: &Connection, path: &Path, data_dir: &Path) -> Result<PathBuf, BackupError> {
    let path = std::fs::canonicalize(path).map_err(|e| BackupError::BadSource {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if !path.is_dir() {
        return Err(BackupError::BadSource {
            path,
            reason: "it is not a folder".into(),
        });
    }
    if let Ok(data) = std::fs::canonicalize(data_dir)
        && (path.starts_with(&data) || data.starts_with(&path))
    {
        return Err(BackupError::BadSource {
            path,
            reason: format!(
                "it overlaps Hearth's data folder {}, which holds the repository itself",
                data.display()
            ),
        });
    }
    c.execute(
        "INSERT OR IGNORE INTO backup_sources (path, added_at) VALUES (?1, strftime('%s','now'))",
        [path.to_string_lossy()],
    )?;
    Ok(path)
}

/// Stops backing up `path` automatically; its snapshots stay.
pub fn remove_source(c: &Connection, path: &str) -> Result<bool, BackupError> {
    Ok(c.execute("DELETE FROM backup_sources WHERE path = ?1", [path])? > 0)
}

/// Every folder backed up automatically, by path.
pub fn sources(c: &Connection) -> Result<Vec<PathBuf>, BackupError> {
    let mut stmt = c.prepare("SELECT path FROM backup_sources ORDER BY path")?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows.into_iter().map(PathBuf::from).collect())
}
