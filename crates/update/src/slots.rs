//! Slots, the links that name them, and the trial that decides between
//! them.
//!
//! ```text
//! update/
//!   slots/<version>-<id>/   hearth, manifest.toml, manifest.toml.minisig
//!   slots/.staging-<rand>/  a bundle being written (removed if left over)
//!   staged   -> slots/…     checked and written, waiting for "Install"
//!   current  -> slots/…     what `hearth serve` runs; absent: the OS's binary
//!   previous -> slots/…     what ran before; absent: the OS's binary
//!   trial                   the switch in progress (see below)
//!   db-before.sqlite        the database as it was before the switch
//!   last                    what the last switch came to, for the page
//! ```
//!
//! A switch writes the database copy, then the trial marker, then the
//! links. The launcher (`hearth serve` started by systemd from the OS's
//! binary, which `ProtectSystem=strict` keeps read-only) reads the trial
//! first: on its first start it finishes the links and counts an attempt;
//! if it finds an attempt already counted and no confirmation, the
//! candidate failed, so it puts the database copy back and points
//! `current` at what ran before. The candidate confirms (removes the trial)
//! only once it answers `/healthz`. Each step is idempotent, so a crash or
//! a kill -9 anywhere leaves a state from which the next start runs either
//! the old or the new version.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{UpdateError, unix_now};

/// The links' names.
pub(crate) const CURRENT: &str = "current";
pub(crate) const PREVIOUS: &str = "previous";
pub(crate) const STAGED: &str = "staged";
pub(crate) const TRIAL: &str = "trial";
pub(crate) const LAST: &str = "last";
pub(crate) const DB_COPY: &str = "db-before.sqlite";
pub(crate) const SLOTS: &str = "slots";

/// A switch in progress, kept until the candidate confirms or is rolled back.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Trial {
    /// The slot being tried.
    pub candidate: String,
    pub candidate_version: String,
    /// The slot that ran before; empty for the OS's binary.
    pub previous: String,
    pub previous_version: String,
    /// Starts of the candidate so far (the launcher counts them).
    pub attempts: u32,
    /// When the switch was made (seconds since the epoch).
    pub since: i64,
    /// Whether a database existed and was copied before the switch.
    pub db_copied: bool,
    /// Why the candidate last failed, when it could say (its own health
    /// check, or systemd's exit status recorded by `ExecStopPost`).
    #[serde(default)]
    pub failure: String,
}

/// What the last switch came to: shown on the Update page.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// `installed` or `rolled-back`.
    pub outcome: String,
    pub version: String,
    pub from_version: String,
    pub at: i64,
    #[serde(default)]
    pub reason: String,
}

impl Outcome {
    pub fn rolled_back(&self) -> bool {
        self.outcome == "rolled-back"
    }
}

