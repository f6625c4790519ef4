//! The walker of a backup run: change detection, reading and chunking.
//!
//! Owns the depth-first walk of one folder, deciding per entry whether it is
//! stored, linked, skipped or unchanged since the folder's previous snapshot
//! (same size, mtime, ctime and inode: then it is not read at all), and the
//! chunking of what must be read. It runs on the calling thread and only
//! sends: new chunks go to the compression workers, tree blobs (compressed
//! here, since the index caches them) straight to the packer. It knows the
//! queues' messages (from `compress`) but not who drains them: only `run`
//! wires the stages together.

use crate::stages::{Stage, time};
use std::{
    collections::{HashMap, HashSet},
    ffi::OsString,
    fs::{File, Metadata},
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    path::Path,
    sync::mpsc::SyncSender,
};

use hearth_store::rusqlite::{Connection, OptionalExtension, params};

use crate::{
    CHUNK_MAX, Repo, ZSTD_LEVEL,
    cdc::Chunker,
    compress::{BATCH_BYTES, BATCH_COUNT, Raw, Squeezer, Stored, closed},
    error::{BackupError, IoContext},
    known::KnownIds,
    pack::Kind,
    tree::{Node, NodeKind, Tree, encode},
};

/// A file read without `File::read_to_end`'s size hint, which costs an
/// `fstat` and an `lseek` per file (100,000 calls for 50,000 files) to
/// learn what the caller's exactly sized buffer already says. Reading on
/// past the hint still works: the buffer just grows.
struct Unhinted<'a>(&'a mut File);

impl std::io::Read for Unhinted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

/// Index lookups before the walker loads the index's ids into a filter:
/// about one pack's worth of chunks.
const LOOKUPS_BEFORE_FILTER: u32 = 1024;

/// One folder's walk: what it has sent, and what it found.
pub(crate) struct Walker<'a> {
    repo: &'a Repo,
    /// For tree blobs, which the walker compresses itself.
    squeezer: Squeezer,
    conn: &'a Connection,
    /// New chunks, in batches, to the compression workers.
    pub(crate) raw_tx: SyncSender<Vec<Raw>>,
    /// The batch being gathered, and its bytes.
    batch: Vec<Raw>,
    batch_bytes: usize,
    /// Compressed tree blobs, straight to the packer.
    pub(crate) stored_tx: SyncSender<Vec<Stored>>,
    /// Chunk ids sent during this run, so repeats are not looked up twice.
    seen: HashSet<[u8; 32]>,
    /// The index's ids, loaded once this run has asked about enough chunks
    /// to be worth it; see [`Walker::known`].
    filter: Option<KnownIds>,
    /// Index lookups made so far.
    lookups: u32,
    /// The chunker, made at the first file; its stream buffer at the first
    /// large one.
    chunker: Option<Chunker>,
    /// First path of each multiply-linked inode met in this snapshot.
    hardlinks: HashMap<(u64, u64), Vec<u8>>,
    /// Files skipped or stored with a caveat, each naming the file.
    pub(crate) warnings: Vec<String>,
    /// Files in the snapshot, unchanged ones included.
    pub(crate) files: u64,
    /// Their bytes, before chunking and compression.
    pub(crate) bytes: u64,
}

impl<'a> Walker<'a> {
    /// A walker that looks chunks up through `conn` and sends what is new
    /// on the two queues.
    pub(crate) fn new(
        repo: &'a Repo,
        conn: &'a Connection,
        raw_tx: SyncSender<Vec<Raw>>,
        stored_tx: SyncSender<Vec<Stored>>,
    ) -> Walker<'a> {
        Walker {
            repo,
            squeezer: Squeezer::new(),
            conn,
            raw_tx,
            batch: vec![],
            batch_bytes: 0,
            stored_tx,
            seen: HashSet::new(),
            filter: None,
            lookups: 0,
            chunker: None,
            hardlinks: HashMap::new(),
            warnings: vec![],
            files: 0,
            bytes: 0,
        }
    }
}

