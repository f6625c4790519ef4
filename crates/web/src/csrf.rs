//! CSRF protection for every form that changes state.
//!
//! Pages with forms call [`issue`] to get the token to embed; handlers take a
//! [`CsrfForm`] instead of axum's `Form` (or call [`verify_token`] for a
//! multipart body), so a handler cannot be written that forgets the check.
//! See `hearth_auth::CsrfKey` for the scheme.
//!
//! Before the token, both paths ask [`from_elsewhere`] what the browser
//! says about where the request came from (`Sec-Fetch-Site`, `Origin`,
//! `Referer`): the one place those headers are read. The rule is in
//! docs/security.md.

use axum::{
    extract::{FromRequest, Request},
    http::{HeaderMap, header},
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

/// The form of a button: nothing but the CSRF token, which [`CsrfForm`]
/// checks and removes.
#[derive(Debug, Deserialize)]
pub(crate) struct Empty {}

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
        if let Some(why) = from_elsewhere(&parts.headers) {
            log::warn!(
                "refused a cross-site form post to {} ({why})",
                parts.uri.path()
            );
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

/// The token a scripted upload sends in `X-Hearth-CSRF`: `Ok(true)` when
/// it came and matches, `Ok(false)` when there is none (a plain form sends
/// it as its first field instead), the 403 when it does not match.
pub(crate) fn header_token(state: &AppState, headers: &HeaderMap) -> Result<bool, WebError> {
    match headers.get("x-hearth-csrf").and_then(|v| v.to_str().ok()) {
        Some(token) => verify_token(state, headers, token).map(|()| true),
        None => Ok(false),
    }
}

/// The request's declared body length, if any: uploads check it against
/// free space before storing a byte.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
}

/// Checks a token that arrived outside a urlencoded form (a multipart
/// field or a header) against this browser's CSRF cookie.
pub(crate) fn verify_token(
    state: &AppState,
    headers: &HeaderMap,
    token: &str,
) -> Result<(), WebError> {
    if let Some(why) = from_elsewhere(headers) {
        log::warn!("refused a cross-site upload ({why})");
        return Err(forged());
    }
    let jar = CookieJar::from_headers(headers);
    let cookie = jar.get(CSRF_COOKIE).map(|c| c.value()).unwrap_or_default();
    if !state.auth.csrf().verify(cookie, token) {
        log::warn!("refused an upload with a bad CSRF token");
        return Err(forged());
    }
    Ok(())
}

/// Why the browser's own headers say this request came from another site,
/// for the log; `None` when they do not. Forms from elsewhere are refused
/// even before the token check:
///
/// - `Sec-Fetch-Site: cross-site` is refused outright;
/// - an `Origin` must name the host the request came to (its `Host`
///   header, compared as `host[:port]`, the scheme's default port filled
///   in), and so, when there is no `Origin`, must a `Referer`;
/// - `Origin: null` is what browsers send with Hearth's own forms, because
///   its pages say `Referrer-Policy: no-referrer`; they send
///   `Sec-Fetch-Site: same-origin` with it. A `null` from a sandboxed
///   frame, a `data:` page or a redirect from another site carries another
///   `Sec-Fetch-Site` value, and is refused.
///
/// A request with neither `Origin` nor `Referer` (older browsers, scripts)
/// is left to the CSRF token.
fn from_elsewhere(headers: &HeaderMap) -> Option<String> {
    let fetch_site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
    if fetch_site == Some(b"cross-site") {
        return Some("Sec-Fetch-Site: cross-site".into());
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let (name, value) = match (headers.get(header::ORIGIN), headers.get(header::REFERER)) {
        (Some(origin), _) => ("Origin", origin),
        (None, Some(referer)) => ("Referer", referer),
        (None, None) => return None,
    };
    let value = String::from_utf8_lossy(value.as_bytes());
    if name == "Origin" && value == "null" {
        return match fetch_site {
            None | Some(b"same-origin") => None,
            Some(other) => Some(format!(
                "Origin: null with Sec-Fetch-Site: {}",
                String::from_utf8_lossy(other)
            )),
        };
    }
    if host.is_some_and(|host| same_host(&value, host)) {
        return None;
    }
    Some(format!("{name} {value:?} for Host {host:?}"))
}

/// Whether the URL `url` (an `Origin` or `Referer`) names `host` (a `Host`
/// header): the same host, case aside, and the same port, a missing port
/// being the default of the URL's scheme.
fn same_host(url: &str, host: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // Browsers send no user name in either header; ignore one if present.
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    match (split_port(authority), split_port(host)) {
        (Some((a, a_port)), Some((h, h_port))) => {
            a.eq_ignore_ascii_case(h) && a_port.or(default) == h_port.or(default)
        }
        _ => false,
    }
}

/// `host[:port]` as (host, port): `None` when it is not one (no host, a
/// port that is not a number).
fn split_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = match authority.strip_prefix('[') {
        // An IPv6 literal: the port comes after the bracket.
        Some(v6) => {
            let end = v6.find(']')?;
            let port = &v6[end + 1..];
            let port = if port.is_empty() {
                ""
            } else {
                port.strip_prefix(':')?
            };
            (&authority[..end + 2], port)
        }
        None => authority.split_once(':').unwrap_or((authority, "")),
    };
    if host.is_empty() {
        return None;
    }
    let port = if port.is_empty() {
        None
    } else {
        Some(port.parse().ok()?)
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn own_host_is_the_host_header_scheme_aside() {
        for (url, host) in [
            ("http://10.42.0.1", "10.42.0.1"),
            ("http://10.42.0.1:80", "10.42.0.1"),
            ("http://10.42.0.1", "10.42.0.1:80"),
            ("https://hearth.local", "hearth.local:443"),
            ("http://Hearth.Local:8080/admin?x=1#y", "hearth.local:8080"),
            ("http://[fe80::1]:8080/x", "[fe80::1]:8080"),
            ("http://[::1]", "[::1]"),
        ] {
            assert!(same_host(url, host), "{url} {host}");
        }
        for (url, host) in [
            ("http://evil.example", "10.42.0.1"),
            ("http://10.42.0.1:8080", "10.42.0.1"),
            ("https://10.42.0.1", "10.42.0.1:80"),
            ("http://10.42.0.1.evil.example", "10.42.0.1"),
            ("http://evil.example/http://10.42.0.1", "10.42.0.1"),
            ("http://[::1]:81", "[::1]:80"),
            ("10.42.0.1", "10.42.0.1"),
            ("http://", "10.42.0.1"),
            ("http://10.42.0.1:x", "10.42.0.1"),
        ] {
            assert!(!same_host(url, host), "{url} {host}");
        }
    }

    #[test]
    fn forms_from_elsewhere_are_named_and_others_left_to_the_token() {
        let host = ("host", "10.42.0.1");
        for ok in [
            vec![host],
            vec![host, ("origin", "http://10.42.0.1")],
            vec![host, ("referer", "http://10.42.0.1/admin")],
            vec![host, ("origin", "null"), ("sec-fetch-site", "same-origin")],
            vec![host, ("origin", "null")],
            vec![host, ("sec-fetch-site", "same-origin")],
        ] {
            assert_eq!(from_elsewhere(&headers(&ok)), None, "{ok:?}");
        }
        for bad in [
            vec![host, ("sec-fetch-site", "cross-site")],
            vec![host, ("origin", "http://evil.example")],
            vec![host, ("referer", "http://evil.example/x")],
            // Origin wins over a Referer that looks right.
            vec![
                host,
                ("origin", "http://evil.example"),
                ("referer", "http://10.42.0.1/"),
            ],
            vec![host, ("origin", "null"), ("sec-fetch-site", "cross-site")],
            vec![host, ("origin", "null"), ("sec-fetch-site", "same-site")],
            vec![host, ("origin", "null"), ("sec-fetch-site", "none")],
            // Where it came from, but not where it went.
            vec![("origin", "http://10.42.0.1")],
        ] {
            assert!(from_elsewhere(&headers(&bad)).is_some(), "{bad:?}");
        }
    }
}
