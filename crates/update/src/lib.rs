//! Signed offline updates ([docs/updates.md](../../../docs/updates.md)).
//!
//! A bundle (`hearth-<version>-arm64.update`) is a tar of a minisign-signed
//! manifest and the files it lists. It is checked completely (signature,
//! architecture, version, free space, every byte's hash) and written into a
//! slot under the data folder; the running binary is never overwritten.
//! "Install" copies the database, writes a trial marker and moves the
//! `current` link; the next start runs the new version on trial, and the
//! launcher rolls back by itself if it does not confirm.

mod bundle;
mod error;
mod keys;
mod launch;
mod manifest;
mod slots;

use std::{
    io::Read,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
};

pub use bundle::{MANIFEST, Progress, SIGNATURE, Signed, verify_slot};
pub use error::UpdateError;
pub use keys::{Keys, RELEASE_KEY, Signer};
pub use launch::Launch;
pub use manifest::{Accept, FileEntry, Manifest, PROGRAM};
pub use slots::{Outcome, Trial};

use slots::{CURRENT, DB_COPY, Layout, PREVIOUS, STAGED};

/// The exit status with which `hearth serve` asks to be started again
/// (after an "Install"); the unit lists it in `RestartForceExitStatus=`.
pub const EXIT_RESTART: u8 = 75;

/// The environment variable the launcher sets for a slot's binary (not
/// `HEARTH_*`, which would be read as a setting): the
/// slot's folder. Its presence means "already launched".
pub const SLOT_VAR: &str = "RUNNING_HEARTH_SLOT";

/// The version this process is: the signed manifest's version when it runs
/// from a slot, else the version it was built as.
pub fn running_version() -> &'static semver::Version {
    static VERSION: OnceLock<semver::Version> = OnceLock::new();
    VERSION.get_or_init(|| {
        let built = semver::Version::parse(env!("CARGO_PKG_VERSION"))
            .unwrap_or(semver::Version::new(0, 0, 0));
        let Some(dir) = std::env::var_os(SLOT_VAR) else {
            return built;
        };
        manifest_in(Path::new(&dir))
            .and_then(|m| m.parsed_version().ok())
            .unwrap_or(built)
    })
}

/// The manifest in a slot folder, only read (it was checked when staged
/// and is checked again before it runs): for versions shown and recorded.
fn manifest_in(dir: &Path) -> Option<Manifest> {
    Manifest::parse(&std::fs::read(dir.join(MANIFEST)).ok()?).ok()
}

/// [`running_version`] as text, for pages and `/healthz`.
pub fn running_version_text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| running_version().to_string())
}

/// The slot this process runs from, if any.
pub fn running_slot() -> Option<String> {
    let dir = std::env::var_os(SLOT_VAR)?;
    Some(Path::new(&dir).file_name()?.to_string_lossy().into_owned())
}

pub(crate) fn unix_now() -> i64 {
    hearth_system::unix_now()
}

/// A staged bundle: checked, written, waiting for "Install".
#[derive(Clone, Debug)]
pub struct Staged {
    pub slot: String,
    pub manifest: Manifest,
    pub signer: Signer,
}

/// Everything the Update page shows.
#[derive(Clone, Debug)]
pub struct Status {
    /// This process's version.
    pub running: String,
    /// The version `hearth serve` starts (the `current` slot's); `None`
    /// when it starts the OS's own binary.
    pub installed: Option<String>,
    pub staged: Option<Staged>,
    pub last: Option<Outcome>,
    pub trial: Option<Trial>,
}

/// The update folder of one data folder, and the keys it trusts.
#[derive(Clone, Debug)]
pub struct Updates {
    layout: Layout,
    db: PathBuf,
    keys: Keys,
}

