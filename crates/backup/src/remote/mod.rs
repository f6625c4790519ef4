//! The S3 target: a second copy of the repository's packs in a bucket
//! (docs/scale-out.md).
//!
//! The device keeps its own repository; the bucket is an extra copy, like
//! a paired peer. Backups, restores and dedup read local packs only. The
//! bucket is written by the uploader ([`upload`]) and read by
//! `verify --target s3` ([`check`]), disaster recovery ([`recover`]) and
//! the healing of packs lost or damaged here ([`heal`]).
//!
//! Objects are named as the local files are, under `hearth/<repo id>/`, so
//! two devices given one bucket never collide and docs/recovery.md works on
//! a downloaded bucket.

mod check;
mod heal;
mod recover;
mod stream;
mod upload;

use std::path::{Path, PathBuf};

use hearth_store::rusqlite::{Connection, OptionalExtension, params};
use hearth_system::unix_now;

use crate::{BackupError, error::IoContext, repo::store_err};

pub use check::{RemoteDamage, RemoteVerifyReport};
pub use heal::HealReport;
pub use hearth_s3::{Client, DEFAULT_REGION, S3Error, Target};
pub use recover::{DownloadReport, recover};
pub use stream::{Bucket, KeySource, StreamReport};
pub use upload::{UploadProgress, UploadReport};

/// What the dashboard and `hearth backup target show` say about the target.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TargetStatus {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    /// The target's own CA (PEM), trusted for it besides the system's; or
    /// empty.
    pub ca: String,
    /// Packs the bucket has confirmed, and their bytes.
    pub packs_stored: u64,
    pub bytes_stored: u64,
    /// Packs waiting to go, and their bytes.
    pub packs_waiting: u64,
    pub bytes_waiting: u64,
    pub last_upload: i64,
    pub last_check: i64,
    /// 0 while uploads work; else when they started failing, and why.
    pub failing_since: i64,
    pub last_error: String,
}

/// The saved target settings, if any (the secret is not read).
pub fn target(db: &Path) -> Result<Option<Target>, BackupError> {
    let c = hearth_store::open_reader(db).map_err(store_err)?;
    Ok(c.query_row(
        "SELECT endpoint, region, bucket, access_key, ca FROM backup_target WHERE id = 1",
        [],
        |r| {
            Ok(Target {
                endpoint: r.get(0)?,
                region: r.get(1)?,
                bucket: r.get(2)?,
                access_key: r.get(3)?,
                ca: r.get(4)?,
            })
        },
    )
    .optional()?)
}

/// Saves a target. The connection is tested first (a test object is
/// written, read back and deleted), so settings that do not work are never
/// stored. The secret file is written (0600, durably) before the row that
/// makes it used; a crash between leaves an unused file that the next `set`
/// or `clear` replaces. A different endpoint or bucket starts empty: what
/// the old one confirmed says nothing about the new one.
pub fn set_target(
    db: &Path,
    secret_file: &Path,
    t: &Target,
    secret: &str,
) -> Result<(), RemoteError> {
    Client::new(t, secret)?.test()?;
    hearth_system::write_durably(secret_file, secret.as_bytes()).at(secret_file)?;
    let mut c = hearth_store::open_writer(db).map_err(store_err)?;
    let tx = c.transaction()?;
    let old = tx
        .query_row(
            "SELECT endpoint, bucket FROM backup_target WHERE id = 1",
            [],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        )
        .optional()?;
    if old.is_some_and(|(e, b)| e != t.endpoint || b != t.bucket) {
        tx.execute("DELETE FROM backup_remote", [])?;
    }
    tx.execute(
        "INSERT INTO backup_target (id, endpoint, region, bucket, access_key, set_at, ca)
         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (id) DO UPDATE SET endpoint = ?1, region = ?2, bucket = ?3,
           access_key = ?4, set_at = ?5, ca = ?6, failing_since = 0, last_error = ''",
        params![
            t.endpoint,
            t.region,
            t.bucket,
            t.access_key,
            unix_now(),
            t.ca.trim()
        ],
    )?;
    tx.commit()?;
    Ok(())
}

