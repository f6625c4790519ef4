//! Hearth's web panel.
//!
//! [`router`] builds the whole app from an [`AppState`] without binding
//! anything, so unit tests drive it with `oneshot` and the binary serves it
//! with [`serve`]. Handlers stay straight-line: extractors turn a missing
//! admin into a redirect to `/setup`, a missing session into a redirect to
//! `/login`, and a forged form into a 403, before a handler runs.

mod csrf;
mod error;
mod format;
mod pages;
mod routes;
mod security;
mod session;
mod state;

use std::{future::Future, net::SocketAddr};

use axum::Router;

pub use error::WebError;
pub use state::AppState;

/// The whole web app.
pub fn router(state: AppState) -> Router {
    security::layer(routes::routes().with_state(state))
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
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

#[cfg(test)]
mod tests;
