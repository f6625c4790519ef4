//! Reading a snapshot out as a stream: one file, or a folder as a `.tar` or
//! `.zip` archive, written to any `Write` as it is read. Nothing is built
//! in memory or on disk first, so a phone can download a 50 GB folder from
//! a Pi with 4 GB of RAM; memory holds one chunk at a time.
//!
//! Tar keeps everything: modes, times, symlinks, hard links and names that
//! are not UTF-8. Zip stores files uncompressed (the chunks were already
//! compressed where it helped, and a Pi should not spend a core on
//! deflate), writes hard links as copies and replaces names that are not
//! UTF-8 lossily, because zip tools expect UTF-8.

use std::{
    ffi::OsStr,
    io::{Read, Write},
    os::unix::ffi::OsStrExt,
};

use hearth_store::rusqlite::Connection;

use crate::{
    Repo, Snapshot,
    chunks::ChunkSource,
    error::BackupError,
    tree::{Node, NodeKind, decode},
};

/// Archive formats for folder downloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Archive {
    Tar,
    Zip,
}

/// A file's content as a `Read`, one verified chunk at a time.
struct ChunkReader<'a, 'r> {
    src: &'a mut ChunkSource<'r>,
    chunks: std::slice::Iter<'a, String>,
    current: Vec<u8>,
    at: usize,
}

impl Read for ChunkReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            let Some(hex_id) = self.chunks.next() else {
                return Ok(0);
            };
            let id: [u8; 32] = hex::decode(hex_id)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| std::io::Error::other(format!("bad chunk id {hex_id}")))?;
            self.current = self.src.get(&id).map_err(std::io::Error::other)?;
            self.at = 0;
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn io_err(e: std::io::Error) -> BackupError {
    // Chunk errors travel through `Read` as `other`; unwrap them so a
    // damaged pack is still named.
    match e.downcast::<BackupError>() {
        Ok(inner) => inner,
        Err(e) => BackupError::Io {
            path: "download".into(),
            source: e,
        },
    }
}

