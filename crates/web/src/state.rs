//! What every request handler can reach, and the one place it is built.
//!
//! The binary (and the unit tests) make the domain services in their own
//! order and hand them over as [`Services`]; [`Shared::new`] fills in
//! everything the web layer derives itself (the board's renderer, the page
//! cache, the portal's list, the host name, the version), so no caller
//! repeats that wiring.

use std::{path::PathBuf, sync::Arc, time::Instant};

use hearth_auth::Auth;
use hearth_system::Clock;

use crate::{page_cache::PageCache, pages::live_renderer, update_job::UpdateJob};

/// Shared state of the web app. Axum clones it for every extractor of every
/// request, so it is one `Arc`: a clone is one counter increment. (Cloning
/// a struct of a dozen `Arc`s cost 17% of the board page's time, the
/// counters' cache lines bouncing between cores.)
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What the web app is given at start: the domain services, already
/// started, and the few settings the pages need.
#[derive(Debug)]
pub struct Services {
    /// The admin domain: claim, login, sessions, CSRF key.
    pub auth: Auth,
    /// The wall clock, real or simulated.
    pub clock: Clock,
    /// The database, for the hotspot board.
    pub store: hearth_store::Store,
    /// Background backups and restores, already started.
    pub jobs: hearth_jobs::Jobs,
    /// Pairing and mirroring with other Hearths.
    pub mirror: hearth_mirror::Mirror,
    /// The Wi-Fi hotspot's name and password.
    pub hotspot: hearth_net::hotspot::Hotspot,
    /// The local ZeroTier service.
    pub zerotier: hearth_net::zerotier::ZeroTier,
    /// Other Hearths announced on the LAN (or why nobody looks).
    pub discovery: hearth_net::discovery::Discovery,
    /// The data directory: the board's photos live under it, and the
    /// dashboard reports its file system.
    pub data_dir: PathBuf,
    /// The Files page's folder.
    pub files_dir: PathBuf,
    /// Whether cookies carry `Secure` (only when served over HTTPS).
    pub secure_cookies: bool,
    /// Signed updates: staging, switching, the last outcome.
    pub updates: hearth_update::Updates,
    /// Told when an installed update wants the service started again;
    /// `hearth serve` then stops cleanly with [`hearth_update::EXIT_RESTART`].
    pub restart: Arc<tokio::sync::Notify>,
}

/// What every handler reaches through [`AppState`]. Made only by
/// [`Shared::new`].
#[derive(Debug)]
pub struct Shared {
    /// The admin domain: claim, login, sessions, CSRF key.
    pub auth: Auth,
    /// The wall clock the dashboard shows and may set.
    pub clock: Arc<Clock>,
    /// The data directory, whose file system's use the dashboard reports.
    pub data_dir: Arc<PathBuf>,
    /// Whether cookies carry `Secure` (only when served over HTTPS).
    pub secure_cookies: bool,
    /// When the web app was set up at start, for the dashboard's "Hearth
    /// up" time.
    pub started: Instant,
    /// The running Hearth version: the signed manifest's when it runs
    /// from an update slot, else the version it was built as.
    pub version: &'static str,
    /// Signed updates: staging, switching, the last outcome.
    pub updates: hearth_update::Updates,
    /// Asks `hearth serve` to stop and be started again (after "Install").
    pub restart: Arc<tokio::sync::Notify>,
    /// The Update page's upload, check or switch, one at a time.
    pub(crate) update_job: UpdateJob,
    /// Background backups and restores.
    pub jobs: hearth_jobs::Jobs,
    /// The Files page's folder.
    pub files_dir: Arc<PathBuf>,
    /// The hotspot board; its live events are rendered by this crate.
    pub board: hearth_board::Board,
    /// Guests who continued past the captive portal.
    pub portal: Arc<hearth_net::captive::Accepted>,
    /// This device's host name, for telling our own Host headers apart.
    pub hostname: Arc<String>,
    /// The Wi-Fi hotspot's name and password.
    pub hotspot: hearth_net::hotspot::Hotspot,
    /// The local ZeroTier service, for reaching paired Hearths far away.
    pub zerotier: hearth_net::zerotier::ZeroTier,
    /// Other Hearths announced on the LAN, for Peers -> Join a device.
    pub discovery: hearth_net::discovery::Discovery,
    /// Pairing and mirroring with other Hearths.
    pub mirror: hearth_mirror::Mirror,
    /// Board pages rendered since the board last changed. Private to the
    /// crate, which also keeps `Shared` from being built anywhere but in
    /// [`Shared::new`].
    pub(crate) pages: Arc<PageCache>,
}

impl Shared {
    /// The web app's state from the services the binary started. Fails
    /// only when the system has no random numbers for the page cache.
    pub fn new(s: Services) -> Result<Shared, getrandom::Error> {
        Ok(Shared {
            board: hearth_board::Board::new(s.store, &s.data_dir, live_renderer()),
            pages: Arc::new(PageCache::new()?),
            portal: Arc::default(),
            hostname: Arc::new(hearth_system::hostname()),
            started: Instant::now(),
            version: hearth_update::running_version_text(),
            updates: s.updates,
            restart: s.restart,
            update_job: UpdateJob::default(),
            auth: s.auth,
            clock: Arc::new(s.clock),
            data_dir: Arc::new(s.data_dir),
            files_dir: Arc::new(s.files_dir),
            secure_cookies: s.secure_cookies,
            jobs: s.jobs,
            mirror: s.mirror,
            hotspot: s.hotspot,
            zerotier: s.zerotier,
            discovery: s.discovery,
        })
    }
}
