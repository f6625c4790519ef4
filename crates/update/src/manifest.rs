//! The signed manifest: what a bundle is, for which machine, from which
//! version, and the SHA-256 of every file it carries.
//!
//! ```toml
//! format = 1
//! version = "0.2.0"
//! arch = "aarch64"
//! min_from = "0.1.0"
//! notes = """What changed, for the admin page."""
//!
//! [[files]]
//! name = "hearth"
//! size = 12345678
//! sha256 = "…64 hex digits…"
//! ```

use semver::Version;
use serde::Deserialize;

use crate::UpdateError;

/// The largest manifest read (the notes are the only free text).
pub const MAX_MANIFEST: u64 = 64 * 1024;
/// The largest signature file read.
pub const MAX_SIGNATURE: u64 = 4 * 1024;
/// The largest single file a bundle may carry.
const MAX_FILE: u64 = 512 * 1024 * 1024;
/// More files than a release could need is a hostile bundle.
const MAX_FILES: usize = 16;
/// The file every bundle carries: the program the unit runs.
pub const PROGRAM: &str = "hearth";

/// A parsed manifest. It is only ever built from bytes whose signature
/// has already been checked.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub version: String,
    pub arch: String,
    pub min_from: String,
    #[serde(default)]
    pub notes: String,
    pub files: Vec<FileEntry>,
}

/// One file of the payload.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// What the installer is asked to accept.
#[derive(Clone, Copy, Debug, Default)]
pub struct Accept {
    /// The admin ticked "install an older version".
    pub older: bool,
}

impl Manifest {
    /// Parses signed manifest bytes and checks their shape (not yet
    /// whether this device may install them: see [`Manifest::check`]).
    pub fn parse(bytes: &[u8]) -> Result<Manifest, UpdateError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| UpdateError::BadManifest("it is not UTF-8 text".into()))?;
        let m: Manifest = toml::from_str(text)
            .map_err(|e| UpdateError::BadManifest(first_line(&e.to_string())))?;
        if m.format != 1 {
            return Err(UpdateError::BadManifest(format!(
                "format {} is newer than this Hearth understands; install the updates in between first",
                m.format
            )));
        }
        m.parsed_version()?;
        Version::parse(&m.min_from)
            .map_err(|e| UpdateError::BadManifest(format!("min_from {:?}: {e}", m.min_from)))?;
        if m.files.is_empty() || m.files.len() > MAX_FILES {
            return Err(UpdateError::BadManifest(format!(
                "it lists {} files (1 to {MAX_FILES} allowed)",
                m.files.len()
            )));
        }
        for (i, f) in m.files.iter().enumerate() {
            let plain = !f.name.is_empty()
                && f.name.len() <= 64
                && !f.name.starts_with('.')
                && f.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !plain || f.name.starts_with("manifest.toml") {
                return Err(UpdateError::BadManifest(format!(
                    "file name {:?} is not allowed",
                    f.name
                )));
            }
            if m.files[..i].iter().any(|g| g.name == f.name) {
                return Err(UpdateError::BadManifest(format!(
                    "{} is listed twice",
                    f.name
                )));
            }
            if f.size > MAX_FILE {
                return Err(UpdateError::BadManifest(format!(
                    "{} is larger than 512 MiB",
                    f.name
                )));
            }
            if f.sha256.len() != 64 || hex::decode(&f.sha256).is_err() {
                return Err(UpdateError::BadManifest(format!(
                    "{}'s sha256 is not 64 hex digits",
                    f.name
                )));
            }
        }
        if !m.files.iter().any(|f| f.name == PROGRAM) {
            return Err(UpdateError::BadManifest(
                "it carries no hearth program".into(),
            ));
        }
        Ok(m)
    }

    pub fn parsed_version(&self) -> Result<Version, UpdateError> {
        Version::parse(&self.version)
            .map_err(|e| UpdateError::BadManifest(format!("version {:?}: {e}", self.version)))
    }

    /// Whether this device may install it: its architecture, the version
    /// it upgrades from, and no downgrade unless the admin asked for one.
    pub fn check(&self, running: &Version, accept: Accept) -> Result<(), UpdateError> {
        let arch = std::env::consts::ARCH;
        if self.arch != arch {
            return Err(UpdateError::WrongArchitecture {
                offered: self.arch.clone(),
                running: arch.to_string(),
            });
        }
        let offered = self.parsed_version()?;
        // Validated in parse.
        let min_from = Version::parse(&self.min_from).unwrap_or(Version::new(0, 0, 0));
        if *running < min_from {
            return Err(UpdateError::TooOld {
                min_from: self.min_from.clone(),
                running: running.to_string(),
            });
        }
        if offered <= *running && !accept.older {
            return Err(UpdateError::Downgrade {
                offered: self.version.clone(),
                running: running.to_string(),
            });
        }
        Ok(())
    }

    /// Bytes the payload takes on disk.
    pub fn payload_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(version: &str, arch: &str) -> String {
        format!(
            "format = 1\nversion = \"{version}\"\narch = \"{arch}\"\nmin_from = \"0.1.0\"\nnotes = \"n\"\n\
             [[files]]\nname = \"hearth\"\nsize = 3\nsha256 = \"{}\"\n",
            "ab".repeat(32)
        )
    }

    #[test]
    fn checks_arch_version_and_downgrade() {
        let here = std::env::consts::ARCH;
        let running = Version::new(0, 2, 0);
        let m = Manifest::parse(manifest("0.3.0", here).as_bytes()).unwrap();
        m.check(&running, Accept::default()).unwrap();
        let old = Manifest::parse(manifest("0.1.5", here).as_bytes()).unwrap();
        assert!(matches!(
            old.check(&running, Accept::default()),
            Err(UpdateError::Downgrade { .. })
        ));
        old.check(&running, Accept { older: true }).unwrap();
        let other = Manifest::parse(manifest("0.3.0", "riscv64").as_bytes()).unwrap();
        assert!(matches!(
            other.check(&running, Accept::default()),
            Err(UpdateError::WrongArchitecture { .. })
        ));
        assert!(matches!(
            Manifest::parse(b"format = 1\nversion = \"x\""),
            Err(UpdateError::BadManifest(_))
        ));
        let sneaky = manifest("0.3.0", here).replace("name = \"hearth\"", "name = \"../hearth\"");
        assert!(matches!(
            Manifest::parse(sneaky.as_bytes()),
            Err(UpdateError::BadManifest(_))
        ));
    }
}
