//! Reading chunks back by id, and recording packs in the index.

use hearth_store::rusqlite::{Connection, OptionalExtension, params};

use crate::{
    Repo,
    error::BackupError,
    pack::{FinishedPack, PackReader},
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
    open: Option<(String, PackReader)>,
    /// One decompression context, reused: making one per chunk costs more
    /// than decompressing a small chunk.
    unzstd: Option<zstd::bulk::Decompressor<'static>>,
    /// [`ChunkSource::get_ref`]'s buffers, kept from chunk to chunk.
    stored: Vec<u8>,
    plain: Vec<u8>,
}

impl<'a> ChunkSource<'a> {
    pub(crate) fn new(repo: &'a Repo) -> Result<ChunkSource<'a>, BackupError> {
        Ok(ChunkSource {
            repo,
            conn: repo.reader()?,
            open: None,
            unzstd: zstd::bulk::Decompressor::new().ok(),
            stored: Vec::new(),
            plain: Vec::new(),
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

    /// The plaintext of chunk `id`, verified against its keyed hash.
    pub(crate) fn get(&mut self, id: &[u8; 32]) -> Result<Vec<u8>, BackupError> {
        let loc = self.locate(id)?;
        let stored = self.stored(&loc)?;
        self.plain(id, &loc, stored)
    }

    /// The same, in a buffer the source keeps until the next call: a restore
    /// writer asks for chunk after chunk, and reusing the memory spares each
    /// large chunk a fresh allocation and the page faults of filling it
    /// (~4% of a restore's time in `perf`, most of it the 500 MiB of
    /// incompressible chunks).
    pub(crate) fn get_ref(&mut self, id: &[u8; 32]) -> Result<&[u8], BackupError> {
        let loc = self.locate(id)?;
        let mut stored = std::mem::take(&mut self.stored);
        self.read_stored(&loc, &mut stored)?;
        if loc.zstd {
            let mut plain = std::mem::take(&mut self.plain);
            plain.clear();
            // Into the capacity the index's size asks for (or the buffer
            // already has): a corrupt frame cannot make us allocate more.
            plain.reserve(loc.raw_length as usize);
            let made = match self.unzstd.as_mut() {
                Some(z) => z.decompress_to_buffer(&stored[..], &mut plain).map(|_| ()),
                None => zstd::bulk::decompress(&stored, loc.raw_length as usize).map(|v| plain = v),
            };
            self.stored = stored;
            self.plain = plain;
            let wrong = match made {
                Err(e) => Some(e.to_string()),
                Ok(()) if self.plain.len() != loc.raw_length as usize => {
                    Some("not to its recorded size".into())
                }
                Ok(()) => None,
            };
            if let Some(why) = wrong {
                return Err(BackupError::BadPack {
                    pack: loc.pack.clone(),
                    reason: format!("chunk {} does not decompress: {why}", hex::encode(id)),
                });
            }
        } else {
            // The stored bytes are the plaintext: they trade places with
            // the plaintext buffer, which the next read reuses.
            self.stored = std::mem::replace(&mut self.plain, stored);
        }
        self.check(id, &loc, &self.plain)?;
        Ok(&self.plain)
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
        let mut buf = Vec::new();
        self.read_stored(loc, &mut buf)?;
        Ok(buf)
    }

    fn read_stored(&mut self, loc: &Location, buf: &mut Vec<u8>) -> Result<(), BackupError> {
        if self
            .open
            .as_ref()
            .map(|(n, _)| n != &loc.pack)
            .unwrap_or(true)
        {
            self.open = Some((
                loc.pack.clone(),
                PackReader::open(&self.repo.dir, &loc.pack, &self.repo.keys)?,
            ));
        }
        let Some((_, reader)) = self.open.as_mut() else {
            return Err(BackupError::MissingPack(loc.pack.clone()));
        };
        reader
            .read_into(loc.offset, loc.length, buf)
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
