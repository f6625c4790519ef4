//! The route table. Public pages, the claim and login flow, and the admin
//! panel each have a module.

mod admin;
mod backups;
mod board;
mod browse;
mod files;
mod hotspot;
mod moderation;
mod network;
mod peers;
mod public;
mod setup;
mod target;
mod update;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};
use tower_http::limit::RequestBodyLimitLayer;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(board::landing))
        .route("/boards/{id}", get(board::board_page))
        .route("/boards/{id}/threads/{thread}", get(board::thread_page))
        .route("/boards/{id}/events", get(board::events))
        .route("/nickname", post(board::set_nickname))
        .route("/search", get(board::search))
        .route("/photos/{name}", get(board::photo_file))
        .route("/portal/continue", post(crate::portal::continue_in_browser))
        .route("/healthz", get(public::healthz))
        .route("/static/{file}", get(public::static_file))
        .route("/setup", get(setup::setup_page).post(setup::setup))
        .route("/login", get(setup::login_page).post(setup::login))
        .route("/logout", post(setup::logout))
        .route("/admin", get(admin::dashboard))
        .route("/admin/", get(admin::dashboard))
        .route("/admin/clock", post(admin::set_clock))
        .route(
            "/admin/update/from-peer/{id}",
            post(admin::update_from_peer),
        )
        .route("/admin/backups", get(backups::page))
        .route("/admin/backups/init", post(backups::init))
        .route("/admin/backups/run", post(backups::run_now))
        .route(
            "/admin/backups/target",
            get(target::page).post(target::save),
        )
        .route("/admin/backups/target/test", post(target::test))
        .route("/admin/backups/target/upload", post(target::upload_now))
        .route("/admin/backups/target/clear", post(target::clear))
        .route("/admin/backups/target/heal", post(target::heal))
        .route("/admin/backups/recover", post(target::recover))
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
        .route("/admin/hotspot", get(hotspot::show).post(hotspot::change))
        .route("/admin/hotspot/keep", post(hotspot::keep))
        .route("/admin/network", get(network::show))
        .route("/admin/network/join", post(network::join))
        .route("/admin/network/leave", post(network::leave))
        .route("/admin/peers", get(peers::show))
        .route("/admin/peers/join", get(peers::show).post(peers::join))
        .route("/admin/peers/code", post(peers::new_code))
        .route("/admin/peers/code/cancel", post(peers::cancel_code))
        .route("/admin/peers/progress", get(peers::progress))
        .route("/admin/peers/{id}/confirm", post(peers::confirm))
        .route("/admin/peers/{id}/quota", post(peers::set_quota))
        .route("/admin/peers/{id}/remove", post(peers::remove))
        .route("/admin/peers/{id}/sync", post(peers::sync))
        .route("/admin/peers/{id}/check", post(peers::check))
        .route("/admin/peers/{id}/board-retry", post(peers::board_retry))
        .route("/admin/peers/{id}/restore", post(peers::restore))
        .route("/admin/update", get(update::page))
        .route("/admin/update/status", get(update::status))
        .route("/admin/update/install", post(update::install))
        .route("/admin/update/cancel", post(update::cancel))
        .route("/admin/board", get(moderation::page))
        .route("/admin/board/landing", post(moderation::landing))
        .route("/admin/board/boards", post(moderation::create))
        .route("/admin/board/boards/{id}/rename", post(moderation::rename))
        .route(
            "/admin/board/boards/{id}/move",
            post(moderation::move_board),
        )
        .route("/admin/board/boards/{id}/lock", post(moderation::lock))
        .route("/admin/board/boards/{id}/slow", post(moderation::slow))
        .route("/admin/board/boards/{id}/share", post(moderation::share))
        .route("/admin/board/accept", post(moderation::accept))
        .route("/admin/board/photo-budget", post(moderation::photo_budget))
        .route("/admin/board/posts/{id}/pin", post(moderation::pin))
        .route("/admin/board/posts/{id}/hide", post(moderation::hide))
        .route("/admin/board/posts/{id}/delete", post(moderation::delete))
        .route("/admin/board/posts/{id}/ban", post(moderation::ban))
        .route("/admin/board/bans/{id}/remove", post(moderation::unban))
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
                .route("/admin/update/upload", post(update::upload))
                .layer(DefaultBodyLimit::disable()),
        )
        // A post with a photo: the photo limit plus room for the text.
        .merge(
            Router::new()
                .route("/boards/{id}/posts", post(board::post))
                .layer(DefaultBodyLimit::max(
                    hearth_board::photo::MAX_PHOTO_BYTES + 64 * 1024,
                )),
        )
}

/// Largest request body accepted outside uploads: forms are small.
const BODY_LIMIT: usize = 256 * 1024;
