//! The admin session: its cookie and the extractor that demands it.

use axum::{
    extract::FromRequestParts,
    http::request::Parts,
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use hearth_auth::{SESSION_LIFETIME, SessionToken};

use crate::{AppState, WebError};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "hearth_session";

/// Proof that the request comes from the logged-in admin. Taking it as a
/// handler argument is what makes a route admin-only.
#[derive(Debug)]
pub struct Admin {
    _private: (),
}

/// Why a request is not an admin's.
#[derive(Debug)]
pub enum NotAdmin {
    /// Nobody has claimed this Hearth: go to setup.
    Unclaimed,
    /// Claimed, but this browser has no live session: go log in.
    LoggedOut,
    Error(WebError),
}

impl IntoResponse for NotAdmin {
    fn into_response(self) -> Response {
        match self {
            NotAdmin::Unclaimed => Redirect::to("/setup").into_response(),
            NotAdmin::LoggedOut => Redirect::to("/login").into_response(),
            NotAdmin::Error(e) => e.into_response(),
        }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = NotAdmin;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, NotAdmin> {
        let err = |e| NotAdmin::Error(WebError::from(e));
        if !state.auth.is_claimed().await.map_err(err)? {
            return Err(NotAdmin::Unclaimed);
        }
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(cookie) = jar.get(SESSION_COOKIE).map(|c| c.value().to_string()) else {
            return Err(NotAdmin::LoggedOut);
        };
        if state.auth.session_is_valid(&cookie).await.map_err(err)? {
            Ok(Admin { _private: () })
        } else {
            Err(NotAdmin::LoggedOut)
        }
    }
}

/// Adds the session cookie for a new login.
pub(crate) fn set(state: &AppState, jar: CookieJar, token: &SessionToken) -> CookieJar {
    let max_age = cookie::time::Duration::seconds(SESSION_LIFETIME.as_secs() as i64);
    jar.add(
        Cookie::build((SESSION_COOKIE, token.cookie_value().to_string()))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(state.secure_cookies)
            .max_age(max_age)
            .build(),
    )
}

/// Removes the session cookie.
pub(crate) fn clear(jar: CookieJar) -> CookieJar {
    jar.remove(Cookie::build(SESSION_COOKIE).path("/"))
}

/// Whether this browser holds a live admin session; for pages that anyone
/// may see but the admin sees a little differently.
pub(crate) async fn is_admin(state: &AppState, jar: &CookieJar) -> bool {
    match jar.get(SESSION_COOKIE) {
        Some(c) => state
            .auth
            .session_is_valid(c.value())
            .await
            .unwrap_or(false),
        None => false,
    }
}
