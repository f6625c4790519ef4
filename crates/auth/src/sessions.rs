//! Server-side admin sessions.
//!
//! The cookie holds 32 random bytes; the database holds only their BLAKE3
//! digest. Expiry slides forward with use, but the row is rewritten at most
//! once an hour so that browsing does not turn into a stream of fsyncs on
//! the SD card.

use hearth_system::unix_now;
use std::time::Duration;

use hearth_store::rusqlite::{Connection, OptionalExtension};

use crate::AuthError;

/// How long an unused session stays valid.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(14 * 24 * 3600);
/// How stale `last_seen` may get before a request refreshes it.
const TOUCH_EVERY: i64 = 3600;

/// A freshly issued session's cookie value. `Debug` is redacted: the value is
/// a login.
pub struct SessionToken(String);

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

impl SessionToken {
    pub(crate) fn generate() -> Result<SessionToken, AuthError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| {
            AuthError::Store(hearth_store::StoreError::Io(std::io::Error::other(e)))
        })?;
        Ok(SessionToken(hex::encode(bytes)))
    }

    /// The cookie value to hand to the browser.
    pub fn cookie_value(&self) -> &str {
        &self.0
    }

    pub(crate) fn digest(&self) -> [u8; 32] {
        *blake3::hash(self.0.as_bytes()).as_bytes()
    }

    /// The digest of a cookie presented by a browser, if it is well formed.
    pub(crate) fn digest_of(cookie: &str) -> Option<[u8; 32]> {
        (cookie.len() == 64 && cookie.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| *blake3::hash(cookie.as_bytes()).as_bytes())
    }
}

pub(crate) fn insert(c: &Connection, digest: &[u8; 32]) -> Result<(), AuthError> {
    let now = unix_now();
    c.execute(
        "INSERT INTO sessions (token_hash, created_at, last_seen, expires_at) VALUES (?1, ?2, ?2, ?3)",
        (&digest[..], now, now + SESSION_LIFETIME.as_secs() as i64),
    )?;
    Ok(())
}

/// Returns whether the session is live, refreshing it when due.
pub(crate) fn touch(c: &Connection, digest: &[u8; 32]) -> Result<bool, AuthError> {
    let now = unix_now();
    let row: Option<(i64, i64)> = c
        .query_row(
            "SELECT last_seen, expires_at FROM sessions WHERE token_hash = ?1",
            [&digest[..]],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((last_seen, expires_at)) = row else {
        return Ok(false);
    };
    if expires_at <= now {
        c.execute("DELETE FROM sessions WHERE token_hash = ?1", [&digest[..]])?;
        return Ok(false);
    }
    if now - last_seen >= TOUCH_EVERY {
        c.execute(
            "UPDATE sessions SET last_seen = ?2, expires_at = ?3 WHERE token_hash = ?1",
            (&digest[..], now, now + SESSION_LIFETIME.as_secs() as i64),
        )?;
    }
    Ok(true)
}

pub(crate) fn remove(c: &mut Connection, digest: &[u8; 32]) -> Result<(), AuthError> {
    c.execute("DELETE FROM sessions WHERE token_hash = ?1", [&digest[..]])?;
    Ok(())
}

pub(crate) fn purge_expired(c: &mut Connection) -> Result<(), hearth_store::StoreError> {
    c.execute("DELETE FROM sessions WHERE expires_at <= ?1", [unix_now()])?;
    Ok(())
}