/// Paths inside the update folder.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn slots(&self) -> PathBuf {
        self.dir.join(SLOTS)
    }

    pub fn slot(&self, name: &str) -> PathBuf {
        self.slots().join(name)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The slot a link names, if the link exists.
    pub fn link(&self, name: &str) -> Option<String> {
        let target = std::fs::read_link(self.path(name)).ok()?;
        let slot = target.file_name()?.to_str()?.to_string();
        Some(slot)
    }

    /// Points `name` at `slot` atomically (a new link renamed over the
    /// old), or removes it for `None`; then fsyncs the folder.
    pub fn set_link(&self, name: &str, slot: Option<&str>) -> Result<(), UpdateError> {
        let path = self.path(name);
        match slot {
            Some(slot) => {
                if self.link(name).as_deref() == Some(slot) {
                    return Ok(());
                }
                let tmp = self.path(&format!(".{name}.new"));
                let _ = std::fs::remove_file(&tmp);
                std::os::unix::fs::symlink(Path::new(SLOTS).join(slot), &tmp)
                    .map_err(|e| UpdateError::io("create the link", &tmp, e))?;
                std::fs::rename(&tmp, &path).map_err(|e| UpdateError::io("rename", &tmp, e))?;
            }
            None => match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(UpdateError::io("remove", &path, e)),
            },
        }
        hearth_system::sync_parent(&path).map_err(|e| UpdateError::io("flush", &self.dir, e))
    }

    pub fn trial(&self) -> Option<Trial> {
        read_toml(&self.path(TRIAL))
    }

    pub fn write_trial(&self, trial: &Trial) -> Result<(), UpdateError> {
        write_toml(&self.path(TRIAL), trial)
    }

    pub fn clear_trial(&self) -> Result<(), UpdateError> {
        let path = self.path(TRIAL);
        match std::fs::remove_file(&path) {
            Ok(()) => hearth_system::sync_parent(&path)
                .map_err(|e| UpdateError::io("flush", &self.dir, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(UpdateError::io("remove", &path, e)),
        }
    }

    pub fn last(&self) -> Option<Outcome> {
        read_toml(&self.path(LAST))
    }

    pub fn write_last(&self, outcome: &Outcome) -> Result<(), UpdateError> {
        write_toml(&self.path(LAST), outcome)
    }

    /// Removes left-over staging folders and every slot no link or trial
    /// names: a card has room for three versions, not for all of them.
    pub fn collect_garbage(&self, keep_also: &[&str]) {
        let Ok(list) = std::fs::read_dir(self.slots()) else {
            return;
        };
        let trial = self.trial();
        let mut keep: Vec<String> = [CURRENT, PREVIOUS, STAGED]
            .iter()
            .filter_map(|l| self.link(l))
            .collect();
        if let Some(t) = trial {
            keep.push(t.candidate);
            keep.push(t.previous);
        }
        keep.extend(keep_also.iter().map(|s| s.to_string()));
        for entry in list.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if keep.contains(&name) {
                continue;
            }
            let path = entry.path();
            if let Err(e) = std::fs::remove_dir_all(&path) {
                log::warn!("cannot remove the old update slot {}: {e}", path.display());
            } else {
                log::info!("removed the unused update slot {name}");
            }
        }
    }
}

/// Restores the database copied before the switch: copy it beside the
/// database, fsync, remove the candidate's WAL and shared-memory files
/// (applied to the old schema they would corrupt it), rename, fsync the
/// folder. The copy itself is kept, so a crash part-way repeats it.
pub(crate) fn restore_db(copy: &Path, db: &Path) -> Result<(), UpdateError> {
    if !copy.exists() {
        return Err(UpdateError::Database(format!(
            "{} is missing",
            copy.display()
        )));
    }
    let tmp = hearth_system::files::temp_sibling(db);
    let _ = std::fs::remove_file(&tmp);
    std::fs::copy(copy, &tmp).map_err(|e| UpdateError::io("copy", copy, e))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| UpdateError::io("flush", &tmp, e))?;
    for suffix in ["-wal", "-shm"] {
        let mut side = db.as_os_str().to_os_string();
        side.push(suffix);
        match std::fs::remove_file(&side) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(UpdateError::io("remove", PathBuf::from(side), e)),
        }
    }
    std::fs::rename(&tmp, db).map_err(|e| UpdateError::io("rename", &tmp, e))?;
    hearth_system::sync_parent(db).map_err(|e| UpdateError::io("flush", db, e))
}

fn read_toml<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let text = std::fs::read_to_string(path).ok()?;
    match toml::from_str(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            log::warn!("ignoring {}: {e}", path.display());
            None
        }
    }
}

fn write_toml<T: Serialize>(path: &Path, value: &T) -> Result<(), UpdateError> {
    let text = toml::to_string(value).map_err(|e| UpdateError::Damaged(e.to_string()))?;
    hearth_system::write_durably(path, text.as_bytes())
        .map_err(|e| UpdateError::io("write", path, e))
}

/// A new trial for switching from `previous` to `candidate`.
pub(crate) fn new_trial(candidate: (&str, &str), previous: (&str, &str), db_copied: bool) -> Trial {
    Trial {
        candidate: candidate.0.to_string(),
        candidate_version: candidate.1.to_string(),
        previous: previous.0.to_string(),
        previous_version: previous.1.to_string(),
        attempts: 0,
        since: unix_now(),
        db_copied,
        failure: String::new(),
    }
}
