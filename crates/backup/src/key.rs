//! The repository key.
//!
//! Its plaintext is a valid age identity file: the X25519 secret on its own
//! line, and Hearth's other secrets (the chunk-ID key and the gear seed) in
//! `#` comment lines, which age ignores. So `age -d -i key.txt pack` works on
//! it directly, with no Hearth in sight. The repository stores it encrypted
//! with age's scrypt mode under the recovery passphrase (`key.age`); the
//! device keeps the plaintext, mode 0600, so unattended backups need no
//! passphrase.

use std::{
    io::{Read, Write},
    path::Path,
    str::FromStr,
};

use age::secrecy::{ExposeSecret, SecretString};

use crate::error::{BackupError, IoContext};

/// Shortest recovery passphrase accepted: it guards every backup.
pub const MIN_PASSPHRASE_LEN: usize = 12;

/// Every secret of one repository. `Debug` is redacted.
pub struct Keys {
    /// Identifies the repository; public, also in `HEARTH-REPO`.
    pub repo_id: String,
    /// Decrypts packs; its public half encrypts them.
    pub identity: age::x25519::Identity,
    /// Keys BLAKE3 for chunk IDs, so IDs reveal nothing about content.
    pub chunk_key: [u8; 32],
    /// XORed into FastCDC's gear table, so chunk boundaries (and with them
    /// chunk sizes) reveal nothing about content either.
    pub gear_seed: u64,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("repo_id", &self.repo_id)
            .finish_non_exhaustive()
    }
}

impl Keys {
    pub(crate) fn generate(repo_id: String) -> Result<Keys, BackupError> {
        let mut chunk_key = [0u8; 32];
        let mut seed = [0u8; 8];
        random(&mut chunk_key)?;
        random(&mut seed)?;
        Ok(Keys {
            repo_id,
            identity: age::x25519::Identity::generate(),
            chunk_key,
            gear_seed: u64::from_le_bytes(seed),
        })
    }

    /// The key file's plaintext: an age identity file.
    pub fn to_identity_file(&self) -> SecretString {
        SecretString::from(format!(
            "# Hearth backup repository key, format 1. Keep it secret.\n\
             # It decrypts every pack of this repository with `age -d -i`.\n\
             # repository: {}\n\
             # chunk-key: {}\n\
             # gear-seed: {:016x}\n\
             {}\n",
            self.repo_id,
            hex::encode(self.chunk_key),
            self.gear_seed,
            self.identity.to_string().expose_secret()
        ))
    }

    pub(crate) fn parse(text: &str, path: &Path) -> Result<Keys, BackupError> {
        let bad = |reason: &str| BackupError::BadKey {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("# {name}: ")))
                .map(str::trim)
                .ok_or_else(|| bad(&format!("no {name} line")))
        };
        let repo_id = field("repository")?.to_string();
        let chunk_key: [u8; 32] = hex::decode(field("chunk-key")?)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("the chunk key is not 32 bytes of hex"))?;
        let gear_seed = u64::from_str_radix(field("gear-seed")?, 16)
            .map_err(|_| bad("the gear seed is not hex"))?;
        let secret = text
            .lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .ok_or_else(|| bad("no AGE-SECRET-KEY line"))?;
        let identity = age::x25519::Identity::from_str(secret.trim())
            .map_err(|_| bad("the age secret key is malformed"))?;
        Ok(Keys {
            repo_id,
            identity,
            chunk_key,
            gear_seed,
        })
    }

    /// Reads the device's plaintext key file.
    pub fn load(path: &Path) -> Result<Keys, BackupError> {
        let text = std::fs::read_to_string(path).at(path)?;
        Keys::parse(&text, path)
    }

    /// Writes the plaintext key file with mode 0600, durably.
    pub(crate) fn save(&self, path: &Path) -> Result<(), BackupError> {
        let text = self.to_identity_file();
        hearth_system::write_durably(path, text.expose_secret().as_bytes()).at(path)
    }

    /// The key file encrypted under the recovery passphrase (age scrypt).
    pub(crate) fn seal(&self, passphrase: &str) -> Result<Vec<u8>, BackupError> {
        let enc = age::Encryptor::with_user_passphrase(SecretString::from(passphrase.to_string()));
        let mut out = vec![];
        let mut w = enc
            .wrap_output(&mut out)
            .map_err(|e| BackupError::Crypto(e.to_string()))?;
        w.write_all(self.to_identity_file().expose_secret().as_bytes())
            .and_then(|()| w.finish().map(|_| ()))
            .map_err(|e| BackupError::Crypto(e.to_string()))?;
        Ok(out)
    }

    /// Opens `key.age` with the recovery passphrase.
    pub fn unseal(path: &Path, passphrase: &str) -> Result<Keys, BackupError> {
        let data = std::fs::read(path).at(path)?;
        Keys::unseal_bytes(&data, passphrase, path)
    }

    /// Opens a `key.age` held in memory (`path` names it in messages).
    pub fn unseal_bytes(data: &[u8], passphrase: &str, path: &Path) -> Result<Keys, BackupError> {
        let dec = age::Decryptor::new_buffered(data)
            .map_err(|_| BackupError::WrongPassphrase(path.to_path_buf()))?;
        let identity = age::scrypt::Identity::new(SecretString::from(passphrase.to_string()));
        let mut text = String::new();
        dec.decrypt(std::iter::once(&identity as &dyn age::Identity))
            .map_err(|_| BackupError::WrongPassphrase(path.to_path_buf()))?
            .read_to_string(&mut text)
            .map_err(|_| BackupError::WrongPassphrase(path.to_path_buf()))?;
        Keys::parse(&text, path)
    }

    /// The keyed BLAKE3 ID of a chunk's plaintext.
    pub fn chunk_id(&self, data: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.chunk_key, data).as_bytes()
    }
}

pub(crate) fn random(buf: &mut [u8]) -> Result<(), BackupError> {
    getrandom::fill(buf).map_err(|e| BackupError::Crypto(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_file_round_trips_and_is_sealed() {
        let k = Keys::generate("abcd".into()).unwrap();
        let text = k.to_identity_file();
        let back = Keys::parse(text.expose_secret(), Path::new("k")).unwrap();
        assert_eq!(back.chunk_key, k.chunk_key);
        assert_eq!(back.gear_seed, k.gear_seed);
        assert_eq!(
            back.identity.to_public().to_string(),
            k.identity.to_public().to_string()
        );

        let dir = tempfile::tempdir().unwrap();
        let sealed = dir.path().join("key.age");
        std::fs::write(&sealed, k.seal("correct horse battery").unwrap()).unwrap();
        let opened = Keys::unseal(&sealed, "correct horse battery").unwrap();
        assert_eq!(opened.chunk_key, k.chunk_key);
        assert!(matches!(
            Keys::unseal(&sealed, "wrong passphrase!"),
            Err(BackupError::WrongPassphrase(_))
        ));
    }

    #[test]
    fn damaged_key_files_are_named_not_panicked() {
        for text in [
            "",
            "# repository: x\n",
            "# repository: x\n# chunk-key: zz\n",
        ] {
            let err = Keys::parse(text, Path::new("/k")).unwrap_err().to_string();
            assert!(err.contains("/k"), "{err}");
        }
    }
}
