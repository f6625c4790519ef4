//! The route table. Public pages, the claim and login flow, and the admin
//! panel each have a module.

mod admin;
mod backups;
mod browse;
mod files;
mod public;
mod setup;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};
use tower_http::limit::RequestBodyLimitLayer;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(public::landing))
        .route("/healthz", get(public::healthz))
        .route("/static/{file}", get(public::static_file))
        .route("/setup", get(setup::setup_page).post(setup::setup))
        .route("/login", get(setup::login_page).post(setup::login))
        .route("/logout", post(setup::logout))
        .route("/admin", get(admin::dashboard))
        .route("/admin/", get(admin::dashboard))
        .route("/admin/clock", post(admin::set_clock))
        .route("/admin/backups", get(backups::page))
        .route("/admin/backups/init", post(backups::init))
        .route("/admin/backups/run", post(backups::run_now))
        .route("/admin/backups/settings", post(backups::save_settings))
        .route("/admin/backups/sources", post(backups::add_source))
        .route(
            "/admin/backups/sources/remove",
            post(backups::remove_source),
        )
        .route("/admin/backups/{id}", get(browse::browse))
        .route("/admin/backups/{id}/file", get(browse::file))
        .route("/admin/backups/{id}/archive", get(browse::archive))
        .route("/admin/backups/{id}/restore", post(browse::start_restore))
        .route("/admin/restores/{job}", get(browse::restore_page))
        .route("/admin/restores/{job}/status", get(browse::restore_status))
        .route("/admin/files", get(files::page))
        .route(
            "/admin/{*rest}",
            get(admin::not_found).post(admin::not_found),
        )
        .fallback(public::not_found)
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        // Uploads stream to disk, so their size is bounded by free space
        // (checked up front when the length is known), not by memory.
        .merge(
            Router::new()
                .route("/admin/files/upload", post(files::upload))
                .layer(DefaultBodyLimit::disable()),
        )
}

/// Largest request body accepted outside uploads: forms are small.
const BODY_LIMIT: usize = 256 * 1024;
