//! Admin password rules and argon2id hashing.

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};

use crate::AuthError;

/// Shortest admin password accepted; the same floor WPA2 sets for the hotspot.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest accepted, so a megabyte "password" cannot tie up argon2.
pub const MAX_PASSWORD_LEN: usize = 256;

/// Validates a new password and its confirmation.
pub(crate) fn check_new(password: &str, confirm: &str) -> Result<(), AuthError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_LEN {
        return Err(AuthError::BadPassword(format!(
            "Choose a password of at least {MIN_PASSWORD_LEN} characters."
        )));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(AuthError::BadPassword(format!(
            "Choose a password of at most {MAX_PASSWORD_LEN} characters."
        )));
    }
    if password != confirm {
        return Err(AuthError::BadPassword(
            "The two passwords differ. Type the same password twice.".into(),
        ));
    }
    Ok(())
}

/// Hashes with argon2id at the library's defaults (19 MiB, 2 passes, 1 lane),
/// OWASP's recommended floor, which a Pi 4 computes in a fraction of a second.
pub(crate) fn hash(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::BadPassword(format!("This password cannot be used ({e}).")))
}

/// Checks `password` against a stored PHC string. A malformed stored hash
/// counts as a mismatch and is logged, never shown.
pub(crate) fn verify(password: &str, stored: &str) -> bool {
    if password.len() > MAX_PASSWORD_LEN {
        return false;
    }
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(e) => {
            log::error!("stored admin password hash is unreadable: {e}");
            false
        }
    }
}
