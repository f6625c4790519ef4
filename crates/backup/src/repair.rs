//! Rebuilding the index and catalogue from the packs and the key alone.
//!
//! This is what makes the SQLite index a cache rather than a single point
//! of failure: after a lost or damaged database, or on a new device that
//! received the packs from a peer, every pack is read (its name checked
//! against the BLAKE3 of its ciphertext, its table and its tree and snapshot
//! blobs decrypted and checked), and the pack, chunk, tree and snapshot rows are
//! written afresh in one transaction. A crash part-way leaves the old index
//! untouched.
//!
//! Snapshots that were forgotten but not yet pruned come back: their blobs
//! are still in the packs. Folders added for automatic backups are kept.

use hearth_system::unix_now;
use std::{
    borrow::Cow,
    collections::HashSet,
    io::{Cursor, Read, Seek},
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
};

use hearth_store::rusqlite::{Transaction, params};
use serde::Serialize;

use crate::{
    Keys, Repo,
    error::{BackupError, IoContext},
    pack::{Entry, Kind, PackReader, unpack},
    tree::SnapshotBlob,
};

/// What a repair found.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RepairReport {
    pub packs: usize,
    pub chunks: u64,
    pub trees: u64,
    pub snapshots: usize,
    /// Packs left out, each with the reason: damaged, misnamed or unreadable.
    pub damaged: Vec<(String, String)>,
}

/// One pack, checked, with what its rows need.
struct CheckedPack {
    name: String,
    size: u64,
    entries: Vec<Entry>,
    trees: Vec<([u8; 32], Vec<u8>)>,
    snapshots: Vec<(SnapshotBlob, [u8; 32])>,
}

impl Repo {
    /// Opens a repository whose device key is lost, with the recovery
    /// passphrase: unseals `key.age` and saves it as the device key.
    pub fn recover_key(
        dir: &Path,
        key_path: &Path,
        db: &Path,
        passphrase: &str,
    ) -> Result<Repo, BackupError> {
        let keys = Keys::unseal(&dir.join("key.age"), passphrase)?;
        Repo::with_recovered_key(dir, key_path, db, &keys)
    }

    /// Opens a repository with keys recovered elsewhere (unsealed during a
    /// download from the bucket), saving them as the device key first.
    pub(crate) fn with_recovered_key(
        dir: &Path,
        key_path: &Path,
        db: &Path,
        keys: &Keys,
    ) -> Result<Repo, BackupError> {
        keys.save(key_path)?;
        Repo::open(dir, key_path, db)
    }

    /// Rebuilds the index and catalogue from the packs. See the module
    /// comment.
    pub fn repair_index(&self) -> Result<RepairReport, BackupError> {
        self.repair_index_trusting(&HashSet::new())
    }

    /// [`Repo::repair_index`] right after a download that checked each of
    /// `fetched` against its name as it arrived (a recovery from the
    /// bucket): their bytes are not read and hashed a second time, which was
    /// a third of the repair's CPU. Packs that were already here are
    /// checked in full.
    pub(crate) fn repair_index_trusting(
        &self,
        fetched: &HashSet<String>,
    ) -> Result<RepairReport, BackupError> {
        let _lock = self.lock()?;
        self.repair_index_locked(fetched)
    }

