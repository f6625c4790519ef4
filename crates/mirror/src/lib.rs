//! Pairing two Hearths and mirroring each other's encrypted backups.
//!
//! Every device is an *owner* (its backup packs go to its peers) and a
//! *holder* (it keeps its peers' packs, which it cannot read: they are age
//! files encrypted to the owner's key). Peers talk over mutual TLS on their
//! own port, pinned by certificate hash ([`tls`]), after pairing with a
//! short code and SPAKE2 ([`pairing`]). The wire protocol is HTTP/1.1 on
//! that connection and is written down, versioned, in
//! docs/mirror-protocol.md; the holder's side is [`server`], the owner's
//! [`sync`].

pub mod client;
pub mod identity;
pub mod pairing;
mod peers;
mod pool;
mod proof;
mod recover;
pub mod server;
pub mod sync;
pub mod tls;
mod transfer;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hearth_store::Store;

pub use identity::{DeviceId, Identity};
pub use peers::{Peer, PeerState};

/// The protocol version this build speaks (docs/mirror-protocol.md).
pub const PROTOCOL: u32 = 1;
/// The peer port when an address names none.
pub const DEFAULT_PORT: u16 = 7443;

/// What can go wrong; the texts are for the admin page.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("{0}")]
    Pair(#[from] pairing::PairError),
    #[error("cannot reach {address}: {message}")]
    Unreachable { address: String, message: String },
    /// The peer answered with a refusal; its words.
    #[error("{0}")]
    Refused(String),
    #[error("the other device answered something this version does not understand: {0}")]
    Protocol(String),
    #[error("{0}")]
    Invalid(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<hearth_store::StoreError> for MirrorError {
    fn from(e: hearth_store::StoreError) -> Self {
        MirrorError::Internal(e.to_string())
    }
}

impl From<hearth_store::rusqlite::Error> for MirrorError {
    fn from(e: hearth_store::rusqlite::Error) -> Self {
        MirrorError::Internal(e.to_string())
    }
}

impl From<std::io::Error> for MirrorError {
    fn from(e: std::io::Error) -> Self {
        MirrorError::Internal(e.to_string())
    }
}

/// Settings from the configuration file.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The data directory: `repo/` is mirrored out, `mirror/` holds peers'.
    pub data_dir: PathBuf,
    /// This device's name as peers see it.
    pub name: String,
    /// How long a holder keeps a pack after its owner asks to delete it.
    pub grace: Duration,
    /// Upload limit in bytes per second; 0 for none.
    pub bandwidth: u64,
    /// Time between mirror runs when nothing wakes the loop earlier.
    pub every: Duration,
    /// Time between proof-of-storage checks of each peer.
    pub prove_every: Duration,
}

/// Live figures of the owner's side, per peer, for the admin page.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Progress {
    pub online: bool,
    pub running: bool,
    /// Bytes still to send in the current run.
    pub pending_bytes: u64,
    /// Bytes sent in the current (or last) run.
    pub sent_bytes: u64,
    pub quota_full: bool,
    pub last_error: Option<String>,
    /// How a restore from this peer went, for the admin page.
    pub restore: Option<String>,
}

/// The mirror service; cheap to clone.
#[derive(Clone)]
pub struct Mirror(Arc<Inner>);

pub(crate) struct Inner {
    pub id: Identity,
    pub store: Store,
    pub settings: Settings,
    /// Peers' packs: `mirror/<owner hex>/`.
    pub held_dir: PathBuf,
    /// Our repository, mirrored out.
    pub repo: PathBuf,
    /// The port we listen on, told to devices that pair with us.
    pub port: u16,
    pub codes: Mutex<pairing::Codes>,
    pub progress: Mutex<HashMap<DeviceId, Progress>>,
    pub wake: tokio::sync::Notify,
    pub bandwidth: AtomicU64,
    /// Holder side: bytes of uploads in progress, per owner.
    pub in_flight: Mutex<HashMap<DeviceId, u64>>,
    /// Transfer buffers, reused between pieces and packs.
    pub pool: pool::Pool,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("device", &self.0.id.id)
            .finish_non_exhaustive()
    }
}

