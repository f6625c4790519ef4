//! Where a pack is read from: a file here, or its object in a bucket read
//! with HTTP range requests (a restore straight from the S3 target,
//! `remote::stream`). Kept apart from the repository and the remote module,
//! which both use it, so that neither depends on the other through it.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    fs::File,
    io::{BufReader, Read, Seek, SeekFrom},
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
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
/// Garage keeps an object in blocks of 1 MiB (its default `block_size`)
/// and reads and checks a whole block from disk for any range that touches
/// it. A restore's reads are rounded out to these blocks and shared between
/// its writers ([`Packs::blocks`]): neighbouring writers' runs of files
/// meet inside blocks, and asked for apart, each such block was read and
/// checked by Garage twice or more (measured: Garage's CPU for a restore
/// was three times a whole-object download's).
const BLOCK: u64 = 1 << 20;
/// A read that wants at least this much of a pack goes through the shared
/// blocks; a smaller one (a tree blob while indexing, one small file) asks
/// for exactly what it needs.
const SHARED_FROM: u64 = BLOCK / 2;
/// Blocks kept for other readers, oldest dropped first: the writers work
/// on neighbouring runs, so a block one fetched is wanted by another within
/// moments or not at all.
const SHARED_BYTES: u64 = 32 << 20;
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
    /// Aligned blocks fetched for one reader and kept for the others.
    shared: Mutex<Shared>,
    /// Signalled when blocks another reader was fetching arrive (or not).
    arrived: Condvar,
    /// Buffers whose bytes nobody holds any more, to fetch into again.
    pool: Arc<Pool>,
}

/// Buffers to fetch into. A restore fetches about as many bytes as it
/// writes; into new buffers each time, the kernel handed out and faulted in
/// fresh pages for every request (measured restoring the benchmark set:
/// 860-880,000 page faults, 510-520,000 with the pool; the restore's time
/// did not change beyond the spread on this VM, but a Pi's memory is
/// smaller and slower).
type Pool = Mutex<Vec<Vec<u8>>>;
/// Buffers kept in the pool: enough for every writer's and the shared
/// blocks' requests in flight.
const POOL: usize = 24;

/// Bytes fetched in one request, given back to the pool when the last
/// [`Block`] made from them goes.
struct Buf {
    bytes: Vec<u8>,
    pool: Arc<Pool>,
}

impl Drop for Buf {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.bytes);
        if let Ok(mut pool) = self.pool.lock()
            && pool.len() < POOL
        {
            pool.push(bytes);
        }
    }
}

/// A stretch of a pack's object fetched: where it starts in the object,
/// and its bytes, a window on a request's buffer (a request of several
/// [`BLOCK`]s is shared block by block without copying).
#[derive(Clone)]
struct Block {
    start: u64,
    buf: Arc<Buf>,
    from: usize,
    len: usize,
}

