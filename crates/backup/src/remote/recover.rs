//! Disaster recovery from the bucket alone: a repository copied down into
//! an empty data folder, and its key unsealed with the recovery passphrase.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use hearth_s3::{Client, S3Error};

use super::{RemoteError, Scratch, Tee, check_here, in_parallel, prefix};
use crate::{Keys, RepairReport, Repo, error::IoContext, pack::pack_path};

/// What a download from the bucket brought.
#[derive(Debug, Default, serde::Serialize)]
pub struct DownloadReport {
    pub repo_id: String,
    pub packs: u64,
    pub bytes: u64,
    /// Packs already here (an earlier, interrupted recovery) whose bytes
    /// are what their names say: not fetched again.
    pub present: u64,
    /// Packs already here but damaged, fetched again over the damaged copy.
    pub replaced: u64,
    /// Objects left out, each with the reason.
    pub bad: Vec<(String, String)>,
    /// The packs checked against their names, here or as they arrived:
    /// for [`crate::Repo::repair_index_trusting`].
    #[serde(skip)]
    pub(crate) fetched: HashSet<String>,
}

/// Disaster recovery from the bucket alone, what the command line and the
/// admin page both run: the repository downloaded into `dir` with its keys
/// unsealed by `passphrase` ([`recover_repository`]), the keys saved as the
/// device key at `key_path`, the index at `db` rebuilt from the packs
/// (trusting the names the download checked), and every pack marked as
/// already in the bucket, so none is sent back.
pub fn recover(
    client: &Client,
    dir: &Path,
    key_path: &Path,
    db: &Path,
    repo_id: Option<&str>,
    passphrase: &str,
) -> Result<(DownloadReport, RepairReport), RemoteError> {
    let (download, keys) = recover_repository(client, dir, repo_id, passphrase)?;
    let repo = Repo::with_recovered_key(dir, key_path, db, &keys)?;
    let repair = repo.repair_index_trusting(&download.fetched)?;
    repo.adopt_remote()?;
    Ok((download, repair))
}

/// Disaster recovery, first half: copies the repository in the bucket
/// (`repo_id`, or the only one there) into `dir` and returns its keys.
///
/// `key.age` is fetched first and unsealed with `passphrase` on its own
/// thread while the packs download: the passphrase's scrypt (about a
/// second of one core, and most of the recovery's memory) then costs no
/// time, and a wrong passphrase stops the download after the packs already
/// under way, instead of after all of them.
///
/// Each pack is written to `tmp/`, checked against its name (BLAKE3 of its
/// bytes), fsynced and only then renamed into place; `key.age` and then
/// `HEARTH-REPO` are written last, so an interrupted download is never
/// taken for a repository, and running it again fetches only what is
/// missing.
fn recover_repository(
    client: &Client,
    dir: &Path,
    repo_id: Option<&str>,
    passphrase: &str,
) -> Result<(DownloadReport, Keys), RemoteError> {
    let id = find_repository(client, dir, repo_id)?;
    let prefix = prefix(&id);
    let sealed = client.get(&format!("{prefix}key.age"))?;
    let key_path = dir.join("key.age");
    let stop = AtomicBool::new(false);
    let (report, keys) = std::thread::scope(|s| {
        let unsealing = s.spawn(|| {
            let keys = Keys::unseal_bytes(&sealed, passphrase, &key_path);
            if keys.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            keys
        });
        let report = download_packs(client, dir, &id, &stop);
        let keys = unsealing.join().unwrap_or_else(|_| {
            Err(crate::BackupError::Crypto(
                "unsealing the key failed".into(),
            ))
        });
        (report, keys)
    });
    // A wrong passphrase is the answer even if the download also failed.
    let keys = keys?;
    let report = report?;
    // The key, then the marker: only a complete download is a repository.
    hearth_system::write_durably(&key_path, &sealed).at(&key_path)?;
    let marker = dir.join("HEARTH-REPO");
    let bytes = client.get(&format!("{prefix}HEARTH-REPO"))?;
    hearth_system::write_durably(&marker, &bytes).at(&marker)?;
    Ok((report, keys))
}

/// The repository to recover: `repo_id`, or the only one in the bucket;
/// refused if `dir` already holds another.
pub(super) fn find_repository(
    client: &Client,
    dir: &Path,
    repo_id: Option<&str>,
) -> Result<String, RemoteError> {
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
    if let Ok(text) = std::fs::read_to_string(dir.join("HEARTH-REPO"))
        && !text.contains(&format!("id {id}"))
    {
        return Err(other(format!(
            "{} already holds a different repository; recover into an empty data folder",
            dir.display()
        )));
    }
    Ok(id)
}

/// Every pack of repository `id` not already whole in `dir`, four at a
/// time; none starts once `stop` is set.
fn download_packs(
    client: &Client,
    dir: &Path,
    id: &str,
    stop: &AtomicBool,
) -> Result<DownloadReport, RemoteError> {
    for sub in ["packs", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).at(dir.join(sub))?;
    }
    let mut report = DownloadReport {
        repo_id: id.to_string(),
        ..DownloadReport::default()
    };
    // (key, name, whether a damaged copy is here)
    let mut fetch = vec![];
    let mut here = vec![];
    for (key, size) in client.list(&format!("{}packs/", prefix(id)))? {
        let name = key.rsplit('/').next().unwrap_or_default().to_string();
        if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            report.bad.push((key, "not a pack name".into()));
        } else if std::fs::metadata(pack_path(dir, &name)).is_ok_and(|m| m.len() == size) {
            here.push((key, name));
        } else {
            fetch.push((key, name, false));
        }
    }
    // What an earlier, interrupted recovery left is checked against its
    // name, not taken on its size: a copy damaged since is fetched again.
    for ((key, name), whole) in check_here(dir, here, |(_, name)| name.as_str())? {
        if whole == Some(true) {
            report.present += 1;
            report.fetched.insert(name);
        } else {
            fetch.push((key, name, true));
        }
    }
    in_parallel(
        fetch,
        |(key, name, damaged)| {
            if stop.load(Ordering::Relaxed) {
                return Ok((name, damaged, None));
            }
            fetch_pack(client, dir, &key, &name).map(|got| (name, damaged, Some(got)))
        },
        |(name, damaged, got)| {
            match got {
                None => {}
                Some(Ok(n)) => {
                    report.packs += 1;
                    report.bytes += n;
                    report.replaced += u64::from(damaged);
                    report.fetched.insert(name);
                }
                Some(Err(why)) => report.bad.push((name, why)),
            }
            Ok(())
        },
    )?;
    Ok(report)
}

/// One pack into `tmp/`, checked against its name, fsynced and renamed
/// into place: `Ok(Err(why))` when its bytes are not what its name says.
pub(super) fn fetch_pack(
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

pub(super) fn other(message: String) -> RemoteError {
    RemoteError::S3(S3Error::Other(message))
}