    /// [`Repo::repair_index_trusting`] for a caller that already holds the
    /// repository's lock (the heal from the bucket holds it from before
    /// its first check, so no prune can condemn a pack it then fetches).
    pub(crate) fn repair_index_locked(
        &self,
        fetched: &HashSet<String>,
    ) -> Result<RepairReport, BackupError> {
        self.clear_tmp();
        let mut report = RepairReport::default();
        let mut c = self.writer()?;
        // The whole index is rewritten in one transaction. With SQLite's
        // default 2 MiB page cache it spilled to the WAL and read pages back
        // about 50,000 times for 1 GiB of backups; the index is a few
        // MiB per GiB, and the cache only grows as far as it is used.
        c.pragma_update(None, "cache_size", -64 * 1024)?;
        let tx = c.transaction()?;
        tx.execute_batch(
            "DELETE FROM backup_snapshots; DELETE FROM backup_trees;
             DELETE FROM backup_chunks; DELETE FROM backup_packs;
             DELETE FROM backup_condemned;",
        )?;
        let mut snapshots = vec![];
        let names = match &self.remote {
            Some(packs) => packs.names(),
            None => self.local_pack_names()?,
        };
        // Packs are checked on every core (or, in the bucket, several
        // requests at once); their rows are written here, by the one
        // connection that holds the transaction.
        crate::parallel::in_parallel(
            self.index_threads(),
            names,
            |name| {
                let checked = if self.remote.is_some() || fetched.contains(&name) {
                    self.read_fetched_pack(&name)
                } else {
                    self.check_pack(&name)
                };
                Ok::<_, BackupError>((checked, name))
            },
            |(checked, name)| {
                match checked {
                    Ok(pack) => {
                        Self::index_pack(&tx, pack, &mut report, &mut snapshots)?;
                        report.packs += 1;
                    }
                    Err(e) => {
                        log::warn!("repair-index: leaving out pack {name}: {e}");
                        report.damaged.push((name, e.to_string()));
                    }
                }
                Ok(())
            },
        )?;
        report.damaged.sort();
        snapshots.sort_by_key(|(blob, _): &(SnapshotBlob, [u8; 32])| (blob.time, blob.time_nanos));
        for (blob, id) in &snapshots {
            let root = hex::decode(&blob.root).unwrap_or_default();
            tx.execute(
                "INSERT OR IGNORE INTO backup_snapshots
                 (blob, source, time, root, files, bytes, added, duration_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    &id[..],
                    blob.source,
                    blob.time,
                    root,
                    blob.files as i64,
                    blob.bytes as i64,
                    blob.added as i64,
                    blob.duration_ms as i64
                ],
            )?;
        }
        report.snapshots = snapshots.len();
        tx.commit()?;
        Ok(report)
    }

    /// Checks one pack and gathers what its rows need: its name against the
    /// BLAKE3 of its bytes, then its table and each tree and snapshot blob
    /// (decrypted, decompressed, checked against its id). Runs on a worker
    /// thread; nothing is written for a pack that fails any check.
    ///
    /// Data blobs are not decrypted. A matching name means these are the
    /// very bytes the writer decrypted back and checked before it named the
    /// pack, wherever they travelled since (a peer, the bucket), so
    /// decrypting them again finds nothing new; it was most of a repair's
    /// time, and so of a disaster recovery's after the download.
    /// Every restore still checks every chunk it writes, and
    /// `verify --read-data` checks every blob of every pack.
    fn check_pack(&self, name: &str) -> Result<CheckedPack, BackupError> {
        let path = crate::pack_path(&self.dir, name);
        let mut bytes = vec![];
        crate::pack::open_pack(&path, name)?
            .read_to_end(&mut bytes)
            .at(&path)?;
        if blake3::hash(&bytes).to_hex().as_str() != name {
            return Err(bad_pack(name)("its contents do not match its name".into()));
        }
        let size = bytes.len() as u64;
        let pack = PackReader::from_reader(Cursor::new(bytes), name, &self.keys)?;
        self.gather(pack, name, size, None)
    }

    /// [`Repo::check_pack`] for a pack whose name was checked as it was
    /// downloaded: only its table and its tree and snapshot blobs are read.
    /// Also a pack in the bucket during a restore straight from it, whose
    /// name is not checked (that would fetch all of it): what is read of it
    /// is authenticated by age, and every chunk restored by its keyed hash.
    fn read_fetched_pack(&self, name: &str) -> Result<CheckedPack, BackupError> {
        let size = match &self.remote {
            Some(packs) => packs.size(name)?,
            None => {
                let path = crate::pack_path(&self.dir, name);
                std::fs::metadata(&path).at(&path)?.len()
            }
        };
        let (pack, ahead) = self.open_pack_ahead(name)?;
        self.gather(pack, name, size, ahead.as_deref())
    }

