//! Which chunk ids the index held when a backup started asking: a filter
//! that answers "surely not" without a query.
//!
//! A first backup asks the index about every chunk, and each query cost
//! SQLite a read transaction, its file locks and, whenever the packer had
//! committed since, a reload of the pages it needed: about 6% of a first
//! backup's CPU (`perf`), on the walker's thread, for answers that were
//! all "no".
//!
//! It is a Bloom filter with no hashing of its own: chunk ids are keyed
//! BLAKE3 outputs, so their four 64-bit words already are independent,
//! uniform hashes, and probing the bits they name is all the structure
//! needs. Sixteen bits per id and four probes make a false "maybe" about
//! one lookup in 400 (it costs the query it would have cost anyway); a
//! false "no" cannot happen, because every id read sets its four bits.

use hearth_store::rusqlite::Connection;

use crate::BackupError;

/// Bits per id. 2 bytes of memory per chunk: 4 MiB for two million.
const BITS_PER_ID: u64 = 16;

pub(crate) struct KnownIds {
    bits: Vec<u64>,
    /// The bit count minus one (a power of two minus one).
    mask: u64,
}

impl KnownIds {
    /// Every chunk id in the index as `conn` sees it now.
    pub(crate) fn load(conn: &Connection) -> Result<KnownIds, BackupError> {
        let rows: u64 = conn.query_row("SELECT count(*) FROM backup_chunks", [], |r| {
            r.get::<_, i64>(0).map(|n| n.max(0) as u64)
        })?;
        let mut known = KnownIds::with_capacity(rows);
        let mut stmt = conn.prepare("SELECT id FROM backup_chunks")?;
        let mut ids = stmt.query([])?;
        while let Some(row) = ids.next()? {
            // A row that is not a 32-byte id is no chunk's: it cannot match.
            if let Ok(Ok(id)) = row.get_ref(0)?.as_blob().map(<[u8; 32]>::try_from) {
                known.insert(&id);
            }
        }
        Ok(known)
    }

    fn with_capacity(ids: u64) -> KnownIds {
        let bits = (ids.max(1024) * BITS_PER_ID).next_power_of_two();
        KnownIds {
            bits: vec![0; (bits / 64) as usize],
            mask: bits - 1,
        }
    }

    /// The four bits `id` names: one per 64-bit word of it.
    fn probes(mask: u64, id: &[u8; 32]) -> [u64; 4] {
        std::array::from_fn(|i| {
            let word: [u8; 8] = id[i * 8..i * 8 + 8].try_into().unwrap_or_default();
            u64::from_le_bytes(word) & mask
        })
    }

    fn insert(&mut self, id: &[u8; 32]) {
        for bit in Self::probes(self.mask, id) {
            self.bits[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    /// False only if `id` was not in the index when this was loaded.
    pub(crate) fn may_hold(&self, id: &[u8; 32]) -> bool {
        Self::probes(self.mask, id)
            .iter()
            .all(|bit| self.bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> [u8; 32] {
        *blake3::hash(&n.to_le_bytes()).as_bytes()
    }

    /// Every id put in is held; ids never put in are mostly refused (the
    /// rate the module comment promises, with room for chance).
    #[test]
    fn holds_every_id_and_refuses_most_others() {
        let mut known = KnownIds::with_capacity(50_000);
        for n in 0..50_000 {
            known.insert(&id(n));
        }
        assert!((0..50_000).all(|n| known.may_hold(&id(n))));
        let false_maybes = (50_000..150_000)
            .filter(|&n| known.may_hold(&id(n)))
            .count();
        assert!(false_maybes < 500, "{false_maybes} false maybes in 100,000");
    }
}
