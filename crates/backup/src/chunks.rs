//! Reading chunks back by id, and recording packs in the index.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use hearth_store::rusqlite::{Connection, OptionalExtension, params};

use crate::{
    Repo,
    error::BackupError,
    pack::{FinishedPack, PackReader, READ_THROUGH},
    source::{PackInput, cipher_end},
};

/// Where the index says a chunk is.
#[derive(Clone, Debug)]
pub(crate) struct Location {
    pub pack: String,
    pub zstd: bool,
    pub offset: u64,
    pub length: u32,
    pub raw_length: u32,
}

/// Fetches and checks chunks, keeping the last pack open because
/// consecutive chunks of a file usually share one.
pub(crate) struct ChunkSource<'a> {
    repo: &'a Repo,
    conn: Connection,
    open: Option<(String, PackReader<PackInput>)>,
    /// For a pack read from the bucket: where to say how far reading goes.
    ahead: Option<Arc<AtomicU64>>,
    /// For a restore from the bucket: the stretches of each pack that the
    /// files in hand need, merged across gaps of up to [`READ_THROUGH`]
    /// (fetching such a gap costs less than another request)
    /// ([`ChunkSource::plan`]).
    plan: HashMap<String, Vec<(u64, u64)>>,
    /// One decompression context, reused: making one per chunk costs more
    /// than decompressing a small chunk.
    unzstd: Option<zstd::bulk::Decompressor<'static>>,
}

impl<'a> ChunkSource<'a> {
    pub(crate) fn new(repo: &'a Repo) -> Result<ChunkSource<'a>, BackupError> {
        Ok(ChunkSource {
            repo,
            conn: repo.reader()?,
            open: None,
            ahead: None,
            plan: HashMap::new(),
            unzstd: zstd::bulk::Decompressor::new().ok(),
        })
    }

    pub(crate) fn locate(&self, id: &[u8; 32]) -> Result<Location, BackupError> {
        // Cached: parsing the statement again for every chunk of a restore
        // cost more than the lookup itself.
        self.conn
            .prepare_cached(
                "SELECT pack, zstd, offset, length, raw_length FROM backup_chunks WHERE id = ?1",
            )?
            .query_row(params![&id[..]], |r| {
                Ok(Location {
                    pack: r.get(0)?,
                    zstd: r.get::<_, i64>(1)? == 1,
                    offset: r.get::<_, i64>(2)? as u64,
                    length: r.get::<_, i64>(3)? as u32,
                    raw_length: r.get::<_, i64>(4)? as u32,
                })
            })
            .optional()?
            .ok_or_else(|| BackupError::MissingChunk(hex::encode(id)))
    }

    /// Notes which stretches of which packs the chunks `hex_ids` (the
    /// files a restore writer has in hand) lie in, so that a pack in the
    /// bucket is fetched in one request per stretch rather than piece by
    /// piece. Nothing to do for packs here, whose reads the page cache
    /// serves: the ids are not even decoded then.
    pub(crate) fn plan<'i>(&mut self, hex_ids: impl Iterator<Item = &'i str>) {
        self.plan.clear();
        if self.repo.remote.is_none() {
            return;
        }
        let mut spans: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
        let ids = hex_ids.filter_map(|h| <[u8; 32]>::try_from(hex::decode(h).ok()?).ok());
        for id in ids {
            if let Ok(loc) = self.locate(&id) {
                let end = loc.offset + u64::from(loc.length);
                spans.entry(loc.pack).or_default().push((loc.offset, end));
            }
        }
        for (pack, mut s) in spans {
            s.sort_unstable();
            let mut merged: Vec<(u64, u64)> = Vec::with_capacity(s.len());
            for (a, b) in s {
                match merged.last_mut() {
                    Some(last) if a <= last.1 + READ_THROUGH => last.1 = last.1.max(b),
                    _ => merged.push((a, b)),
                }
            }
            self.plan.insert(pack, merged);
        }
    }

    /// The plaintext of chunk `id`, verified against its keyed hash.
    pub(crate) fn get(&mut self, id: &[u8; 32]) -> Result<Vec<u8>, BackupError> {
        let loc = self.locate(id)?;
        let stored = self.stored(&loc)?;
        self.plain(id, &loc, stored)
    }

