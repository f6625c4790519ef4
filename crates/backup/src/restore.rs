//! Restoring a snapshot, or part of one, into a folder.
//!
//! One walker creates folders and symlinks and hands runs of consecutive
//! files to a pool of writers, each with its own index connection and open
//! pack. Creating files is latency-bound on real file systems, so several
//! writers overlap even on two cores. Hard links and folder times come
//! last, once every file exists. Files are written unnamed (`O_TMPFILE`) and
//! linked in when complete, or, where that is not possible, beside their
//! final name and renamed into place, so a restore "in place" never leaves
//! a half-written file under a real name. All-zero blocks become holes, so
//! sparse files stay sparse. One damaged file does not stop the rest: each
//! failure is recorded by name.

use std::{
    collections::HashMap,
    ffi::OsString,
    fs::File,
    io::{Seek, SeekFrom, Write},
    os::unix::{
        ffi::{OsStrExt, OsStringExt},
        fs::PermissionsExt,
    },
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, SyncSender, sync_channel},
    },
};

mod output;

use output::{Output, unnamed_works};

use crate::{
    Repo, Snapshot,
    chunks::ChunkSource,
    error::{BackupError, IoContext},
    tree::{Node, NodeKind, Tree, decode},
};

/// The granularity of holes: a file system block.
const SPARSE_BLOCK: usize = 4096;
/// File writers, whatever the core count: they mostly wait on the kernel
/// (measured: four writers restored the benchmark set at a third of the
/// speed of six). Each may hold a stored and a decompressed chunk.
const WRITERS: usize = 6;
/// Writers when the packs are read from the bucket, where each also waits
/// on its requests (measured, restoring the benchmark set into tmpfs from a
/// three-node Garage on this 2-core machine: 6.15-7.77 s with six, 5.55-7.10
/// s with twelve, faster in each of five alternating pairs).
const BUCKET_WRITERS: usize = 12;
/// Files go to the writers in runs of consecutive ones, up to this many
/// bytes or files. Consecutive files sit side by side in a pack, so one
/// writer reads a run straight through; one file per writer made each of
/// them decrypt the stretches between its files that others wrote.
const BATCH_BYTES: u64 = 2 << 20;
const BATCH_FILES: usize = 256;
/// Large files start their writeback every this many bytes (see
/// [`start_writeback`]).
const EARLY_FLUSH: u64 = 8 << 20;

/// What a restore did.
#[derive(Debug, Default)]
pub struct RestoreReport {
    pub files: u64,
    pub bytes: u64,
    /// Entries that could not be restored, each naming the path and why.
    pub errors: Vec<String>,
}

/// One file for a writer.
struct FileJob {
    dest: PathBuf,
    /// Mode and mtime come from here.
    node: Node,
    size: u64,
    chunks: Vec<String>,
}

/// Live counters of a restore, for progress bars: files finished and bytes
/// written so far (bytes move per chunk, so a large file shows progress).
#[derive(Debug, Default)]
pub struct Progress {
    pub files: AtomicU64,
    pub bytes: AtomicU64,
}

/// What the writers share.
struct Tally<'p> {
    progress: &'p Progress,
    errors: Mutex<Vec<String>>,
}

impl Tally<'_> {
    fn error(&self, path: &Path, e: impl std::fmt::Display) {
        log::warn!("restore: {}: {e}", path.display());
        if let Ok(mut errors) = self.errors.lock() {
            errors.push(format!("{}: {e}", path.display()));
        }
    }
}

struct Walker<'a> {
    repo: &'a Repo,
    snapshot: &'a Snapshot,
    conn: hearth_store::rusqlite::Connection,
    jobs: SyncSender<Vec<FileJob>>,
    /// The run of files not yet handed to a writer, and its bytes.
    batch: Vec<FileJob>,
    batch_bytes: u64,
    tally: &'a Tally<'a>,
    /// Snapshot-relative path of each dispatched file, for hard links.
    restored: HashMap<Vec<u8>, PathBuf>,
    /// Hard links to make once every file exists: (dest, first name).
    links: Vec<(PathBuf, Vec<u8>)>,
    /// Folders whose mode and time are set last, deepest first.
    dirs: Vec<(PathBuf, Node)>,
}

impl Repo {
    /// Restores `path` (`""` for everything; `/`-separated, relative to the
    /// snapshot's folder) of `snapshot` into `target`.
    pub fn restore(
        &self,
        snapshot: &Snapshot,
        path: &str,
        target: &Path,
    ) -> Result<RestoreReport, BackupError> {
        self.restore_with(snapshot, path, target, &Progress::default())
    }

