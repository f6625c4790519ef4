//! Reading chunks back by id, and recording packs in the index.

use hearth_store::rusqlite::{Connection, OptionalExtension, params};

use crate::{
    Repo,
    error::BackupError,
    pack::{FinishedPack, PackReader},
    remote::PackInput,
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
            self.open = Some((loc.pack.clone(), self.repo.open_pack(&loc.pack)?));
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
