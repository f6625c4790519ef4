//! Reading the bucket back: `verify --target s3`, and disaster recovery
//! (downloading a repository from the bucket alone).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use hearth_s3::{Client, S3Error};
use hearth_store::rusqlite::params;
use hearth_system::unix_now;

use super::{RemoteError, Scratch, in_parallel, pack_key, prefix};
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
        let listed: HashMap<String, u64> = client
            .list(&format!("{prefix}packs/"))?
            .into_iter()
            .filter_map(|(k, s)| Some((k.rsplit('/').next()?.to_string(), s)))
            .collect();
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

/// What a download from the bucket brought.
#[derive(Debug, Default, serde::Serialize)]
pub struct DownloadReport {
    pub repo_id: String,
    pub packs: u64,
    pub bytes: u64,
    /// Packs already here with the right size, not fetched again.
    pub present: u64,
    /// Objects left out, each with the reason.
    pub bad: Vec<(String, String)>,
}

/// Disaster recovery, first half: copies the repository in the bucket
/// (`repo_id`, or the only one there) into `dir`, so that the usual
/// `recover_key` and `repair_index` can run on it. Each pack is written to
/// `tmp/`, fsynced, checked against its name (BLAKE3 of its bytes) and only
/// then renamed into place; `HEARTH-REPO` is written last, so an
/// interrupted download is never taken for a repository, and running it
/// again fetches only what is missing.
pub fn download_repository(
    client: &Client,
    dir: &Path,
    repo_id: Option<&str>,
) -> Result<DownloadReport, RemoteError> {
    let ids: Vec<String> = client
        .list("hearth/")?
        .into_iter()
        .filter_map(|(k, _)| {
            let id = k.strip_prefix("hearth/")?.strip_suffix("/HEARTH-REPO")?;
            (!id.contains('/')).then(|| id.to_string())
        })
        .collect();
    let id = match (repo_id, ids.as_slice()) {
        (Some(want), _) if ids.iter().any(|i| i == want) => want.to_string(),
        (Some(want), _) => return Err(other(format!("the bucket holds no repository {want}"))),
        (None, [one]) => one.clone(),
        (None, []) => return Err(other("the bucket holds no Hearth backups".into())),
        (None, many) => {
            return Err(other(format!(
                "the bucket holds {} repositories ({}): name one with --repo-id",
                many.len(),
                many.join(", ")
            )));
        }
    };
    let marker = dir.join("HEARTH-REPO");
    if let Ok(text) = std::fs::read_to_string(&marker)
        && !text.contains(&format!("id {id}"))
    {
        return Err(other(format!(
            "{} already holds a different repository; recover into an empty data folder",
            dir.display()
        )));
    }
    for sub in ["packs", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).at(dir.join(sub))?;
    }
    let prefix = prefix(&id);
    let mut report = DownloadReport {
        repo_id: id.clone(),
        ..DownloadReport::default()
    };
    let mut fetch = vec![];
    for (key, size) in client.list(&format!("{prefix}packs/"))? {
        let name = key.rsplit('/').next().unwrap_or_default().to_string();
        if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            report.bad.push((key, "not a pack name".into()));
        } else if std::fs::metadata(pack_path(dir, &name)).is_ok_and(|m| m.len() == size) {
            report.present += 1;
        } else {
            fetch.push((key, name));
        }
    }
    in_parallel(
        fetch,
        |(key, name)| fetch_pack(client, dir, &key, &name).map(|got| (name, got)),
        |(name, got)| {
            match got {
                Ok(n) => {
                    report.packs += 1;
                    report.bytes += n;
                }
                Err(why) => report.bad.push((name, why)),
            }
            Ok(())
        },
    )?;
    // The key, then the marker: only a complete download is a repository.
    for file in ["key.age", "HEARTH-REPO"] {
        let bytes = client.get(&format!("{prefix}{file}"))?;
        hearth_system::write_durably(&dir.join(file), &bytes).at(dir.join(file))?;
    }
    Ok(report)
}

/// One pack into `tmp/`, checked against its name, fsynced and renamed
/// into place: `Ok(Err(why))` when its bytes are not what its name says.
fn fetch_pack(
    client: &Client,
    dir: &Path,
    key: &str,
    name: &str,
) -> Result<Result<u64, String>, RemoteError> {
    let scratch = Scratch(dir.join("tmp").join(name));
    let mut file = std::fs::File::create(&scratch.0).at(&scratch.0)?;
    let mut hasher = Tee(&mut file, blake3::Hasher::new());
    let n = client.get_to(key, &mut hasher)?;
    if hasher.1.finalize().to_hex().as_str() != name {
        return Ok(Err("its bytes do not match its name".into()));
    }
    file.sync_all().at(&scratch.0)?;
    let dest = pack_path(dir, name);
    let parent = dest.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent).at(parent)?;
    std::fs::rename(&scratch.0, &dest).at(&dest)?;
    hearth_system::sync_parent(&dest).at(&dest)?;
    Ok(Ok(n))
}

fn other(message: String) -> RemoteError {
    RemoteError::S3(S3Error::Other(message))
}

/// Hashes what passes through on its way to a file.
struct Tee<'a>(&'a mut std::fs::File, blake3::Hasher);

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