    /// [`Repo::restore`], counting into `progress` as it goes.
    pub fn restore_with(
        &self,
        snapshot: &Snapshot,
        path: &str,
        target: &Path,
        progress: &Progress,
    ) -> Result<RestoreReport, BackupError> {
        std::fs::create_dir_all(target).at(target)?;
        let tally = Tally {
            progress,
            errors: Mutex::new(vec![]),
        };
        let tally = &tally;
        let unnamed = unnamed_works(target);
        let writers = match self.remote {
            Some(_) => BUCKET_WRITERS,
            None => WRITERS,
        };
        let (tx, rx) = sync_channel::<Vec<FileJob>>(writers * 2);
        let rx = Arc::new(Mutex::new(rx));
        let walked = std::thread::scope(|scope| {
            for _ in 0..writers {
                let rx = rx.clone();
                scope.spawn(move || writer(self, &rx, tally, unnamed));
            }
            let mut w = Walker {
                repo: self,
                snapshot,
                conn: self.reader()?,
                jobs: tx,
                batch: vec![],
                batch_bytes: 0,
                tally,
                restored: HashMap::new(),
                links: vec![],
                dirs: vec![],
            };
            let result = w.start(path, target).and_then(|()| w.send_batch());
            // Closing the queue lets the writers finish; the scope joins them.
            let Walker {
                links,
                dirs,
                restored,
                ..
            } = w;
            result.map(|()| (links, dirs, restored))
        });
        let (links, dirs, restored) = walked?;
        for (dest, first) in links {
            let made = match restored.get(&first) {
                Some(source) => {
                    remove_existing(&dest);
                    std::fs::hard_link(source, &dest).at(&dest)
                }
                None => Err(BackupError::NoSuchPath(
                    String::from_utf8_lossy(&first).into_owned(),
                )),
            };
            if let Err(e) = made {
                tally.error(&dest, e);
            }
        }
        for (dest, node) in &dirs {
            if let Err(e) = set_meta(dest, node, false) {
                tally.error(dest, e);
            }
        }
        // One flush for the whole restore instead of an fsync per file.
        if let Ok(dir) = File::open(target) {
            let _ = rustix::fs::syncfs(&dir);
        }
        let errors = tally.errors.lock().map(|e| e.clone()).unwrap_or_default();
        Ok(RestoreReport {
            files: progress.files.load(Ordering::Relaxed),
            bytes: progress.bytes.load(Ordering::Relaxed),
            errors,
        })
    }
}

