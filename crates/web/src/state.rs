//! What every request handler can reach.

use std::{path::PathBuf, sync::Arc, time::Instant};

use hearth_auth::Auth;
use hearth_system::Clock;

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

/// What every handler reaches through [`AppState`].
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
    /// When this process started, for the dashboard's "Hearth up" time.
    pub started: Instant,
    /// The running Hearth version.
    pub version: &'static str,
    /// Background backups and restores.
    pub jobs: hearth_jobs::Jobs,
    /// The Files page's folder.
    pub files_dir: Arc<PathBuf>,
    /// The hotspot board.
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
    /// Board pages rendered since the board last changed.
    pub pages: Arc<crate::PageCache>,
}
