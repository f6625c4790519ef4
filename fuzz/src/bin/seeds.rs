//! Writes the seed corpus for every fuzz target into `<dir>/<target>/`
//! (default `corpus`): real packs sealed to the fuzz key, real trees,
//! snapshot blobs and the fuzz key file. Run by `./run seeds`.

use std::{fs, path::Path};

use age::secrecy::ExposeSecret;
use hearth_backup::{Node, NodeKind, Tree, fuzzing};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let out = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    let out = Path::new(&out);
    let trees = trees();
    let snaps = snapshots();

    // pack: whole sealed packs, holding data, tree and snapshot blobs.
    let tree_json = serde_json::to_vec(&trees[1])?;
    let blob_sets: Vec<Vec<&[u8]>> = vec![
        vec![],
        vec![b"hello"],
        vec![b"hello", b"world"],
        vec![&tree_json, snaps[0].as_bytes()],
        vec![&[0u8; 300], &[0xa5; 70_000]], // crosses a 64 KiB age chunk
    ];
    for (i, blobs) in blob_sets.iter().enumerate() {
        let dir = tempfile::tempdir()?;
        let bytes = fuzzing::make_pack(dir.path(), blobs)?;
        write(out, "pack", &format!("seed-pack-{i}"), &bytes)?;
        // Its real table, for pack_table.
        let plain = decrypt(&bytes)?;
        let (rest, footer) = plain.split_at(plain.len() - 12);
        assert!(plain.starts_with(b"HPK1") && footer.ends_with(b"HPKT"));
        let table_offset = u64::from_le_bytes(footer[..8].try_into()?);
        let mut t = table_offset.to_le_bytes().to_vec();
        t.extend_from_slice(&rest[usize::try_from(table_offset)?..]);
        write(out, "pack_table", &format!("seed-pack-{i}"), &t)?;
    }

    // pack_table: 8-byte data end, then the table as a pack stores it.
    let tables: Vec<(u64, Vec<(u8, u8, u64, u32, u32)>)> = vec![
        (4, vec![]),
        (14, vec![(0, 0, 4, 5, 5), (0, 0, 9, 5, 5)]),
        (120, vec![(1, 1, 4, 60, 200), (2, 0, 64, 56, 56)]),
    ];
    for (i, (end, entries)) in tables.iter().enumerate() {
        let mut t = end.to_le_bytes().to_vec();
        t.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for (n, &(kind, zstd, offset, length, raw)) in entries.iter().enumerate() {
            t.extend_from_slice(&[n as u8 + 1; 32]);
            t.extend_from_slice(&[kind, zstd]);
            t.extend_from_slice(&offset.to_le_bytes());
            t.extend_from_slice(&length.to_le_bytes());
            t.extend_from_slice(&raw.to_le_bytes());
        }
        write(out, "pack_table", &format!("seed-table-{i}"), &t)?;
    }

    for (i, t) in trees.iter().enumerate() {
        write(
            out,
            "tree",
            &format!("seed-tree-{i}"),
            &serde_json::to_vec(t)?,
        )?;
    }
    for (i, s) in snaps.iter().enumerate() {
        write(out, "snapshot", &format!("seed-snapshot-{i}"), s.as_bytes())?;
    }

    // The fuzz key file, as the engine writes key files.
    let key = fuzzing::keys()
        .to_identity_file()
        .expose_secret()
        .to_string();
    write(out, "key_file", "seed-key-0", key.as_bytes())?;
    write(
        out,
        "key_file",
        "seed-key-1",
        key.replace('\n', "\r\n").as_bytes(),
    )?;
    Ok(())
}

/// Decrypts a pack with the fuzz key, to check it and take its table.
fn decrypt(pack: &[u8]) -> Result<Vec<u8>> {
    use std::io::Read;
    let keys = fuzzing::keys();
    let identity: &dyn age::Identity = &keys.identity;
    let mut plain = Vec::new();
    age::Decryptor::new(pack)?
        .decrypt(std::iter::once(identity))?
        .read_to_end(&mut plain)?;
    Ok(plain)
}

fn write(out: &Path, target: &str, name: &str, bytes: &[u8]) -> Result<()> {
    let dir = out.join(target);
    fs::create_dir_all(&dir)?;
    fs::write(dir.join(name), bytes)?;
    Ok(())
}

fn node(name: &str, kind: NodeKind) -> Node {
    Node {
        name: Some(name.into()),
        name_hex: None,
        kind,
        mode: 0o644,
        mtime_ns: 1_700_000_000_123_456_789,
        ctime_ns: 1_700_000_000_123_456_789,
        ino: 42,
    }
}

fn trees() -> Vec<Tree> {
    let id = |b: u8| hex::encode([b; 32]);
    let file = |size, chunks: Vec<String>| NodeKind::File { size, chunks };
    let mut odd = node("", file(0, vec![]));
    odd.name = None;
    odd.name_hex = Some(hex::encode(b"caf\xe9")); // not UTF-8
    vec![
        Tree::default(),
        Tree {
            entries: vec![
                node("a", file(1, vec![id(0xab)])),
                node("big.bin", file(20_000_000, vec![id(1), id(2), id(3)])),
                node("docs", NodeKind::Dir { tree: id(4) }),
                node(
                    "link",
                    NodeKind::Symlink {
                        target: Some("../a".into()),
                        target_hex: None,
                    },
                ),
                node(
                    "same",
                    NodeKind::Hardlink {
                        link: Some("docs/a".into()),
                        link_hex: None,
                    },
                ),
            ],
        },
        Tree {
            entries: vec![
                odd,
                node(
                    "raw",
                    NodeKind::Symlink {
                        target: None,
                        target_hex: Some(hex::encode(b"/tmp/\xff")),
                    },
                ),
            ],
        },
    ]
}

fn snapshots() -> Vec<String> {
    let root = "ab".repeat(32);
    vec![
        format!(
            r#"{{"version":1,"source":"photos","time":1700000000,"time_nanos":123456789,"hostname":"hearth","root":"{root}","files":3,"bytes":20000001,"added":1000,"duration_ms":1234}}"#
        ),
        // Older blobs have no time_nanos.
        format!(
            r#"{{"version":1,"source":"documents","time":1700000000,"hostname":"hearth","root":"{root}","files":0,"bytes":0,"added":0,"duration_ms":0}}"#
        ),
    ]
}
