//! Checking a repository, and naming what any damage affects.

use hearth_system::unix_now;
use std::collections::{HashMap, HashSet};

use hearth_store::rusqlite::params;

use crate::{
    Repo,
    error::BackupError,
    pack::{WholePack, pack_path},
    tree::NodeKind,
};

/// How thoroughly to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyMode {
    /// Every pack exists with the size the index records.
    Structure,
    /// Every pack is read, decrypted and every chunk's hash checked.
    ReadData,
    /// Like `ReadData`, for this percentage of packs, least recently
    /// verified first, so repeated runs rotate through the repository.
    Sample(u8),
}

impl VerifyMode {
    /// How many of `packs` this mode checks (a sample rounds up).
    pub(crate) fn how_many(self, packs: usize) -> usize {
        match self {
            VerifyMode::Sample(pct) => (packs * usize::from(pct.min(100))).div_ceil(100),
            _ => packs,
        }
    }
}

/// One damaged or missing pack and the files it takes with it.
#[derive(Debug, serde::Serialize)]
pub struct Damage {
    pub pack: String,
    pub reason: String,
    /// (snapshot id, path inside that snapshot's folder).
    pub affected: Vec<(i64, String)>,
}

#[derive(Debug, serde::Serialize)]
pub struct VerifyReport {
    pub packs: usize,
    pub checked: usize,
    pub damage: Vec<Damage>,
}

impl Repo {
    pub fn verify(&self, mode: VerifyMode) -> Result<VerifyReport, BackupError> {
        let c = self.reader()?;
        let mut stmt =
            c.prepare("SELECT name, size FROM backup_packs ORDER BY verified_at, name")?;
        let packs: Vec<(String, u64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
            .collect::<Result<_, _>>()?;
        let take = mode.how_many(packs.len());
        // Reading packs is CPU work (decrypt, decompress, hash): every core
        // takes a pack; the outcomes are put back in the order above.
        let mut outcomes = vec![];
        crate::parallel::in_parallel(
            crate::parallel::cpu_threads(),
            packs.iter().take(take).enumerate().collect(),
            |(i, (name, size))| {
                let result = match mode {
                    VerifyMode::Structure => self.check_size(name, *size),
                    _ => self.check_data(name),
                };
                Ok::<_, BackupError>((i, name, result))
            },
            |outcome| {
                outcomes.push(outcome);
                Ok(())
            },
        )?;
        outcomes.sort_by_key(|(i, _, _)| *i);
        let mut damage = vec![];
        let mut verified = vec![];
        for (_, name, result) in outcomes {
            match result {
                Ok(()) => verified.push(name.clone()),
                Err(reason) => damage.push(Damage {
                    pack: name.clone(),
                    reason,
                    affected: vec![],
                }),
            }
        }
        if mode != VerifyMode::Structure && !verified.is_empty() {
            let mut w = self.writer()?;
            let tx = w.transaction()?;
            for name in &verified {
                tx.execute(
                    "UPDATE backup_packs SET verified_at = ?2 WHERE name = ?1",
                    params![name, unix_now()],
                )?;
            }
            tx.commit()?;
        }
        self.fill_affected(damage.iter_mut())?;
        Ok(VerifyReport {
            packs: packs.len(),
            checked: take,
            damage,
        })
    }

    fn check_size(&self, name: &str, size: u64) -> Result<(), String> {
        match std::fs::metadata(pack_path(&self.dir, name)) {
            Ok(m) if m.len() == size => Ok(()),
            Ok(m) => Err(format!("size {} where the index says {size}", m.len())),
            Err(_) => Err("missing".into()),
        }
    }

    pub(crate) fn check_data(&self, name: &str) -> Result<(), String> {
        let path = pack_path(&self.dir, name);
        if !path.exists() {
            return Err("missing".into());
        }
        self.check_pack_at(&path, name)
    }

    /// Checks the pack `name` stored at `path` (here, or a copy fetched
    /// from the S3 target): its bytes match its name, it decrypts, every
    /// chunk matches its hash, and every chunk the index puts in it is there.
    pub(crate) fn check_pack_at(&self, path: &std::path::Path, name: &str) -> Result<(), String> {
        let whole = WholePack::read(path, name, &self.keys).map_err(reason)?;
        if whole.cipher.to_hex().as_str() != name {
            return Err("its contents no longer match its name (bit rot or tampering)".into());
        }
        let table = whole.table().map_err(reason)?;
        for e in &table {
            whole.blob(e, &self.keys).map_err(reason)?;
        }
        let in_table: HashSet<[u8; 32]> = table.iter().map(|e| e.id).collect();
        let c = self.reader().map_err(reason)?;
        let mut stmt = c
            .prepare("SELECT id FROM backup_chunks WHERE pack = ?1")
            .map_err(|e| e.to_string())?;
        let indexed: Vec<Vec<u8>> = stmt
            .query_map([name], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| e.to_string())?;
        let missing = indexed.iter().find(|id| {
            <[u8; 32]>::try_from(id.as_slice()).map_or(true, |id| !in_table.contains(&id))
        });
        if let Some(lost) = missing {
            return Err(format!(
                "chunk {} is indexed here but not in the pack",
                hex::encode(lost)
            ));
        }
        Ok(())
    }

    /// Names, in each damage, the files that need its pack.
    pub(crate) fn fill_affected<'a>(
        &self,
        damage: impl Iterator<Item = &'a mut Damage>,
    ) -> Result<(), BackupError> {
        let damage: Vec<&mut Damage> = damage.collect();
        if damage.is_empty() {
            return Ok(());
        }
        let packs: Vec<&str> = damage.iter().map(|d| d.pack.as_str()).collect();
        let mut affected = self.affected_by(&packs)?;
        for d in damage {
            d.affected = affected.remove(&d.pack).unwrap_or_default();
        }
        Ok(())
    }

