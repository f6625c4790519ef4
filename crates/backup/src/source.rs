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
}

/// A stretch of a pack's object fetched: where it starts, and its bytes.
type Block = (u64, Arc<[u8]>);

/// Blocks of [`BLOCK`] bytes, by object key and block number.
#[derive(Default)]
struct Shared {
    blocks: HashMap<(String, u64), Arc<[u8]>>,
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
        }
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
                .map_while(|n| shared.blocks.get(&id(n)).map(|b| (n * BLOCK, b.clone())))
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
        let fetched = self.client.get_range(key, start, stop - start);
        let mut shared = self.shared();
        for n in first..end {
            shared.fetching.remove(&id(n));
        }
        self.arrived.notify_all();
        let bytes = fetched.map_err(|e| std::io::Error::other(FetchFailed(e.to_string())))?;
        self.fetched
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut out = Vec::with_capacity((end - first) as usize);
        for (i, piece) in bytes.chunks(BLOCK as usize).enumerate() {
            let n = first + i as u64;
            let block: Arc<[u8]> = piece.into();
            shared.bytes += block.len() as u64;
            shared.order.push_back(id(n));
            shared.blocks.insert(id(n), block.clone());
            out.push((n * BLOCK, block));
        }
        while shared.bytes > SHARED_BYTES {
            let Some(old) = shared.order.pop_front() else {
                break;
            };
            if let Some(b) = shared.blocks.remove(&old) {
                shared.bytes -= b.len() as u64;
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
                    .map(|(at, n)| Ok((at, self.client.get_range(&key, at, n)?.into())))
                    .collect::<Result<_, hearth_s3::S3Error>>()?;
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
            .is_some_and(|(start, b)| start + b.len() as u64 == self.pos);
        let want = match self.blocks.last() {
            _ if until > self.pos => until - self.pos,
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
        if self.blocks.len() >= 2 {
            self.blocks.drain(..self.blocks.len() - 1);
        }
        self.blocks.push((self.pos, bytes.into()));
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
            warm: Mutex::new(HashMap::from([(done.name.clone(), vec![(0, held.into())])])),
            shared: Mutex::new(Shared::default()),
            arrived: Condvar::new(),
        });
        let e = &done.entries[0];
        (packs, done.name, keys, e.offset, e.length)
    }

    /// A stand-in for the bucket that answers range requests for one
    /// object, ignoring the signature, and logs each range asked for.
    fn serve_ranges(object: Vec<u8>) -> (String, Arc<Mutex<Vec<(u64, u64)>>>) {
        use std::io::{BufRead, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(vec![]));
        let (object, asked) = (Arc::new(object), log.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (object, asked) = (object.clone(), asked.clone());
                std::thread::spawn(move || {
                    let mut r = BufReader::new(conn.try_clone().unwrap());
                    let mut conn = conn;
                    loop {
                        let (mut line, mut range) = (String::new(), None);
                        while r.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                            let l = line.to_ascii_lowercase();
                            if let Some(v) = l.strip_prefix("range: bytes=") {
                                let (a, b) = v.trim().split_once('-').unwrap();
                                range =
                                    Some((a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()));
                            }
                            line.clear();
                        }
                        let Some((a, b)) = range else { return };
                        asked.lock().unwrap().push((a, b + 1));
                        let body = &object[a as usize..=b as usize];
                        let head = format!(
                            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {a}-{b}/{}\r\n\r\n",
                            body.len(),
                            object.len()
                        );
                        if conn
                            .write_all(head.as_bytes())
                            .and_then(|_| conn.write_all(body))
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        (endpoint, log)
    }

    /// Two readers of neighbouring stretches of one pack, as two restore
    /// writers with neighbouring runs of files: every Garage block is
    /// asked for once, in requests that start and end on block bounds.
    #[test]
    fn neighbouring_readers_share_the_blocks_between_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        let keys = Keys::generate("test".into()).unwrap();
        let mut w = PackWriter::create(dir.path(), &keys).unwrap();
        let mut seed = 1u64;
        let blobs: Vec<Vec<u8>> = (0..4)
            .map(|_| {
                (0..900_000)
                    .map(|_| {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                        (seed >> 56) as u8
                    })
                    .collect()
            })
            .collect();
        for b in &blobs {
            w.add(keys.chunk_id(b), Kind::Data, b, false, b.len())
                .unwrap();
        }
        let done = w.finish(dir.path(), &keys).unwrap();
        let bytes = std::fs::read(pack_path(dir.path(), &done.name)).unwrap();
        let (endpoint, asked) = serve_ranges(bytes.clone());
        let target = hearth_s3::Target {
            endpoint,
            region: "garage".into(),
            bucket: "hearth".into(),
            access_key: "GK31c2f218a2e44f485b94239e".into(),
            ca: String::new(),
        };
        let client = Client::new(&target, "0123456789abcdef0123456789abcdef").unwrap();
        let sizes = HashMap::from([(done.name.clone(), bytes.len() as u64)]);
        let packs = Arc::new(Packs::new(client, "hearth/test/".into(), sizes));
        // Writer one takes blobs 0 and 1, writer two blobs 2 and 3.
        for run in done.entries.chunks(2) {
            let r = packs.reader(&done.name).unwrap();
            let ahead = r.ahead();
            let end = run.last().map(|e| e.offset + u64::from(e.length)).unwrap();
            let mut pack = PackReader::from_reader(PackInput::Bucket(r), &done.name, &keys)
                .unwrap()
                .read_through(PIECE - 16);
            for e in run {
                ahead.store(cipher_end(end), Ordering::Relaxed);
                let stored = pack.read_at(e.offset, e.length).unwrap();
                assert_eq!(keys.chunk_id(&stored), e.id);
            }
        }
        let asked = asked.lock().unwrap().clone();
        let planned: Vec<_> = asked.iter().filter(|(a, b)| b - a >= SHARED_FROM).collect();
        let mut blocks: Vec<u64> = vec![];
        for &&(a, b) in &planned {
            assert_eq!(a % BLOCK, 0, "{asked:?}");
            assert!(b % BLOCK == 0 || b == bytes.len() as u64, "{asked:?}");
            blocks.extend(a / BLOCK..b.div_ceil(BLOCK));
        }
        let n = blocks.len();
        blocks.dedup();
        assert_eq!(blocks.len(), n, "a block was asked for twice: {asked:?}");
        assert_eq!(n as u64, (bytes.len() as u64).div_ceil(BLOCK), "{asked:?}");
    }

    /// Tree blobs close together are fetched in one request while
    /// indexing; one far off, or one that would make the request too
    /// large, in a request of its own.
    #[test]
    fn blobs_close_together_share_a_request() {
        let blob = |offset: u64, length: u32| crate::pack::Entry {
            id: [0; 32],
            kind: Kind::Tree,
            zstd: true,
            offset,
            length,
            raw_length: length,
        };
        let far = 3 * BLOCK;
        let big = MAX_REQUEST as u32 - 10;
        let blobs = [
            blob(0, 100),
            blob(200, 100),
            blob(300 + NEAR, 50),
            blob(far, 10),
            blob(far + 20, big),
        ];
        let refs: Vec<_> = blobs.iter().collect();
        let end = |b: &crate::pack::Entry| b.offset + u64::from(b.length);
        assert_eq!(
            reach(&refs),
            vec![
                end(&blobs[2]),
                end(&blobs[2]),
                end(&blobs[2]),
                end(&blobs[3]),
                end(&blobs[4])
            ]
        );
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
