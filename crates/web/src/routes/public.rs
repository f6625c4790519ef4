//! Pages anyone may see.

use axum::{
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::{AppState, WebError};

/// Liveness for systemd, the image test and monitoring: answers once the
/// database is readable.
pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    match state.auth.is_claimed().await {
        // The version is the one running: after an update, a client (the
        // Update page, the image test) sees the switch here.
        Ok(_) => (StatusCode::OK, format!("ok {}\n", state.version)).into_response(),
        Err(e) => {
            log::error!("health check failed: {e}");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

/// The stylesheet and the progressive-enhancement script, compiled in.
pub(crate) async fn static_file(Path(file): Path<String>) -> Result<Response, WebError> {
    let (body, kind) = match file.as_str() {
        "hearth.css" => (include_str!("../../static/hearth.css"), "text/css"),
        "hearth.js" => (include_str!("../../static/hearth.js"), "text/javascript"),
        _ => return Err(WebError::NotFound),
    };
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response())
}

pub(crate) async fn not_found() -> WebError {
    WebError::NotFound
}
