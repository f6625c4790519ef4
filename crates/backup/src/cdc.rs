//! Content-defined chunking, the one place that holds its parameters: of a
//! file read whole ([`Chunker::cuts`]) and of one read as a stream
//! ([`Chunker::chunks`]). Its seeded gear tables are made once per run.
//!
//! A stream is cut exactly where fastcdc's `StreamCDC` cuts (the same `cut_gear`,
//! masks and seeded gear tables), so a repository's chunks stay the same,
//! but without its copying. `StreamCDC` holds one buffer the size of the
//! largest chunk (8 MiB) and, after every chunk, moves all the bytes behind
//! it to the front: about 6 MiB moved for each 2 MiB chunk. The walker also
//! made a new, zeroed 8 MiB `StreamCDC` for every large file. In `perf` of a
//! first backup, memmove was 5.2% of all samples, half of it in that move,
//! and the page faults of the fresh buffers another 2.7%.
//!
//! Here one buffer of the same size lives as long as the walker. A cut is
//! taken wherever the bytes already read decide it. Only when they cannot
//! (the chunk may go on past them) does the unread rest move to the front;
//! then the buffer is filled up and the cut sought again: one move of a
//! partial chunk per buffer filled, instead of a move of everything behind
//! every chunk. (A buffer 4 MiB larger moved less but raised the backup's
//! peak RSS by 4-6 MiB, for no gain that five alternating runs could tell
//! apart.)

use std::{borrow::Cow, io::Read, path::Path};

use fastcdc::v2020::{Normalization, cut_gear, get_gear_with_seed, select_masks};

use crate::{
    CHUNK_AVG, CHUNK_MAX, CHUNK_MIN,
    error::{BackupError, IoContext},
    stages::{Stage, time},
};

/// The buffer holds a largest chunk, as `StreamCDC`'s does.
const BUFFER: usize = CHUNK_MAX;

/// A chunker with its buffer, reused for every file of a run.
pub(crate) struct Chunker {
    mask_s: u64,
    mask_l: u64,
    gear: Cow<'static, [u64]>,
    gear_ls: Cow<'static, [u64]>,
    /// Allocated at the first large file: a run of small files never needs it.
    buf: Vec<u8>,
}

impl Chunker {
    /// A chunker whose gear tables are seeded with the repository's
    /// `seed`, as every chunker of the repository is.
    pub(crate) fn new(seed: u64) -> Chunker {
        let (mask_s, mask_l) = select_masks(CHUNK_AVG, Normalization::Level1);
        let (gear, gear_ls) = get_gear_with_seed(seed);
        Chunker {
            mask_s,
            mask_l,
            gear,
            gear_ls,
            buf: Vec::new(),
        }
    }

    /// The length of the chunk that starts `window`. It is final when it is
    /// shorter than the window, when the window holds a largest chunk, or
    /// when the file ends with the window.
    fn cut(&self, window: &[u8]) -> usize {
        cut_gear(
            window,
            CHUNK_MIN,
            CHUNK_AVG,
            CHUNK_MAX,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        )
        .1
    }

    /// Where `data`, a whole file, is cut: (offset, length) of each chunk,
    /// as fastcdc's `FastCDC` iterator gives them.
    pub(crate) fn cuts(&self, data: &[u8]) -> Vec<(usize, usize)> {
        let mut cuts = vec![];
        let mut start = 0;
        while start < data.len() {
            let length = match self.cut(&data[start..]) {
                0 => data.len() - start,
                n => n,
            };
            cuts.push((start, length));
            start += length;
        }
        cuts
    }

    /// Reads `source` (the file at `path`, for errors) to its end and hands
    /// each chunk to `each`, in order; returns the bytes read.
    pub(crate) fn chunks(
        &mut self,
        source: &mut impl Read,
        path: &Path,
        mut each: impl FnMut(&[u8]) -> Result<(), BackupError>,
    ) -> Result<u64, BackupError> {
        if self.buf.len() < BUFFER {
            self.buf = vec![0; BUFFER];
        }
        let (mut start, mut end, mut eof, mut total) = (0, 0, false, 0u64);
        loop {
            let window = &self.buf[start..end];
            if window.is_empty() && eof {
                return Ok(total);
            }
            let cut = match time(Stage::Chunk, || self.cut(window)) {
                0 => window.len(),
                n => n,
            };
            if !window.is_empty() && (eof || cut < window.len() || window.len() >= CHUNK_MAX) {
                each(&window[..cut])?;
                start += cut;
                total += cut as u64;
                continue;
            }
            // Undecided: the rest moves to the front and the buffer fills.
            self.buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
            end = time(Stage::Read, || fill(source, &mut self.buf, end)).at(path)?;
            eof = end < BUFFER;
        }
    }
}

/// Reads into `buf` after `end` until it is full or the file ends; where
/// the bytes now end.
fn fill(source: &mut impl Read, buf: &mut [u8], mut end: usize) -> std::io::Result<usize> {
    while end < buf.len() {
        match source.read(&mut buf[end..]) {
            Ok(0) => break,
            Ok(n) => end += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most `step` bytes per read, so refills happen at
    /// awkward places.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.data.len().min(self.step).min(buf.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Pseudo-random bytes with long runs of zeros (which reach the
    /// largest chunk) and stretches of low-entropy text.
    fn sample(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match (out.len() / (3 << 20)) % 4 {
                1 => out.push(0),
                2 => out.push(b'a' + (x % 4) as u8),
                _ => out.extend_from_slice(&x.to_le_bytes()),
            }
        }
        out.truncate(len);
        out
    }

    #[test]
    fn cuts_where_fastcdc_cuts() {
        let seed = 0x5eed_1234_abcd_0042;
        let sizes = [
            0,
            1,
            CHUNK_MIN - 1,
            CHUNK_MIN + 1,
            CHUNK_MAX,
            BUFFER + 3,
            2 * BUFFER,
            41 * 1024 * 1024 + 7,
        ];
        let mut chunker = Chunker::new(seed);
        for (i, &len) in sizes.iter().enumerate() {
            let data = sample(len, i as u64 + 1);
            let theirs: Vec<usize> = fastcdc::v2020::StreamCDC::with_level_and_seed(
                &data[..],
                CHUNK_MIN,
                CHUNK_AVG,
                CHUNK_MAX,
                Normalization::Level1,
                seed,
            )
            .map(|c| c.map(|c| c.length).unwrap_or(0))
            .collect();
            let whole: Vec<(usize, usize)> = fastcdc::v2020::FastCDC::with_level_and_seed(
                &data,
                CHUNK_MIN,
                CHUNK_AVG,
                CHUNK_MAX,
                Normalization::Level1,
                seed,
            )
            .map(|c| (c.offset, c.length))
            .collect();
            assert_eq!(chunker.cuts(&data), whole, "size {len}, read whole");
            for step in [len.max(1), 65_536, 1_000_003] {
                let mut ours = vec![];
                let mut joined = Vec::with_capacity(len);
                let read = chunker
                    .chunks(&mut Trickle { data: &data, step }, Path::new("t"), |c| {
                        ours.push(c.len());
                        joined.extend_from_slice(c);
                        Ok(())
                    })
                    .unwrap();
                assert_eq!(ours, theirs, "size {len}, reads of {step}");
                assert_eq!(read, len as u64);
                assert!(joined == data, "size {len}: the chunks are not the file");
            }
        }
    }
}
