//! One askama struct per page, and the fragments pages share. Templates
//! live in `templates/`; admin pages in `templates/admin/`, the board's in
//! `templates/board/`. Everything is rendered on the server, so every page
//! works without JavaScript.
//!
//! This module depends on nothing else in the crate but `format`, so the
//! routes, the board page cache and the error pages can all use it.

use std::sync::Arc;

use askama::Template;

use crate::format::when;

#[derive(Template)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
}

#[derive(Template)]
#[template(path = "landing.html")]
pub(crate) struct LandingPage {
    pub hostname: String,
    pub csrf: String,
    pub landing: hearth_board::Landing,
    pub boards: Vec<hearth_board::BoardInfo>,
    /// Pinned notices, rendered.
    pub pinned: Vec<String>,
    pub nickname: Option<String>,
    /// Where the nickname form returns to.
    pub back: String,
}

#[derive(Template)]
#[template(path = "setup.html")]
pub(crate) struct SetupPage {
    pub csrf: String,
    /// Why the last attempt was refused, if it was.
    pub error: Option<String>,
    pub min_len: usize,
}

#[derive(Template)]
#[template(path = "login.html")]
pub(crate) struct LoginPage {
    pub csrf: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
pub(crate) struct DashboardPage {
    pub csrf: String,
    pub version: &'static str,
    pub hostname: String,
    pub uptime: String,
    pub hearth_uptime: String,
    pub load: String,
    pub memory: String,
    pub temperature: Option<String>,
    pub disk: String,
    pub disk_percent: u64,
    pub clock: String,
    /// The device's time in ms since the epoch, for the browser to compare.
    pub now_ms: i64,
    /// A message after a clock change, if any.
    pub notice: Option<String>,
    /// The backups card: a headline and a detail line.
    pub backup_state: String,
    pub backup_detail: String,
    /// The S3 target's state, if one is set.
    pub backup_target: Option<String>,
    /// The peers card: a headline and a detail line.
    pub mirror_state: String,
    pub mirror_detail: String,
    /// Shared boards, per confirmed peer.
    pub board_links: Vec<BoardLinkRow>,
    /// Newer updates confirmed peers offer: installable, or refused with
    /// the reason.
    pub update_offers: Vec<hearth_mirror::UpdateOffer>,
}

/// One row of the snapshot list.
pub(crate) struct SnapshotRow {
    pub id: i64,
    pub when: String,
    pub source: String,
    pub files: u64,
    pub size: String,
    pub added: String,
    pub duration: String,
}

#[derive(Template)]
#[template(path = "admin/backups.html")]
pub(crate) struct BackupsPage {
    pub csrf: String,
    /// No repository yet: show the recovery-passphrase form instead.
    pub needs_init: bool,
    /// The repository exists but cannot be opened (e.g. a lost key).
    pub problem: Option<String>,
    pub notice: Option<String>,
    pub min_len: usize,
    pub sources: Vec<String>,
    pub files_dir: String,
    pub snapshots: Vec<SnapshotRow>,
    pub repository: String,
    pub running: Option<String>,
    pub last_error: Option<String>,
    pub warnings: Vec<String>,
    pub watch_problem: Option<String>,
    pub settings: hearth_backup::Settings,
    /// Where backups go: this device, and the S3 target if set.
    pub target_line: String,
    /// Without a working repository but with an S3 target: the target, to
    /// offer recovering from it.
    pub recover_from: Option<String>,
}

/// One entry of a browsed folder.
pub(crate) struct EntryRow {
    pub name: String,
    pub kind: &'static str,
    pub size: String,
    pub when: String,
    /// Browse link for folders, download link for files.
    pub href: Option<String>,
    /// Snapshot-relative path, for the restore form.
    pub path: String,
}

#[derive(Template)]
#[template(path = "admin/browse.html")]
pub(crate) struct BrowsePage {
    pub csrf: String,
    pub snapshot: i64,
    pub when: String,
    pub source: String,
    /// Breadcrumbs: (label, href).
    pub crumbs: Vec<(String, String)>,
    pub path: String,
    pub path_q: String,
    pub entries: Vec<EntryRow>,
}

#[derive(Template)]
#[template(path = "admin/restore.html")]
pub(crate) struct RestorePage {
    pub id: u64,
    pub what: String,
    pub target: String,
    pub running: bool,
    pub percent: u64,
    pub done_text: String,
    pub errors: Vec<String>,
    pub failed: Option<String>,
    pub snapshot: i64,
}

/// One file on the Files page.
pub(crate) struct FileRow {
    pub name: String,
    pub size: String,
    pub when: String,
}

#[derive(Template)]
#[template(path = "admin/files.html")]
pub(crate) struct FilesPage {
    pub csrf: String,
    pub dir: String,
    pub files: Vec<FileRow>,
    pub notice: Option<String>,
    pub free: String,
}

#[derive(Template)]
#[template(path = "continue.html")]
pub(crate) struct ContinuePage {
    /// Where this client reaches Hearth, e.g. http://10.42.0.1/.
    pub address: String,
}

/// One post (and, for a thread, its replies) as HTML: the page's markup and
/// the live events' data are this same template.
#[derive(Template)]
#[template(path = "board/post.html")]
pub(crate) struct PostFragment<'a> {
    pub post: &'a hearth_board::Post,
    pub when: String,
    pub thumb: String,
    /// Rendered replies.
    pub replies: Vec<String>,
    /// Empty in live events; the page's script fills it in.
    pub csrf: &'a str,
    pub with_form: bool,
}

