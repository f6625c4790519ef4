//! Restoring straight from the bucket: packs read where they lie, with
//! HTTP range requests, so files come back to a new device (or any folder)
//! without first copying every pack down, writing it, fsyncing it and
//! reading it back. A full disaster recovery ([`super::recover`]) is for
//! making this device the repository again; this is for getting files back.
//!
//! The index is rebuilt from the packs' own tables and tree blobs (a few
//! pieces of each pack) into a scratch database beside the data, removed
//! afterwards; the restore's writers then read the blobs of the files they
//! write from the bucket. Nothing is trusted more than in a local restore:
//! age authenticates every 64 KiB piece read, and every chunk written is
//! checked against its keyed hash.

use std::{
    collections::HashMap,
    fs::File,
    io::{BufReader, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use hearth_s3::Client;

use super::{RemoteError, listed_packs, pack_key, prefix};
use crate::{
    Keys, Progress, RepairReport, Repo, RestoreReport,
    error::{BackupError, IoContext},
    pack::{PackReader, open_pack, pack_path},
};

/// One age STREAM piece as stored: 64 KiB of plaintext and its 16-byte tag.
const PIECE: u64 = 64 * 1024 + 16;
/// The first request at a new place asks for one piece; each request that
/// continues where the last one ended asks for twice as much, up to this:
/// a large file's chunks come in few requests, and a run of small files
/// ends without fetching far past what it needed.
const MAX_REQUEST: u64 = 64 * PIECE;
/// Index requests in flight at once: each is small and waits on the
/// network, not on a core.
const INDEX_REQUESTS: usize = 8;

/// The bucket's packs of one repository, shared by every reader of a
/// restore from it.
pub(crate) struct Packs {
    client: Client,
    prefix: String,
    sizes: HashMap<String, u64>,
    /// Bytes fetched so far, for the report.
    fetched: AtomicU64,
    requests: AtomicU64,
}

impl std::fmt::Debug for Packs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packs")
            .field("prefix", &self.prefix)
            .field("packs", &self.sizes.len())
            .finish()
    }
}

impl Packs {
    /// The listed pack names, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.sizes.keys().cloned().collect();
        names.sort();
        names
    }

    pub(crate) fn size(&self, name: &str) -> Result<u64, BackupError> {
        self.sizes
            .get(name)
            .copied()
            .ok_or_else(|| BackupError::MissingPack(name.to_string()))
    }

    /// Pack `name` as a seekable reader, its first piece (age's header
    /// with it) already fetched: a bucket that does not answer is named as
    /// such here, not mistaken by age for a damaged header.
    pub(crate) fn reader(self: &Arc<Self>, name: &str) -> Result<RangeReader, BackupError> {
        let mut r = RangeReader {
            len: self.size(name)?,
            key: pack_key(&self.prefix, name),
            packs: self.clone(),
            pos: 0,
            blocks: Vec::with_capacity(2),
        };
        r.fetch().map_err(|e| BackupError::Fetch {
            pack: name.to_string(),
            reason: e.to_string(),
        })?;
        Ok(r)
    }
}

/// A failed request, carried inside an `io::Error` through age's reader so
/// that [`PackReader`] can tell "the bucket did not answer" from "the pack
/// is damaged".
#[derive(Debug)]
pub(crate) struct FetchFailed(pub String);

impl std::fmt::Display for FetchFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FetchFailed {}

/// One pack in the bucket as a seekable file: reads are served from the
/// last two fetched stretches, and a miss fetches a new one (see
/// [`MAX_REQUEST`]).
pub(crate) struct RangeReader {
    packs: Arc<Packs>,
    key: String,
    len: u64,
    pos: u64,
    /// (start, bytes), oldest first; at most two.
    blocks: Vec<(u64, Vec<u8>)>,
}

impl RangeReader {
    fn fetch(&mut self) -> std::io::Result<()> {
        let sequential = self
            .blocks
            .last()
            .is_some_and(|(start, b)| start + b.len() as u64 == self.pos);
        let want = match self.blocks.last() {
            Some((_, b)) if sequential => (2 * b.len() as u64).clamp(PIECE, MAX_REQUEST),
            _ => PIECE,
        };
        let len = want.min(self.len - self.pos);
        let bytes = self
            .packs
            .client
            .get_range(&self.key, self.pos, len)
            .map_err(|e| std::io::Error::other(FetchFailed(e.to_string())))?;
        self.packs.fetched.fetch_add(len, Ordering::Relaxed);
        self.packs.requests.fetch_add(1, Ordering::Relaxed);
        if self.blocks.len() == 2 {
            self.blocks.remove(0);
        }
        self.blocks.push((self.pos, bytes));
        Ok(())
    }
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let pos = self.pos;
        let held = |(start, b): &(u64, Vec<u8>)| pos >= *start && pos < start + b.len() as u64;
        if !self.blocks.iter().any(held) {
            self.fetch()?;
        }
        let Some((start, block)) = self.blocks.iter().find(|b| held(b)) else {
            return Ok(0);
        };
        let from = (pos - start) as usize;
        let n = buf.len().min(block.len() - from);
        buf[..n].copy_from_slice(&block[from..from + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RangeReader {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        Ok(self.pos)
    }
}

/// Where a pack is read from: a file here, or its object in the bucket.
pub(crate) enum PackInput {
    File(BufReader<File>),
    Bucket(RangeReader),
}

impl Read for PackInput {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            PackInput::File(f) => f.read(buf),
            PackInput::Bucket(b) => b.read(buf),
        }
    }
}

