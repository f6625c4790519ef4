//! Where a pack is read from: a file here, or its object in a bucket read
//! with HTTP range requests (a restore straight from the S3 target,
//! `remote::stream`). Kept apart from the repository and the remote module,
//! which both use it, so that neither depends on the other through it.

use std::{
    collections::HashMap,
    fs::File,
    io::{BufReader, Read, Seek, SeekFrom},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use hearth_s3::Client;

use crate::{error::BackupError, pack::FetchFailed};

/// The object name of a pack: the local layout under the prefix.
pub(crate) fn pack_key(prefix: &str, name: &str) -> String {
    format!("{prefix}packs/{}/{name}", name.get(..2).unwrap_or("xx"))
}

/// One age STREAM piece as stored: 64 KiB of plaintext and its 16-byte tag.
pub(crate) const PIECE: u64 = 64 * 1024 + 16;
/// The most one request asks for. A restore tells each reader how far its
/// run of files reaches in the pack ([`RangeReader::ahead`]), and a request
/// asks for exactly that much, up to this: Garage reads and checks a whole
/// 1 MiB block for any range in it, so a few large requests cost it far
/// less than many small ones. Without a hint (reading a pack's table), the
/// first request at a new place asks for one piece and each that continues
/// where the last ended asks for twice as much.
const MAX_REQUEST: u64 = 128 * PIECE;
/// The most an age header of one X25519 recipient and the payload nonce
/// take before the first piece (about 200 bytes): a hint given in
/// plaintext offsets is turned into ciphertext ones with it. A header
/// larger than this only makes a request end early, never read wrongly.
const HEADER_MAX: u64 = 1024;
/// Index requests in flight at once: each is small and waits on the
/// network, not on a core.
pub(crate) const INDEX_REQUESTS: usize = 8;

/// The bucket's packs of one repository, shared by every reader of a
/// restore from it.
pub(crate) struct Packs {
    client: Client,
    prefix: String,
    sizes: HashMap<String, u64>,
    /// Bytes fetched so far, for the report.
    fetched: AtomicU64,
    requests: AtomicU64,
    /// Each pack's first and last pieces, fetched while the key is
    /// unsealed ([`Packs::warm_up`]), taken by the pack's first reader.
    warm: Mutex<HashMap<String, Vec<Block>>>,
}

/// A stretch of a pack's object fetched: where it starts, and its bytes.
type Block = (u64, Vec<u8>);

/// How much of a pack's end is fetched ahead: its footer and, for all but
/// the packs of many small files, its whole table.
const WARM_TAIL: u64 = 4 * PIECE;
/// The most fetched ahead in all, so a large repository does not hold
/// gigabytes of pack ends while the key is unsealed.
const WARM_BYTES: u64 = 64 << 20;

impl std::fmt::Debug for Packs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packs")
            .field("prefix", &self.prefix)
            .field("packs", &self.sizes.len())
            .finish()
    }
}

impl Packs {
    /// The packs listed under `prefix` in the bucket, with their sizes.
    pub(crate) fn new(client: Client, prefix: String, sizes: HashMap<String, u64>) -> Packs {
        Packs {
            client,
            prefix,
            sizes,
            fetched: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            warm: Mutex::new(HashMap::new()),
        }
    }

    /// Bytes fetched so far, and in how many requests.
    pub(crate) fn fetched(&self) -> (u64, u64) {
        (
            self.fetched.load(Ordering::Relaxed),
            self.requests.load(Ordering::Relaxed),
        )
    }

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

    /// Fetches the first and last pieces of as many packs as
    /// [`WARM_BYTES`] allows, several at a time, until done or `stop`.
    /// A failed fetch is left to the reader that needs it to report.
    pub(crate) fn warm_up(&self, stop: &AtomicBool) {
        let mut budget = WARM_BYTES;
        let mut plan = vec![];
        for name in self.names() {
            let len = self.sizes[&name];
            let head = PIECE.min(len);
            let tail = len.saturating_sub(WARM_TAIL).max(head);
            let ranges = if tail == head {
                vec![(0, len)]
            } else {
                vec![(0, head), (tail, len - tail)]
            };
            let Some(left) = budget.checked_sub(ranges.iter().map(|r| r.1).sum()) else {
                break;
            };
            budget = left;
            plan.push((name, ranges));
        }
        let _: Result<(), hearth_s3::S3Error> = crate::parallel::in_parallel(
            INDEX_REQUESTS,
            plan,
            |(name, ranges)| {
                if stop.load(Ordering::Relaxed) {
                    return Ok(None);
                }
                let key = pack_key(&self.prefix, &name);
                let blocks = ranges
                    .into_iter()
                    .map(|(at, n)| Ok((at, self.client.get_range(&key, at, n)?)))
                    .collect::<Result<Vec<_>, hearth_s3::S3Error>>()?;
                Ok(Some((name, blocks)))
            },
            |fetched| {
                if let Some((name, blocks)) = fetched {
                    for (_, b) in &blocks {
                        self.fetched.fetch_add(b.len() as u64, Ordering::Relaxed);
                        self.requests.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Ok(mut warm) = self.warm.lock() {
                        warm.insert(name, blocks);
                    }
                }
                Ok(())
            },
        );
    }

    /// Pack `name` as a seekable reader, its first piece (age's header
    /// with it) already fetched: a bucket that does not answer is named as
    /// such here, not mistaken by age for a damaged header.
    pub(crate) fn reader(self: &Arc<Self>, name: &str) -> Result<RangeReader, BackupError> {
        let warm = self.warm.lock().ok().and_then(|mut w| w.remove(name));
        let mut r = RangeReader {
            len: self.size(name)?,
            key: pack_key(&self.prefix, name),
            packs: self.clone(),
            pos: 0,
            blocks: warm.unwrap_or_default(),
            ahead: Arc::new(AtomicU64::new(0)),
        };
        if !r.blocks.is_empty() {
            return Ok(r);
        }
        r.fetch().map_err(|e| BackupError::Fetch {
            pack: name.to_string(),
            reason: e.to_string(),
        })?;
        Ok(r)
    }
}

/// One pack in the bucket as a seekable file: reads are served from the
/// last two fetched stretches, and a miss fetches a new one (see
/// [`MAX_REQUEST`]).
pub(crate) struct RangeReader {
    packs: Arc<Packs>,
    key: String,
    len: u64,
    pos: u64,
    /// Oldest first; at most two.
    blocks: Vec<Block>,
    /// Where the reader's user will stop reading, as a ciphertext offset
    /// (0: not known), set through [`RangeReader::ahead`].
    ahead: Arc<AtomicU64>,
}

impl RangeReader {
    /// A handle for saying how far reading will go ([`cipher_end`]), kept
    /// by the user while age owns the reader.
    pub(crate) fn ahead(&self) -> Arc<AtomicU64> {
        self.ahead.clone()
    }

