//! Who may administer a Hearth.
//!
//! There is exactly one admin account and it does not exist until someone
//! claims it: no default password ships anywhere. The claim is an INSERT
//! into a table that can hold one row, so of two concurrent claims the
//! database lets exactly one win. Sessions live in SQLite (only a digest of
//! each cookie), so they survive restarts and a copied database is not a
//! login.

mod csrf;
mod password;
mod preseed;
mod reset;
mod sessions;
mod throttle;

use std::{net::IpAddr, sync::Arc, time::Duration};

use hearth_store::{Store, StoreError, rusqlite};

pub use csrf::CsrfKey;
pub use password::{MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};
pub use preseed::{PRESEED_FILE, Preseed, claim_preseeded};
pub use reset::{RESET_FILE, reset_if_requested};
pub use sessions::{SESSION_LIFETIME, SessionToken};
pub use throttle::{FREE_ATTEMPTS, MAX_LOCKOUT, Throttle};

/// What can go wrong for a visitor. The `Display` texts are shown to people
/// as they are, so they are sentences without internal detail; `Store`
/// carries the cause for the log only.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("This Hearth is already set up. Log in with the admin password.")]
    AlreadyClaimed,
    #[error("This Hearth is not set up yet.")]
    NotClaimed,
    #[error("That password is not right.")]
    WrongPassword,
    #[error("Too many wrong passwords. Try again in {} seconds.", retry_after.as_secs().max(1))]
    Throttled { retry_after: Duration },
    #[error("{0}")]
    BadPassword(String),
    #[error("internal storage error")]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for AuthError {
    fn from(e: rusqlite::Error) -> Self {
        AuthError::Store(StoreError::Sql(e))
    }
}

/// The admin domain. Cloning is shallow (one `Arc`), so it can live in web
/// state and be shared by every request.
#[derive(Clone, Debug)]
pub struct Auth {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    throttle: Throttle,
    csrf: CsrfKey,
    /// Bounds concurrent argon2 work: each hash takes 19 MiB and most of a
    /// core, and a Pi has little of either to spare for a password flood.
    hashing: tokio::sync::Semaphore,
}

impl Auth {
    /// Prepares the admin domain on an open store. Blocking (it may create
    /// the CSRF key and clears expired sessions): call before serving.
    pub fn new(store: Store) -> Result<Auth, AuthError> {
        let csrf = store.write_now(csrf::load_or_create)?;
        store.write_now(sessions::purge_expired)?;
        Ok(Auth {
            inner: Arc::new(Inner {
                store,
                throttle: Throttle::default(),
                csrf,
                hashing: tokio::sync::Semaphore::new(2),
            }),
        })
    }

    /// The key that derives CSRF tokens.
    pub fn csrf(&self) -> &CsrfKey {
        &self.inner.csrf
    }

    /// Whether the admin account has been claimed.
    pub async fn is_claimed(&self) -> Result<bool, AuthError> {
        self.inner
            .store
            .read(|c| Ok(c.query_row("SELECT EXISTS (SELECT 1 FROM admin)", [], |r| r.get(0))?))
            .await
    }

    /// Claims the admin account with `password`, and logs the claimant in.
    /// Fails with [`AuthError::AlreadyClaimed`], changing nothing, if anyone
    /// else has claimed it first, even a moment before in a parallel request.
    pub async fn claim(&self, password: &str, confirm: &str) -> Result<SessionToken, AuthError> {
        password::check_new(password, confirm)?;
        if self.is_claimed().await? {
            return Err(AuthError::AlreadyClaimed);
        }
        let hash = self.hash(password).await?;
        let token = SessionToken::generate()?;
        let digest = token.digest();
        self.inner
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                let inserted = tx.execute(
                    "INSERT INTO admin (id, password_hash, created_at) VALUES (1, ?1, ?2)
                     ON CONFLICT (id) DO NOTHING",
                    (hash, hearth_system::unix_now()),
                )?;
                if inserted == 0 {
                    return Err(AuthError::AlreadyClaimed);
                }
                sessions::insert(&tx, &digest)?;
                tx.commit()?;
                Ok(())
            })
            .await?;
        log::info!("admin account claimed");
        Ok(token)
    }

    /// Checks the admin password for a client and opens a session.
    /// Throttled clients are refused before any hashing is done.
    pub async fn login(&self, client: IpAddr, password: &str) -> Result<SessionToken, AuthError> {
        self.inner
            .throttle
            .check(client)
            .map_err(|retry_after| AuthError::Throttled { retry_after })?;
        let stored: Option<String> = self
            .inner
            .store
            .read(|c| {
                use hearth_store::rusqlite::OptionalExtension;
                Ok::<_, AuthError>(
                    c.query_row("SELECT password_hash FROM admin", [], |r| r.get(0))
                        .optional()?,
                )
            })
            .await?;
        let stored = stored.ok_or(AuthError::NotClaimed)?;
        if !self.verify(password, stored).await? {
            let locked = self.inner.throttle.failure(client);
            match locked {
                Some(d) => log::warn!(
                    "failed admin login from {client}; further attempts blocked for {}s",
                    d.as_secs()
                ),
                None => log::warn!("failed admin login from {client}"),
            }
            return Err(AuthError::WrongPassword);
        }
        self.inner.throttle.success(client);
        let token = SessionToken::generate()?;
        let digest = token.digest();
        self.inner
            .store
            .write(move |c| sessions::insert(c, &digest))
            .await?;
        log::info!("admin logged in from {client}");
        Ok(token)
    }

    /// Whether `cookie` names a live session, sliding its expiry forward.
    pub async fn session_is_valid(&self, cookie: &str) -> Result<bool, AuthError> {
        let Some(digest) = SessionToken::digest_of(cookie) else {
            return Ok(false);
        };
        self.inner
            .store
            .write(move |c| sessions::touch(c, &digest))
            .await
    }

    /// Ends the session named by `cookie`, if any.
    pub async fn logout(&self, cookie: &str) -> Result<(), AuthError> {
        let Some(digest) = SessionToken::digest_of(cookie) else {
            return Ok(());
        };
        self.inner
            .store
            .write(move |c| sessions::remove(c, &digest))
            .await
    }

    async fn hash(&self, password: &str) -> Result<String, AuthError> {
        let _permit = self.inner.hashing.acquire().await;
        let password = password.to_string();
        tokio::task::spawn_blocking(move || password::hash(&password))
            .await
            .map_err(|_| AuthError::Store(StoreError::TaskFailed))?
    }

    async fn verify(&self, password: &str, stored: String) -> Result<bool, AuthError> {
        let _permit = self.inner.hashing.acquire().await;
        let password = password.to_string();
        tokio::task::spawn_blocking(move || password::verify(&password, &stored))
            .await
            .map_err(|_| AuthError::Store(StoreError::TaskFailed))
    }
}

#[cfg(test)]
mod tests;