    /// Every file, in every snapshot, that needs a chunk from each of
    /// `packs`, found in one walk over all snapshots.
    fn affected_by(
        &self,
        packs: &[&str],
    ) -> Result<HashMap<String, Vec<(i64, String)>>, BackupError> {
        let c = self.reader()?;
        let mut stmt = c.prepare("SELECT lower(hex(id)) FROM backup_chunks WHERE pack = ?1")?;
        let mut lost: HashMap<String, String> = HashMap::new();
        for pack in packs {
            for id in stmt.query_map([pack], |r| r.get::<_, String>(0))? {
                lost.insert(id?, (*pack).to_string());
            }
        }
        let mut out: HashMap<String, Vec<(i64, String)>> = HashMap::new();
        for snap in self.snapshots()? {
            let mut stack = vec![(snap.root.clone(), String::new())];
            while let Some((id, prefix)) = stack.pop() {
                let Ok(tree) = self.tree(&c, &id) else {
                    // The listing itself is gone; blame the packs holding it.
                    if let Some(pack) = lost.get(&id) {
                        out.entry(pack.clone())
                            .or_default()
                            .push((snap.id, format!("{prefix}/ (its listing is lost)")));
                    }
                    continue;
                };
                for node in &tree.entries {
                    let path = if prefix.is_empty() {
                        node.display_name()
                    } else {
                        format!("{prefix}/{}", node.display_name())
                    };
                    match &node.kind {
                        NodeKind::Dir { tree } => stack.push((tree.clone(), path)),
                        NodeKind::File { chunks, .. } => {
                            let mut hit: Vec<&String> =
                                chunks.iter().filter_map(|h| lost.get(h)).collect();
                            hit.dedup();
                            for pack in hit {
                                out.entry(pack.clone())
                                    .or_default()
                                    .push((snap.id, path.clone()));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        for files in out.values_mut() {
            files.sort();
            files.dedup();
        }
        Ok(out)
    }
}

fn reason(e: BackupError) -> String {
    match e {
        BackupError::BadPack { reason, .. } => reason,
        other => other.to_string(),
    }
}
