//! Forgetting snapshots and pruning the packs nothing needs any more.
//!
//! `forget` only deletes catalogue rows. `prune` then frees the space, in
//! two phases so that no crash can leave the index naming a deleted pack:
//!
//! 1. Everything still reachable from a snapshot is marked in a temporary
//!    table (memory stays flat however large the repository is). Packs with
//!    nothing live are condemned. Packs that are mostly dead, or that hold a
//!    forgotten snapshot's blob, have their live chunks copied into new packs
//!    (written, fsynced, read back and renamed like any pack) and are
//!    condemned too. One transaction then repoints the copied chunks, drops
//!    the rows of condemned packs and records them in `backup_condemned`.
//! 2. Each condemned file is deleted, its folder fsynced, and only then its
//!    row removed. A prune that finds rows left by a crash finishes them
//!    first.
//!
//! Prune refuses to delete anything if a snapshot's tree cannot be read,
//! because it could not then know what is live.

use hearth_system::unix_now;
use std::collections::BTreeSet;

use hearth_store::rusqlite::{Connection, params};
use serde::Serialize;

use crate::{
    Repo,
    chunks::ChunkSource,
    error::{BackupError, IoContext},
    pack::{FinishedPack, PACK_TARGET, PackWriter},
    retention::{Decision, Retention},
};

/// What a prune did.
#[derive(Debug, Default, Serialize)]
pub struct PruneReport {
    /// Packs deleted: wholly dead ones and the originals of rewritten ones.
    pub packs_deleted: usize,
    /// Packs whose live chunks were copied out before deletion.
    pub packs_rewritten: usize,
    /// New packs holding the copied chunks.
    pub packs_written: usize,
    /// Ciphertext bytes freed (deleted minus written).
    pub bytes_freed: i64,
    /// Chunks no snapshot needs any more, dropped from the index.
    pub chunks_dropped: u64,
    /// Packs skipped because they could not be read; `verify` tells more.
    pub skipped: Vec<String>,
}

/// A pack is rewritten when more than this share of its bytes is dead.
const REWRITE_DEAD_SHARE: f64 = 0.25;

impl Repo {
    /// Applies a retention policy: deletes the catalogue rows of the
    /// snapshots it does not keep (or, with `dry_run`, only says which).
    pub fn forget(&self, policy: &Retention, dry_run: bool) -> Result<Vec<Decision>, BackupError> {
        let _lock = self.lock()?;
        let decisions = policy.apply(&self.snapshots()?);
        if !dry_run {
            let ids: Vec<i64> = decisions
                .iter()
                .filter(|d| !d.keep)
                .map(|d| d.snapshot.id)
                .collect();
            self.delete_snapshots(&ids)?;
        }
        Ok(decisions)
    }

    /// Forgets the named snapshots. Unknown ids are refused before any is
    /// deleted.
    pub fn forget_ids(&self, ids: &[i64]) -> Result<(), BackupError> {
        let _lock = self.lock()?;
        let known: BTreeSet<i64> = self.snapshots()?.iter().map(|s| s.id).collect();
        if let Some(missing) = ids.iter().find(|id| !known.contains(id)) {
            return Err(BackupError::NoSnapshot(missing.to_string()));
        }
        self.delete_snapshots(ids)
    }

