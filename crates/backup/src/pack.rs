//! Packs: many chunks in one age file.
//!
//! Plaintext layout (little-endian):
//!
//! ```text
//! "HPK1"                                    magic, 4 bytes
//! blob 0, blob 1, ... blob n-1              stored bytes (zstd or raw)
//! count u32, then per blob:                 the table, 50 bytes each
//!   id [32] kind u8 compression u8 offset u64 length u32 raw_length u32
//! table_offset u64, "HPKT"                  footer, 12 bytes
//! ```
//!
//! The table is inside the encryption and at the end, so a peer learns only
//! the pack's size, and the index can be rebuilt from packs alone by seeking
//! to the footer. The file is named by the BLAKE3 of its ciphertext, so a
//! peer can check a copy without the key.
//!
//! Writing goes to `tmp/`; the finished file is fsynced, read back and
//! decrypted (its plaintext checksum must match what was written), and only
//! then renamed into `packs/` and its directory fsynced. Nothing points at a
//! pack before that.
//!
//! The plaintext comparison uses XXH3-128, not BLAKE3: it guards against
//! faults (a bit flipped in memory or on the way to disk), not against an
//! adversary, who would have to forge age's Poly1305 tags first. BLAKE3
//! stays where a name or an id must resist forgery (the pack's name, chunk
//! ids). Both plaintext passes cost ~6% of a first backup's CPU in BLAKE3;
//! XXH3 does the same job at several times the speed.

use crate::stages::{Stage, Timer, time};
use std::{
    fs::File,
    io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use crate::{
    error::{BackupError, IoContext},
    key::Keys,
};

pub(crate) const MAGIC: &[u8; 4] = b"HPK1";
pub(crate) const FOOTER_MAGIC: &[u8; 4] = b"HPKT";
const ENTRY_LEN: usize = 50;
/// A pack is closed once it holds this much; chunks are at most 8 MiB, so a
/// pack stays under 24 MiB.
pub const PACK_TARGET: u64 = 16 * 1024 * 1024;

/// What a blob holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Data = 0,
    Tree = 1,
    Snapshot = 2,
}

impl Kind {
    pub(crate) fn from_u8(v: u8) -> Option<Kind> {
        match v {
            0 => Some(Kind::Data),
            1 => Some(Kind::Tree),
            2 => Some(Kind::Snapshot),
            _ => None,
        }
    }
}

/// One blob's place in a pack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: [u8; 32],
    pub kind: Kind,
    /// Whether the stored bytes are zstd-compressed.
    pub zstd: bool,
    /// Offset of the stored bytes in the pack's plaintext.
    pub offset: u64,
    pub length: u32,
    /// Length once decompressed.
    pub raw_length: u32,
}

/// Counts the ciphertext on its way to disk. Its hash is taken when the
/// file is read back, which is the copy that matters.
struct CountingFile {
    file: BufWriter<File>,
    written: u64,
}

impl Write for CountingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A pack being written.
pub(crate) struct PackWriter {
    tmp: PathBuf,
    stream: age::stream::StreamWriter<CountingFile>,
    plain_hasher: xxhash_rust::xxh3::Xxh3,
    offset: u64,
    entries: Vec<Entry>,
}

/// A finished, verified pack, renamed into place.
#[derive(Debug)]
pub(crate) struct FinishedPack {
    pub name: String,
    pub size: u64,
    pub entries: Vec<Entry>,
}

