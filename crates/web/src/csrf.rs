//! CSRF protection for every form that changes state.
//!
//! Pages with forms call [`issue`] to get the token to embed; handlers take a
//! [`CsrfForm`] instead of axum's `Form`, so a handler cannot be written that
//! forgets the check. See `hearth_auth::CsrfKey` for the scheme.

use axum::{
    extract::{FromRequest, Request},
    http::HeaderMap,
};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use hearth_auth::CsrfKey;
use serde::{Deserialize, de::DeserializeOwned};

use crate::{AppState, WebError};

/// The cookie the token is bound to.
pub const CSRF_COOKIE: &str = "hearth_csrf";
/// Largest form body accepted by a CSRF-checked handler.
const FORM_LIMIT: usize = 64 * 1024;

const FORGED: &str =
    "This form has expired or did not come from this Hearth. Reload the page and try again.";

/// Returns the token for this browser, setting its cookie if it has none.
pub(crate) fn issue(state: &AppState, jar: CookieJar) -> Result<(CookieJar, String), WebError> {
    if let Some(c) = jar.get(CSRF_COOKIE) {
        let token = state.auth.csrf().token_for(c.value());
        return Ok((jar, token));
    }
    let value = CsrfKey::new_cookie().map_err(|e| WebError::Internal(e.to_string()))?;
    let token = state.auth.csrf().token_for(&value);
    let cookie = Cookie::build((CSRF_COOKIE, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.secure_cookies)
        .build();
    Ok((jar.add(cookie), token))
}

/// A urlencoded form whose `csrf` field has been checked against the
/// browser's CSRF cookie.
#[derive(Debug)]
pub struct CsrfForm<T>(pub T);

#[derive(Deserialize)]
struct TokenOnly {
    #[serde(default)]
    csrf: String,
}

impl<T: DeserializeOwned> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, WebError> {
        let (parts, body) = req.into_parts();
        if is_cross_site(&parts.headers) {
            log::warn!("refused a cross-site form post to {}", parts.uri.path());
            return Err(WebError::Forbidden(FORGED.into()));
        }
        let jar = CookieJar::from_headers(&parts.headers);
        let cookie = jar.get(CSRF_COOKIE).map(|c| c.value()).unwrap_or_default();
        let bytes = axum::body::to_bytes(body, FORM_LIMIT)
            .await
            .map_err(|_| WebError::BadRequest("The form was too large.".into()))?;
        let token = serde_urlencoded::from_bytes::<TokenOnly>(&bytes)
            .map(|t| t.csrf)
            .unwrap_or_default();
        if !state.auth.csrf().verify(cookie, &token) {
            log::warn!(
                "refused a form post to {} with a bad CSRF token",
                parts.uri.path()
            );
            return Err(WebError::Forbidden(FORGED.into()));
        }
        serde_urlencoded::from_bytes::<T>(&bytes)
            .map(CsrfForm)
            .map_err(|_| {
                WebError::BadRequest(
                    "The form was incomplete or malformed. Reload the page and try again.".into(),
                )
            })
    }
}

/// The refusal for a forged or expired form.
pub(crate) fn forged() -> WebError {
    WebError::Forbidden(FORGED.into())
}

/// Checks a token that arrived outside a urlencoded form (a multipart
/// field or a header) against this browser's CSRF cookie.
pub(crate) fn verify_token(
    state: &AppState,
    headers: &HeaderMap,
    token: &str,
) -> Result<(), WebError> {
    let jar = CookieJar::from_headers(headers);
    let cookie = jar.get(CSRF_COOKIE).map(|c| c.value()).unwrap_or_default();
    if is_cross_site(headers) || !state.auth.csrf().verify(cookie, token) {
        log::warn!("refused an upload with a bad CSRF token");
        return Err(forged());
    }
    Ok(())
}

/// Browsers say where a request came from; refuse forms from other sites
/// even before the token check.
fn is_cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
}
