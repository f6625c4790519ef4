//! Entry points for `fuzz/`: every parser that reads bytes from disk or a
//! peer, fed arbitrary input. Each must return an error, never panic. Not
//! part of the engine's API; hidden from the docs.

use std::{io::Cursor, path::Path};

use crate::{Keys, pack::PackReader, tree::SnapshotBlob};

/// A fixed identity, so fuzzed packs can get past decryption when the
/// corpus holds real packs sealed to it. Not a secret: fuzzing only.
const FUZZ_KEY: &str = "# Hearth backup repository key, format 1. Keep it secret.\n\
# repository: 00000000000000000000000000000000\n\
# chunk-key: 0000000000000000000000000000000000000000000000000000000000000000\n\
# gear-seed: 0000000000000000\n\
AGE-SECRET-KEY-14UKH36L8AVTX057HA7ZEC0WCEUJDHQ4WE025339Z9V93AXH3MLJQE7KW0A\n";

/// The keys fuzzed packs are sealed to.
pub fn keys() -> Keys {
    Keys::parse(FUZZ_KEY, Path::new("fuzz key")).expect("the fuzz key parses")
}

/// A whole pack file: age header, decryption, footer, table and every blob.
pub fn pack(data: &[u8], keys: &Keys) {
    let Ok(mut reader) = PackReader::from_reader(Cursor::new(data), "fuzz", keys) else {
        return;
    };
    if let Ok(table) = reader.table() {
        for e in table {
            let _ = reader.read_at(e.offset, e.length);
        }
    }
}

/// A pack's plaintext table; the first 8 bytes bound the blobs.
pub fn pack_table(data: &[u8]) {
    if data.len() >= 8 {
        let end = u64::from_le_bytes(data[..8].try_into().unwrap_or_default());
        let _ = crate::pack::parse_table(&data[8..], end);
    }
}

/// A tree blob (JSON), and every name and link in it.
pub fn tree(data: &[u8]) {
    if let Ok(t) = crate::Tree::from_bytes("fuzz", data) {
        for n in &t.entries {
            let _ = n.display_name();
            let _ = t.find(std::ffi::OsStr::new(&n.display_name()));
        }
    }
}

/// A snapshot blob (JSON).
pub fn snapshot(data: &[u8]) {
    let _ = serde_json::from_slice::<SnapshotBlob>(data);
}

/// A plaintext key file.
pub fn key_file(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Keys::parse(text, Path::new("fuzz"));
    }
}

/// Seals `blobs` into a pack for the fuzz key, for the seed corpus.
pub fn make_pack(dir: &Path, blobs: &[&[u8]]) -> Result<Vec<u8>, crate::BackupError> {
    let keys = keys();
    std::fs::create_dir_all(dir.join("tmp")).map_err(|e| crate::BackupError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let mut w = crate::pack::PackWriter::create(dir, &keys)?;
    for b in blobs {
        w.add(keys.chunk_id(b), crate::pack::Kind::Data, b, false, b.len())?;
    }
    let done = w.finish(dir, &keys)?;
    std::fs::read(crate::pack_path(dir, &done.name)).map_err(|e| crate::BackupError::Io {
        path: dir.to_path_buf(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_made_pack_reads_back_and_junk_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = super::make_pack(dir.path(), &[b"hello", b"world"]).unwrap();
        let keys = super::keys();
        let mut r =
            super::PackReader::from_reader(std::io::Cursor::new(&bytes[..]), "t", &keys).unwrap();
        assert_eq!(r.table().unwrap().len(), 2);
        super::pack(&bytes[..bytes.len() / 2], &keys);
        super::pack(b"age-encryption.org/v1\n-> X25519", &keys);
        super::pack_table(&[255; 60]);
        super::tree(br#"{"entries":[{"name":"a","kind":"file"}]}"#);
        super::key_file(b"# repository: x\n# chunk-key: zz\n");
    }
}