    /// The names of the pack files here, sorted.
    fn local_pack_names(&self) -> Result<Vec<String>, BackupError> {
        let packs = self.dir.join("packs");
        let mut names = vec![];
        for sub in std::fs::read_dir(&packs).at(&packs)?.flatten() {
            for f in std::fs::read_dir(sub.path()).at(sub.path())?.flatten() {
                names.push(f.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// A pack's table, and its tree and snapshot blobs decrypted and checked.
    fn gather<R: Read + Seek>(
        &self,
        mut pack: PackReader<R>,
        name: &str,
        size: u64,
        ahead: Option<&AtomicU64>,
    ) -> Result<CheckedPack, BackupError> {
        let bad = bad_pack(name);
        let entries = pack.table()?;
        let mut trees = vec![];
        let mut snapshots = vec![];
        let wanted: Vec<&Entry> = entries.iter().filter(|e| e.kind != Kind::Data).collect();
        let reach = ahead.map(|_| crate::source::reach(&wanted));
        for (i, e) in wanted.iter().enumerate() {
            // A pack in the bucket: fetch what this blob and the ones
            // close after it need, not more.
            if let (Some(ahead), Some(reach)) = (ahead, &reach) {
                ahead.store(crate::source::cipher_end(reach[i]), Ordering::Relaxed);
            }
            let stored = pack.read_at(e.offset, e.length)?;
            let plain = unpack(Cow::Borrowed(&stored), e, &self.keys).map_err(&bad)?;
            if e.kind == Kind::Tree {
                // The index caches trees compressed: as stored, if they were.
                let squeezed = (!e.zstd)
                    .then(|| zstd::bulk::compress(&plain, crate::ZSTD_LEVEL).unwrap_or_default());
                trees.push((e.id, squeezed.unwrap_or(stored)));
            } else {
                let blob: SnapshotBlob = serde_json::from_slice(&plain)
                    .map_err(|err| bad(format!("a snapshot blob is not valid: {err}")))?;
                snapshots.push((blob, e.id));
            }
        }
        Ok(CheckedPack {
            name: name.to_string(),
            size,
            entries,
            trees,
            snapshots,
        })
    }

    /// Writes one checked pack's rows.
    fn index_pack(
        tx: &Transaction<'_>,
        pack: CheckedPack,
        report: &mut RepairReport,
        snapshots: &mut Vec<(SnapshotBlob, [u8; 32])>,
    ) -> Result<(), BackupError> {
        let CheckedPack {
            name,
            size,
            entries,
            trees,
            snapshots: snaps,
        } = pack;
        tx.execute(
            "INSERT OR IGNORE INTO backup_packs (name, size, created_at) VALUES (?1, ?2, ?3)",
            params![name, size as i64, unix_now()],
        )?;
        let mut ins = tx.prepare_cached(
            "INSERT OR IGNORE INTO backup_chunks (id, pack, kind, zstd, offset, length, raw_length)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for e in &entries {
            report.chunks += ins.execute(params![
                &e.id[..],
                name,
                e.kind as u8,
                e.zstd,
                e.offset as i64,
                e.length,
                e.raw_length
            ])? as u64;
        }
        let mut tree =
            tx.prepare_cached("INSERT OR IGNORE INTO backup_trees (id, data) VALUES (?1, ?2)")?;
        for (id, data) in trees {
            report.trees += tree.execute(params![&id[..], data])? as u64;
        }
        snapshots.extend(snaps);
        Ok(())
    }
}

/// Names pack `name` as damaged, for the reason given.
fn bad_pack(name: &str) -> impl Fn(String) -> BackupError + '_ {
    move |reason| BackupError::BadPack {
        pack: name.to_string(),
        reason,
    }
}