/// Renders a post, with its replies and reply form when it is a thread.
/// Board pages, threads, search results, pinned notices, the moderation
/// list and live events all show posts through this one function.
pub(crate) fn render_post(
    post: &hearth_board::Post,
    replies: &[hearth_board::Post],
    csrf: &str,
    with_form: bool,
) -> String {
    let thumb = post
        .photo
        .as_deref()
        .and_then(|p| p.split_once('.'))
        .map(|(stem, _)| format!("{stem}.thumb.jpg"))
        .unwrap_or_default();
    PostFragment {
        post,
        when: when(post.created_at),
        thumb,
        replies: replies
            .iter()
            .map(|r| render_post(r, &[], csrf, false))
            .collect(),
        csrf,
        with_form,
    }
    .render()
    .unwrap_or_default()
}

/// The renderer the board domain uses for live events.
pub(crate) fn live_renderer() -> hearth_board::Renderer {
    Arc::new(|p: &hearth_board::Post| render_post(p, &[], "", true))
}

#[derive(Template)]
#[template(path = "board/board.html")]
pub(crate) struct BoardPage {
    pub csrf: String,
    pub board: hearth_board::BoardInfo,
    /// The threads' HTML, rendered (and cached) by `PageCache`.
    pub threads: String,
    pub has_threads: bool,
    pub page: usize,
    pub more: bool,
    pub nickname: Option<String>,
    pub is_admin: bool,
    pub can_post: bool,
    pub last_event: i64,
    pub back: String,
}

#[derive(Template)]
#[template(path = "board/thread.html")]
pub(crate) struct ThreadPage {
    pub csrf: String,
    pub board: hearth_board::BoardInfo,
    pub thread: String,
    pub last_event: i64,
}

#[derive(Template)]
#[template(path = "board/search.html")]
pub(crate) struct SearchPage {
    pub query: String,
    /// (thread link, rendered post)
    pub results: Vec<(String, String)>,
}

/// A post in the moderation list.
pub(crate) struct ModPost {
    pub id: i64,
    pub pinned: bool,
    pub hidden: bool,
    pub by_admin: bool,
    pub html_fragment: String,
}

#[derive(Template)]
#[template(path = "admin/board.html")]
pub(crate) struct BoardAdminPage {
    pub csrf: String,
    pub notice: Option<String>,
    pub landing: hearth_board::Landing,
    pub boards: Vec<hearth_board::BoardInfo>,
    /// Ids of the boards shared with peers.
    pub shared: Vec<i64>,
    /// Boards peers share that this Hearth does not: (name, peer names).
    pub offered: Vec<(String, String)>,
    /// MiB of shared posts' photos fetched from each peer per day.
    pub photo_budget_mib: u64,
    pub posts: Vec<ModPost>,
    pub bans: Vec<hearth_board::Ban>,
    /// (when, action, target)
    pub log: Vec<(String, String, String)>,
}

/// One peer's shared-board traffic on the dashboard's Peers card.
#[derive(Debug)]
pub(crate) struct BoardLinkRow {
    pub peer: String,
    pub name: String,
    pub in_today: u64,
    pub out_today: u64,
    pub photos_dropped: u64,
    pub last: String,
    pub refused: Option<String>,
}

