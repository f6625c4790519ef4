//! The mirror service's shared state: [`Mirror`], its settings and the live
//! figures the admin page reads.
//!
//! Every part of the crate (the peer list, the holder's handlers, the
//! owner's loop) works on one `Mirror`, adding its own `impl Mirror` block
//! in its own module. This module holds only the state and the small
//! accessors they share, and imports none of those parts, so each of them
//! can import it without a cycle. Starting the service, which needs both the
//! server and the loop, is in the crate root.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hearth_store::Store;

use crate::{
    error::MirrorError,
    identity::{DeviceId, Identity},
    pairing, pool,
};

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
    /// Time between pulls of shared boards from each peer (pokes pull at
    /// once).
    pub board_every: Duration,
    /// Bytes of shared posts' photos fetched from each peer per day;
    /// beyond it the text arrives and the photo is "not carried".
    pub board_photo_budget: u64,
    /// This device's signed updates: the one it offers to its peers, and
    /// the keys a peer's offer must be signed with.
    pub updates: hearth_update::Updates,
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

/// A newer signed update a confirmed peer offers, as the dashboard shows
/// it: installable, or refused with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateOffer {
    pub peer: DeviceId,
    pub peer_name: String,
    /// The version its manifest names (read before the signature checks
    /// out when it is refused, for the sentence only).
    pub version: String,
    /// The release notes (empty when refused).
    pub notes: String,
    /// Why this Hearth will not install it, as one sentence; `None` when it
    /// can be fetched and staged.
    pub refused: Option<String>,
}

/// The mirror service; cheap to clone.
#[derive(Clone)]
pub struct Mirror(pub(crate) Arc<Inner>);

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
    /// Owner side: the newest update each confirmed peer offers, as last
    /// checked (a peer with nothing newer has no entry).
    pub offers: Mutex<HashMap<DeviceId, UpdateOffer>>,
    /// When the dashboard last had the offers checked, so reloading it
    /// does not dial every peer each time.
    pub offers_refreshed: Mutex<Option<Instant>>,
    /// The board whose shared boards travel to peers (`boards`), set once
    /// the web layer has made it.
    pub board: std::sync::OnceLock<hearth_board::Board>,
    /// Per peer: shared-board traffic, refusals and the rate window.
    pub board_links: Mutex<HashMap<DeviceId, crate::board_link::Link>>,
    /// Peers that poked us (they have new events); the pull loop's wake-up.
    pub board_poked: Mutex<std::collections::HashSet<DeviceId>>,
    pub board_wake: tokio::sync::Notify,
    /// Boards peers share that this Hearth does not: name → peer names.
    pub board_offers: Mutex<std::collections::BTreeMap<String, std::collections::BTreeSet<String>>>,
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
            offers: Mutex::default(),
            offers_refreshed: Mutex::default(),
            board: std::sync::OnceLock::new(),
            board_links: Mutex::default(),
            board_poked: Mutex::default(),
            board_wake: tokio::sync::Notify::new(),
            board_offers: Mutex::default(),
        }))
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

    /// This device's updates (offered to peers; their keys judge offers).
    pub(crate) fn updates(&self) -> &hearth_update::Updates {
        &self.0.settings.updates
    }

    /// The updates confirmed peers offer, newer than what this Hearth runs,
    /// each installable or refused with its reason; ordered by peer name.
    pub fn update_offers(&self) -> Vec<UpdateOffer> {
        let mut list: Vec<UpdateOffer> = self.offers().values().cloned().collect();
        list.sort_by(|a, b| a.peer_name.cmp(&b.peer_name).then(a.peer.0.cmp(&b.peer.0)));
        list
    }

    pub(crate) fn offers(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, UpdateOffer>> {
        self.0.offers.lock().unwrap_or_else(|p| p.into_inner())
    }
}