/// A writer thread: takes files off the queue until it closes.
fn writer(repo: &Repo, rx: &Mutex<Receiver<Vec<FileJob>>>, tally: &Tally<'_>, unnamed: bool) {
    let mut src = match ChunkSource::new(repo) {
        Ok(s) => s,
        Err(e) => {
            tally.error(&repo.db, e);
            return;
        }
    };
    loop {
        let next = rx.lock().map(|r| r.recv());
        let Ok(Ok(batch)) = next else { break };
        src.plan(
            batch
                .iter()
                .flat_map(|job| job.chunks.iter().map(String::as_str)),
        );
        for job in batch {
            match write_file(&mut src, &job, tally.progress, unnamed) {
                Ok(()) => {
                    tally.progress.files.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tally.error(&job.dest, e),
            }
        }
    }
}

impl Walker<'_> {
    fn start(&mut self, path: &str, target: &Path) -> Result<(), BackupError> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        match parts.split_last() {
            None => {
                let root = self.repo.tree(&self.conn, &self.snapshot.root)?;
                self.tree(&root, target, &mut vec![])
            }
            Some((last, parents)) => {
                let tree = self.repo.tree_at(self.snapshot, &parents.join("/"))?;
                let node = tree
                    .find(std::ffi::OsStr::new(last))
                    .ok_or_else(|| BackupError::NoSuchPath(path.to_string()))?
                    .clone();
                let mut rel: Vec<OsString> = parts.iter().map(OsString::from).collect();
                self.node(&node, &target.join(last), &mut rel)
            }
        }
    }

    fn tree(
        &mut self,
        tree: &Tree,
        dir: &Path,
        rel: &mut Vec<OsString>,
    ) -> Result<(), BackupError> {
        for node in &tree.entries {
            let Some(name) = node.os_name() else {
                self.tally
                    .error(dir, "an entry with an invalid name was skipped");
                continue;
            };
            rel.push(name.clone());
            self.node(node, &dir.join(&name), rel)?;
            rel.pop();
        }
        Ok(())
    }

    fn dispatch(
        &mut self,
        dest: &Path,
        node: &Node,
        size: u64,
        chunks: &[String],
    ) -> Result<(), BackupError> {
        self.batch.push(FileJob {
            dest: dest.to_path_buf(),
            node: node.clone(),
            size,
            chunks: chunks.to_vec(),
        });
        self.batch_bytes += size;
        if self.batch_bytes >= BATCH_BYTES || self.batch.len() >= BATCH_FILES {
            self.send_batch()?;
        }
        Ok(())
    }

    fn send_batch(&mut self) -> Result<(), BackupError> {
        self.batch_bytes = 0;
        if self.batch.is_empty() {
            return Ok(());
        }
        self.jobs
            .send(std::mem::take(&mut self.batch))
            .map_err(|_| BackupError::Crypto("the restore writers stopped".into()))
    }

    fn node(
        &mut self,
        node: &Node,
        dest: &Path,
        rel: &mut Vec<OsString>,
    ) -> Result<(), BackupError> {
        let outcome = match &node.kind {
            NodeKind::Dir { tree } => {
                let sub = self.repo.tree(&self.conn, tree)?;
                match std::fs::create_dir(dest) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dest.is_dir() => {}
                    Err(e) => return Err(e).at(dest),
                }
                self.tree(&sub, dest, rel)?;
                // After the children, or writing them would change it again.
                self.dirs.push((dest.to_path_buf(), node.clone()));
                Ok(())
            }
            NodeKind::File { size, chunks } => {
                let key = rel
                    .iter()
                    .map(|c| c.as_bytes())
                    .collect::<Vec<_>>()
                    .join(&b'/');
                self.restored.insert(key, dest.to_path_buf());
                return self.dispatch(dest, node, *size, chunks);
            }
            NodeKind::Symlink { target, target_hex } => {
                let target = decode(target, target_hex).unwrap_or_default();
                remove_existing(dest);
                std::os::unix::fs::symlink(OsString::from_vec(target), dest)
                    .at(dest)
                    .and_then(|()| set_meta(dest, node, true))
            }
            NodeKind::Hardlink { link, link_hex } => {
                let link = decode(link, link_hex).unwrap_or_default();
                if self.restored.contains_key(&link) {
                    self.links.push((dest.to_path_buf(), link));
                    Ok(())
                } else {
                    // The first name is outside what is being restored:
                    // restore the content as a file of its own.
                    self.linked_copy(&link, dest)
                }
            }
        };
        if let Err(e) = outcome {
            self.tally.error(dest, e);
        }
        Ok(())
    }

    fn linked_copy(&mut self, link: &[u8], dest: &Path) -> Result<(), BackupError> {
        let text = String::from_utf8_lossy(link).into_owned();
        let (parent, name) = text.rsplit_once('/').unwrap_or(("", &text));
        let tree = self.repo.tree_at(self.snapshot, parent)?;
        match tree.find(std::ffi::OsStr::new(name)) {
            Some(
                first @ Node {
                    kind: NodeKind::File { size, chunks },
                    ..
                },
            ) => {
                let (first, size, chunks) = (first.clone(), *size, chunks.clone());
                self.dispatch(dest, &first, size, &chunks)
            }
            _ => Err(BackupError::NoSuchPath(text)),
        }
    }
}

/// A block of zeros to compare against: a slice comparison is a memcmp,
/// many times faster than testing byte by byte.
static ZEROS: [u8; SPARSE_BLOCK] = [0; SPARSE_BLOCK];

/// Writes one file, then gives it its real name (see [`Output`]).
fn write_file(
    src: &mut ChunkSource<'_>,
    job: &FileJob,
    progress: &Progress,
    unnamed: bool,
) -> Result<(), BackupError> {
    let mut out = Output::create(&job.dest, unnamed)?;
    let result = (|| {
        let f = out.file();
        let (mut written, mut trailing_hole, mut flushed) = (0u64, false, 0u64);
        for hex_id in &job.chunks {
            let id: [u8; 32] = hex::decode(hex_id)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| BackupError::MissingChunk(hex_id.clone()))?;
            let data = src.get(&id)?;
            progress
                .bytes
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            trailing_hole = write_sparse(f, &data).at(&job.dest)?;
            written += data.len() as u64;
            if written - flushed >= EARLY_FLUSH {
                start_writeback(f, flushed, written);
                flushed = written;
            }
        }
        if flushed > 0 && written > flushed {
            start_writeback(f, flushed, written);
        }
        // A file that ends in a hole only reaches its size by truncation.
        if trailing_hole || written != job.size {
            f.set_len(job.size).at(&job.dest)?;
        }
        set_file_meta(f, &job.node).at(&job.dest)
    })();
    match result {
        Ok(()) => out.commit(&job.dest),
        Err(e) => {
            out.discard();
            Err(e)
        }
    }
}

