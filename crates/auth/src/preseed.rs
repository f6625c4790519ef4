//! A pre-seeded admin password: the image's first boot moves the hash the
//! owner wrote into `hearth.toml` on the card into the data directory, and
//! Hearth claims the admin account with it at the next start.
//!
//! Only a hash travels, never a password; the file is removed once read,
//! whether it was used or not, so it cannot linger or be applied twice.

use std::path::Path;

use argon2::PasswordHash;
use hearth_store::{Store, StoreError};

/// The file's name in the data directory (docs/flashing.md).
pub const PRESEED_FILE: &str = "preseed-admin-hash";

/// What became of a pre-seeded hash.
#[derive(Debug, PartialEq, Eq)]
pub enum Preseed {
    /// No file.
    Absent,
    /// The admin account was claimed with it.
    Claimed,
    /// Someone had already claimed the account; the hash was dropped.
    AlreadyClaimed,
    /// Not an argon2id PHC string; dropped, and the reason logged.
    Refused(String),
}

/// Claims the admin account with `data_dir/preseed-admin-hash` if present
/// and the account is unclaimed, then removes the file. Blocking: call at
/// start, before serving.
pub fn claim_preseeded(store: &Store, data_dir: &Path) -> Result<Preseed, StoreError> {
    let file = data_dir.join(PRESEED_FILE);
    let raw = match std::fs::read(&file) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Preseed::Absent),
        Err(e) => {
            log::error!("cannot read {}: {e}", file.display());
            return Ok(Preseed::Refused(e.to_string()));
        }
    };
    let outcome = match check(&raw) {
        Err(why) => {
            log::error!(
                "ignored the pre-seeded admin password hash in {}: {why}. Claim the admin page in a browser instead",
                file.display()
            );
            Preseed::Refused(why)
        }
        Ok(hash) => {
            let inserted = store.write_now(move |c| {
                c.execute(
                    "INSERT INTO admin (id, password_hash, created_at) VALUES (1, ?1, ?2)
                     ON CONFLICT (id) DO NOTHING",
                    (hash, hearth_system::unix_now()),
                )
                .map_err(StoreError::from)
            })?;
            if inserted == 1 {
                log::info!("admin account claimed with the pre-seeded password hash");
                Preseed::Claimed
            } else {
                log::warn!(
                    "ignored the pre-seeded admin password hash: the admin account is already claimed"
                );
                Preseed::AlreadyClaimed
            }
        }
    };
    // Committed first, removed second: a crash in between re-reads a hash
    // that then finds the account claimed, which changes nothing.
    if let Err(e) = std::fs::remove_file(&file).and_then(|()| hearth_system::sync_parent(&file)) {
        log::error!(
            "could not remove {} ({e}); remove it by hand",
            file.display()
        );
    }
    Ok(outcome)
}

/// The hash as text, if it is an argon2id PHC string this build can verify.
fn check(raw: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(raw)
        .map_err(|_| "it is not text".to_string())?
        .trim();
    if text.len() > 512 {
        return Err("it is too long to be a password hash".into());
    }
    let parsed =
        PasswordHash::new(text).map_err(|e| format!("it is not a PHC hash string ({e})"))?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "it is an {} hash; Hearth needs argon2id",
            parsed.algorithm
        ));
    }
    if parsed.hash.is_none() || parsed.salt.is_none() {
        return Err("it has no salt or no hash part".into());
    }
    // Parameters this build cannot use would lock the admin out.
    argon2::Params::try_from(&parsed).map_err(|e| format!("its parameters are unusable ({e})"))?;
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_usable_argon2id_hashes_pass() {
        let good = crate::password::hash("a long enough password").unwrap();
        assert_eq!(check(good.as_bytes()).unwrap(), good);
        assert_eq!(check(format!("  {good}\n").as_bytes()).unwrap(), good);
        for bad in [
            "",
            "hunter2",
            "$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$WQiVPwzpRkEsAtqUw6PnFQ",
            "$2b$12$abcdefghijklmnopqrstuuQ1VfSyC0b6aXrM0a6kUQmEo7E4P7cG2",
            "$argon2id$v=19$m=16,t=2,p=1",
        ] {
            assert!(check(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(check(&[0xff, 0xfe]).is_err());
    }
}
