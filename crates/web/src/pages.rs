//! One askama struct per page. Templates live in `templates/`; admin pages in
//! `templates/admin/`. Everything is rendered on the server, so every page
//! works without JavaScript.

use askama::Template;

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
}
