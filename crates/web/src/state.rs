//! What every request handler can reach.

use std::{path::PathBuf, sync::Arc, time::Instant};

use hearth_auth::Auth;
use hearth_system::Clock;

/// Shared state of the web app. Cloning is shallow (`Arc`s and copies), which
/// is what axum does for every request.
#[derive(Clone, Debug)]
pub struct AppState {
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
    /// Board pages rendered since the board last changed.
    pub pages: Arc<crate::PageCache>,
}
