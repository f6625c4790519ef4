//! The compression stage of a backup run, and what travels the run's queues.
//!
//! Owns the two messages of the pipeline (`Raw` chunks from the walker to
//! the workers, `Stored` blobs from the workers and the walker to the
//! packer), the zstd worker loop and the rule for when compressing is not
//! worth it. It imports neither the walker nor the orchestration, so both can
//! use it: the workers compress data chunks, and the walker compresses its
//! own tree blobs with the same `Squeezer` because the index caches them.

use std::sync::{
    Arc, Mutex,
    mpsc::{Receiver, SyncSender},
};

use crate::{ZSTD_LEVEL, error::BackupError, pack::Kind};

/// Chunks travel the queues in batches of up to [`BATCH_BYTES`] or
/// [`BATCH_COUNT`]: 50,000 small files sent one by one were 50,000
/// hand-overs through each queue, each waking a thread, and futex wake-ups
/// with their context switches came to ~6% of a first backup's CPU (perf).
/// A chunk of a large file makes a batch on its own.
pub(crate) const BATCH_BYTES: usize = 1 << 20;
pub(crate) const BATCH_COUNT: usize = 256;

/// A blob on its way to the packer.
pub(crate) struct Stored {
    pub id: [u8; 32],
    pub kind: Kind,
    pub bytes: Vec<u8>,
    pub zstd: bool,
    pub raw_length: usize,
    /// For trees: the zstd JSON to cache in the index.
    pub tree_cache: Option<Vec<u8>>,
}

/// A chunk to compress.
pub(crate) struct Raw {
    pub id: [u8; 32],
    pub kind: Kind,
    pub data: Vec<u8>,
}

/// Compresses with one reusable zstd context: creating a level-3 context
/// allocates its tables afresh, which dominates for small chunks.
pub(crate) struct Squeezer {
    zstd: Option<zstd::bulk::Compressor<'static>>,
}

/// Large chunks whose first 64 KiB does not shrink by 3% are stored raw:
/// compressing incompressible data costs a core and saves nothing.
const PROBE: usize = 64 * 1024;

impl Squeezer {
    pub(crate) fn new() -> Squeezer {
        Squeezer {
            zstd: zstd::bulk::Compressor::new(ZSTD_LEVEL).ok(),
        }
    }

    fn shrink(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        let z = self.zstd.as_mut()?;
        if data.len() > 2 * PROBE {
            let probe = z.compress(&data[..PROBE]).ok()?;
            if probe.len() * 100 > PROBE * 97 {
                return None;
            }
        }
        z.compress(data).ok().filter(|c| c.len() < data.len())
    }

    pub(crate) fn compress(&mut self, raw: Raw) -> Stored {
        let raw_length = raw.data.len();
        let (bytes, zstd) = match self.shrink(&raw.data) {
            Some(c) => (c, true),
            None => (raw.data, false),
        };
        Stored {
            id: raw.id,
            kind: raw.kind,
            bytes,
            zstd,
            raw_length,
            tree_cache: None,
        }
    }
}

/// One compression worker: takes batches of raw chunks from the shared
/// queue until it closes, or until the packer's queue does.
pub(crate) fn worker(rx: Arc<Mutex<Receiver<Vec<Raw>>>>, tx: SyncSender<Vec<Stored>>) {
    let mut squeezer = Squeezer::new();
    loop {
        let next = rx.lock().map(|r| r.recv());
        let Ok(Ok(batch)) = next else { break };
        let squeezed = crate::stages::time(crate::stages::Stage::Compress, || {
            batch
                .into_iter()
                .map(|raw| squeezer.compress(raw))
                .collect()
        });
        if tx.send(squeezed).is_err() {
            break;
        }
    }
}

/// The pipeline stopped early; the packer's error says why.
pub(crate) fn closed() -> BackupError {
    BackupError::Crypto("the backup pipeline stopped".into())
}