impl Mirror {
    /// The service over `store`, not yet serving or syncing.
    pub fn new(id: Identity, store: Store, settings: Settings, port: u16) -> Mirror {
        let layout = hearth_config::DataDir::new(&settings.data_dir);
        let held_dir = layout.mirror();
        let repo = layout.repo();
        let bandwidth = AtomicU64::new(settings.bandwidth);
        Mirror(Arc::new(Inner {
            id,
            store,
            settings,
            held_dir,
            repo,
            port,
            codes: Mutex::default(),
            progress: Mutex::default(),
            wake: tokio::sync::Notify::new(),
            bandwidth,
            in_flight: Mutex::default(),
            pool: pool::Pool::default(),
        }))
    }

    /// Serves the peer port on `listener` and runs the owner's loop, on the
    /// current tokio runtime.
    pub fn start(&self, listener: tokio::net::TcpListener) -> Result<(), MirrorError> {
        let config =
            tls::server_config(&self.0.id).map_err(|e| MirrorError::Internal(e.to_string()))?;
        tokio::spawn(server::serve(self.clone(), listener, config));
        tokio::spawn(sync::run(self.clone()));
        Ok(())
    }

    pub fn device(&self) -> DeviceId {
        self.0.id.id
    }

    /// The peer port we listen on.
    pub fn port(&self) -> u16 {
        self.0.port
    }

    pub fn name(&self) -> &str {
        &self.0.settings.name
    }

    /// Starts showing a new pairing code.
    pub fn new_code(&self) -> Result<pairing::Shown, MirrorError> {
        self.codes()
            .new_code()
            .map_err(|e| MirrorError::Internal(e.to_string()))
    }

    /// The pairing code on display, if any.
    pub fn shown_code(&self) -> Option<pairing::Shown> {
        self.codes().shown()
    }

    pub fn cancel_code(&self) {
        self.codes().cancel();
    }

    pub(crate) fn codes(&self) -> std::sync::MutexGuard<'_, pairing::Codes> {
        self.0.codes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the owner's loop now (after a backup, or "Mirror now").
    pub fn sync_now(&self) {
        self.0.wake.notify_one();
    }

    /// The live figures for `peer`.
    pub fn progress(&self, peer: DeviceId) -> Progress {
        self.0
            .progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&peer)
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn update_progress(&self, peer: DeviceId, f: impl FnOnce(&mut Progress)) {
        let mut map = self.0.progress.lock().unwrap_or_else(|p| p.into_inner());
        f(map.entry(peer).or_default());
    }

    /// Notes how a restore from `peer` is going.
    pub fn set_restore_note(&self, peer: DeviceId, note: &str) {
        let note = note.to_string();
        self.update_progress(peer, |p| p.restore = Some(note));
    }

    /// Sets the upload limit (bytes per second, 0 for none).
    pub fn set_bandwidth(&self, bytes_per_sec: u64) {
        self.0.bandwidth.store(bytes_per_sec, Ordering::Relaxed);
    }

    pub(crate) fn bandwidth(&self) -> u64 {
        self.0.bandwidth.load(Ordering::Relaxed)
    }

    /// Where the packs held for `owner` live.
    pub(crate) fn held(&self, owner: DeviceId) -> PathBuf {
        self.0.held_dir.join(owner.to_hex())
    }

    pub(crate) fn repo(&self) -> &Path {
        &self.0.repo
    }
}

/// A pack name: 64 lowercase hex digits (BLAKE3 of the ciphertext).
pub(crate) fn is_pack_name(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The repository files besides packs that a peer keeps: public marker
/// and the passphrase-sealed key (useless without the passphrase).
pub(crate) const META_FILES: &[&str] = &["HEARTH-REPO", "key.age"];