impl Block {
    fn whole(start: u64, buf: Arc<Buf>) -> Block {
        let len = buf.bytes.len();
        Block {
            start,
            buf,
            from: 0,
            len,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf.bytes[self.from..self.from + self.len]
    }

    fn holds(&self, pos: u64) -> bool {
        pos >= self.start && pos < self.start + self.len as u64
    }
}

/// Blocks of [`BLOCK`] bytes, by object key and block number.
#[derive(Default)]
struct Shared {
    blocks: HashMap<(String, u64), Block>,
    order: VecDeque<(String, u64)>,
    bytes: u64,
    /// Blocks some reader is fetching now: others wait for them rather
    /// than ask Garage for the same block again.
    fetching: HashSet<(String, u64)>,
}

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
            shared: Mutex::new(Shared::default()),
            arrived: Condvar::new(),
            pool: Arc::new(Mutex::new(vec![])),
        }
    }

    /// `len` bytes of object `key` from `at`, in a buffer from the pool.
    fn fetch(&self, key: &str, at: u64, len: u64) -> Result<Arc<Buf>, hearth_s3::S3Error> {
        let bytes = self
            .pool
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_default();
        let mut buf = Buf {
            bytes,
            pool: self.pool.clone(),
        };
        self.client.get_range_into(key, at, len, &mut buf.bytes)?;
        self.fetched.fetch_add(len, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(buf))
    }

    fn shared(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The blocks of object `key` (`len` bytes) from the one holding
    /// `from` towards the one holding `until - 1`, at most
    /// [`MAX_REQUEST`] worth: those another reader fetched or is fetching,
    /// else fetched in one request (stopping short of any block another
    /// reader is fetching) and kept for the others.
    fn blocks(&self, key: &str, len: u64, from: u64, until: u64) -> std::io::Result<Vec<Block>> {
        let first = from / BLOCK;
        let last = (until.min(len).max(from + 1) - 1) / BLOCK;
        let last = last.min(first + MAX_REQUEST.div_ceil(BLOCK) - 1);
        let id = |n: u64| (key.to_string(), n);
        let mut shared = self.shared();
        loop {
            let held: Vec<Block> = (first..=last)
                .map_while(|n| shared.blocks.get(&id(n)).cloned())
                .collect();
            if !held.is_empty() {
                return Ok(held);
            }
            if !shared.fetching.contains(&id(first)) {
                break;
            }
            shared = self.arrived.wait(shared).unwrap_or_else(|e| e.into_inner());
        }
        let mut end = first;
        while end <= last
            && !shared.blocks.contains_key(&id(end))
            && shared.fetching.insert(id(end))
        {
            end += 1;
        }
        drop(shared);
        let start = first * BLOCK;
        let stop = (end * BLOCK).min(len);
        let fetched = self.fetch(key, start, stop - start);
        let mut shared = self.shared();
        for n in first..end {
            shared.fetching.remove(&id(n));
        }
        self.arrived.notify_all();
        let buf = fetched.map_err(|e| std::io::Error::other(FetchFailed(e.to_string())))?;
        let mut out = Vec::with_capacity((end - first) as usize);
        for n in first..end {
            let from = ((n - first) * BLOCK) as usize;
            let block = Block {
                start: n * BLOCK,
                buf: buf.clone(),
                from,
                len: (BLOCK as usize).min(buf.bytes.len() - from),
            };
            shared.bytes += block.len as u64;
            shared.order.push_back(id(n));
            shared.blocks.insert(id(n), block.clone());
            out.push(block);
        }
        while shared.bytes > SHARED_BYTES {
            let Some(old) = shared.order.pop_front() else {
                break;
            };
            if let Some(b) = shared.blocks.remove(&old) {
                shared.bytes -= b.len as u64;
            }
        }
        Ok(out)
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
                let blocks: Vec<Block> = ranges
                    .into_iter()
                    .map(|(at, n)| Ok(Block::whole(at, self.fetch(&key, at, n)?)))
                    .collect::<Result<_, hearth_s3::S3Error>>()?;
                Ok(Some((name, blocks)))
            },
            |fetched| {
                if let Some((name, blocks)) = fetched
                    && let Ok(mut warm) = self.warm.lock()
                {
                    warm.insert(name, blocks);
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
    /// Oldest first: two unaligned stretches, or up to [`Self::HELD`]
    /// shared blocks.
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

    /// Readers keep this many blocks: a planned fetch may bring
    /// [`MAX_REQUEST`] worth, and age reads a piece that straddles two.
    const HELD: usize = (MAX_REQUEST / BLOCK) as usize + 2;

    fn fetch(&mut self) -> std::io::Result<()> {
        let until = self.ahead.load(Ordering::Relaxed);
        if until >= self.pos + SHARED_FROM {
            let got = self.packs.blocks(&self.key, self.len, self.pos, until)?;
            self.blocks.extend(got);
            let extra = self.blocks.len().saturating_sub(Self::HELD);
            self.blocks.drain(..extra);
            return Ok(());
        }
        let sequential = self
            .blocks
            .last()
            .is_some_and(|b| b.start + b.len as u64 == self.pos);
        let want = match self.blocks.last() {
            _ if until > self.pos => until - self.pos,
            Some(b) if sequential => 2 * b.len as u64,
            _ => PIECE,
        };
        let len = want.clamp(PIECE, MAX_REQUEST).min(self.len - self.pos);
        let buf = self
            .packs
            .fetch(&self.key, self.pos, len)
            .map_err(|e| std::io::Error::other(FetchFailed(e.to_string())))?;
        if self.blocks.len() >= 2 {
            self.blocks.drain(..self.blocks.len() - 1);
        }
        self.blocks.push(Block::whole(self.pos, buf));
        Ok(())
    }
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let pos = self.pos;
        if !self.blocks.iter().any(|b| b.holds(pos)) {
            self.fetch()?;
        }
        let Some(block) = self.blocks.iter().find(|b| b.holds(pos)) else {
            return Ok(0);
        };
        let bytes = &block.bytes()[(pos - block.start) as usize..];
        let n = buf.len().min(bytes.len());
        buf[..n].copy_from_slice(&bytes[..n]);
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

/// For blobs to be read in this order from a pack in the bucket (a pack's
/// tree and snapshot blobs, while indexing it), how far each one's request
/// should reach: on to the end of the blobs after it that lie within
/// [`NEAR`] of the one before, so blobs close together come in one
/// request, which costs Garage far less than one each.
pub(crate) fn reach(blobs: &[&crate::pack::Entry]) -> Vec<u64> {
    let mut reach: Vec<u64> = blobs
        .iter()
        .map(|e| e.offset + u64::from(e.length))
        .collect();
    for i in (1..blobs.len()).rev() {
        let (before, e) = (blobs[i - 1], blobs[i]);
        let before_end = before.offset + u64::from(before.length);
        if e.offset >= before_end
            && e.offset - before_end <= NEAR
            && reach[i] - before.offset <= MAX_REQUEST
        {
            reach[i - 1] = reach[i];
        }
    }
    reach
}

/// Blobs at most this far apart are fetched in one request by [`reach`].
const NEAR: u64 = BLOCK / 2;

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
mod tests;