impl Updates {
    /// `dir` is the data folder's `update` folder, `db` its database.
    pub fn new(dir: PathBuf, db: PathBuf, keys: Keys) -> Updates {
        Updates {
            layout: Layout { dir },
            db,
            keys,
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Checks a whole bundle (signature, machine, version, space, every
    /// file's hash) and keeps nothing: `hearth update check`.
    pub fn check(
        &self,
        reader: impl Read,
        accept: Accept,
        progress: &Arc<Progress>,
    ) -> Result<Signed, UpdateError> {
        self.read(reader, accept, progress, None)
    }

    /// Reads a bundle against this device's keys, version and free space,
    /// writing its files into `out` if given.
    fn read(
        &self,
        reader: impl Read,
        accept: Accept,
        progress: &Arc<Progress>,
        out: Option<&Path>,
    ) -> Result<Signed, UpdateError> {
        let dir = &self.layout.dir;
        bundle::read(
            &self.keys,
            running_version(),
            accept,
            dir,
            reader,
            progress,
            out,
        )
    }

    /// A fresh, not yet created, staging folder name; left-over slots and
    /// staging folders are removed first.
    fn staging(&self) -> PathBuf {
        self.layout.collect_garbage(&[]);
        let name = format!(".staging-{}", random_hex());
        self.layout.slots().join(name)
    }

    /// Checks a bundle and writes it into a new slot, which becomes the
    /// staged one. A refusal leaves nothing behind.
    pub fn stage(
        &self,
        reader: impl Read,
        accept: Accept,
        progress: &Arc<Progress>,
    ) -> Result<Staged, UpdateError> {
        let tmp = self.staging();
        let result = self
            .read(reader, accept, progress, Some(&tmp))
            .and_then(|signed| self.place(&tmp, signed));
        if result.is_err() {
            self.forget(&tmp);
        }
        result
    }

    /// Stages a bundle given as its parts (a peer sends them so): the
    /// manifest, its signature, and a reader per listed file.
    pub fn stage_parts(
        &self,
        manifest: Vec<u8>,
        signature: String,
        accept: Accept,
        mut open: impl FnMut(&FileEntry) -> Result<Box<dyn Read + Send>, UpdateError>,
    ) -> Result<Staged, UpdateError> {
        let signed = Signed::verify(&self.keys, manifest, signature)?;
        signed.check(running_version(), accept, &self.layout.dir)?;
        let tmp = self.staging();
        let result = (|| {
            bundle::begin_slot(&tmp, &signed)?;
            for file in &signed.manifest.files {
                let reader = open(file)?;
                bundle::write_part(reader, file, &tmp)?;
            }
            self.place(&tmp, signed.clone())
        })();
        if result.is_err() {
            self.forget(&tmp);
        }
        result
    }

    /// Removes a refused bundle's staging folder, and the update folders
    /// too if that leaves them empty: a refusal leaves no trace.
    fn forget(&self, tmp: &Path) {
        let _ = std::fs::remove_dir_all(tmp);
        let _ = std::fs::remove_dir(self.layout.slots());
        let _ = std::fs::remove_dir(&self.layout.dir);
    }

    /// Renames a complete staging folder into its slot and points `staged`
    /// at it.
    fn place(&self, tmp: &Path, signed: Signed) -> Result<Staged, UpdateError> {
        std::fs::File::open(tmp)
            .and_then(|d| d.sync_all())
            .map_err(|e| UpdateError::io("flush", tmp, e))?;
        let id = &hex::encode(sha2_of(&signed.bytes))[..12];
        let slot = format!("{}-{id}", signed.manifest.version);
        let dest = self.layout.slot(&slot);
        if dest.exists() {
            // The same signed manifest was staged before; its files were
            // checked then, and are checked again before they run.
            let _ = std::fs::remove_dir_all(tmp);
        } else {
            std::fs::rename(tmp, &dest).map_err(|e| UpdateError::io("rename", tmp, e))?;
            hearth_system::sync_parent(&dest).map_err(|e| UpdateError::io("flush", &dest, e))?;
        }
        self.layout.set_link(STAGED, Some(&slot))?;
        log::info!(
            "update {} staged (slot {slot}, signed by {})",
            signed.manifest.version,
            signed.signer.label()
        );
        Ok(Staged {
            slot,
            manifest: signed.manifest,
            signer: signed.signer,
        })
    }

    /// The staged bundle, checked again.
    pub fn staged(&self) -> Option<Staged> {
        let slot = self.layout.link(STAGED)?;
        match verify_slot(&self.keys, &self.layout.slot(&slot)) {
            Ok(signed) => Some(Staged {
                slot,
                manifest: signed.manifest,
                signer: signed.signer,
            }),
            Err(e) => {
                log::warn!("the staged update {slot} no longer checks out: {e}");
                None
            }
        }
    }

    /// Drops the staged bundle (the page's "Cancel").
    pub fn unstage(&self) -> Result<(), UpdateError> {
        self.layout.set_link(STAGED, None)?;
        self.layout.collect_garbage(&[]);
        Ok(())
    }

    /// Switches to the staged slot: copies the database (`VACUUM INTO`),
    /// writes the trial marker, then the links. The switch takes effect at
    /// the next start, which the caller brings about ([`EXIT_RESTART`]).
    pub fn switch(&self) -> Result<Staged, UpdateError> {
        let staged = self.staged().ok_or(UpdateError::NothingStaged)?;
        let copy = self.layout.path(DB_COPY);
        let _ = std::fs::remove_file(&copy);
        let db_copied = self.db.exists();
        if db_copied {
            hearth_store::backup(&self.db, &copy)
                .map_err(|e| UpdateError::Database(e.to_string()))?;
        }
        // What to come back to is what `hearth serve` starts now (the CLI
        // runs the OS's binary, whatever is installed), or, if a switch is
        // already pending, what it would have come back to.
        let (previous, previous_version) = match self.layout.trial() {
            Some(t) => (t.previous, t.previous_version),
            None => match self.layout.link(CURRENT) {
                Some(slot) => {
                    let version = self.slot_version(&slot).unwrap_or_default();
                    (slot, version)
                }
                None => (String::new(), env!("CARGO_PKG_VERSION").to_string()),
            },
        };
        let trial = slots::new_trial(
            (&staged.slot, &staged.manifest.version),
            (&previous, &previous_version),
            db_copied,
        );
        self.layout.write_trial(&trial)?;
        self.layout.set_link(
            PREVIOUS,
            (!previous.is_empty()).then_some(previous.as_str()),
        )?;
        self.layout.set_link(CURRENT, Some(&staged.slot))?;
        self.layout.set_link(STAGED, None)?;
        log::info!(
            "switching to {} at the next start (from {})",
            staged.manifest.version,
            running_version()
        );
        Ok(staged)
    }

    /// The version in a slot's manifest (checked when the slot was staged
    /// and before it runs; here only read for display and the trial).
    fn slot_version(&self, slot: &str) -> Option<String> {
        Some(manifest_in(&self.layout.slot(slot))?.version)
    }

    /// What the Update page shows.
    pub fn status(&self) -> Status {
        Status {
            running: running_version().to_string(),
            installed: self
                .layout
                .link(CURRENT)
                .and_then(|s| self.slot_version(&s)),
            staged: self.staged(),
            last: self.layout.last(),
            trial: self.layout.trial(),
        }
    }

    /// The newest verified slot this device holds (running or staged),
    /// which it offers to its paired peers: its manifest, signature and
    /// folder.
    pub fn offer(&self) -> Option<(Signed, PathBuf)> {
        [CURRENT, STAGED]
            .iter()
            .filter_map(|l| self.layout.link(l))
            .filter_map(|slot| {
                let dir = self.layout.slot(&slot);
                verify_slot(&self.keys, &dir).ok().map(|s| (s, dir))
            })
            .max_by(|a, b| {
                let va = a.0.manifest.parsed_version().ok();
                let vb = b.0.manifest.parsed_version().ok();
                va.cmp(&vb)
            })
    }
}

fn random_hex() -> String {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    hex::encode(b)
}

fn sha2_of(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
