//! Hearth's SQLite database.
//!
//! One writer connection and a few reader connections share a WAL-mode
//! database. Every call goes through [`Store::read`] or [`Store::write`],
//! which run the closure on tokio's blocking pool: SQLite calls block, often
//! on an fsync to an SD card, and must never stall the async workers.
//!
//! Migrations are embedded in the binary and run at open. A database whose
//! schema is newer than this build knows is refused rather than guessed at,
//! because an older Hearth writing to it could lose data.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use rusqlite::{Connection, OpenFlags};
use rusqlite_migration::{M, Migrations};

pub use rusqlite;

/// Every migration, in order. Append only; never edit a landed entry.
const MIGRATIONS: &[M<'static>] = &[
    M::up(include_str!("../migrations/0001_spine.sql")),
    M::up(include_str!("../migrations/0002_backup.sql")),
    M::up(include_str!("../migrations/0003_prune.sql")),
    M::up(include_str!("../migrations/0004_board.sql")),
    M::up(include_str!("../migrations/0005_mirror.sql")),
    M::up(include_str!("../migrations/0006_board_share.sql")),
    M::up(include_str!("../migrations/0007_backup_target.sql")),
    M::up(include_str!("../migrations/0008_backup_target_ca.sql")),
];

/// Opens an extra read-only connection, for long blocking work (a backup
/// run) that must not hold one of the shared connections.
pub fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let c = open_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    c.busy_timeout(Duration::from_secs(5))?;
    Ok(c)
}

/// Opens an extra writing connection with the store's settings, for long
/// blocking work that commits in short transactions of its own.
pub fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let c = open_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    configure(&c)?;
    Ok(c)
}

fn open_flags(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })
}

/// How many read-only connections serve concurrent page loads.
const READERS: usize = 4;

/// The schema version this build writes.
pub fn schema_version() -> usize {
    MIGRATIONS.len()
}

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the database {path} was written by a newer Hearth (schema {found}, this build knows up to {known}); refusing to open it. Install the newer Hearth or restore a database backup"
    )]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot migrate the database {path}: {message}")]
    Migrate { path: PathBuf, message: String },
    #[error("{0} already exists; choose a new file name")]
    BackupExists(PathBuf),
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),
    #[error("a database task stopped unexpectedly")]
    TaskFailed,
}

/// A handle on the database. Cloning is shallow: every clone shares the same
/// connections, so it can be put in web state and handed to every task.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// The only connection that writes; SQLite allows one writer anyway, and
    /// funnelling writes here keeps them in one queue instead of busy-waits.
    writer: Mutex<Connection>,
    /// Read-only connections; WAL lets them read while the writer writes.
    readers: Vec<Mutex<Connection>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`.
    /// Blocking: call it before serving, or from a blocking thread.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut writer = Connection::open(path).map_err(open_err)?;
        restrict_permissions(path)?;
        // Refuse before touching anything: even switching to WAL is a write.
        check_not_too_new(path, &writer)?;
        configure(&writer).map_err(open_err)?;
        migrate(path, &mut writer)?;
        let readers = (0..READERS)
            .map(|_| {
                let c = open_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(Duration::from_secs(5))?;
                Ok(Mutex::new(c))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: Mutex::new(writer),
                readers,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` with the writer connection on the blocking pool.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&mut lock(&inner.writer)))
            .await
            .map_err(|_| E::from(StoreError::TaskFailed))?
    }

    /// Runs `f` with a read-only connection on the blocking pool.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            // Take the first idle reader; if all are busy, wait on one.
            let guard = inner
                .readers
                .iter()
                .find_map(|m| m.try_lock().ok())
                .unwrap_or_else(|| lock(&inner.readers[0]));
            f(&guard)
        })
        .await
        .map_err(|_| E::from(StoreError::TaskFailed))?
    }

    /// Runs `f` with the writer connection on the current thread. For
    /// start-up work that happens before any request is served.
    pub fn write_now<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        f(&mut lock(&self.inner.writer))
    }

    /// Checkpoints the WAL into the main file so a clean stop leaves one
    /// self-contained database file. Called once serving has finished.
    pub fn close(&self) -> Result<(), StoreError> {
        let conn = lock(&self.inner.writer);
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

/// Copies the database at `db` into the new file `dest` with `VACUUM INTO`,
/// which takes a consistent snapshot even while Hearth is running. The copy
/// is written beside `dest`, fsynced, then renamed, so `dest` either does not
/// exist or is complete.
pub fn backup(db: &Path, dest: &Path) -> Result<(), StoreError> {
    if dest.exists() {
        return Err(StoreError::BackupExists(dest.to_path_buf()));
    }
    let conn = open_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    check_not_too_new(db, &conn)?;
    let tmp = hearth_system::files::temp_sibling(dest);
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        conn.execute("VACUUM INTO ?1", [tmp.to_string_lossy().as_ref()])?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, dest)?;
        hearth_system::sync_parent(dest)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk when it returns. Hearth's writes are few and
    // batched, and the backup index must never point at data that vanished.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

fn check_not_too_new(path: &Path, conn: &Connection) -> Result<usize, StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let found = usize::try_from(found).unwrap_or(usize::MAX);
    if found > MIGRATIONS.len() {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
            known: MIGRATIONS.len(),
        });
    }
    Ok(found)
}

fn migrate(path: &Path, conn: &mut Connection) -> Result<(), StoreError> {
    let found = check_not_too_new(path, conn)?;
    Migrations::from_slice(MIGRATIONS)
        .to_latest(conn)
        .map_err(|e| StoreError::Migrate {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    if found < MIGRATIONS.len() {
        log::info!(
            "database {} migrated from schema {found} to {}",
            path.display(),
            MIGRATIONS.len()
        );
    }
    Ok(())
}

/// The database holds password hashes and session digests: owner only.
fn restrict_permissions(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// Locks a connection. A panic while holding it cannot leave SQLite itself
/// inconsistent (an open transaction is rolled back when dropped), so a
/// poisoned lock is safe to take over.
fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests;