impl PackWriter {
    pub(crate) fn create(repo: &Path, keys: &Keys) -> Result<PackWriter, BackupError> {
        let mut rnd = [0u8; 16];
        crate::key::random(&mut rnd)?;
        let tmp = repo.join("tmp").join(format!("{}.pack", hex::encode(rnd)));
        let file = File::create(&tmp).at(&tmp)?;
        let recipient = keys.identity.to_public();
        let enc =
            age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                .map_err(|e| BackupError::Crypto(e.to_string()))?;
        let sink = CountingFile {
            file: BufWriter::with_capacity(1 << 20, file),
            written: 0,
        };
        let mut w = PackWriter {
            stream: enc.wrap_output(sink).at(&tmp)?,
            tmp,
            plain_hasher: xxhash_rust::xxh3::Xxh3::new(),
            offset: 0,
            entries: vec![],
        };
        w.put(MAGIC)?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), BackupError> {
        self.stream.write_all(bytes).at(&self.tmp)?;
        self.plain_hasher.update(bytes);
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Appends one blob.
    pub(crate) fn add(
        &mut self,
        id: [u8; 32],
        kind: Kind,
        stored: &[u8],
        zstd: bool,
        raw_length: usize,
    ) -> Result<(), BackupError> {
        let offset = self.offset;
        self.put(stored)?;
        self.entries.push(Entry {
            id,
            kind,
            zstd,
            offset,
            length: stored.len() as u32,
            raw_length: raw_length as u32,
        });
        Ok(())
    }

    pub(crate) fn len(&self) -> u64 {
        self.offset
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the table, finishes the encryption, fsyncs, verifies by
    /// decrypting the file back, and renames it into `packs/`.
    pub(crate) fn finish(mut self, repo: &Path, keys: &Keys) -> Result<FinishedPack, BackupError> {
        let table_offset = self.offset;
        let mut table = Vec::with_capacity(4 + self.entries.len() * ENTRY_LEN + 12);
        table.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            table.extend_from_slice(&e.id);
            table.push(e.kind as u8);
            table.push(u8::from(e.zstd));
            table.extend_from_slice(&e.offset.to_le_bytes());
            table.extend_from_slice(&e.length.to_le_bytes());
            table.extend_from_slice(&e.raw_length.to_le_bytes());
        }
        table.extend_from_slice(&table_offset.to_le_bytes());
        table.extend_from_slice(FOOTER_MAGIC);
        let closing = Timer::start(Stage::Fsync);
        self.put(&table)?;
        let tmp = self.tmp.clone();
        let mut sink = self.stream.finish().at(&tmp)?;
        sink.flush().at(&tmp)?;
        let size = sink.written;
        let file = sink
            .file
            .into_inner()
            .map_err(|e| e.into_error())
            .at(&tmp)?;
        file.sync_all().at(&tmp)?;
        drop(file);
        closing.stop();

        // Read back what is on disk: it must decrypt (age authenticates
        // every 64 KiB) to exactly the plaintext that was written. The name
        // is the hash of the bytes as read back, the copy that matters.
        let expected_plain = self.plain_hasher.digest128();
        let (cipher_hash, plain_hash) = time(Stage::Check, || hash_file(&tmp, keys))?;
        let name = cipher_hash.to_hex().to_string();
        if plain_hash != expected_plain {
            let _ = std::fs::remove_file(&tmp);
            return Err(BackupError::BadPack {
                pack: name,
                reason: "it did not read back as written (disk or memory fault)".into(),
            });
        }

        let dest = pack_path(repo, &name);
        let dir = dest.parent().unwrap_or(repo);
        if !dir.exists() {
            std::fs::create_dir_all(dir).at(dir)?;
            hearth_system::sync_parent(dir).at(dir)?;
        }
        time(Stage::Index, || {
            std::fs::rename(&tmp, &dest)?;
            hearth_system::sync_parent(&dest)
        })
        .at(&dest)?;
        Ok(FinishedPack {
            name,
            size,
            entries: self.entries,
        })
    }
}

/// Where a pack of this name lives.
pub fn pack_path(repo: &Path, name: &str) -> PathBuf {
    repo.join("packs")
        .join(name.get(..2).unwrap_or("xx"))
        .join(name)
}

/// Opens pack `name` at `path`; a missing file is a missing pack, named.
pub(crate) fn open_pack(path: &Path, name: &str) -> Result<File, BackupError> {
    match File::open(path) {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(BackupError::MissingPack(name.to_string()))
        }
        Err(e) => Err(e).at(path),
    }
}