/// Starts writing bytes `from..to` of `f` to disk without waiting for it,
/// and lets the kernel drop them from the page cache once written. The
/// restore ends with one `syncfs`; started early, the disk writes large
/// files while the CPU works on the next ones, instead of all at the end
/// (measured: the final `syncfs` took 0.6 s of a 4 s restore). Advice only:
/// if the kernel ignores it, the `syncfs` still makes everything durable.
fn start_writeback(f: &File, from: u64, to: u64) {
    use rustix::fs::{Advice, fadvise};
    let _ = fadvise(
        f,
        from,
        std::num::NonZeroU64::new(to - from),
        Advice::DontNeed,
    );
}

/// Writes `data` at the file's position with its all-zero blocks left as
/// holes, so sparse files stay sparse: each run of data blocks goes in one
/// write and each run of zero blocks is one seek (a write per 4 KiB block
/// was a quarter of a million system calls per GiB). Returns whether `data`
/// ended in a hole.
fn write_sparse(f: &mut File, data: &[u8]) -> std::io::Result<bool> {
    let mut put = |run: &[u8], hole: bool| {
        if hole {
            f.seek(SeekFrom::Current(run.len() as i64)).map(|_| ())
        } else {
            f.write_all(run)
        }
    };
    let (mut start, mut hole) = (0, false);
    for (i, block) in data.chunks(SPARSE_BLOCK).enumerate() {
        let zero = block == &ZEROS[..block.len()];
        let at = i * SPARSE_BLOCK;
        if at > start && zero != hole {
            put(&data[start..at], hole)?;
            start = at;
        }
        hole = zero;
    }
    if start < data.len() {
        put(&data[start..], hole)?;
    }
    Ok(hole)
}

/// Mode and mtime through the open file: no path lookups.
fn set_file_meta(f: &File, node: &Node) -> std::io::Result<()> {
    use rustix::fs::{Mode, Timestamps, fchmod, futimens};
    fchmod(f, Mode::from_raw_mode(node.mode))?;
    let t = timespec(node);
    futimens(
        f,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
    )?;
    Ok(())
}

fn timespec(node: &Node) -> rustix::fs::Timespec {
    rustix::fs::Timespec {
        tv_sec: node.mtime_ns.div_euclid(1_000_000_000),
        tv_nsec: node.mtime_ns.rem_euclid(1_000_000_000),
    }
}

fn remove_existing(path: &Path) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| !m.is_dir()) {
        let _ = std::fs::remove_file(path);
    }
}

/// Applies mode and mtime. Symlinks have no mode of their own on Linux.
fn set_meta(path: &Path, node: &Node, symlink: bool) -> Result<(), BackupError> {
    use rustix::fs::{AtFlags, CWD, Timestamps, utimensat};
    if !symlink {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode)).at(path)?;
    }
    let t = timespec(node);
    let flags = if symlink {
        AtFlags::SYMLINK_NOFOLLOW
    } else {
        AtFlags::empty()
    };
    utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        flags,
    )
    .map_err(std::io::Error::from)
    .at(path)
}

#[cfg(test)]
mod tests {
    use std::{io::Read, os::unix::fs::MetadataExt};

    use super::*;

    /// Data and zero runs in every order, a short last block, and a
    /// trailing hole: the bytes read back are the bytes given, and the zero
    /// runs take no space.
    #[test]
    fn zero_runs_become_holes_and_the_bytes_survive() {
        let b = SPARSE_BLOCK;
        let mut data = vec![7u8; 3 * b];
        data.extend(vec![0u8; 64 * b]);
        data.extend(vec![9u8; b + 100]);
        data.extend(vec![0u8; 64 * b + 5]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = File::create(&path).unwrap();
        assert!(
            !write_sparse(&mut f, &data[..3 * b]).unwrap(),
            "ends in data"
        );
        assert!(
            write_sparse(&mut f, &data[3 * b..]).unwrap(),
            "ends in a hole"
        );
        f.set_len(data.len() as u64).unwrap();
        drop(f);
        let mut back = vec![];
        File::open(&path).unwrap().read_to_end(&mut back).unwrap();
        assert!(back == data, "content differs");
        let blocks = std::fs::metadata(&path).unwrap().blocks() * 512;
        assert!(blocks < (16 * b) as u64, "not sparse: {blocks} bytes");
    }
}
