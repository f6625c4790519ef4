//! Trees: one JSON document per directory, listing its entries.
//!
//! JSON, zstd-compressed, because a person recovering by hand with `zstd`
//! and a text editor must be able to read it. Names that are not UTF-8 are
//! kept exactly, as hex in `name_hex`; the same goes for symlink targets.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use serde::{Deserialize, Serialize};

use crate::error::BackupError;

/// A directory's entries, sorted by name bytes.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tree {
    pub entries: Vec<Node>,
}

/// One directory entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Node {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_hex: Option<String>,
    #[serde(flatten)]
    pub kind: NodeKind,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Inode change time and inode number: with size and mtime they tell
    /// whether a file can be taken from the previous snapshot unread.
    #[serde(default)]
    pub ctime_ns: i64,
    #[serde(default)]
    pub ino: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum NodeKind {
    File {
        size: u64,
        /// Chunk ids, hex, in order.
        chunks: Vec<String>,
    },
    Dir {
        /// The subtree's id, hex.
        tree: String,
    },
    Symlink {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target_hex: Option<String>,
    },
    /// A further name for a file seen earlier in this snapshot.
    Hardlink {
        /// Path of the first name, relative to the snapshot root, as
        /// `/`-joined components (hex if not UTF-8).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        link: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        link_hex: Option<String>,
    },
}

/// Splits bytes into the (text, hex) pair used for names and targets.
pub(crate) fn encode(bytes: &[u8]) -> (Option<String>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (Some(s.to_string()), None),
        Err(_) => (None, Some(hex::encode(bytes))),
    }
}

pub(crate) fn decode(text: &Option<String>, hexed: &Option<String>) -> Option<Vec<u8>> {
    match (text, hexed) {
        (Some(s), _) => Some(s.as_bytes().to_vec()),
        (None, Some(h)) => hex::decode(h).ok(),
        (None, None) => None,
    }
}

impl Node {
    pub(crate) fn set_name(&mut self, name: &OsStr) {
        (self.name, self.name_hex) = encode(name.as_bytes());
    }

    /// The entry's name as the file system spells it.
    pub fn os_name(&self) -> Option<OsString> {
        let bytes = decode(&self.name, &self.name_hex)?;
        // A name must be one path component.
        (!bytes.is_empty() && !bytes.contains(&b'/') && bytes != b"." && bytes != b"..")
            .then(|| OsString::from_vec(bytes))
    }

    pub fn display_name(&self) -> String {
        self.os_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "<invalid name>".into())
    }
}

impl Tree {
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain data cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn from_bytes(id: &str, bytes: &[u8]) -> Result<Tree, BackupError> {
        serde_json::from_slice(bytes).map_err(|e| BackupError::BadTree {
            id: id.to_string(),
            reason: e.to_string(),
        })
    }

    pub fn find(&self, name: &OsStr) -> Option<&Node> {
        self.entries
            .binary_search_by(|n| {
                decode(&n.name, &n.name_hex)
                    .unwrap_or_default()
                    .as_slice()
                    .cmp(name.as_bytes())
            })
            .ok()
            .map(|i| &self.entries[i])
    }
}

/// The JSON of a snapshot blob: enough to rebuild the catalogue from packs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotBlob {
    pub version: u32,
    pub source: String,
    pub time: i64,
    /// Sub-second part of `time`, so a rebuilt catalogue keeps the order of
    /// snapshots taken within one second. Absent (0) in older blobs.
    #[serde(default)]
    pub time_nanos: u32,
    pub hostname: String,
    pub root: String,
    pub files: u64,
    pub bytes: u64,
    pub added: u64,
    pub duration_ms: u64,
}
