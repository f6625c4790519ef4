//! The uploader: packs to the bucket in write order, each confirmed before
//! it is counted, then the prune's deletions once nothing is waiting.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hearth_s3::Client;
use hearth_store::rusqlite::params;
use hearth_system::unix_now;

use super::{RemoteError, in_parallel, pack_key, prefix, record_outcome};
use crate::{BackupError, Repo, error::IoContext, pack::pack_path};

/// Where an upload stands, for live progress.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct UploadProgress {
    pub packs_done: u64,
    pub packs_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// What one upload did.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct UploadReport {
    pub packs: u64,
    pub bytes: u64,
    /// Objects deleted from the bucket because prune removed their packs.
    pub deleted: u64,
}

impl Repo {
    /// Sends every pack the target has not confirmed, oldest first, at most
    /// `bytes_per_sec` on average (0: no limit); then, if nothing is left
    /// waiting, deletes from the bucket the packs prune removed here.
    ///
    /// Write order: `HEARTH-REPO` and `key.age` first; each pack is PUT
    /// (atomic, MD5-checked by the service; several at once) and its
    /// `backup_remote` row is written only after the service confirmed it. A kill at any point
    /// leaves at most an object without a row, which is sent again (same
    /// name, same bytes). The outcome is recorded on the target's row for
    /// the dashboard.
    pub fn upload(
        &self,
        client: &Client,
        bytes_per_sec: u64,
        progress: &dyn Fn(UploadProgress),
    ) -> Result<UploadReport, RemoteError> {
        let result = self.upload_inner(client, bytes_per_sec, progress);
        let error = result.as_ref().err().map(|e| e.to_string());
        record_outcome(&self.db, error.as_deref())?;
        result
    }

    fn upload_inner(
        &self,
        client: &Client,
        bytes_per_sec: u64,
        progress: &dyn Fn(UploadProgress),
    ) -> Result<UploadReport, RemoteError> {
        let prefix = prefix(&self.keys.repo_id);
        for file in ["HEARTH-REPO", "key.age"] {
            let path = self.dir.join(file);
            let bytes = std::fs::read(&path).at(&path)?;
            if client.head(&format!("{prefix}{file}"))? != Some(bytes.len() as u64) {
                client.put(&format!("{prefix}{file}"), bytes)?;
            }
        }
        let mut report = UploadReport::default();
        let waiting = self.waiting()?;
        let mut p = UploadProgress {
            packs_total: waiting.len() as u64,
            bytes_total: waiting.iter().map(|(_, s)| s).sum(),
            ..UploadProgress::default()
        };
        progress(p);
        let w = self.writer()?;
        // Bytes handed to uploads so far, for the bandwidth limit.
        let paced = Mutex::new(0u64);
        let started = Instant::now();
        let upload = |(name, size): (String, u64)| {
            if bytes_per_sec > 0 {
                let before = paced.lock().map_or(0, |mut b| {
                    *b += size;
                    *b - size
                });
                let due = Duration::from_secs_f64(before as f64 / bytes_per_sec as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            let path = pack_path(&self.dir, &name);
            match client.put_file(&pack_key(&prefix, &name), &path) {
                Ok(()) => Ok(Some((name, size))),
                // Pruned since the queue was read: nothing to send.
                Err(_) if !path.exists() => Ok(None),
                Err(e) => Err(RemoteError::from(e)),
            }
        };
        // Rows are written here, one per confirmed pack, as they come.
        in_parallel(waiting, upload, |sent| {
            let Some((name, size)) = sent else {
                return Ok(());
            };
            let now = unix_now();
            w.execute(
                "INSERT OR REPLACE INTO backup_remote (name, size, uploaded_at) VALUES (?1, ?2, ?3)",
                params![name, size as i64, now],
            )?;
            w.execute(
                "UPDATE backup_target SET last_upload = ?1 WHERE id = 1",
                [now],
            )?;
            report.packs += 1;
            report.bytes += size;
            p.packs_done += 1;
            p.bytes_done += size;
            progress(p);
            Ok(())
        })?;
        // The sweep waits for an empty queue: the packs prune wrote must be
        // in the bucket before the ones they replace leave it, so the bucket
        // alone restores every remaining snapshot at every moment.
        if self.waiting()?.is_empty() {
            // Only what prune condemned: a pack a repair left out (damaged
            // or lost here) keeps the bucket's copy, which may be the good one.
            let mut stmt = w.prepare("SELECT name FROM backup_remote WHERE condemned = 1")?;
            let gone: Vec<String> = stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for name in gone {
                client.delete(&pack_key(&prefix, &name))?;
                w.execute("DELETE FROM backup_remote WHERE name = ?1", [&name])?;
                report.deleted += 1;
            }
        }
        Ok(report)
    }

    /// Packs the target has not confirmed, in the order they were written.
    fn waiting(&self) -> Result<Vec<(String, u64)>, BackupError> {
        let c = self.reader()?;
        let mut stmt = c.prepare(
            "SELECT name, size FROM backup_packs
             WHERE name NOT IN (SELECT name FROM backup_remote) ORDER BY rowid",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
