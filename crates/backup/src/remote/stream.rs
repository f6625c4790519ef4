//! Restoring straight from the bucket: packs read where they lie, with
//! HTTP range requests, so files come back to a new device (or any folder)
//! without first copying every pack down, writing it, fsyncing it and
//! reading it back. A full disaster recovery ([`super::recover`]) is for
//! making this device the repository again; this is for getting files back.
//!
//! The index is rebuilt from the packs' own tables and tree blobs (a few
//! pieces of each pack) into a scratch database beside the data, removed
//! afterwards; the restore's writers then read the blobs of the files they
//! write from the bucket, through `crate::source`'s range reader. Nothing
//! is trusted more than in a local restore: age authenticates every 64 KiB
//! piece read, and every chunk written is checked against its keyed hash.

use std::{
    fs::File,
    io::BufReader,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use hearth_s3::Client;

use super::{RemoteError, listed_packs, prefix};
use crate::{
    Keys, Progress, RepairReport, Repo, RestoreReport, Snapshot, Which,
    error::{BackupError, IoContext},
    pack::{PackReader, open_pack, pack_path},
    source::{INDEX_REQUESTS, PIECE, PackInput, Packs},
};

impl Repo {
    /// Opens pack `name` for random reads: from the bucket when this is a
    /// restore from it, else the file here. With the bucket, also the
    /// reader's handle for saying how far reading will go
    /// ([`crate::source::RangeReader::ahead`]).
    pub(crate) fn open_pack_ahead(
        &self,
        name: &str,
    ) -> Result<(PackReader<PackInput>, Option<Arc<AtomicU64>>), BackupError> {
        Ok(match &self.remote {
            Some(packs) => {
                let r = packs.reader(name)?;
                let ahead = r.ahead();
                let reader = PackReader::from_reader(PackInput::Bucket(r), name, &self.keys)?;
                // Only gaps inside the piece in hand are read through.
                (reader.read_through(PIECE - 16), Some(ahead))
            }
            None => {
                let file = open_pack(&pack_path(&self.dir, name), name)?;
                let input = PackInput::File(BufReader::with_capacity(256 * 1024, file));
                (PackReader::from_reader(input, name, &self.keys)?, None)
            }
        })
    }

    /// The threads that read packs for a repair: on every core here, or
    /// more for the bucket, whose requests wait on the network.
    pub(crate) fn index_threads(&self) -> usize {
        match self.remote {
            Some(_) => INDEX_REQUESTS,
            None => crate::parallel::cpu_threads(),
        }
    }
}

/// Which key opens the bucket's repository: this device's own, or the one
/// in the bucket, unsealed with the recovery passphrase.
pub enum KeySource<'a> {
    Device(&'a Path),
    Passphrase(&'a str),
}

/// Never prints the passphrase.
impl std::fmt::Debug for KeySource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Device(p) => f.debug_tuple("Device").field(p).finish(),
            KeySource::Passphrase(_) => f.write_str("Passphrase(..)"),
        }
    }
}

/// What opening the bucket's repository where it lies did.
#[derive(Debug, Default)]
pub struct StreamReport {
    pub repo_id: String,
    /// The index rebuilt from the bucket's packs (damaged ones left out).
    pub index: RepairReport,
    /// Bytes and requests fetched from the bucket so far, index included.
    pub fetched: u64,
    pub requests: u64,
}

/// The bucket's repository, opened to be read where it lies: its index
/// rebuilt from the packs' tables and tree blobs into a scratch folder,
/// which is locked while this lives and removed when it goes. Snapshots
/// are numbered as the bucket's packs list them, oldest first: what a
/// disaster recovery would number them.
pub struct Bucket {
    repo: Repo,
    packs: Arc<Packs>,
    index: RepairReport,
    // Last: the scratch folder goes once the index in it is closed.
    _scratch: ScratchDir,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("packs", &self.packs)
            .finish()
    }
}

