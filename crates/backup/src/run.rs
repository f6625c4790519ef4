//! A backup run: walk one folder, store what is new, record a snapshot.
//!
//! The walker (this thread) reads, chunks and hashes; new chunks go through a
//! bounded queue to compression workers, one per core, and from them through
//! another bounded queue to the single packer thread, which encrypts, writes
//! and records packs. Bounded queues keep memory flat however large the
//! files are. Unchanged files (same size, mtime, ctime and inode as in the
//! folder's previous snapshot) are not read at all.

use hearth_system::unix_now;
use std::{
    collections::{HashMap, HashSet},
    ffi::OsString,
    fs::{File, Metadata},
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    path::Path,
    sync::{
        Arc, Mutex,
        mpsc::{Receiver, SyncSender, sync_channel},
    },
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use hearth_store::rusqlite::{Connection, OptionalExtension, params};

use crate::{
    CHUNK_AVG, CHUNK_MAX, CHUNK_MIN, Repo, Snapshot, ZSTD_LEVEL,
    chunks::record_pack,
    error::{BackupError, IoContext},
    pack::{Kind, PACK_TARGET, PackWriter},
    tree::{Node, NodeKind, SnapshotBlob, Tree, encode},
};

/// What a run did.
#[derive(Debug)]
pub struct RunReport {
    pub snapshot: Snapshot,
    /// Files skipped or stored with a caveat, each naming the file.
    pub warnings: Vec<String>,
}

/// A blob on its way to the packer.
struct Stored {
    id: [u8; 32],
    kind: Kind,
    bytes: Vec<u8>,
    zstd: bool,
    raw_length: usize,
    /// For trees: the zstd JSON to cache in the index.
    tree_cache: Option<Vec<u8>>,
}

/// A chunk to compress.
struct Raw {
    id: [u8; 32],
    kind: Kind,
    data: Vec<u8>,
}

/// Compresses with one reusable zstd context: creating a level-3 context
/// allocates its tables afresh, which dominates for small chunks.
struct Squeezer {
    zstd: Option<zstd::bulk::Compressor<'static>>,
}

/// Large chunks whose first 64 KiB does not shrink by 3% are stored raw:
/// compressing incompressible data costs a core and saves nothing.
const PROBE: usize = 64 * 1024;

impl Squeezer {
    fn new() -> Squeezer {
        Squeezer {
            zstd: zstd::bulk::Compressor::new(ZSTD_LEVEL).ok(),
        }
    }

    fn shrink(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        let z = self.zstd.as_mut()?;
        if data.len() > 2 * PROBE {
            let probe = z.compress(&data[..PROBE]).ok()?;
            if probe.len() * 100 > PROBE * 97 {
                return None;
            }
        }
        z.compress(data).ok().filter(|c| c.len() < data.len())
    }

    fn compress(&mut self, raw: Raw) -> Stored {
        let raw_length = raw.data.len();
        let (bytes, zstd) = match self.shrink(&raw.data) {
            Some(c) => (c, true),
            None => (raw.data, false),
        };
        Stored {
            id: raw.id,
            kind: raw.kind,
            bytes,
            zstd,
            raw_length,
            tree_cache: None,
        }
    }
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
        // One chunk waiting per worker is enough to keep them busy; every
        // slot can hold an 8 MiB chunk, so slots are memory.
        let (raw_tx, raw_rx) = sync_channel::<Raw>(workers);
        let (stored_tx, stored_rx) = sync_channel::<Stored>(workers);
        let raw_rx = Arc::new(Mutex::new(raw_rx));

        std::thread::scope(|scope| {
            for _ in 0..workers {
                let rx = raw_rx.clone();
                let tx = stored_tx.clone();
                scope.spawn(move || {
                    let mut squeezer = Squeezer::new();
                    loop {
                        let next = rx.lock().map(|r| r.recv());
                        let Ok(Ok(raw)) = next else { break };
                        if tx.send(squeezer.compress(raw)).is_err() {
                            break;
                        }
                    }
                });
            }
            let packer = scope.spawn(|| self.pack_loop(stored_rx));

            let mut walker = Walker {
                repo: self,
                squeezer: Squeezer::new(),
                conn: &conn,
                raw_tx,
                stored_tx,
                seen: HashSet::new(),
                hardlinks: HashMap::new(),
                warnings: vec![],
                files: 0,
                bytes: 0,
            };
            let walked = walker
                .dir(&source, &mut vec![], parent.as_ref())
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
    fn pack_loop(&self, rx: Receiver<Stored>) -> Result<u64, BackupError> {
        type Full = (PackWriter, Vec<([u8; 32], Vec<u8>)>);
        let (fin_tx, fin_rx) = sync_channel::<Full>(1);
        std::thread::scope(|scope| {
            let finisher = scope.spawn(move || -> Result<(), BackupError> {
                let mut conn = self.writer()?;
                for (pack, trees) in fin_rx {
                    let done = pack.finish(&self.dir, &self.keys)?;
                    record_pack(&mut conn, &done, &trees, unix_now())?;
                }
                Ok(())
            });
            let packed = (|| {
                let mut pack: Option<PackWriter> = None;
                let mut trees = vec![];
                let mut added = 0u64;
                let mut in_run = HashSet::new();
                for s in rx {
                    if !in_run.insert(s.id) {
                        continue;
                    }
                    let p = match pack.as_mut() {
                        Some(p) => p,
                        None => pack.insert(PackWriter::create(&self.dir, &self.keys)?),
                    };
                    p.add(s.id, s.kind, &s.bytes, s.zstd, s.raw_length)?;
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

struct Walker<'a> {
    repo: &'a Repo,
    /// For tree blobs, which the walker compresses itself.
    squeezer: Squeezer,
    conn: &'a Connection,
    raw_tx: SyncSender<Raw>,
    stored_tx: SyncSender<Stored>,
    /// Chunk ids sent during this run, so repeats are not looked up twice.
    seen: HashSet<[u8; 32]>,
    /// First path of each multiply-linked inode met in this snapshot.
    hardlinks: HashMap<(u64, u64), Vec<u8>>,
    warnings: Vec<String>,
    files: u64,
    bytes: u64,
}

/// The pipeline stopped early; the packer's error says why.
fn closed() -> BackupError {
    BackupError::Crypto("the backup pipeline stopped".into())
}

impl Walker<'_> {
    fn known(&mut self, id: &[u8; 32]) -> Result<bool, BackupError> {
        if self.seen.contains(id) {
            return Ok(true);
        }
        let indexed = self
            .conn
            .query_row(
                "SELECT 1 FROM backup_chunks WHERE id = ?1",
                params![&id[..]],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        self.seen.insert(*id);
        Ok(indexed)
    }

    fn send(&mut self, id: [u8; 32], kind: Kind, data: Vec<u8>) -> Result<(), BackupError> {
        if !self.known(&id)? {
            self.raw_tx
                .send(Raw { id, kind, data })
                .map_err(|_| closed())?;
        }
        Ok(())
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
            self.stored_tx.send(stored).map_err(|_| closed())?;
        }
        Ok(id)
    }

    fn warn(&mut self, path: &Path, what: impl std::fmt::Display) {
        let msg = format!("{}: {what}", path.display());
        log::warn!("backup: {msg}");
        self.warnings.push(msg);
    }

    fn dir(
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
    /// the maximum chunk size are read whole into an exactly sized buffer:
    /// the streaming chunker allocates a zeroed 8 MiB buffer per file, which
    /// for many small files costs more than everything else together.
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
            f.read_to_end(&mut data).at(p)?;
            if data.len() <= CHUNK_MAX {
                size = data.len() as u64;
                let cuts: Vec<(usize, usize)> = if data.len() < CHUNK_MIN {
                    vec![(0, data.len())]
                        .into_iter()
                        .filter(|(_, l)| *l > 0)
                        .collect()
                } else {
                    fastcdc::v2020::FastCDC::with_level_and_seed(
                        &data,
                        CHUNK_MIN,
                        CHUNK_AVG,
                        CHUNK_MAX,
                        fastcdc::v2020::Normalization::Level1,
                        self.repo.keys.gear_seed,
                    )
                    .map(|c| (c.offset, c.length))
                    .collect()
                };
                if cuts.len() == 1 {
                    let id = self.repo.keys.chunk_id(&data);
                    chunks.push(hex::encode(id));
                    self.send(id, Kind::Data, data)?;
                } else {
                    for (offset, length) in cuts {
                        let piece = &data[offset..offset + length];
                        let id = self.repo.keys.chunk_id(piece);
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
        let cdc = fastcdc::v2020::StreamCDC::with_level_and_seed(
            f,
            CHUNK_MIN,
            CHUNK_AVG,
            CHUNK_MAX,
            fastcdc::v2020::Normalization::Level1,
            self.repo.keys.gear_seed,
        );
        for chunk in cdc {
            let chunk = chunk.map_err(|e| BackupError::Io {
                path: p.to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            })?;
            let id = self.repo.keys.chunk_id(&chunk.data);
            size += chunk.data.len() as u64;
            chunks.push(hex::encode(id));
            self.send(id, Kind::Data, chunk.data)?;
        }
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
