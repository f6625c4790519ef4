//! Reading the bucket back: `verify --target s3`, and disaster recovery
//! (downloading a repository from the bucket alone).

use std::io::Write;

use hearth_s3::{Client, S3Error};
use hearth_store::rusqlite::params;
use hearth_system::unix_now;

use super::{RemoteError, Scratch, Tee, in_parallel, listed_packs, pack_key, prefix};
use crate::{BackupError, Damage, Repo, VerifyMode, error::IoContext, pack::pack_path};

/// One object in the bucket that is missing or damaged: the pack, why, and
/// what a restore from the bucket alone would lose.
#[derive(Debug, serde::Serialize)]
pub struct RemoteDamage {
    #[serde(flatten)]
    pub damage: Damage,
    /// Whether it was sent again from this device's copy (which checked good).
    pub repaired: bool,
}

#[derive(Debug, serde::Serialize)]
pub struct RemoteVerifyReport {
    /// Packs the bucket should hold, and how many were checked.
    pub packs: usize,
    pub checked: usize,
    pub damage: Vec<RemoteDamage>,
}

impl Repo {
    /// Checks the bucket's copy: with [`VerifyMode::Structure`] that every
    /// confirmed pack is listed with its size; otherwise each pack (or the
    /// least recently checked share of them) is downloaded and checked as
    /// a local pack is, several at a time. A missing or damaged object is
    /// named, and sent again from this device's copy when that copy checks
    /// good.
    pub fn verify_remote(
        &self,
        client: &Client,
        mode: VerifyMode,
    ) -> Result<RemoteVerifyReport, RemoteError> {
        let prefix = prefix(&self.keys.repo_id);
        let listed = listed_packs(client, &prefix)?;
        let c = self.reader()?;
        let mut stmt = c.prepare(
            "SELECT name, size FROM backup_remote WHERE name IN (SELECT name FROM backup_packs)
             ORDER BY verified_at, name",
        )?;
        let packs: Vec<(String, u64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
            .collect::<Result<_, _>>()?;
        let take = mode.how_many(packs.len());
        let mut damage = vec![];
        let w = self.writer()?;
        // Downloads and checks run on several threads (like the uploads);
        // what they found is recorded here, on the one writing connection.
        let total = packs.len();
        let todo: Vec<(String, u64)> = packs.into_iter().take(take).collect();
        let check = |(name, size): (String, u64)| {
            let found = match listed.get(&name) {
                None => Err("missing from the bucket".to_string()),
                Some(s) if *s != size => {
                    Err(format!("{s} bytes in the bucket where {size} were stored"))
                }
                Some(_) if mode == VerifyMode::Structure => Ok(()),
                Some(_) => self.check_remote_pack(client, &prefix, &name)?,
            };
            Ok((name, found))
        };
        in_parallel(todo, check, |(name, found)| {
            match found {
                Ok(()) if mode != VerifyMode::Structure => {
                    w.execute(
                        "UPDATE backup_remote SET verified_at = ?2 WHERE name = ?1",
                        params![name, unix_now()],
                    )?;
                }
                Ok(()) => {}
                Err(reason) => {
                    let repaired = self.check_data(&name).is_ok() && {
                        let path = pack_path(&self.dir, &name);
                        let bytes = std::fs::read(&path).at(&path)?;
                        client.put(&pack_key(&prefix, &name), bytes)?;
                        true
                    };
                    damage.push(RemoteDamage {
                        damage: Damage {
                            pack: name,
                            reason,
                            affected: vec![],
                        },
                        repaired,
                    });
                }
            }
            Ok(())
        })?;
        // Threads finish in any order; the report lists packs by name.
        damage.sort_by(|a, b| a.damage.pack.cmp(&b.damage.pack));
        w.execute(
            "UPDATE backup_target SET last_check = ?1 WHERE id = 1",
            [unix_now()],
        )?;
        self.fill_affected(damage.iter_mut().map(|d| &mut d.damage))?;
        Ok(RemoteVerifyReport {
            packs: total,
            checked: take,
            damage,
        })
    }

    /// Downloads one pack into `tmp/` and checks it; `Err(reason)` is damage,
    /// the outer error a failure to reach the bucket at all.
    fn check_remote_pack(
        &self,
        client: &Client,
        prefix: &str,
        name: &str,
    ) -> Result<Result<(), String>, RemoteError> {
        let scratch = Scratch(self.dir.join("tmp").join(name));
        let mut file = std::fs::File::create(&scratch.0).at(&scratch.0)?;
        let mut tee = Tee(&mut file, blake3::Hasher::new());
        match client.get_to(&pack_key(prefix, name), &mut tee) {
            Ok(_) => {}
            Err(S3Error::NoSuchKey(_)) => return Ok(Err("missing from the bucket".into())),
            Err(e) => return Err(e.into()),
        }
        // The name is the hash of the bytes: a mismatch is named as such,
        // before decryption would fail on it less clearly.
        if tee.1.finalize().to_hex().as_str() != name {
            return Ok(Err(
                "its contents no longer match its name (bit rot or tampering)".into(),
            ));
        }
        file.flush().at(&scratch.0)?;
        Ok(self.check_pack_at(&scratch.0, name))
    }

    /// After a recovery from the bucket: every pack now in the index came
    /// from the bucket, so the uploader need not send it again.
    pub fn adopt_remote(&self) -> Result<(), BackupError> {
        self.writer()?.execute(
            "INSERT OR IGNORE INTO backup_remote (name, size, uploaded_at)
             SELECT name, size, ?1 FROM backup_packs",
            [unix_now()],
        )?;
        Ok(())
    }
}