impl Walker<'_> {
    /// Whether this run or the index already has chunk `id`.
    ///
    /// After [`LOOKUPS_BEFORE_FILTER`] index lookups, the index's ids are
    /// loaded into a [`KnownIds`] filter, and only the ids it may hold are
    /// looked up; a run that sends little (a rerun) never pays for loading
    /// it. Ids committed after the load came from this run, so `seen`
    /// holds them, and the repo lock keeps every other writer out.
    fn known(&mut self, id: &[u8; 32]) -> Result<bool, BackupError> {
        if self.seen.contains(id) {
            return Ok(true);
        }
        if self.filter.is_none() && self.lookups >= LOOKUPS_BEFORE_FILTER {
            self.filter = Some(KnownIds::load(self.conn)?);
        }
        self.lookups = self.lookups.saturating_add(1);
        let indexed = self.filter.as_ref().is_none_or(|f| f.may_hold(id))
            && self
                .conn
                .prepare_cached("SELECT 1 FROM backup_chunks WHERE id = ?1")?
                .query_row(params![&id[..]], |_| Ok(()))
                .optional()?
                .is_some();
        self.seen.insert(*id);
        Ok(indexed)
    }

    /// Sends a chunk to the workers unless the index or this run has it.
    pub(crate) fn send(
        &mut self,
        id: [u8; 32],
        kind: Kind,
        data: Vec<u8>,
    ) -> Result<(), BackupError> {
        time(Stage::Queue, || {
            if !self.known(&id)? {
                self.batch_bytes += data.len();
                self.batch.push(Raw { id, kind, data });
                if self.batch_bytes >= BATCH_BYTES || self.batch.len() >= BATCH_COUNT {
                    self.flush()?;
                }
            }
            Ok(())
        })
    }

    /// Sends the batch being gathered; the run calls it once the walk is
    /// done, so that nothing stays behind.
    pub(crate) fn flush(&mut self) -> Result<(), BackupError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.batch_bytes = 0;
        self.raw_tx
            .send(std::mem::take(&mut self.batch))
            .map_err(|_| closed())
    }

    fn put_tree(&mut self, tree: &Tree) -> Result<[u8; 32], BackupError> {
        let json = tree.to_bytes();
        let id = self.repo.keys.chunk_id(&json);
        if !self.known(&id)? {
            let mut stored = self.squeezer.compress(Raw {
                id,
                kind: Kind::Tree,
                data: json,
            });
            // The cache is always zstd JSON: the stored bytes already are,
            // unless compression did not shrink this (tiny) tree, in which
            // case they are the plain JSON.
            stored.tree_cache = Some(if stored.zstd {
                stored.bytes.clone()
            } else {
                zstd::bulk::compress(&stored.bytes, ZSTD_LEVEL).unwrap_or_default()
            });
            self.stored_tx.send(vec![stored]).map_err(|_| closed())?;
        }
        Ok(id)
    }

    fn warn(&mut self, path: &Path, what: impl std::fmt::Display) {
        let msg = format!("{}: {what}", path.display());
        log::warn!("backup: {msg}");
        self.warnings.push(msg);
    }

    /// Stores the folder at `path` and everything under it, returning its
    /// tree's id. `parent` is the same folder's tree in the previous
    /// snapshot, against which files are checked for change.
    pub(crate) fn dir(
        &mut self,
        path: &Path,
        rel: &mut Vec<OsString>,
        parent: Option<&Tree>,
    ) -> Result<[u8; 32], BackupError> {
        let mut names: Vec<OsString> = match std::fs::read_dir(path) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect(),
            Err(e) => {
                self.warn(path, format!("cannot list this folder, skipped ({e})"));
                vec![]
            }
        };
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut tree = Tree::default();
        for name in names {
            let p = path.join(&name);
            if p == self.repo.dir || is_temporary(&name) {
                continue; // never back up the backup, or half-written files
            }
            let md = match std::fs::symlink_metadata(&p) {
                Ok(md) => md,
                Err(e) => {
                    self.warn(&p, format!("skipped ({e})"));
                    continue;
                }
            };
            let prev = parent.and_then(|t| t.find(&name));
            rel.push(name.clone());
            let kind = self.node(&p, &md, rel, prev);
            rel.pop();
            let kind = match kind {
                Ok(Some(k)) => k,
                Ok(None) => continue,
                Err(BackupError::Io { path, source }) => {
                    self.warn(&path, format!("skipped ({source})"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut node = Node {
                name: None,
                name_hex: None,
                kind,
                mode: md.mode() & 0o7777,
                mtime_ns: mtime_ns(&md),
                ctime_ns: ctime_ns(&md),
                ino: md.ino(),
            };
            node.set_name(&name);
            tree.entries.push(node);
        }
        self.put_tree(&tree)
    }

    fn node(
        &mut self,
        p: &Path,
        md: &Metadata,
        rel: &mut Vec<OsString>,
        prev: Option<&Node>,
    ) -> Result<Option<NodeKind>, BackupError> {
        let ft = md.file_type();
        if ft.is_dir() {
            let sub = match prev.map(|n| &n.kind) {
                Some(NodeKind::Dir { tree }) => self.repo.tree(self.conn, tree).ok(),
                _ => None,
            };
            let id = self.dir(p, rel, sub.as_ref())?;
            return Ok(Some(NodeKind::Dir {
                tree: hex::encode(id),
            }));
        }
        if ft.is_symlink() {
            let target = std::fs::read_link(p).at(p)?;
            let (target, target_hex) = encode(target.as_os_str().as_bytes());
            return Ok(Some(NodeKind::Symlink { target, target_hex }));
        }
        if !ft.is_file() {
            self.warn(p, "skipped: not a regular file, folder or symlink");
            return Ok(None);
        }
        let rel_path = rel
            .iter()
            .map(|c| c.as_bytes())
            .collect::<Vec<_>>()
            .join(&b'/');
        if md.nlink() > 1 {
            let key = (md.dev(), md.ino());
            if let Some(first) = self.hardlinks.get(&key) {
                let (link, link_hex) = encode(first);
                return Ok(Some(NodeKind::Hardlink { link, link_hex }));
            }
            self.hardlinks.insert(key, rel_path);
        }
        self.file(p, md, prev).map(Some)
    }

    fn file(
        &mut self,
        p: &Path,
        md: &Metadata,
        prev: Option<&Node>,
    ) -> Result<NodeKind, BackupError> {
        if let Some(prev) = prev
            && let NodeKind::File { size, .. } = &prev.kind
            && *size == md.size()
            && prev.mtime_ns == mtime_ns(md)
            && prev.ctime_ns == ctime_ns(md)
            && prev.ino == md.ino()
        {
            self.files += 1;
            self.bytes += size;
            return Ok(prev.kind.clone());
        }
        let mut attempt = 0;
        loop {
            let f = File::open(p).at(p)?;
            let before = f.metadata().at(p)?;
            let (size, chunks) = self.read_chunks(p, f, before.len())?;
            let after = std::fs::symlink_metadata(p).at(p)?;
            let steady = after.size() == size
                && after.mtime() == before.mtime()
                && after.mtime_nsec() == before.mtime_nsec();
            if steady || attempt == 2 {
                if !steady {
                    self.warn(p, "kept changing while being read; stored as last read");
                }
                self.files += 1;
                self.bytes += size;
                return Ok(NodeKind::File { size, chunks });
            }
            attempt += 1;
        }
    }
}

impl Walker<'_> {
    /// Reads and chunks one open file, sending new chunks on. Files up to
    /// the maximum chunk size are read whole into an exactly sized buffer,
    /// which becomes the chunk itself when the file is one chunk (most are);
    /// larger files stream through the chunker's buffer ([`Chunker`]).
    fn read_chunks(
        &mut self,
        p: &Path,
        mut f: File,
        len_hint: u64,
    ) -> Result<(u64, Vec<String>), BackupError> {
        let mut chunks = vec![];
        let mut size = 0u64;
        if len_hint <= CHUNK_MAX as u64 {
            use std::io::Read;
            let mut data = Vec::with_capacity(len_hint as usize + 1);
            time(Stage::Read, || Unhinted(&mut f).read_to_end(&mut data)).at(p)?;
            if data.len() <= CHUNK_MAX {
                size = data.len() as u64;
                let seed = self.repo.keys.gear_seed;
                let chunker = self.chunker.get_or_insert_with(|| Chunker::new(seed));
                let cuts = time(Stage::Chunk, || chunker.cuts(&data));
                if cuts.len() == 1 {
                    let id = time(Stage::Hash, || self.repo.keys.chunk_id(&data));
                    chunks.push(hex::encode(id));
                    self.send(id, Kind::Data, data)?;
                } else {
                    for (offset, length) in cuts {
                        let piece = &data[offset..offset + length];
                        let id = time(Stage::Hash, || self.repo.keys.chunk_id(piece));
                        chunks.push(hex::encode(id));
                        self.send(id, Kind::Data, piece.to_vec())?;
                    }
                }
                return Ok((size, chunks));
            }
            // It grew past the limit while being read: stream it instead.
            use std::io::Seek;
            f.seek(std::io::SeekFrom::Start(0)).at(p)?;
        }
        let mut chunker = self
            .chunker
            .take()
            .unwrap_or_else(|| Chunker::new(self.repo.keys.gear_seed));
        let streamed = chunker.chunks(&mut f, p, |piece| {
            let id = time(Stage::Hash, || self.repo.keys.chunk_id(piece));
            chunks.push(hex::encode(id));
            self.send(id, Kind::Data, piece.to_vec())
        });
        self.chunker = Some(chunker);
        size += streamed?;
        Ok((size, chunks))
    }
}

/// Hearth's own files in progress: uploads and restores are written under
/// these names and renamed when complete, so they are never worth storing.
pub fn is_temporary(name: &std::ffi::OsStr) -> bool {
    let n = name.as_bytes();
    n.starts_with(b".hearth-upload-") || n.starts_with(b".hearth-restore-")
}

/// Modification time in nanoseconds since the epoch, as trees record it.
fn mtime_ns(md: &Metadata) -> i64 {
    md.mtime() * 1_000_000_000 + md.mtime_nsec()
}

/// Inode change time in nanoseconds, for change detection.
fn ctime_ns(md: &Metadata) -> i64 {
    md.ctime() * 1_000_000_000 + md.ctime_nsec()
}
