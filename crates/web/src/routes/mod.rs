//! The route table. Public pages, the claim and login flow, and the admin
//! panel each have a module.

mod admin;
mod public;
mod setup;

use axum::{
    Router,
    routing::{get, post},
};

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
        .route(
            "/admin/{*rest}",
            get(admin::not_found).post(admin::not_found),
        )
        .fallback(public::not_found)
}
