//! CSRF tokens, as a signed double-submit cookie.
//!
//! Every form carries `token = BLAKE3-keyed(key, cookie)` where `cookie` is a
//! random, HttpOnly, SameSite=Strict cookie. Another site can neither read
//! the cookie nor forge a token for it without the key, and the key lives
//! in the database so open forms keep working across a restart. One
//! mechanism covers the setup and login forms (before any session exists)
//! as well as the admin forms.

use hearth_store::{
    StoreError,
    rusqlite::{Connection, OptionalExtension},
};

/// The server's CSRF key. `Debug` is redacted.
#[derive(Clone)]
pub struct CsrfKey([u8; 32]);

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey(<redacted>)")
    }
}

impl CsrfKey {
    /// The token a form must carry for the given cookie value.
    pub fn token_for(&self, cookie: &str) -> String {
        blake3::keyed_hash(&self.0, cookie.as_bytes())
            .to_hex()
            .to_string()
    }

    /// Whether `token` belongs to `cookie`. Compared in constant time.
    pub fn verify(&self, cookie: &str, token: &str) -> bool {
        if cookie.is_empty() {
            return false;
        }
        match blake3::Hash::from_hex(token) {
            Ok(given) => given == blake3::keyed_hash(&self.0, cookie.as_bytes()),
            Err(_) => false,
        }
    }

    /// A fresh random cookie value.
    pub fn new_cookie() -> Result<String, getrandom::Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)?;
        Ok(hex::encode(bytes))
    }
}

pub(crate) fn load_or_create(c: &mut Connection) -> Result<CsrfKey, StoreError> {
    let existing: Option<Vec<u8>> = c
        .query_row(
            "SELECT value FROM settings WHERE key = 'csrf_key'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(Ok(key)) = existing.map(<[u8; 32]>::try_from) {
        return Ok(CsrfKey(key));
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| StoreError::Io(std::io::Error::other(e)))?;
    c.execute(
        "INSERT OR REPLACE INTO settings (key, value) VALUES ('csrf_key', ?1)",
        [&key[..]],
    )?;
    Ok(CsrfKey(key))
}
