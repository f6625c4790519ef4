//! Opening and creating a repository, and reading its catalogue.

use std::path::{Path, PathBuf};

use hearth_store::rusqlite::{Connection, OptionalExtension, params};

use crate::{
    error::{BackupError, IoContext},
    key::{Keys, MIN_PASSPHRASE_LEN},
    tree::Tree,
};

/// The marker file that makes a directory a repository.
const MARKER: &str = "HEARTH-REPO";

/// An open repository.
#[derive(Debug)]
pub struct Repo {
    /// The repository directory (packs, key.age, HEARTH-REPO).
    pub dir: PathBuf,
    /// Hearth's database, holding the index and catalogue.
    pub db: PathBuf,
    pub(crate) keys: Keys,
    /// Set for a restore straight from the bucket: packs are read there,
    /// not in `dir` ([`crate::remote::Bucket`]).
    pub(crate) remote: Option<std::sync::Arc<crate::source::Packs>>,
}

/// One row of the snapshot catalogue.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Snapshot {
    pub id: i64,
    pub source: String,
    /// Seconds since the epoch.
    pub time: i64,
    pub root: String,
    pub files: u64,
    pub bytes: u64,
    pub added: u64,
    pub duration_ms: u64,
}

impl Repo {
    /// Creates a repository in `dir`, keeps the device key at `key_path`
    /// and seals a copy in `dir/key.age` under the recovery passphrase.
    pub fn init(
        dir: &Path,
        key_path: &Path,
        db: &Path,
        passphrase: &str,
    ) -> Result<Repo, BackupError> {
        if passphrase.chars().count() < MIN_PASSPHRASE_LEN {
            return Err(BackupError::WeakPassphrase);
        }
        if dir.join(MARKER).exists() {
            return Err(BackupError::AlreadyInitialised(dir.to_path_buf()));
        }
        for sub in ["", "packs", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).at(dir.join(sub))?;
        }
        let mut id = [0u8; 16];
        crate::key::random(&mut id)?;
        let keys = Keys::generate(hex::encode(id))?;
        keys.save(key_path)?;
        write_durably(&dir.join("key.age"), &keys.seal(passphrase)?)?;
        // The marker goes last: a half-made repository is not mistaken for one.
        write_durably(
            &dir.join(MARKER),
            format!("hearth backup repository\nformat 1\nid {}\n", keys.repo_id).as_bytes(),
        )?;
        Ok(Repo {
            dir: dir.to_path_buf(),
            db: db.to_path_buf(),
            keys,
            remote: None,
        })
    }

    /// Opens the repository in `dir` with the device key.
    pub fn open(dir: &Path, key_path: &Path, db: &Path) -> Result<Repo, BackupError> {
        let marker = std::fs::read_to_string(dir.join(MARKER))
            .map_err(|_| BackupError::NoRepository(dir.to_path_buf()))?;
        let keys = Keys::load(key_path)?;
        if !marker.contains(&format!("id {}", keys.repo_id)) {
            return Err(BackupError::KeyMismatch(dir.to_path_buf()));
        }
        std::fs::create_dir_all(dir.join("tmp")).at(dir.join("tmp"))?;
        Ok(Repo {
            dir: dir.to_path_buf(),
            db: db.to_path_buf(),
            keys,
            remote: None,
        })
    }

    /// A scratch repository in `dir` whose packs are the bucket's, for a
    /// restore straight from it.
    pub(crate) fn streaming(
        dir: &Path,
        db: &Path,
        keys: Keys,
        packs: std::sync::Arc<crate::source::Packs>,
    ) -> Repo {
        Repo {
            dir: dir.to_path_buf(),
            db: db.to_path_buf(),
            keys,
            remote: Some(packs),
        }
    }

    /// The plaintext key file, for `hearth backup key export`.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub(crate) fn reader(&self) -> Result<Connection, BackupError> {
        let c = hearth_store::open_reader(&self.db).map_err(store_err)?;
        // Lookups are by primary key; a small page cache per connection
        // keeps memory flat when a restore opens one per writer.
        c.pragma_update(None, "cache_size", -512)?;
        Ok(c)
    }

    pub(crate) fn writer(&self) -> Result<Connection, BackupError> {
        hearth_store::open_writer(&self.db).map_err(store_err)
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> Result<Vec<Snapshot>, BackupError> {
        let c = self.reader()?;
        let mut stmt = c.prepare(
            "SELECT id, source, time, hex(root), files, bytes, added, duration_ms
             FROM backup_snapshots ORDER BY time, id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Snapshot {
                id: r.get(0)?,
                source: r.get(1)?,
                time: r.get(2)?,
                root: r.get::<_, String>(3)?.to_lowercase(),
                files: r.get::<_, i64>(4)? as u64,
                bytes: r.get::<_, i64>(5)? as u64,
                added: r.get::<_, i64>(6)? as u64,
                duration_ms: r.get::<_, i64>(7)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn snapshot(&self, id: i64) -> Result<Snapshot, BackupError> {
        self.snapshots()?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| BackupError::NoSnapshot(id.to_string()))
    }

    /// The snapshot `which` names: by number, or the newest of all.
    pub fn pick(&self, which: Which) -> Result<Snapshot, BackupError> {
        match which {
            Which::Id(id) => self.snapshot(id),
            Which::Latest => self.snapshots()?.pop().ok_or(BackupError::NoSnapshots),
        }
    }

    /// The latest snapshot of `source`, if any.
    pub fn latest(&self, source: &str) -> Result<Option<Snapshot>, BackupError> {
        Ok(self.snapshots()?.into_iter().rfind(|s| s.source == source))
    }

    /// A tree by id, from the plaintext cache in the database.
    pub fn tree(&self, c: &Connection, id: &str) -> Result<Tree, BackupError> {
        let raw = hex::decode(id).map_err(|_| BackupError::BadTree {
            id: id.to_string(),
            reason: "not a hex id".into(),
        })?;
        let data: Option<Vec<u8>> = c
            .query_row(
                "SELECT data FROM backup_trees WHERE id = ?1",
                params![raw],
                |r| r.get(0),
            )
            .optional()?;
        let data = data.ok_or_else(|| BackupError::BadTree {
            id: id.to_string(),
            reason: "not in the index".into(),
        })?;
        let json = zstd::decode_all(&data[..]).map_err(|e| BackupError::BadTree {
            id: id.to_string(),
            reason: e.to_string(),
        })?;
        Tree::from_bytes(id, &json)
    }

    /// Walks a snapshot down `path` (components separated by `/`) and
    /// returns the tree of that directory.
    pub fn tree_at(&self, snapshot: &Snapshot, path: &str) -> Result<Tree, BackupError> {
        let c = self.reader()?;
        let mut tree = self.tree(&c, &snapshot.root)?;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            let node = tree
                .find(std::ffi::OsStr::new(part))
                .ok_or_else(|| BackupError::NoSuchPath(path.to_string()))?;
            match &node.kind {
                crate::NodeKind::Dir { tree: id } => tree = self.tree(&c, id)?,
                _ => return Err(BackupError::NoSuchPath(path.to_string())),
            }
        }
        Ok(tree)
    }

    /// Takes the repository's single-writer lock; released on drop.
    pub(crate) fn lock(&self) -> Result<std::fs::File, BackupError> {
        try_lock(&self.dir.join("lock"))?.ok_or(BackupError::Locked)
    }
}

/// An exclusive `flock` on the file at `path` (created if missing),
/// released when the file is dropped; `None` while another holds it.
pub(crate) fn try_lock(path: &Path) -> Result<Option<std::fs::File>, BackupError> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .at(path)?;
    Ok(
        rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .ok()
            .map(|()| f),
    )
}

pub(crate) fn store_err(e: hearth_store::StoreError) -> BackupError {
    match e {
        hearth_store::StoreError::Sql(s) => BackupError::Sql(s),
        other => BackupError::Io {
            path: PathBuf::from("database"),
            source: std::io::Error::other(other.to_string()),
        },
    }
}

/// Writes a small file durably (`hearth_system::write_durably`).
pub(crate) fn write_durably(path: &Path, data: &[u8]) -> Result<(), BackupError> {
    hearth_system::write_durably(path, data).at(path)
}

/// A snapshot as a user names one: its number (`hearth backup list`), or
/// `latest`, the newest of all, whichever folder it is of (what restic's
/// `latest` means too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Id(i64),
    Latest,
}

impl std::str::FromStr for Which {
    type Err = String;

    fn from_str(s: &str) -> Result<Which, String> {
        match s.parse::<i64>() {
            _ if s == "latest" => Ok(Which::Latest),
            Ok(id) if id > 0 => Ok(Which::Id(id)),
            _ => Err(format!(
                "'{s}' is not a snapshot: give its number (from `hearth backup list`) or latest"
            )),
        }
    }
}
