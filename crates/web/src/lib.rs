//! Hearth's web panel.
//!
//! [`Shared::new`] turns the domain services the binary started
//! ([`Services`]) into the app's state; [`router`] builds the whole app from
//! an [`AppState`] without binding anything, so unit tests drive it with
//! `oneshot` and the binary serves it with [`serve`]. Handlers stay
//! straight-line: extractors turn a missing admin into a redirect to
//! `/setup`, a missing session into a redirect to `/login`, and a forged
//! form or one from another site into a 403, before a handler runs.
//!
//! Modules depend on each other one way (the table is in the README):
//! `format`, `pages`, `error` and `page_cache` are leaves the rest build on.

mod csrf;
mod error;
mod format;
mod page_cache;
mod pages;
mod peer;
mod portal;
mod routes;
mod security;
mod session;
mod state;
mod update_job;

use std::future::Future;

use axum::Router;

pub use error::WebError;
pub use peer::Peer;
pub use state::{AppState, Services, Shared};

/// The whole web app.
pub fn router(state: AppState) -> Router {
    let routes = routes::routes().layer(axum::middleware::from_fn_with_state(
        state.clone(),
        portal::captive,
    ));
    security::layer(routes.with_state(state))
}

/// Serves `router(state)` on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<Peer>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

#[cfg(test)]
mod tests;