    fn delete_snapshots(&self, ids: &[i64]) -> Result<(), BackupError> {
        let mut c = self.writer()?;
        let tx = c.transaction()?;
        for id in ids {
            tx.execute("DELETE FROM backup_snapshots WHERE id = ?1", [id])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Frees the space of forgotten snapshots. See the module comment.
    pub fn prune(&self) -> Result<PruneReport, BackupError> {
        let _lock = self.lock()?;
        self.clear_tmp();
        let mut c = self.writer()?;
        let mut report = PruneReport::default();
        // Finish what a crashed prune condemned before judging anew.
        report.packs_deleted += self.sweep(&mut c)?;
        // Listed before this prune writes packs of its own.
        let orphans = self.orphan_packs(&c)?;

        mark_live(self, &c)?;
        let mut condemned: Vec<(String, i64)> = vec![];
        let mut rewrite: Vec<String> = vec![];
        {
            let mut stmt = c.prepare(
                "SELECT p.name, p.size, COUNT(c.id),
                        COALESCE(SUM(l.id IS NOT NULL), 0),
                        COALESCE(SUM(CASE WHEN l.id IS NULL THEN c.length ELSE 0 END), 0),
                        COALESCE(SUM(c.length), 0),
                        COALESCE(SUM(l.id IS NULL AND c.kind = 2), 0)
                 FROM backup_packs p
                 LEFT JOIN backup_chunks c ON c.pack = p.name
                 LEFT JOIN temp.live l ON l.id = c.id
                 GROUP BY p.name ORDER BY p.name",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let name: String = r.get(0)?;
                let size: i64 = r.get(1)?;
                let live: i64 = r.get(3)?;
                let dead_bytes: i64 = r.get(4)?;
                let all_bytes: i64 = r.get(5)?;
                let dead_snapshots: i64 = r.get(6)?;
                if live == 0 {
                    condemned.push((name, size));
                } else if dead_snapshots > 0
                    || dead_bytes as f64 > all_bytes as f64 * REWRITE_DEAD_SHARE
                {
                    // A forgotten snapshot's blob must go, or repair-index
                    // would bring the snapshot back.
                    rewrite.push(name);
                }
            }
        }

        let (written, rewritten) = self.copy_live(&c, &rewrite, &mut report)?;
        for name in &rewritten {
            let size: i64 = c.query_row(
                "SELECT size FROM backup_packs WHERE name = ?1",
                [name],
                |r| r.get(0),
            )?;
            condemned.push((name.clone(), size));
        }
        report.packs_rewritten = rewritten.len();
        report.packs_written = written.len();

        // Phase one: one transaction moves the index off the condemned packs.
        let tx = c.transaction()?;
        for pack in &written {
            tx.execute(
                "INSERT OR IGNORE INTO backup_packs (name, size, created_at) VALUES (?1, ?2, ?3)",
                params![pack.name, pack.size as i64, unix_now()],
            )?;
            let mut up = tx.prepare(
                "UPDATE backup_chunks SET pack = ?2, zstd = ?3, offset = ?4, length = ?5
                 WHERE id = ?1",
            )?;
            for e in &pack.entries {
                up.execute(params![
                    &e.id[..],
                    pack.name,
                    e.zstd,
                    e.offset as i64,
                    e.length
                ])?;
            }
            report.bytes_freed -= pack.size as i64;
        }
        for (name, size) in &condemned {
            report.chunks_dropped +=
                tx.execute("DELETE FROM backup_chunks WHERE pack = ?1", [name])? as u64;
            tx.execute("DELETE FROM backup_packs WHERE name = ?1", [name])?;
            tx.execute(
                "INSERT OR IGNORE INTO backup_condemned (name, at) VALUES (?1, ?2)",
                params![name, unix_now()],
            )?;
            // The S3 target's copy goes too, once its queue is empty.
            tx.execute(
                "UPDATE backup_remote SET condemned = 1 WHERE name = ?1",
                [name],
            )?;
            report.bytes_freed += size;
        }
        for name in &orphans {
            tx.execute(
                "INSERT OR IGNORE INTO backup_condemned (name, at) VALUES (?1, ?2)",
                params![name, unix_now()],
            )?;
        }
        tx.execute(
            "DELETE FROM backup_trees WHERE id NOT IN (SELECT id FROM backup_chunks)",
            [],
        )?;
        tx.commit()?;

        // Phase two.
        report.packs_deleted += self.sweep(&mut c)?;
        c.execute("DROP TABLE IF EXISTS temp.live", [])?;
        Ok(report)
    }

    /// Copies the live chunks of `packs` into new packs. Returns the new
    /// packs and the old ones that were fully copied; a pack that cannot
    /// be read is left alone and named in the report.
    fn copy_live(
        &self,
        c: &Connection,
        packs: &[String],
        report: &mut PruneReport,
    ) -> Result<(Vec<FinishedPack>, Vec<String>), BackupError> {
        let mut src = ChunkSource::new(self)?;
        let mut written = vec![];
        let mut done = vec![];
        let mut out: Option<PackWriter> = None;
        let mut stmt = c.prepare(
            "SELECT c.id, c.kind FROM backup_chunks c JOIN temp.live l ON l.id = c.id
             WHERE c.pack = ?1 ORDER BY c.offset",
        )?;
        for name in packs {
            let ids: Vec<(Vec<u8>, u8)> = stmt
                .query_map([name], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let mut blobs = vec![];
            let mut readable = true;
            for (id, kind) in ids {
                let id: [u8; 32] = id.try_into().unwrap_or([0; 32]);
                match src.get_stored(&id) {
                    Ok((loc, bytes)) => blobs.push((id, kind, loc, bytes)),
                    Err(e) => {
                        log::warn!("prune: leaving pack {name} alone: {e}");
                        report.skipped.push(name.clone());
                        readable = false;
                        break;
                    }
                }
            }
            if !readable {
                continue;
            }
            for (id, kind, loc, bytes) in blobs {
                let w = match out.as_mut() {
                    Some(w) => w,
                    None => out.insert(PackWriter::create(&self.dir, &self.keys)?),
                };
                let kind = crate::pack::Kind::from_u8(kind).unwrap_or(crate::pack::Kind::Data);
                w.add(id, kind, &bytes, loc.zstd, loc.raw_length as usize)?;
                if w.len() >= PACK_TARGET
                    && let Some(full) = out.take()
                {
                    written.push(full.finish(&self.dir, &self.keys)?);
                }
            }
            done.push(name.clone());
        }
        if let Some(last) = out.take().filter(|w| !w.is_empty()) {
            written.push(last.finish(&self.dir, &self.keys)?);
        }
        Ok((written, done))
    }

    /// Pack files that no index row names: left by a run or prune that was
    /// killed after renaming a pack but before recording it.
    fn orphan_packs(&self, c: &Connection) -> Result<Vec<String>, BackupError> {
        let mut known = c.prepare("SELECT 1 FROM backup_packs WHERE name = ?1")?;
        let mut out = vec![];
        let packs = self.dir.join("packs");
        for sub in std::fs::read_dir(&packs).at(&packs)?.flatten() {
            let Ok(files) = std::fs::read_dir(sub.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if name.len() == 64 && !known.exists([&name])? {
                    out.push(name);
                }
            }
        }
        Ok(out)
    }

    /// Phase two: deletes condemned files, fsyncs their folders, then
    /// forgets the rows. Returns how many packs were deleted.
    fn sweep(&self, c: &mut Connection) -> Result<usize, BackupError> {
        let names: Vec<String> = c
            .prepare("SELECT name FROM backup_condemned ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut dirs = BTreeSet::new();
        for name in &names {
            let path = crate::pack_path(&self.dir, name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).at(&path),
            }
            if let Some(dir) = path.parent() {
                dirs.insert(dir.to_path_buf());
            }
        }
        for dir in &dirs {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .at(dir)?;
        }
        let tx = c.transaction()?;
        for name in &names {
            tx.execute("DELETE FROM backup_condemned WHERE name = ?1", [name])?;
        }
        tx.commit()?;
        Ok(names.len())
    }
}

/// Fills `temp.live` with every chunk a snapshot reaches: snapshot blobs,
/// trees and file chunks. Trees already marked are not walked again, so
/// shared subtrees cost one visit.
fn mark_live(repo: &Repo, c: &Connection) -> Result<(), BackupError> {
    c.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS live (id BLOB PRIMARY KEY) WITHOUT ROWID;
         DELETE FROM temp.live;
         INSERT OR IGNORE INTO temp.live SELECT blob FROM backup_snapshots;",
    )?;
    let mut stack: Vec<String> = c
        .prepare("SELECT DISTINCT hex(root) FROM backup_snapshots")?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    let mut mark = c.prepare("INSERT OR IGNORE INTO temp.live (id) VALUES (?1)")?;
    let mut mark_hex = |hex_id: &str| -> Result<bool, BackupError> {
        let raw = hex::decode(hex_id).map_err(|_| BackupError::BadTree {
            id: hex_id.to_string(),
            reason: "not a hex id".into(),
        })?;
        Ok(mark.execute([raw])? == 1)
    };
    while let Some(id) = stack.pop() {
        let id = id.to_lowercase();
        if !mark_hex(&id)? {
            continue;
        }
        for node in repo.tree(c, &id)?.entries {
            match node.kind {
                crate::NodeKind::Dir { tree } => stack.push(tree),
                crate::NodeKind::File { chunks, .. } => {
                    for chunk in chunks {
                        mark_hex(&chunk)?;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}