/// Hashes the ciphertext (BLAKE3, the pack's name) as it is read.
struct Tee<R> {
    inner: R,
    hasher: blake3::Hasher,
}

impl<R> Tee<R> {
    fn new(inner: R) -> Tee<R> {
        Tee {
            inner,
            hasher: blake3::Hasher::new(),
        }
    }
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Where a pack's table starts, from its plaintext length, its first 4
/// bytes and its 12-byte footer: the same rule for a pack read at random
/// ([`PackReader::table`]) and one held whole ([`WholePack::table`]).
fn table_offset(end: u64, head: &[u8], footer: &[u8]) -> Result<u64, &'static str> {
    if head != MAGIC || footer.get(8..) != Some(&FOOTER_MAGIC[..]) {
        return Err("no pack header or footer");
    }
    let offset = u64::from_le_bytes(footer[..8].try_into().unwrap_or_default());
    if offset < 4 || offset > end - 12 - 4 {
        return Err("table offset out of range");
    }
    Ok(offset)
}

/// BLAKE3 of a pack's ciphertext and XXH3-128 of its plaintext, in one
/// read.
pub(crate) fn hash_file(path: &Path, keys: &Keys) -> Result<(blake3::Hash, u128), BackupError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = File::open(path).at(path)?;
    let mut tee = Tee::new(BufReader::with_capacity(1 << 20, file));
    struct Plain(xxhash_rust::xxh3::Xxh3);
    impl Write for Plain {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut plain = Plain(xxhash_rust::xxh3::Xxh3::new());
    {
        let mut reader = decrypt(&mut tee, keys, &name)?;
        std::io::copy(&mut reader, &mut plain).map_err(|e| BackupError::BadPack {
            pack: name.clone(),
            reason: format!("decryption failed: {e}"),
        })?;
    }
    // Drain anything after the age payload so the ciphertext hash is whole.
    std::io::copy(&mut tee, &mut std::io::sink()).at(path)?;
    Ok((tee.hasher.finalize(), plain.0.digest128()))
}

fn decrypt<R: Read>(
    input: R,
    keys: &Keys,
    name: &str,
) -> Result<age::stream::StreamReader<R>, BackupError> {
    let bad = |reason: String| BackupError::BadPack {
        pack: name.to_string(),
        reason,
    };
    age::Decryptor::new(input)
        .map_err(|e| bad(format!("not an age file: {e}")))?
        .decrypt(std::iter::once(&keys.identity as &dyn age::Identity))
        .map_err(|e| {
            bad(format!(
                "cannot be decrypted with this repository's key: {e}"
            ))
        })
}

/// A failed request for part of a pack held elsewhere (the S3 target),
/// carried inside an `io::Error` through age's reader so that
/// [`PackReader`] can tell "the bucket did not answer" from "the pack is
/// damaged".
#[derive(Debug)]
pub(crate) struct FetchFailed(pub String);

impl std::fmt::Display for FetchFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FetchFailed {}

/// Random access to one pack's blobs.
pub(crate) struct PackReader<R: Read + Seek> {
    name: String,
    stream: age::stream::StreamReader<R>,
    /// Where the plaintext stream stands. Restores read chunks mostly in
    /// pack order, and a seek discards the read buffer and re-decrypts the
    /// 64 KiB piece, so short forward gaps are read through instead.
    pos: Option<u64>,
    /// The largest forward gap read through rather than sought over.
    read_through: u64,
}

/// [`PackReader`]'s gap for a file here, where reading on is cheaper than
/// decrypting a piece twice. A pack in the bucket sets its own: there a
/// gap read through is a gap fetched.
pub(crate) const READ_THROUGH: u64 = 1 << 20;

