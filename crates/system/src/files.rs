//! Durable small-file writes, shared by every crate that keeps a file of its
//! own in the data folder (key files, the device identity, the hotspot's
//! pending change, a peer's held metadata).
//!
//! They live here, with the other facts about the machine, rather than in
//! `store`: writing a file safely has nothing to do with SQLite, and a crate
//! that only needs this (`net`) should not link SQLite for it.

use std::{
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

/// Writes a small file so that after a crash it is either the old one or
/// the whole new one: an owner-only temporary file beside it, fsync,
/// rename, fsync the folder. The temporary file is removed on failure.
pub fn write_durably(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = temp_sibling(path);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_parent(path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Fsyncs the directory holding `path`, so a rename or removal in it is
/// durable.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)?.sync_all()
}

/// Bytes an unprivileged writer may still use on the file system holding
/// `dir`, or its nearest existing parent (a folder about to be created);
/// 0 when nothing can be read.
pub fn free_bytes(dir: &Path) -> u64 {
    let mut at = dir.to_path_buf();
    loop {
        if let Ok(st) = rustix::fs::statvfs(&at) {
            return st.f_bavail.saturating_mul(st.f_frsize);
        }
        if !at.pop() {
            return 0;
        }
    }
}

/// `dest` with `.partial` appended: where a file is built before the rename
/// that makes it visible under its real name.
pub fn temp_sibling(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_durably_replaces_whole_file_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        write_durably(&path, b"first").unwrap();
        write_durably(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!temp_sibling(&path).exists());
    }

    #[test]
    fn failed_write_leaves_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        // A directory in the way makes the rename fail.
        let path = dir.path().join("taken");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("x"), b"x").unwrap();
        assert!(write_durably(&path, b"data").is_err());
        assert!(!temp_sibling(&path).exists());
    }
}
