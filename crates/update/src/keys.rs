//! The keys whose signatures Hearth installs.
//!
//! The release key is compiled in, so a file on the device cannot swap it.
//! `update_extra_key` in the configuration adds one more (for a builder who
//! signs their own updates, and for tests); it never replaces the release
//! key, and the start-up log names it so nobody trusts it unknowingly.

use minisign_verify::{PublicKey, Signature};

use crate::UpdateError;

/// Hearth's release public key (`minisign -G`); its secret half is never in
/// the repository (docs/updates.md, "Release key").
pub const RELEASE_KEY: &str = include_str!("../release.pub");

/// Who signed a bundle, for the page ("signed by: …").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signer {
    Release,
    ExtraKey,
}

impl Signer {
    pub fn label(self) -> &'static str {
        match self {
            Signer::Release => "Hearth's release key",
            Signer::ExtraKey => "the extra key in this Hearth's configuration",
        }
    }
}

/// The trusted keys: the release key, and at most one extra.
#[derive(Clone, Debug)]
pub struct Keys {
    release: PublicKey,
    extra: Option<PublicKey>,
}

impl Keys {
    /// The release key plus `extra` (the base64 line of a minisign public
    /// key file, or the whole file), if not empty.
    pub fn new(extra: &str) -> Result<Keys, UpdateError> {
        // RELEASE_KEY is compiled in and covered by a unit test.
        #[allow(clippy::expect_used)]
        let release = PublicKey::decode(RELEASE_KEY).expect("the compiled-in release key decodes");
        let extra = match extra.trim() {
            "" => None,
            text => {
                let line = text
                    .lines()
                    .map(str::trim)
                    .rfind(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
                    .unwrap_or_default();
                Some(
                    PublicKey::from_base64(line)
                        .map_err(|e| UpdateError::BadExtraKey(format!("{e}")))?,
                )
            }
        };
        Ok(Keys { release, extra })
    }

    /// Whether an extra key is configured (logged at start).
    pub fn has_extra(&self) -> bool {
        self.extra.is_some()
    }

    /// Checks `sig` (a `.minisig` file's text) over `data`. A signature by
    /// an unknown key and a signature that does not match are different
    /// refusals: the first is the wrong file, the second a damaged one.
    pub fn verify(&self, data: &[u8], sig: &str) -> Result<Signer, UpdateError> {
        let signature = Signature::decode(sig).map_err(|_| {
            UpdateError::Damaged("its signature file manifest.toml.minisig is not readable".into())
        })?;
        let candidates = [
            (Signer::Release, Some(&self.release)),
            (Signer::ExtraKey, self.extra.as_ref()),
        ];
        let mut bad_signature = false;
        for (signer, key) in candidates {
            let Some(key) = key else { continue };
            match key.verify(data, &signature, false) {
                Ok(()) => return Ok(signer),
                Err(minisign_verify::Error::UnexpectedKeyId) => {}
                Err(_) => bad_signature = true,
            }
        }
        if bad_signature {
            Err(UpdateError::BadSignature)
        } else {
            Err(UpdateError::UntrustedKey(
                key_id(sig),
                if self.extra.is_some() {
                    " and the configured extra key"
                } else {
                    ""
                },
            ))
        }
    }
}

/// The signing key's ID as `minisign` prints it (16 hex digits, most
/// significant first), read from the signature line: bytes 2..10 of the
/// decoded line, little-endian.
fn key_id(sig: &str) -> String {
    use data_encoding::BASE64;
    let line = sig
        .lines()
        .find(|l| !l.starts_with("untrusted comment:") && !l.trim().is_empty())
        .unwrap_or_default();
    match BASE64.decode(line.trim().as_bytes()) {
        Ok(raw) if raw.len() >= 10 => raw[2..10]
            .iter()
            .rev()
            .map(|b| format!("{b:02X}"))
            .collect(),
        _ => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_key_decodes_and_extra_is_optional() {
        let keys = Keys::new("").unwrap();
        assert!(!keys.has_extra());
        assert!(matches!(
            Keys::new("not a key"),
            Err(UpdateError::BadExtraKey(_))
        ));
    }

    #[test]
    fn key_id_reads_as_minisign_prints_it() {
        let sig = "untrusted comment: x\nRUTpHcq2Uru7QVFsTtxRud3sEZf3ux9bQf+AHcGo6Bicu2McpWmZdniRAMbww75IYk6OWcU9heIBm5xjEbPcshF6nBK4MCWDfQg=\n";
        assert_eq!(key_id(sig), "41BBBB52B6CA1DE9");
    }
}