impl Repo {
    /// The entry at `path` (`/`-separated, relative to the snapshot's
    /// folder); `""` is the folder itself, as a directory node.
    pub fn node_at(&self, snapshot: &Snapshot, path: &str) -> Result<Node, BackupError> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let Some((last, parents)) = parts.split_last() else {
            return Ok(Node {
                name: Some(String::new()),
                name_hex: None,
                kind: NodeKind::Dir {
                    tree: snapshot.root.clone(),
                },
                mode: 0o755,
                mtime_ns: snapshot.time * 1_000_000_000,
                ctime_ns: 0,
                ino: 0,
            });
        };
        let tree = self.tree_at(snapshot, &parents.join("/"))?;
        tree.find(OsStr::new(last))
            .cloned()
            .ok_or_else(|| BackupError::NoSuchPath(path.to_string()))
    }

    /// Counts the files and bytes under `path`, for progress bars.
    pub fn measure(&self, snapshot: &Snapshot, path: &str) -> Result<(u64, u64), BackupError> {
        let c = self.reader()?;
        let mut totals = (0, 0);
        let mut stack = vec![self.node_at(snapshot, path)?];
        while let Some(node) = stack.pop() {
            match node.kind {
                NodeKind::File { size, .. } => {
                    totals.0 += 1;
                    totals.1 += size;
                }
                NodeKind::Dir { tree } => stack.extend(self.tree(&c, &tree)?.entries),
                _ => {}
            }
        }
        Ok(totals)
    }

    /// Writes the content of the file at `path` to `out`. Returns its size.
    pub fn read_file(
        &self,
        snapshot: &Snapshot,
        path: &str,
        out: &mut dyn Write,
    ) -> Result<u64, BackupError> {
        let node = self.resolve(snapshot, self.node_at(snapshot, path)?)?;
        let NodeKind::File { chunks, .. } = &node.kind else {
            return Err(BackupError::NoSuchPath(format!("{path} (not a file)")));
        };
        let mut src = ChunkSource::new(self)?;
        let mut reader = ChunkReader {
            src: &mut src,
            chunks: chunks.iter(),
            current: vec![],
            at: 0,
        };
        std::io::copy(&mut reader, out).map_err(io_err)
    }

    /// A hard link's first name, or the node itself.
    fn resolve(&self, snapshot: &Snapshot, node: Node) -> Result<Node, BackupError> {
        match &node.kind {
            NodeKind::Hardlink { link, link_hex } => {
                let first = decode(link, link_hex).unwrap_or_default();
                self.node_at(snapshot, &String::from_utf8_lossy(&first))
            }
            _ => Ok(node),
        }
    }

    /// Writes the folder at `path` to `out` as an archive whose entries
    /// start with the folder's own name.
    pub fn export(
        &self,
        snapshot: &Snapshot,
        path: &str,
        format: Archive,
        out: &mut dyn Write,
    ) -> Result<(), BackupError> {
        let top = self.node_at(snapshot, path)?;
        // Entries start with the folder's own name; for a whole snapshot,
        // the name of the folder that was backed up.
        let name = match path.rsplit('/').find(|p| !p.is_empty()) {
            Some(last) => last.as_bytes().to_vec(),
            None => std::path::Path::new(&snapshot.source)
                .file_name()
                .map(|n| n.as_bytes().to_vec())
                .unwrap_or_else(|| b"snapshot".to_vec()),
        };
        let c = self.reader()?;
        let mut src = ChunkSource::new(self)?;
        let mut ex = Exporter {
            repo: self,
            snapshot,
            conn: &c,
            src: &mut src,
            prefix: path.trim_matches('/').as_bytes().to_vec(),
            sink: match format {
                Archive::Tar => Sink::Tar(tar::Builder::new(out)),
                Archive::Zip => Sink::Zip(Box::new(zip::ZipWriter::new_stream(out))),
            },
        };
        ex.node(&top, &name)?;
        match ex.sink {
            Sink::Tar(t) => t.into_inner().map(|_| ()).map_err(io_err),
            Sink::Zip(z) => z.finish().map(|_| ()).map_err(zip_err),
        }
    }
}

fn zip_err(e: zip::result::ZipError) -> BackupError {
    match e {
        zip::result::ZipError::Io(io) => io_err(io),
        other => io_err(std::io::Error::other(other.to_string())),
    }
}

enum Sink<'w> {
    Tar(tar::Builder<&'w mut dyn Write>),
    Zip(Box<zip::ZipWriter<zip::write::StreamWriter<&'w mut dyn Write>>>),
}

struct Exporter<'a, 'r, 'w> {
    repo: &'a Repo,
    snapshot: &'a Snapshot,
    conn: &'a Connection,
    src: &'a mut ChunkSource<'r>,
    /// The exported folder's snapshot-relative path, to tell whether a
    /// hard link's first name is inside the archive.
    prefix: Vec<u8>,
    sink: Sink<'w>,
}

