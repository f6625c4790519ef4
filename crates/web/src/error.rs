//! Errors as people see them.
//!
//! Every failure becomes a page with a status code and one human sentence.
//! Internal causes go to the log, never to the response. The domain crates'
//! errors turn into [`WebError`] here, in one place, so any module may use
//! `?` on a domain call without depending on another module for it.

use askama::Template;
use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use hearth_auth::AuthError;
use hearth_board::BoardError;
use hearth_mirror::MirrorError;

use crate::pages::ErrorPage;

/// A request that cannot be served as asked.
#[derive(Debug)]
pub enum WebError {
    /// The request itself is wrong; the text says how.
    BadRequest(String),
    /// Refused, typically a form that failed the CSRF check.
    Forbidden(String),
    NotFound,
    /// Conflicts with the current state, e.g. claiming a claimed Hearth.
    Conflict(String),
    /// Too many attempts; come back after `retry_after` seconds.
    TooMany {
        message: String,
        retry_after: u64,
    },
    /// Something broke inside. The string is for the log only.
    Internal(String),
}

impl From<AuthError> for WebError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::AlreadyClaimed => WebError::Conflict(e.to_string()),
            AuthError::Throttled { retry_after } => WebError::TooMany {
                message: e.to_string(),
                retry_after: retry_after.as_secs().max(1),
            },
            AuthError::BadPassword(m) => WebError::BadRequest(m),
            AuthError::NotClaimed | AuthError::WrongPassword => WebError::Forbidden(e.to_string()),
            AuthError::Store(inner) => WebError::Internal(inner.to_string()),
        }
    }
}

impl From<BoardError> for WebError {
    fn from(e: BoardError) -> Self {
        match e {
            BoardError::Invalid(m) => WebError::BadRequest(m),
            BoardError::Refused {
                message,
                retry_after: Some(secs),
            } => WebError::TooMany {
                message,
                retry_after: secs,
            },
            BoardError::Refused { message, .. } => WebError::Forbidden(message),
            BoardError::NotFound => WebError::NotFound,
            BoardError::Internal(m) => WebError::Internal(m),
        }
    }
}

impl From<MirrorError> for WebError {
    fn from(e: MirrorError) -> Self {
        match e {
            MirrorError::Internal(m) => WebError::Internal(m),
            other => WebError::BadRequest(other.to_string()),
        }
    }
}

impl From<askama::Error> for WebError {
    fn from(e: askama::Error) -> Self {
        WebError::Internal(format!("template: {e}"))
    }
}

impl WebError {
    fn status(&self) -> StatusCode {
        match self {
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::Conflict(_) => StatusCode::CONFLICT,
            WebError::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> &str {
        match self {
            WebError::BadRequest(m)
            | WebError::Forbidden(m)
            | WebError::Conflict(m)
            | WebError::TooMany { message: m, .. } => m,
            WebError::NotFound => "There is no page at this address.",
            WebError::Internal(_) => {
                "Something went wrong inside this Hearth. The details are in its log."
            }
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if let WebError::Internal(cause) = &self {
            log::error!("internal error: {cause}");
        }
        let status = self.status();
        let page = ErrorPage {
            title: status.canonical_reason().unwrap_or("Error"),
            message: self.message(),
        };
        let body = page.render().unwrap_or_else(|_| self.message().to_string());
        let mut response = (status, Html(body)).into_response();
        if let WebError::TooMany { retry_after, .. } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}

/// Renders a page, turning a template failure into an internal error.
pub(crate) fn render(page: &impl Template) -> Result<Html<String>, WebError> {
    Ok(Html(page.render()?))
}