/// Forgets the target: the row and what it confirmed, then the secret.
/// The bucket itself is left as it is.
pub fn clear_target(db: &Path, secret_file: &Path) -> Result<(), BackupError> {
    let mut c = hearth_store::open_writer(db).map_err(store_err)?;
    let tx = c.transaction()?;
    tx.execute_batch("DELETE FROM backup_target; DELETE FROM backup_remote;")?;
    tx.commit()?;
    match std::fs::remove_file(secret_file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(BackupError::Io {
            path: secret_file.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// A client for the saved target, or `None` when there is none.
pub fn connect(db: &Path, secret_file: &Path) -> Result<Option<Client>, RemoteError> {
    let Some(t) = target(db)? else {
        return Ok(None);
    };
    let secret = std::fs::read_to_string(secret_file).at(secret_file)?;
    Ok(Some(Client::new(&t, secret.trim_end_matches('\n'))?))
}

/// A failure talking to the target, or in the repository beside it. Its
/// text is the cause alone; callers say it concerns the S3 target.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{0}")]
    S3(#[from] S3Error),
    #[error("{0}")]
    Backup(#[from] BackupError),
}

impl From<hearth_store::rusqlite::Error> for RemoteError {
    fn from(e: hearth_store::rusqlite::Error) -> Self {
        RemoteError::Backup(e.into())
    }
}

/// The target's state, for pages and the CLI.
pub fn status(db: &Path) -> Result<Option<TargetStatus>, BackupError> {
    let c = hearth_store::open_reader(db).map_err(store_err)?;
    let Some(mut s) = c
        .query_row(
            "SELECT endpoint, region, bucket, access_key, last_upload, last_check,
                    failing_since, last_error, ca FROM backup_target WHERE id = 1",
            [],
            |r| {
                Ok(TargetStatus {
                    endpoint: r.get(0)?,
                    region: r.get(1)?,
                    bucket: r.get(2)?,
                    access_key: r.get(3)?,
                    last_upload: r.get(4)?,
                    last_check: r.get(5)?,
                    failing_since: r.get(6)?,
                    last_error: r.get(7)?,
                    ca: r.get(8)?,
                    ..TargetStatus::default()
                })
            },
        )
        .optional()?
    else {
        return Ok(None);
    };
    (s.packs_stored, s.bytes_stored) = counts(
        &c,
        "SELECT count(*), total(size) FROM backup_remote
         WHERE name IN (SELECT name FROM backup_packs)",
    )?;
    (s.packs_waiting, s.bytes_waiting) = counts(
        &c,
        "SELECT count(*), total(size) FROM backup_packs
         WHERE name NOT IN (SELECT name FROM backup_remote)",
    )?;
    Ok(Some(s))
}

fn counts(c: &Connection, sql: &str) -> Result<(u64, u64), BackupError> {
    Ok(c.query_row(sql, [], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get::<_, f64>(1)? as u64))
    })?)
}

/// The folder of this repository's objects in the bucket.
pub(crate) fn prefix(repo_id: &str) -> String {
    format!("hearth/{repo_id}/")
}

pub(crate) use crate::source::pack_key;

/// Records the outcome of an attempt on the target's row.
pub(crate) fn record_outcome(db: &Path, error: Option<&str>) -> Result<(), BackupError> {
    let c = hearth_store::open_writer(db).map_err(store_err)?;
    match error {
        None => c.execute(
            "UPDATE backup_target SET failing_since = 0, last_error = '' WHERE id = 1",
            [],
        )?,
        Some(e) => c.execute(
            "UPDATE backup_target SET last_error = ?1,
               failing_since = CASE failing_since WHEN 0 THEN ?2 ELSE failing_since END
             WHERE id = 1",
            params![e, unix_now()],
        )?,
    };
    Ok(())
}

/// A scratch file in the repository's `tmp/`, removed on drop (cleared at
/// start anyway if a kill leaves it).
pub(crate) struct Scratch(pub PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Requests in flight at once. One at a time left the link and a
/// three-node Garage idle between requests (each PUT waits for two
/// replicas' fsyncs); objects are streamed, so memory does not grow with it.
pub(crate) const PARALLEL: usize = 4;

/// [`crate::parallel::in_parallel`] with [`PARALLEL`] threads.
pub(crate) fn in_parallel<T: Send, R: Send>(
    items: Vec<T>,
    work: impl Fn(T) -> Result<R, RemoteError> + Sync,
    done: impl FnMut(R) -> Result<(), RemoteError>,
) -> Result<(), RemoteError> {
    crate::parallel::in_parallel(PARALLEL, items, work, done)
}

/// The packs in the bucket under `prefix`, by name, with their sizes.
pub(crate) fn listed_packs(
    client: &Client,
    prefix: &str,
) -> Result<std::collections::HashMap<String, u64>, S3Error> {
    Ok(client
        .list(&format!("{prefix}packs/"))?
        .into_iter()
        .filter_map(|(k, size)| Some((k.rsplit('/').next()?.to_string(), size)))
        .collect())
}

/// Each item's pack file in `dir` checked against its name
/// ([`pack_is_whole`]), on every core; in the order they finish.
pub(crate) fn check_here<T: Send>(
    dir: &Path,
    items: Vec<T>,
    name: impl Fn(&T) -> &str + Sync,
) -> Result<Vec<(T, Option<bool>)>, RemoteError> {
    let mut checked = Vec::with_capacity(items.len());
    crate::parallel::in_parallel(
        crate::parallel::cpu_threads(),
        items,
        |item| {
            let whole = pack_is_whole(dir, name(&item));
            Ok::<_, RemoteError>((item, whole))
        },
        |done| {
            checked.push(done);
            Ok(())
        },
    )?;
    Ok(checked)
}

/// Whether the pack file `name` in the repository at `dir` hashes to its
/// name (the BLAKE3 of its bytes; no key needed); `None` when there is no
/// such file. A read error is damage too: the bucket's copy is wanted.
fn pack_is_whole(dir: &Path, name: &str) -> Option<bool> {
    let mut file = std::fs::File::open(crate::pack::pack_path(dir, name)).ok()?;
    let mut hasher = blake3::Hasher::new();
    Some(
        std::io::copy(&mut file, &mut hasher).is_ok()
            && hasher.finalize().to_hex().as_str() == name,
    )
}

/// Hashes what passes through on its way to a file: a download is checked
/// against its name as it is written.
pub(crate) struct Tee<'a>(pub &'a mut std::fs::File, pub blake3::Hasher);

impl std::io::Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
