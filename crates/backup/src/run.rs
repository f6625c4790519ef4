//! A backup run: walk one folder, store what is new, record a snapshot.
//!
//! This module owns the shape of the run and its write order. The walker
//! (`walk`, on this thread) reads, chunks and hashes; new chunks go through a
//! bounded queue to compression workers (`compress`), one per core, and from
//! them through another bounded queue to the single packer thread here, which
//! fills packs and hands each full one to a finisher that fsyncs, verifies,
//! renames and only then indexes it. Bounded queues keep memory flat however
//! large the files are. The snapshot row is written last, once every pack it
//! needs is durable and indexed, so an interrupted run leaves at most packs
//! nothing references.
//!
//! The walker and the workers live in modules of their own that import only
//! `compress`, where the queues' messages are defined; this module alone
//! wires the stages together, so nothing imports it back.

use crate::stages::{Stage, time};
use hearth_system::unix_now;
use std::{
    collections::HashSet,
    path::Path,
    sync::{
        Arc, Mutex,
        mpsc::{Receiver, sync_channel},
    },
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use hearth_store::rusqlite::params;

use crate::{
    Repo, Snapshot,
    chunks::record_pack,
    compress::{Raw, Stored, closed, worker},
    error::{BackupError, IoContext},
    pack::{Kind, PACK_TARGET, PackWriter},
    tree::SnapshotBlob,
    walk::Walker,
};

/// What a run did.
#[derive(Debug)]
pub struct RunReport {
    pub snapshot: Snapshot,
    /// Files skipped or stored with a caveat, each naming the file.
    pub warnings: Vec<String>,
}

impl Repo {
    /// Backs up `source` and records a snapshot of it.
    pub fn backup(&self, source: &Path) -> Result<RunReport, BackupError> {
        let _lock = self.lock()?;
        self.clear_tmp();
        let started = Instant::now();
        let source = std::fs::canonicalize(source).at(source)?;
        let source_name = source.to_string_lossy().into_owned();
        let conn = self.reader()?;
        let parent = match self.latest(&source_name)? {
            Some(s) => self.tree(&conn, &s.root).ok(),
            None => None,
        };

        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        // One batch waiting per worker is enough to keep them busy; every
        // slot can hold an 8 MiB chunk (plus up to a batch of small ones),
        // so slots are memory.
        let (raw_tx, raw_rx) = sync_channel::<Vec<Raw>>(workers);
        let (stored_tx, stored_rx) = sync_channel::<Vec<Stored>>(workers);
        let raw_rx = Arc::new(Mutex::new(raw_rx));

        std::thread::scope(|scope| {
            for _ in 0..workers {
                let rx = raw_rx.clone();
                let tx = stored_tx.clone();
                scope.spawn(move || worker(rx, tx));
            }
            let packer = scope.spawn(|| self.pack_loop(stored_rx));

            let mut walker = Walker::new(self, &conn, raw_tx, stored_tx);
            let walked = time(Stage::Walk, || {
                walker.dir(&source, &mut vec![], parent.as_ref())
            })
            .and_then(|root| {
                let stamp = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                let blob = SnapshotBlob {
                    version: 1,
                    source: source_name.clone(),
                    time: stamp.as_secs() as i64,
                    time_nanos: stamp.subsec_nanos(),
                    hostname: rustix::system::uname()
                        .nodename()
                        .to_string_lossy()
                        .into_owned(),
                    root: hex::encode(root),
                    files: walker.files,
                    bytes: walker.bytes,
                    added: 0,
                    duration_ms: started.elapsed().as_millis() as u64,
                };
                let json = serde_json::to_vec(&blob).unwrap_or_default();
                let id = self.keys.chunk_id(&json);
                walker.send(id, Kind::Snapshot, json)?;
                walker.flush()?;
                Ok((blob, id))
            });
            let Walker {
                raw_tx,
                stored_tx,
                warnings,
                ..
            } = walker;
            // Closing the queues lets workers and the packer finish.
            drop(raw_tx);
            drop(stored_tx);
            let packed = packer
                .join()
                .unwrap_or_else(|_| Err(BackupError::Crypto("the packer thread panicked".into())));
            // A packer failure is the root cause of a walker send failure.
            let added = packed?;
            let (mut blob, blob_id) = walked?;
            blob.added = added;
            blob.duration_ms = started.elapsed().as_millis() as u64;
            // Every pack is durable and indexed: now the snapshot may exist.
            let id = self.record_snapshot(&blob, &blob_id)?;
            Ok(RunReport {
                snapshot: self.snapshot(id)?,
                warnings,
            })
        })
    }

    /// The packer: fills packs and hands each full one to a finisher
    /// thread, which fsyncs, verifies, renames and indexes it while the next
    /// pack fills. Returns the stored bytes added.
    fn pack_loop(&self, rx: Receiver<Vec<Stored>>) -> Result<u64, BackupError> {
        type Full = (PackWriter, Vec<([u8; 32], Vec<u8>)>);
        let (fin_tx, fin_rx) = sync_channel::<Full>(1);
        std::thread::scope(|scope| {
            let finisher = scope.spawn(move || -> Result<(), BackupError> {
                let mut conn = self.writer()?;
                for (pack, trees) in fin_rx {
                    let done = pack.finish(&self.dir, &self.keys)?;
                    time(Stage::Index, || {
                        record_pack(&mut conn, &done, &trees, unix_now())
                    })?;
                }
                Ok(())
            });
            let packed = (|| {
                let mut pack: Option<PackWriter> = None;
                let mut trees = vec![];
                let mut added = 0u64;
                let mut in_run = HashSet::new();
                for s in rx.into_iter().flatten() {
                    if !in_run.insert(s.id) {
                        continue;
                    }
                    let p = match pack.as_mut() {
                        Some(p) => p,
                        None => pack.insert(PackWriter::create(&self.dir, &self.keys)?),
                    };
                    time(Stage::Encrypt, || {
                        p.add(s.id, s.kind, &s.bytes, s.zstd, s.raw_length)
                    })?;
                    added += s.bytes.len() as u64;
                    if let Some(cache) = s.tree_cache {
                        trees.push((s.id, cache));
                    }
                    if p.len() >= PACK_TARGET
                        && let Some(full) = pack.take()
                    {
                        fin_tx
                            .send((full, std::mem::take(&mut trees)))
                            .map_err(|_| closed())?;
                    }
                }
                if let Some(last) = pack.take().filter(|p| !p.is_empty()) {
                    fin_tx.send((last, trees)).map_err(|_| closed())?;
                }
                Ok(added)
            })();
            drop(fin_tx);
            let finished = finisher
                .join()
                .unwrap_or_else(|_| Err(BackupError::Crypto("the pack finisher panicked".into())));
            // The finisher's error is the cause of a failed hand-over.
            finished?;
            packed
        })
    }

    /// Removes packs a killed run left half-written. Safe under the lock:
    /// nothing else writes to `tmp/`, and nothing ever points into it.
    pub(crate) fn clear_tmp(&self) {
        let tmp = self.dir.join("tmp");
        if let Ok(entries) = std::fs::read_dir(&tmp) {
            for e in entries.flatten() {
                log::info!(
                    "removing an unfinished pack from an interrupted run: {}",
                    e.path().display()
                );
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    fn record_snapshot(&self, blob: &SnapshotBlob, blob_id: &[u8; 32]) -> Result<i64, BackupError> {
        let c = self.writer()?;
        let root = hex::decode(&blob.root).unwrap_or_default();
        c.execute(
            "INSERT INTO backup_snapshots (blob, source, time, root, files, bytes, added, duration_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                &blob_id[..],
                blob.source,
                blob.time,
                root,
                blob.files as i64,
                blob.bytes as i64,
                blob.added as i64,
                blob.duration_ms as i64
            ],
        )?;
        Ok(c.last_insert_rowid())
    }
}
