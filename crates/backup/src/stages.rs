//! Where a backup run's time goes, stage by stage, for the benchmark and for
//! whoever profiles next (docs/performance.md, "Where the time goes").
//!
//! Off unless [`enable`]d (`hearth backup run --stage-times`), and then only
//! a clock read
//! around each stage of each chunk (chunks average 1 MiB, so the cost is
//! nothing next to the work). Times are summed over the threads that run a
//! stage, so on two cores the stages can add up to twice the wall time.
//! `hearth backup run --stage-times` prints the table on stderr at the end.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::Instant,
};

/// The stages, in pipeline order.
#[derive(Clone, Copy, Debug)]
pub enum Stage {
    /// The walker thread's whole run: listing folders, metadata, and the
    /// read, chunk, hash and queue stages below, which it also runs.
    Walk,
    /// Reading file contents.
    Read,
    /// Finding chunk boundaries (FastCDC).
    Chunk,
    /// Keyed BLAKE3 of each chunk (its id).
    Hash,
    /// zstd, on the worker threads.
    Compress,
    /// The walker looking a chunk up in the index and waiting for a free
    /// worker (the queue is full).
    Queue,
    /// Appending to the open pack: age (ChaCha20-Poly1305) and the write.
    Encrypt,
    /// Closing a pack: the table, flush and fsync.
    Fsync,
    /// Reading the pack back and decrypting it (the read-back check).
    Check,
    /// Renaming into place and the index rows.
    Index,
}

const STAGES: [(Stage, &str); 10] = [
    (Stage::Walk, "walker thread, in all"),
    (Stage::Read, "  read"),
    (Stage::Chunk, "  chunk (FastCDC)"),
    (Stage::Hash, "  hash (keyed BLAKE3)"),
    (Stage::Compress, "compress (zstd)"),
    (Stage::Queue, "  index lookup + queue wait"),
    (Stage::Encrypt, "encrypt + write (age)"),
    (Stage::Fsync, "pack close + fsync"),
    (Stage::Check, "read-back check"),
    (Stage::Index, "rename + index"),
];

static NANOS: [AtomicU64; 10] = [const { AtomicU64::new(0) }; 10];

static ON: AtomicBool = AtomicBool::new(false);

/// Starts timing the stages of the runs that follow, in this process.
pub fn enable() {
    ON.store(true, Ordering::Relaxed);
}

fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Runs `f`, adding its time to `stage` when timing is on.
pub(crate) fn time<T>(stage: Stage, f: impl FnOnce() -> T) -> T {
    let timer = Timer::start(stage);
    let out = f();
    timer.stop();
    out
}

/// A stage timed across code a closure cannot hold (one that moves out of
/// `self`): started, then stopped; a timer dropped on an error path is
/// simply not counted.
pub(crate) struct Timer(Option<(Stage, Instant)>);

impl Timer {
    pub(crate) fn start(stage: Stage) -> Timer {
        Timer(enabled().then(|| (stage, Instant::now())))
    }

    pub(crate) fn stop(self) {
        if let Some((stage, started)) = self.0 {
            NANOS[stage as usize].fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
    }
}

/// The table of stage times, or `None` when timing is off.
pub fn report() -> Option<String> {
    if !enabled() {
        return None;
    }
    let mut out = String::from("stage times (summed over threads):\n");
    for (stage, name) in STAGES {
        let secs = NANOS[stage as usize].load(Ordering::Relaxed) as f64 / 1e9;
        out.push_str(&format!("  {name:<28} {secs:>8.2} s\n"));
    }
    Some(out)
}
