//! Healing from the bucket: a device that still has its key and index, but
//! lost packs here or holds damaged ones, fetches the bucket's copies of
//! just those and rebuilds its index.
//!
//! Without this, a pack that a repair left out (damaged here) was kept in
//! the bucket, as its only good copy, with no way to get it back short of a
//! whole disaster recovery into an empty folder.

use std::collections::HashSet;

use hearth_s3::Client;

use super::{
    RemoteError, check_here, in_parallel, listed_packs, pack_key, prefix, recover::fetch_pack,
};
use crate::{RepairReport, Repo, error::IoContext};

/// What a heal found and fetched.
#[derive(Debug, Default, serde::Serialize)]
pub struct HealReport {
    /// Packs here whose bytes are what their names say: left as they are.
    pub sound: u64,
    /// Packs fetched from the bucket because they were missing here.
    pub missing: Vec<String>,
    /// Packs fetched from the bucket because their bytes here were not what
    /// their names say; the good copy replaced the damaged one.
    pub damaged: Vec<String>,
    /// Packs that neither this device nor the bucket has whole, each with
    /// the reason.
    pub lost: Vec<(String, String)>,
}

impl Repo {
    /// Heals this repository from the S3 target (`repair-index --from s3`
    /// with the device key): every pack the repository counts on (in the
    /// index, or confirmed in the bucket and not condemned by prune) is
    /// checked here against its name; those missing or damaged are fetched
    /// from the bucket, each checked against its name, fsynced and renamed
    /// over the damaged file, and then the index is rebuilt from the packs.
    ///
    /// Packs prune condemned are never fetched, even while the bucket still
    /// holds them: they would bring forgotten snapshots back. The
    /// repository's lock is held throughout, so a backup or prune running
    /// meanwhile makes this refuse at once instead. Nothing is
    /// replaced with bytes that do not hash to the pack's name, so a damaged
    /// copy in the bucket cannot make things worse here.
    pub fn heal_from(&self, client: &Client) -> Result<(HealReport, RepairReport), RemoteError> {
        // Held throughout: a prune or a backup meanwhile would change which
        // packs the repository counts on after they were chosen.
        let _lock = self.lock()?;
        let wanted: Vec<String> = {
            let c = self.reader()?;
            let mut stmt = c.prepare(
                "SELECT name FROM backup_packs
                 UNION SELECT name FROM backup_remote WHERE condemned = 0",
            )?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        let mut report = HealReport::default();
        let mut trusted = HashSet::new();
        let mut fetch = vec![];
        // The BLAKE3 of a pack's bytes is its name, so no key is needed to
        // tell a sound one.
        for (name, sound) in check_here(&self.dir, wanted, String::as_str)? {
            match sound {
                Some(true) => {
                    report.sound += 1;
                    trusted.insert(name);
                }
                Some(false) => fetch.push((name, true)),
                None => fetch.push((name, false)),
            }
        }
        fetch.sort();
        if !fetch.is_empty() {
            std::fs::create_dir_all(self.dir.join("tmp")).at(self.dir.join("tmp"))?;
            let prefix = prefix(&self.keys.repo_id);
            let stored = listed_packs(client, &prefix)?;
            let (there, absent): (Vec<_>, Vec<_>) = fetch
                .into_iter()
                .partition(|(name, _)| stored.contains_key(name));
            for (name, damaged) in absent {
                let here = if damaged {
                    "damaged here"
                } else {
                    "missing here"
                };
                report
                    .lost
                    .push((name, format!("{here}, and the bucket has no copy")));
            }
            in_parallel(
                there,
                |(name, damaged)| {
                    let key = pack_key(&prefix, &name);
                    fetch_pack(client, &self.dir, &key, &name).map(|got| (name, damaged, got))
                },
                |(name, damaged, got)| {
                    match got {
                        Ok(_) => {
                            trusted.insert(name.clone());
                            if damaged {
                                report.damaged.push(name);
                            } else {
                                report.missing.push(name);
                            }
                        }
                        Err(why) => report
                            .lost
                            .push((name, format!("the bucket's copy: {why}"))),
                    }
                    Ok(())
                },
            )?;
        }
        report.missing.sort();
        report.damaged.sort();
        report.lost.sort();
        let repair = self.repair_index_locked(&trusted)?;
        Ok((report, repair))
    }
}
