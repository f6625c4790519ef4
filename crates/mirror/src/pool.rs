//! Reused transfer buffers.
//!
//! Why: `main` fixes glibc's mmap threshold at 256 KiB (for the backup's
//! peak memory), so every fresh megabyte buffer is a new mapping that the
//! kernel must fault in and zero, then unmap. Profiling a mirror run showed
//! that work (page faults, `clear_page`, `unmap_page_range`) beside the
//! cipher on both sides. The sender reads packs into buffers from here,
//! which come back when hyper has written them, so a transfer touches the
//! same pages. (The holder avoids the problem differently: it passes hyper's
//! own frames on, and caps hyper's read buffers below the threshold.)

use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Size of one piece read from a pack; the holder hands frames to its
/// writing thread in batches of about this size too.
pub(crate) const PIECE: usize = 256 * 1024;
/// Buffers kept for reuse; more in flight at once are simply freed.
const KEEP: usize = 32;

#[derive(Clone, Default)]
pub(crate) struct Pool(Arc<Mutex<Vec<Vec<u8>>>>);

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").finish_non_exhaustive()
    }
}

impl Pool {
    /// An empty buffer with room for a piece.
    pub(crate) fn take(&self) -> Vec<u8> {
        let mut buf = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        buf.clear();
        buf.reserve(PIECE);
        buf
    }

    /// Gives a buffer back.
    pub(crate) fn put(&self, buf: Vec<u8>) {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < KEEP && buf.capacity() >= PIECE {
            kept.push(buf);
        }
    }

    /// The buffer as `Bytes` for a request body; it comes back here when
    /// the last reference (hyper's, once written) is dropped.
    pub(crate) fn bytes(&self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled {
            buf,
            pool: self.clone(),
        })
    }
}

struct Pooled {
    buf: Vec<u8>,
    pool: Pool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.put(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_when_the_bytes_are_dropped() {
        let pool = Pool::default();
        let mut buf = pool.take();
        buf.extend_from_slice(b"piece");
        let ptr = buf.as_ptr();
        let bytes = pool.bytes(buf);
        let clone = bytes.clone();
        drop(bytes);
        assert!(pool.0.lock().map(|k| k.is_empty()).unwrap_or(false));
        assert_eq!(&clone[..], b"piece");
        drop(clone);
        let again = pool.take();
        assert_eq!(again.as_ptr(), ptr, "the same allocation is reused");
        assert!(again.is_empty());
    }
}