impl<R: Read + Seek> PackReader<R> {
    /// Reads a pack from any seekable input: a file, or bytes in memory
    /// (the fuzzers, and a peer checking what it was sent).
    pub(crate) fn from_reader(input: R, name: &str, keys: &Keys) -> Result<Self, BackupError> {
        Ok(PackReader {
            name: name.to_string(),
            stream: decrypt(input, keys, name)?,
            pos: Some(0),
            read_through: READ_THROUGH,
        })
    }

    /// Sets the largest forward gap read through rather than sought over.
    pub(crate) fn read_through(mut self, gap: u64) -> Self {
        self.read_through = gap;
        self
    }

    fn bad(&self, reason: impl Into<String>) -> BackupError {
        BackupError::BadPack {
            pack: self.name.clone(),
            reason: reason.into(),
        }
    }

    /// A failed read or seek: the bucket's failure to answer as itself,
    /// anything else as damage.
    fn failed(&self, what: &str, e: std::io::Error) -> BackupError {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<FetchFailed>())
        {
            Some(f) => BackupError::Fetch {
                pack: self.name.clone(),
                reason: f.0.clone(),
            },
            None => self.bad(format!("{what} failed: {e}")),
        }
    }

    /// The stored bytes at `offset`, `length` long.
    pub(crate) fn read_at(&mut self, offset: u64, length: u32) -> Result<Vec<u8>, BackupError> {
        match self.pos {
            Some(pos) if offset >= pos && offset - pos <= self.read_through => {
                let gap = offset - pos;
                let skipped =
                    std::io::copy(&mut (&mut self.stream).take(gap), &mut std::io::sink());
                if !matches!(skipped, Ok(n) if n == gap) {
                    self.pos = None;
                    return Err(match skipped {
                        Err(e) => self.failed("read", e),
                        Ok(_) => self.bad("it ended early"),
                    });
                }
            }
            _ => {
                self.pos = None;
                self.stream
                    .seek(SeekFrom::Start(offset))
                    .map_err(|e| self.failed("seek", e))?;
            }
        }
        let mut buf = vec![0u8; length as usize];
        if let Err(e) = self.stream.read_exact(&mut buf) {
            self.pos = None;
            return Err(self.failed("read", e));
        }
        self.pos = Some(offset.saturating_add(u64::from(length)));
        Ok(buf)
    }

    /// The pack's own table, read from its footer.
    pub(crate) fn table(&mut self) -> Result<Vec<Entry>, BackupError> {
        self.pos = None;
        let end = self
            .stream
            .seek(SeekFrom::End(0))
            .map_err(|e| self.failed("seek", e))?;
        if end < 4 + 4 + 12 {
            return Err(self.bad("too short to be a pack"));
        }
        let footer = self.read_at(end - 12, 12)?;
        let head = self.read_at(0, 4)?;
        let table_offset = table_offset(end, &head, &footer).map_err(|r| self.bad(r))?;
        let table = self.read_at(table_offset, (end - 12 - table_offset) as u32)?;
        parse_table(&table, table_offset).map_err(|r| self.bad(r))
    }
}

/// Parses a table; `data_end` bounds the blobs it may point at.
pub(crate) fn parse_table(table: &[u8], data_end: u64) -> Result<Vec<Entry>, String> {
    let count = table
        .get(..4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()) as usize)
        .ok_or("table too short")?;
    if table.len() != 4 + count * ENTRY_LEN {
        return Err(format!(
            "table says {count} blobs but has {} bytes",
            table.len()
        ));
    }
    table[4..]
        .chunks_exact(ENTRY_LEN)
        .map(|e| {
            let u32_at = |i: usize| u32::from_le_bytes(e[i..i + 4].try_into().unwrap_or_default());
            let entry = Entry {
                id: e[..32].try_into().unwrap_or_default(),
                kind: Kind::from_u8(e[32]).ok_or("unknown blob kind")?,
                zstd: match e[33] {
                    0 => false,
                    1 => true,
                    _ => return Err("unknown compression".to_string()),
                },
                offset: u64::from_le_bytes(e[34..42].try_into().unwrap_or_default()),
                length: u32_at(42),
                raw_length: u32_at(46),
            };
            let end = entry.offset.checked_add(u64::from(entry.length));
            if entry.offset < 4 || end.is_none_or(|end| end > data_end) {
                return Err("blob outside the pack".to_string());
            }
            Ok(entry)
        })
        .collect()
}

