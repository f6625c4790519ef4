//! The physical limit of a first backup on this machine, for
//! `benches/backup.sh`: how fast the same two cores can do only the work
//! no backup of this design can skip, on the same files.
//!
//! `cargo bench -p hearth --bench limit -- DIR` reads every file under DIR
//! once to warm the page cache, then, timed, on as many threads as there
//! are cores (files dealt out in turn):
//!
//! - reads each file from the page cache;
//! - hashes it with BLAKE3 (Hearth: keyed BLAKE3 per chunk, the same cost);
//! - compresses it in 1 MiB pieces with zstd at Hearth's level (`hearth_backup::ZSTD_LEVEL`), with
//!   Hearth's rule that a piece whose first 64 KiB does not shrink by 3% is
//!   kept as it is;
//! - encrypts the result with ChaCha20-Poly1305 in 64 KiB segments (what
//!   age's STREAM does).
//!
//! No chunking, no index, no writing, no fsync, no read-back: those are the
//! costs a backup adds on top. Prints `limit MiB/s N` (MiB, as the
//! benchmark's table counts).

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use chacha20poly1305::{ChaCha20Poly1305, KeyInit, aead::AeadInPlace};

use hearth_backup::ZSTD_LEVEL;
const PIECE: usize = 1 << 20;
const PROBE: usize = 64 * 1024;
const SEGMENT: usize = 64 * 1024;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            files(&e.path(), out);
        } else if t.is_file() {
            out.push(e.path());
        }
    }
}

/// The work on one file's bytes; returns the bytes written out.
fn work(data: &[u8], z: &mut zstd::bulk::Compressor<'_>, aead: &ChaCha20Poly1305) -> usize {
    let hash = blake3::hash(data);
    std::hint::black_box(hash);
    let mut out = 0;
    for piece in data.chunks(PIECE) {
        let probe_shrinks = piece.len() <= 2 * PROBE
            || z.compress(&piece[..PROBE])
                .map(|p| p.len() * 100 <= PROBE * 97)
                .unwrap_or(false);
        let mut body = match probe_shrinks {
            true => z
                .compress(piece)
                .ok()
                .filter(|c| c.len() < piece.len())
                .unwrap_or_else(|| piece.to_vec()),
            false => piece.to_vec(),
        };
        for (i, seg) in body.chunks_mut(SEGMENT).enumerate() {
            let mut nonce = [0u8; 12];
            nonce[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let tag = aead
                .encrypt_in_place_detached(&nonce.into(), b"", seg)
                .expect("encrypt");
            out += seg.len() + tag.len();
        }
        std::hint::black_box(&body);
    }
    out
}

fn main() {
    let Some(dir) = std::env::args().skip(1).find(|a| !a.starts_with('-')) else {
        eprintln!("usage: cargo bench -p hearth --bench limit -- DIR");
        std::process::exit(2);
    };
    let mut all = vec![];
    files(Path::new(&dir), &mut all);
    all.sort();
    let total: u64 = all
        .iter()
        .map(|f| std::fs::read(f).map(|d| d.len() as u64).unwrap_or(0))
        .sum();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let mine: Vec<&PathBuf> = all.iter().skip(t).step_by(threads).collect();
            s.spawn(move || {
                let mut z = zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("zstd");
                let aead = ChaCha20Poly1305::new(&[7u8; 32].into());
                for f in mine {
                    let data = std::fs::read(f).expect("read");
                    std::hint::black_box(work(&data, &mut z, &aead));
                }
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    println!(
        "limit: {} files, {:.0} MB in {secs:.2} s on {threads} threads",
        all.len(),
        total as f64 / 1e6
    );
    println!("limit MiB/s {:.1}", total as f64 / 1048576.0 / secs);
}