impl Bucket {
    /// Opens the bucket's repository with `key`: this device's own, or
    /// the bucket's `key.age` unsealed with the passphrase. `scratch` is
    /// the folder for the scratch index, made empty first.
    pub fn open(
        client: Client,
        scratch: &Path,
        key: KeySource<'_>,
        repo_id: Option<&str>,
    ) -> Result<Bucket, RemoteError> {
        let guard = ScratchDir::take(scratch)?;
        // The device's key, or the bucket's key.age to unseal.
        let (id, key) = match key {
            KeySource::Device(key_path) => {
                let keys = Keys::load(key_path)?;
                if let Some(other) = repo_id.filter(|want| *want != keys.repo_id) {
                    return Err(super::recover::other(format!(
                        "this device's key opens repository {}, not {other}: give the recovery passphrase to open that one",
                        keys.repo_id
                    )));
                }
                (keys.repo_id.clone(), Ok(keys))
            }
            KeySource::Passphrase(passphrase) => {
                let id = super::recover::find_repository(&client, scratch, repo_id)?;
                let object = format!("{}key.age", prefix(&id));
                let sealed = client.get(&object)?;
                (id, Err((object, sealed, passphrase)))
            }
        };
        let sizes = listed_packs(&client, &prefix(&id))?;
        if sizes.is_empty() {
            return Err(super::recover::other(format!(
                "the bucket holds no packs of repository {id}"
            )));
        }
        let packs = Arc::new(Packs::new(client, prefix(&id), sizes));
        let keys = match key {
            Ok(keys) => keys,
            // The passphrase's scrypt (over a second of one core here) runs
            // on its own thread while the packs' ends, which the index needs
            // first, are fetched; a wrong passphrase stops those fetches.
            Err((object, sealed, passphrase)) => {
                let stop = AtomicBool::new(false);
                std::thread::scope(|s| {
                    let unsealing = s.spawn(|| {
                        let keys = Keys::unseal_bytes(&sealed, passphrase, Path::new(&object));
                        stop.store(keys.is_err(), Ordering::Relaxed);
                        keys
                    });
                    packs.warm_up(&stop);
                    unsealing.join().unwrap_or_else(|_| {
                        Err(BackupError::Crypto("unsealing the key failed".into()))
                    })
                })?
            }
        };
        let db = scratch.join("index.db");
        hearth_store::Store::open(&db).map_err(crate::repo::store_err)?;
        let repo = Repo::streaming(scratch, &db, keys, packs.clone());
        let index = repo.repair_index()?;
        Ok(Bucket {
            repo,
            packs,
            index,
            _scratch: guard,
        })
    }

    /// Every snapshot in the bucket, oldest first.
    pub fn snapshots(&self) -> Result<Vec<Snapshot>, BackupError> {
        self.repo.snapshots()
    }

    /// Restores snapshot `which` (or `path` in it) into `target`, reading
    /// the packs where they lie.
    pub fn restore(
        &self,
        which: Which,
        path: &str,
        target: &Path,
        progress: &Progress,
    ) -> Result<RestoreReport, BackupError> {
        let snap = self.repo.pick(which)?;
        self.repo.restore_with(&snap, path, target, progress)
    }

    /// What opening did, and what has been fetched so far.
    pub fn report(&self) -> StreamReport {
        let (fetched, requests) = self.packs.fetched();
        StreamReport {
            repo_id: self.repo.keys.repo_id.clone(),
            index: self.index.clone(),
            fetched,
            requests,
        }
    }
}

/// The scratch folder of a restore from the bucket, locked while in use,
/// emptied before and removed after, its lock file too (what a killed run
/// left is removed by the next).
struct ScratchDir {
    dir: PathBuf,
    lock_path: PathBuf,
    _lock: File,
}

impl ScratchDir {
    fn take(dir: &Path) -> Result<ScratchDir, RemoteError> {
        let lock_path = dir.with_extension("lock");
        if let Some(parent) = lock_path.parent() {
            std::fs::create_dir_all(parent).at(parent)?;
        }
        let busy =
            || super::recover::other("another restore from it is running on this device".into());
        // The holder before us unlinks the lock file as it finishes: one
        // opened just before that is a lock on nothing, so the file locked
        // must still be the one at the path, else open it again.
        let lock = loop {
            let lock = crate::repo::try_lock(&lock_path)?.ok_or_else(busy)?;
            let locked = lock.metadata().at(&lock_path)?;
            let now = match std::fs::metadata(&lock_path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                other => other.at(&lock_path)?,
            };
            if (now.dev(), now.ino()) == (locked.dev(), locked.ino()) {
                break lock;
            }
        };
        if dir.exists() {
            std::fs::remove_dir_all(dir).at(dir)?;
        }
        std::fs::create_dir_all(dir).at(dir)?;
        Ok(ScratchDir {
            dir: dir.to_path_buf(),
            lock_path,
            _lock: lock,
        })
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        // Unlinked while still held, so no one can lock it in between.
        let _ = std::fs::remove_file(&self.lock_path);
    }
}