/// A pack read whole in one pass: its ciphertext hashed as it is read (the
/// name to compare), decrypted once into memory, its table parsed from
/// there. Repair and `verify --read-data` check every byte of every pack;
/// reading the blobs from memory instead of a [`PackReader`] spares them a
/// second decryption of the whole pack. A pack is at most 24 MiB of
/// plaintext, held only while it is checked.
pub(crate) struct WholePack {
    /// BLAKE3 of the ciphertext as read.
    pub cipher: blake3::Hash,
    plain: Vec<u8>,
    name: String,
}

impl WholePack {
    pub(crate) fn read(path: &Path, name: &str, keys: &Keys) -> Result<WholePack, BackupError> {
        let file = open_pack(path, name)?;
        let len = file.metadata().at(path)?.len();
        let mut tee = Tee::new(BufReader::with_capacity(1 << 20, file));
        let mut plain = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        decrypt(&mut tee, keys, name)?
            .read_to_end(&mut plain)
            .map_err(|e| BackupError::BadPack {
                pack: name.to_string(),
                reason: format!("decryption failed: {e}"),
            })?;
        // Anything after the age payload still counts towards the name.
        std::io::copy(&mut tee, &mut std::io::sink()).at(path)?;
        Ok(WholePack {
            cipher: tee.hasher.finalize(),
            plain,
            name: name.to_string(),
        })
    }

    fn bad(&self, reason: impl Into<String>) -> BackupError {
        BackupError::BadPack {
            pack: self.name.clone(),
            reason: reason.into(),
        }
    }

    /// The pack's table, checked against its header and footer.
    pub(crate) fn table(&self) -> Result<Vec<Entry>, BackupError> {
        let p = &self.plain;
        let end = p.len();
        if end < 4 + 4 + 12 {
            return Err(self.bad("too short to be a pack"));
        }
        let table_offset =
            table_offset(end as u64, &p[..4], &p[end - 12..]).map_err(|r| self.bad(r))?;
        parse_table(&p[table_offset as usize..end - 12], table_offset).map_err(|r| self.bad(r))
    }

    /// The stored bytes between two plaintext offsets (within the table's
    /// bounds, which [`WholePack::table`] checked).
    pub(crate) fn stored(&self, start: u64, end: u64) -> &[u8] {
        &self.plain[start as usize..end as usize]
    }

    /// One blob's plaintext, decompressed and checked against its id.
    pub(crate) fn blob(
        &self,
        e: &Entry,
        keys: &Keys,
    ) -> Result<std::borrow::Cow<'_, [u8]>, BackupError> {
        // parse_table keeps every entry inside the data.
        let stored = self.stored(e.offset, e.offset + u64::from(e.length));
        unpack(stored.into(), e, keys).map_err(|r| self.bad(r))
    }
}

/// A blob's stored bytes decompressed (to exactly the size its entry
/// records) and checked against its id; the reason when they are not it.
pub(crate) fn unpack<'a>(
    stored: std::borrow::Cow<'a, [u8]>,
    e: &Entry,
    keys: &Keys,
) -> Result<std::borrow::Cow<'a, [u8]>, String> {
    let id = || hex::encode(e.id);
    let plain = if e.zstd {
        zstd::bulk::decompress(&stored, e.raw_length as usize)
            .map_err(|err| format!("chunk {} does not decompress: {err}", id()))?
            .into()
    } else {
        stored
    };
    if keys.chunk_id(&plain) != e.id {
        return Err(format!("chunk {} does not match its hash", id()));
    }
    Ok(plain)
}