impl Exporter<'_, '_, '_> {
    fn node(&mut self, node: &Node, path: &[u8]) -> Result<(), BackupError> {
        let mtime = node.mtime_ns.div_euclid(1_000_000_000);
        match &node.kind {
            NodeKind::Dir { tree } => {
                self.dir(path, node.mode, mtime)?;
                for child in self.repo.tree(self.conn, tree)?.entries {
                    let name = decode(&child.name, &child.name_hex).unwrap_or_default();
                    let mut p = path.to_vec();
                    p.push(b'/');
                    p.extend_from_slice(&name);
                    self.node(&child, &p)?;
                }
                Ok(())
            }
            NodeKind::File { size, chunks } => self.file(path, node.mode, mtime, *size, chunks),
            NodeKind::Symlink { target, target_hex } => {
                let target = decode(target, target_hex).unwrap_or_default();
                self.symlink(path, &target, mtime)
            }
            NodeKind::Hardlink { link, link_hex } => {
                let first = decode(link, link_hex).unwrap_or_default();
                let inside = self.prefix.is_empty()
                    || (first.starts_with(&self.prefix)
                        && first.get(self.prefix.len()) == Some(&b'/'));
                if let (true, Sink::Tar(t)) = (inside, &mut self.sink) {
                    // The first name as it appears in the archive.
                    let rel = &first[self.prefix.len()..];
                    let top = path.split(|b| *b == b'/').next().unwrap_or_default();
                    let mut target = top.to_vec();
                    if !rel.starts_with(b"/") {
                        target.push(b'/');
                    }
                    target.extend_from_slice(rel);
                    let mut h = tar::Header::new_gnu();
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_mode(node.mode);
                    h.set_mtime(mtime.max(0) as u64);
                    h.set_size(0);
                    return t
                        .append_link(&mut h, OsStr::from_bytes(path), OsStr::from_bytes(&target))
                        .map_err(io_err);
                }
                let resolved = self
                    .repo
                    .node_at(self.snapshot, &String::from_utf8_lossy(&first))?;
                match &resolved.kind {
                    NodeKind::File { size, chunks } => {
                        self.file(path, node.mode, mtime, *size, chunks)
                    }
                    _ => Err(BackupError::NoSuchPath(
                        String::from_utf8_lossy(&first).into(),
                    )),
                }
            }
        }
    }

    fn dir(&mut self, path: &[u8], mode: u32, mtime: i64) -> Result<(), BackupError> {
        match &mut self.sink {
            Sink::Tar(t) => {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(mode);
                h.set_mtime(mtime.max(0) as u64);
                h.set_size(0);
                t.append_data(&mut h, OsStr::from_bytes(path), std::io::empty())
                    .map_err(io_err)
            }
            Sink::Zip(z) => z
                .add_directory(zip_name(path), zip_options(mode, mtime, 0))
                .map_err(zip_err),
        }
    }

    fn file(
        &mut self,
        path: &[u8],
        mode: u32,
        mtime: i64,
        size: u64,
        chunks: &[String],
    ) -> Result<(), BackupError> {
        let mut reader = ChunkReader {
            src: self.src,
            chunks: chunks.iter(),
            current: vec![],
            at: 0,
        };
        match &mut self.sink {
            Sink::Tar(t) => {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(mode);
                h.set_mtime(mtime.max(0) as u64);
                h.set_size(size);
                t.append_data(&mut h, OsStr::from_bytes(path), &mut reader)
                    .map_err(io_err)
            }
            Sink::Zip(z) => {
                z.start_file(zip_name(path), zip_options(mode, mtime, size))
                    .map_err(zip_err)?;
                std::io::copy(&mut reader, z.as_mut())
                    .map(|_| ())
                    .map_err(io_err)
            }
        }
    }

    fn symlink(&mut self, path: &[u8], target: &[u8], mtime: i64) -> Result<(), BackupError> {
        match &mut self.sink {
            Sink::Tar(t) => {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_mtime(mtime.max(0) as u64);
                h.set_size(0);
                t.append_link(&mut h, OsStr::from_bytes(path), OsStr::from_bytes(target))
                    .map_err(io_err)
            }
            Sink::Zip(z) => z
                .add_symlink(
                    zip_name(path),
                    String::from_utf8_lossy(target),
                    zip_options(0o777, mtime, 0),
                )
                .map_err(zip_err),
        }
    }
}

fn zip_name(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

fn zip_options(mode: u32, mtime: i64, size: u64) -> zip::write::SimpleFileOptions {
    let time = time::OffsetDateTime::from_unix_timestamp(mtime)
        .ok()
        .and_then(|t| {
            zip::DateTime::from_date_and_time(
                t.year().clamp(1980, 2107) as u16,
                t.month() as u8,
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
            )
            .ok()
        })
        .unwrap_or_default();
    zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(mode)
        .last_modified_time(time)
        .large_file(size >= u64::from(u32::MAX))
}
