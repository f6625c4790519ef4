//! Restoring a snapshot, or part of one, into a folder.
//!
//! Files are written beside their final name and renamed into place, so a
//! restore "in place" never leaves a half-written file under a real name.
//! All-zero chunks become holes, so sparse files stay sparse. One damaged
//! file does not stop the rest: each failure is recorded by name.

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
};

use crate::{
    Repo, Snapshot,
    chunks::ChunkSource,
    error::{BackupError, IoContext},
    tree::{Node, NodeKind, Tree, decode},
};

/// The granularity of holes: a file system block.
const SPARSE_BLOCK: usize = 4096;

/// What a restore did.
#[derive(Debug, Default)]
pub struct RestoreReport {
    pub files: u64,
    pub bytes: u64,
    /// Entries that could not be restored, each naming the path and why.
    pub errors: Vec<String>,
}

struct Restorer<'a> {
    snapshot: &'a Snapshot,
    src: ChunkSource<'a>,
    report: RestoreReport,
    /// Snapshot-relative path of each restored file, for hardlinks.
    restored: HashMap<Vec<u8>, PathBuf>,
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
        let mut r = Restorer {
            snapshot,
            src: ChunkSource::new(self)?,
            report: RestoreReport::default(),
            restored: HashMap::new(),
        };
        std::fs::create_dir_all(target).at(target)?;
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        match parts.split_last() {
            None => {
                let root = self.tree(r.src.conn(), &snapshot.root)?;
                r.tree(self, &root, target, &mut vec![])?;
            }
            Some((last, parents)) => {
                let tree = self.tree_at(snapshot, &parents.join("/"))?;
                let node = tree
                    .find(std::ffi::OsStr::new(last))
                    .ok_or_else(|| BackupError::NoSuchPath(path.to_string()))?
                    .clone();
                let mut rel: Vec<OsString> = parts.iter().map(OsString::from).collect();
                r.node(self, &node, &target.join(last), &mut rel)?;
            }
        }
        // One flush for the whole restore instead of an fsync per file.
        if let Ok(dir) = File::open(target) {
            let _ = rustix::fs::syncfs(&dir);
        }
        Ok(r.report)
    }
}

impl Restorer<'_> {
    fn tree(
        &mut self,
        repo: &Repo,
        tree: &Tree,
        dir: &Path,
        rel: &mut Vec<OsString>,
    ) -> Result<(), BackupError> {
        for node in &tree.entries {
            let Some(name) = node.os_name() else {
                self.report.errors.push(format!(
                    "{}: invalid name in snapshot, skipped",
                    dir.display()
                ));
                continue;
            };
            rel.push(name.clone());
            self.node(repo, node, &dir.join(&name), rel)?;
            rel.pop();
        }
        Ok(())
    }

    fn node(
        &mut self,
        repo: &Repo,
        node: &Node,
        dest: &Path,
        rel: &mut Vec<OsString>,
    ) -> Result<(), BackupError> {
        let outcome = match &node.kind {
            NodeKind::Dir { tree } => {
                let sub = repo.tree(self.src.conn(), tree)?;
                match std::fs::create_dir(dest) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dest.is_dir() => {}
                    Err(e) => return Err(e).at(dest),
                }
                self.tree(repo, &sub, dest, rel)?;
                // After the children, or writing them would change it again.
                set_meta(dest, node, false)
            }
            NodeKind::File { size, chunks } => self.file(dest, node, *size, chunks),
            NodeKind::Symlink { target, target_hex } => {
                let target = decode(target, target_hex).unwrap_or_default();
                remove_existing(dest);
                std::os::unix::fs::symlink(OsString::from_vec(target), dest)
                    .at(dest)
                    .and_then(|()| set_meta(dest, node, true))
            }
            NodeKind::Hardlink { link, link_hex } => {
                let link = decode(link, link_hex).unwrap_or_default();
                match self.restored.get(&link) {
                    Some(first) => {
                        remove_existing(dest);
                        std::fs::hard_link(first, dest).at(dest)
                    }
                    // The first name is outside what is being restored:
                    // restore the content as a file of its own.
                    None => self.linked_copy(repo, &link, dest),
                }
            }
        };
        if let NodeKind::File { .. } = node.kind {
            let key = rel
                .iter()
                .map(|c| c.as_bytes())
                .collect::<Vec<_>>()
                .join(&b'/');
            self.restored.insert(key, dest.to_path_buf());
        }
        if let Err(e) = outcome {
            log::warn!("restore: {}: {e}", dest.display());
            self.report.errors.push(format!("{}: {e}", dest.display()));
        }
        Ok(())
    }

    fn linked_copy(&mut self, repo: &Repo, link: &[u8], dest: &Path) -> Result<(), BackupError> {
        let text = String::from_utf8_lossy(link).into_owned();
        let (parent, name) = text.rsplit_once('/').unwrap_or(("", &text));
        let tree = repo.tree_at(self.snapshot, parent)?;
        match tree.find(std::ffi::OsStr::new(name)) {
            Some(
                first @ Node {
                    kind: NodeKind::File { size, chunks },
                    ..
                },
            ) => {
                let (first, size, chunks) = (first.clone(), *size, chunks.clone());
                self.file(dest, &first, size, &chunks)
            }
            _ => Err(BackupError::NoSuchPath(text)),
        }
    }

    fn file(
        &mut self,
        dest: &Path,
        node: &Node,
        size: u64,
        chunks: &[String],
    ) -> Result<(), BackupError> {
        // A short temporary name: the real one may already be 255 bytes.
        let mut rnd = [0u8; 6];
        crate::key::random(&mut rnd)?;
        let tmp = dest.with_file_name(format!(".hearth-restore-{}", hex::encode(rnd)));
        let result = (|| {
            let mut f = File::create(&tmp).at(&tmp)?;
            for hex_id in chunks {
                let id: [u8; 32] = hex::decode(hex_id)
                    .ok()
                    .and_then(|v| v.try_into().ok())
                    .ok_or_else(|| BackupError::MissingChunk(hex_id.clone()))?;
                let data = self.src.get(&id)?;
                // Zero blocks become holes, so sparse files stay sparse.
                for block in data.chunks(SPARSE_BLOCK) {
                    if block.iter().all(|b| *b == 0) {
                        f.seek(SeekFrom::Current(block.len() as i64)).at(&tmp)?;
                    } else {
                        f.write_all(block).at(&tmp)?;
                    }
                }
            }
            f.set_len(size).at(&tmp)?;
            drop(f);
            set_meta(&tmp, node, false)?;
            std::fs::rename(&tmp, dest).at(dest)
        })();
        match result {
            Ok(()) => {
                self.report.files += 1;
                self.report.bytes += size;
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

fn remove_existing(path: &Path) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| !m.is_dir()) {
        let _ = std::fs::remove_file(path);
    }
}

/// Applies mode and mtime. Symlinks have no mode of their own on Linux.
fn set_meta(path: &Path, node: &Node, symlink: bool) -> Result<(), BackupError> {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
    if !symlink {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode)).at(path)?;
    }
    let t = Timespec {
        tv_sec: node.mtime_ns.div_euclid(1_000_000_000),
        tv_nsec: node.mtime_ns.rem_euclid(1_000_000_000),
    };
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