    /// Chunk `id` as stored (compressed or not) with its location, after
    /// checking that it decompresses to its keyed hash: prune copies stored
    /// bytes into new packs and must not carry damage along.
    pub(crate) fn get_stored(&mut self, id: &[u8; 32]) -> Result<(Location, Vec<u8>), BackupError> {
        let loc = self.locate(id)?;
        let stored = self.stored(&loc)?;
        if loc.zstd {
            self.plain(id, &loc, stored.clone())?;
        } else {
            self.check(id, &loc, &stored)?;
        }
        Ok((loc, stored))
    }

    fn stored(&mut self, loc: &Location) -> Result<Vec<u8>, BackupError> {
        if self
            .open
            .as_ref()
            .map(|(n, _)| n != &loc.pack)
            .unwrap_or(true)
        {
            let (reader, ahead) = self.repo.open_pack_ahead(&loc.pack)?;
            self.open = Some((loc.pack.clone(), reader));
            self.ahead = ahead;
        }
        if let Some(ahead) = &self.ahead {
            let end = loc.offset + u64::from(loc.length);
            let until = self
                .plan
                .get(&loc.pack)
                .and_then(|s| s.iter().find(|(a, b)| *a <= loc.offset && end <= *b))
                .map_or(end, |(_, b)| *b);
            ahead.store(cipher_end(until), Ordering::Relaxed);
        }
        let Some((_, reader)) = self.open.as_mut() else {
            return Err(BackupError::MissingPack(loc.pack.clone()));
        };
        reader
            .read_at(loc.offset, loc.length)
            .inspect_err(|_| self.open = None)
    }

    fn plain(
        &mut self,
        id: &[u8; 32],
        loc: &Location,
        stored: Vec<u8>,
    ) -> Result<Vec<u8>, BackupError> {
        let plain = if loc.zstd {
            // Exactly the recorded size: a corrupt frame cannot make us
            // allocate more than the index says.
            let result = match self.unzstd.as_mut() {
                Some(z) => z.decompress(&stored, loc.raw_length as usize),
                None => zstd::bulk::decompress(&stored, loc.raw_length as usize),
            };
            result.map_err(|e| BackupError::BadPack {
                pack: loc.pack.clone(),
                reason: format!("chunk {} does not decompress: {e}", hex::encode(id)),
            })?
        } else {
            stored
        };
        self.check(id, loc, &plain)?;
        Ok(plain)
    }

    fn check(&self, id: &[u8; 32], loc: &Location, plain: &[u8]) -> Result<(), BackupError> {
        if &self.repo.keys.chunk_id(plain) != id {
            return Err(BackupError::BadPack {
                pack: loc.pack.clone(),
                reason: format!("chunk {} does not match its hash", hex::encode(id)),
            });
        }
        Ok(())
    }
}

/// Records a durable pack and its blobs, and the plaintext of its trees, in
/// one transaction.
pub(crate) fn record_pack(
    c: &mut Connection,
    pack: &FinishedPack,
    trees: &[([u8; 32], Vec<u8>)],
    now: i64,
) -> Result<(), BackupError> {
    let tx = c.transaction()?;
    tx.execute(
        "INSERT OR IGNORE INTO backup_packs (name, size, created_at) VALUES (?1, ?2, ?3)",
        params![pack.name, pack.size as i64, now],
    )?;
    {
        let mut ins = tx.prepare(
            "INSERT OR IGNORE INTO backup_chunks (id, pack, kind, zstd, offset, length, raw_length)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for e in &pack.entries {
            ins.execute(params![
                &e.id[..],
                pack.name,
                e.kind as u8,
                e.zstd,
                e.offset as i64,
                e.length,
                e.raw_length
            ])?;
        }
        let mut tree =
            tx.prepare("INSERT OR IGNORE INTO backup_trees (id, data) VALUES (?1, ?2)")?;
        for (id, data) in trees {
            tree.execute(params![&id[..], data])?;
        }
    }
    tx.commit()?;
    Ok(())
}