impl Seek for PackInput {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        match self {
            PackInput::File(f) => f.seek(to),
            PackInput::Bucket(b) => b.seek(to),
        }
    }
}

impl Repo {
    /// Opens pack `name` for random reads: from the bucket when this is a
    /// restore from it, else the file here.
    pub(crate) fn open_pack(&self, name: &str) -> Result<PackReader<PackInput>, BackupError> {
        let input = match &self.remote {
            Some(packs) => PackInput::Bucket(packs.reader(name)?),
            None => {
                let file = open_pack(&pack_path(&self.dir, name), name)?;
                PackInput::File(BufReader::with_capacity(256 * 1024, file))
            }
        };
        PackReader::from_reader(input, name, &self.keys)
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

/// What a restore from the bucket did, besides the restore's own report.
#[derive(Debug, Default)]
pub struct StreamReport {
    pub repo_id: String,
    /// The index rebuilt from the bucket's packs (damaged ones left out).
    pub index: RepairReport,
    /// Bytes and requests fetched from the bucket, index included.
    pub fetched: u64,
    pub requests: u64,
}

/// Restores `snapshot` (numbered as the bucket's packs list them, oldest
/// first: what a disaster recovery would number them) of the bucket's
/// repository into `target`, reading packs where they lie.
///
/// `scratch` is a folder for the scratch index, made empty first and
/// removed afterwards, and locked so two such restores do not share it.
#[allow(clippy::too_many_arguments)]
pub fn restore_from_bucket(
    client: Client,
    scratch: &Path,
    key: KeySource<'_>,
    repo_id: Option<&str>,
    snapshot: i64,
    path: &str,
    target: &Path,
    progress: &Progress,
) -> Result<(RestoreReport, StreamReport), RemoteError> {
    let _guard = ScratchDir::take(scratch)?;
    let (id, keys) = match key {
        KeySource::Device(key_path) => {
            let keys = Keys::load(key_path)?;
            if let Some(other) = repo_id.filter(|want| *want != keys.repo_id) {
                return Err(super::recover::other(format!(
                    "this device's key opens repository {}, not {other}: give the recovery passphrase to open that one",
                    keys.repo_id
                )));
            }
            (keys.repo_id.clone(), keys)
        }
        KeySource::Passphrase(passphrase) => {
            let id = super::recover::find_repository(&client, scratch, repo_id)?;
            let object = format!("{}key.age", prefix(&id));
            let sealed = client.get(&object)?;
            let keys = Keys::unseal_bytes(&sealed, passphrase, Path::new(&object))?;
            (id, keys)
        }
    };
    let sizes = listed_packs(&client, &prefix(&id))?;
    if sizes.is_empty() {
        return Err(super::recover::other(format!(
            "the bucket holds no packs of repository {id}"
        )));
    }
    let db = scratch.join("index.db");
    hearth_store::Store::open(&db).map_err(crate::repo::store_err)?;
    let packs = Arc::new(Packs {
        client,
        prefix: prefix(&id),
        sizes,
        fetched: AtomicU64::new(0),
        requests: AtomicU64::new(0),
    });
    let repo = Repo::streaming(scratch, &db, keys, packs.clone());
    let index = repo.repair_index()?;
    let snap = repo.snapshot(snapshot)?;
    let restored = repo.restore_with(&snap, path, target, progress)?;
    let report = StreamReport {
        repo_id: id,
        index,
        fetched: packs.fetched.load(Ordering::Relaxed),
        requests: packs.requests.load(Ordering::Relaxed),
    };
    Ok((restored, report))
}

/// The scratch folder of a restore from the bucket, locked while in use,
/// emptied before and removed after (what a killed run left is removed by
/// the next).
struct ScratchDir {
    dir: PathBuf,
    _lock: File,
}

impl ScratchDir {
    fn take(dir: &Path) -> Result<ScratchDir, RemoteError> {
        let lock_path = dir.with_extension("lock");
        if let Some(parent) = lock_path.parent() {
            std::fs::create_dir_all(parent).at(parent)?;
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .at(&lock_path)?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
            |_| super::recover::other("another restore from it is running on this device".into()),
        )?;
        if dir.exists() {
            std::fs::remove_dir_all(dir).at(dir)?;
        }
        std::fs::create_dir_all(dir).at(dir)?;
        Ok(ScratchDir {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