impl BoardAdminPage {
    fn is_shared(&self, id: &i64) -> bool {
        self.shared.contains(id)
    }
}

#[derive(Template)]
#[template(path = "admin/hotspot.html")]
pub(crate) struct HotspotPage {
    pub csrf: String,
    pub error: Option<String>,
    /// Why there is no hotspot to manage, if there is none.
    pub unavailable: Option<String>,
    pub ssid: String,
    pub protected: bool,
    pub pending_secs: Option<u64>,
    pub confirm_minutes: u64,
}

/// This device's ZeroTier node, as Admin → Network shows it.
pub(crate) struct NodeView {
    pub address: String,
    pub online: bool,
    pub version: String,
}

/// A joined ZeroTier network, ready to show.
pub(crate) struct NetworkView {
    pub id: String,
    pub name: String,
    /// The status in words.
    pub words: String,
    /// Whether the network is configured and usable.
    pub ok: bool,
    /// Whether strangers may be on it (a warning is shown).
    pub public: bool,
    pub addresses: Vec<String>,
    /// The virtual interface, e.g. `ztabcdef12`.
    pub device: String,
}

#[derive(Template)]
#[template(path = "admin/network.html")]
pub(crate) struct NetworkPage {
    pub csrf: String,
    /// Why the last join or leave was refused.
    pub error: Option<String>,
    /// Why ZeroTier cannot be used at all right now.
    pub problem: Option<String>,
    /// Whether that is because the service is missing (install help shown).
    pub absent: bool,
    pub node: Option<NodeView>,
    pub networks: Vec<NetworkView>,
    /// A network is waiting for its controller: the page reloads itself.
    pub pending: bool,
    /// What the admin typed, put back after a refusal.
    pub typed: String,
}

/// One peer as the Peers page shows it.
pub(crate) struct PeerRow {
    /// Device ID, hex: the URL key.
    pub id: String,
    pub name: String,
    pub short: String,
    pub proposed: bool,
    pub wants_replace: bool,
    pub status: String,
    pub held: String,
    pub quota: String,
    pub quota_gb: String,
    pub sent: String,
    pub pending: String,
    pub percent: u64,
    pub proof: String,
}

#[derive(Template)]
#[template(path = "admin/peers.html")]
pub(crate) struct PeersPage {
    pub csrf: String,
    pub notice: Option<String>,
    pub error: Option<String>,
    pub name: String,
    pub short: String,
    pub long: String,
    pub code: Option<hearth_mirror::pairing::Shown>,
    pub address: String,
    pub qr: String,
    pub join_address: String,
    pub join_code: String,
    pub peers: Vec<PeerRow>,
    /// Confirmed peers a replacement could take over: (hex id, label).
    pub others: Vec<(String, String)>,
    /// Unpaired Hearths announced on the LAN.
    pub nearby: Vec<Nearby>,
    /// Why none are listed, when nothing is looked for.
    pub nearby_off: Option<String>,
}

/// A Hearth found on the LAN, with the Join link that fills its address.
pub(crate) struct Nearby {
    pub name: String,
    pub short: String,
    pub address: String,
    pub link: String,
}

/// The last switch, as the Update page words it.
pub(crate) struct LastUpdate {
    /// Rolled back: shown as an error, so the admin sees why.
    pub rolled_back: bool,
    pub text: String,
    pub when: String,
}

/// The staged bundle, waiting for "Install".
pub(crate) struct StagedUpdate {
    pub version: String,
    pub signer: &'static str,
    /// The release notes, as plain text.
    pub notes: String,
}

#[derive(Template)]
#[template(path = "admin/update.html")]
pub(crate) struct UpdatePage {
    pub csrf: String,
    pub running: String,
    /// Why the last check or install was refused.
    pub error: Option<String>,
    pub last: Option<LastUpdate>,
    pub staged: Option<StagedUpdate>,
    /// An upload or check is running: its text ("Checking… 40%") and
    /// percentage; the page polls until it ends.
    pub busy: Option<String>,
    pub percent: u64,
    /// Installed: the version the service is restarting into.
    pub restarting: Option<String>,
    /// Whether `update_extra_key` is set, so the hint names both keys.
    pub extra_key: bool,
}