    fn fetch(&mut self) -> std::io::Result<()> {
        let sequential = self
            .blocks
            .last()
            .is_some_and(|(start, b)| start + b.len() as u64 == self.pos);
        let until = self.ahead.load(Ordering::Relaxed);
        let want = match self.blocks.last() {
            _ if until > self.pos => (until - self.pos).max(PIECE),
            Some((_, b)) if sequential => 2 * b.len() as u64,
            _ => PIECE,
        };
        let len = want.clamp(PIECE, MAX_REQUEST).min(self.len - self.pos);
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
        let held = |(start, b): &Block| pos >= *start && pos < start + b.len() as u64;
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

/// The ciphertext offset by which a pack's plaintext up to `plain_end` has
/// been read: the end of the age piece holding its last byte.
pub(crate) fn cipher_end(plain_end: u64) -> u64 {
    HEADER_MAX + plain_end.div_ceil(PIECE - 16) * PIECE
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Keys,
        pack::{Kind, PackReader, PackWriter, pack_path},
    };

    /// A real pack of one 200 KB blob (four age pieces), and the bucket's
    /// view of it: a client whose endpoint refuses connections, with the
    /// pack's first `held` bytes already fetched.
    fn pack_behind_a_dead_bucket(held: usize) -> (Arc<Packs>, String, Keys, u64, u32) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        let keys = Keys::generate("test".into()).unwrap();
        let blob: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let mut w = PackWriter::create(dir.path(), &keys).unwrap();
        w.add(keys.chunk_id(&blob), Kind::Data, &blob, false, blob.len())
            .unwrap();
        let done = w.finish(dir.path(), &keys).unwrap();
        let bytes = std::fs::read(pack_path(dir.path(), &done.name)).unwrap();
        let target = hearth_s3::Target {
            endpoint: "http://127.0.0.1:9".into(),
            region: "garage".into(),
            bucket: "hearth".into(),
            access_key: "GK31c2f218a2e44f485b94239e".into(),
            ca: String::new(),
        };
        let held = bytes[..held.min(bytes.len())].to_vec();
        let packs = Arc::new(Packs {
            client: Client::new(&target, "0123456789abcdef0123456789abcdef").unwrap(),
            prefix: "hearth/test/".into(),
            sizes: HashMap::from([(done.name.clone(), bytes.len() as u64)]),
            fetched: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            warm: Mutex::new(HashMap::from([(done.name.clone(), vec![(0, held)])])),
        });
        let e = &done.entries[0];
        (packs, done.name, keys, e.offset, e.length)
    }

    #[test]
    fn held_pieces_are_read_without_asking_the_bucket() {
        let (packs, name, keys, offset, length) = pack_behind_a_dead_bucket(usize::MAX);
        let r = PackInput::Bucket(packs.reader(&name).unwrap());
        let mut pack = PackReader::from_reader(r, &name, &keys).unwrap();
        assert_eq!(pack.table().unwrap().len(), 1);
        let stored = pack.read_at(offset, length).unwrap();
        assert_eq!(keys.chunk_id(&stored), pack.table().unwrap()[0].id);
        assert_eq!(packs.requests.load(Ordering::Relaxed), 0);
    }

    /// A read the bucket cannot answer is named as the bucket's failure,
    /// not as a damaged pack.
    #[test]
    fn a_failed_request_is_not_called_damage() {
        let (packs, name, keys, offset, length) = pack_behind_a_dead_bucket(PIECE as usize);
        let r = PackInput::Bucket(packs.reader(&name).unwrap());
        let mut pack = PackReader::from_reader(r, &name, &keys).unwrap();
        let err = pack.read_at(offset, length).unwrap_err();
        assert!(
            matches!(&err, BackupError::Fetch { pack, .. } if *pack == name),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("reading pack {name} from the S3 target failed: ")),
            "{err}"
        );
    }
}
