//! The first-run claim, login and logout.

use axum::{
    extract::{ConnectInfo, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::CookieJar;
use hearth_auth::{AuthError, MIN_PASSWORD_LEN};
use serde::Deserialize;

use crate::{
    AppState, WebError,
    csrf::{CsrfForm, Empty, issue},
    error::render,
    pages::{LoginPage, SetupPage},
    session::{self, SESSION_COOKIE},
};

#[derive(Deserialize)]
pub(crate) struct SetupForm {
    password: String,
    confirm: String,
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    password: String,
}

pub(crate) async fn setup_page(
    State(state): State<AppState>,
    jar: CookieJar,
) -> Result<Response, WebError> {
    if state.auth.is_claimed().await? {
        return Ok(Redirect::to("/login").into_response());
    }
    setup_form(&state, jar, StatusCode::OK, None)
}

/// Renders a page with a form, issuing this browser's CSRF token for it.
fn form_page<P: askama::Template>(
    state: &AppState,
    jar: CookieJar,
    status: StatusCode,
    page: impl FnOnce(String) -> P,
) -> Result<Response, WebError> {
    let (jar, csrf) = issue(state, jar)?;
    Ok((status, jar, render(&page(csrf))?).into_response())
}

fn setup_form(
    state: &AppState,
    jar: CookieJar,
    status: StatusCode,
    error: Option<String>,
) -> Result<Response, WebError> {
    form_page(state, jar, status, |csrf| SetupPage {
        csrf,
        error,
        min_len: MIN_PASSWORD_LEN,
    })
}

pub(crate) async fn setup(
    State(state): State<AppState>,
    jar: CookieJar,
    CsrfForm(form): CsrfForm<SetupForm>,
) -> Result<Response, WebError> {
    match state.auth.claim(&form.password, &form.confirm).await {
        Ok(token) => {
            let jar = session::set(&state, jar, &token);
            // The last step of setup, when there is an open hotspot.
            let next = if super::hotspot::needs_setup(&state).await {
                "/admin/hotspot"
            } else {
                "/admin"
            };
            Ok((jar, Redirect::to(next)).into_response())
        }
        Err(AuthError::BadPassword(message)) => {
            setup_form(&state, jar, StatusCode::BAD_REQUEST, Some(message))
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn login_page(
    State(state): State<AppState>,
    jar: CookieJar,
) -> Result<Response, WebError> {
    if !state.auth.is_claimed().await? {
        return Ok(Redirect::to("/setup").into_response());
    }
    if let Some(c) = jar.get(SESSION_COOKIE)
        && state.auth.session_is_valid(c.value()).await?
    {
        return Ok(Redirect::to("/admin").into_response());
    }
    login_form(&state, jar, StatusCode::OK, None)
}

fn login_form(
    state: &AppState,
    jar: CookieJar,
    status: StatusCode,
    error: Option<String>,
) -> Result<Response, WebError> {
    form_page(state, jar, status, |csrf| LoginPage { csrf, error })
}

pub(crate) async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<crate::Peer>,
    jar: CookieJar,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Result<Response, WebError> {
    match state.auth.login(peer.remote.ip(), &form.password).await {
        Ok(token) => {
            let jar = session::set(&state, jar, &token);
            Ok((jar, Redirect::to("/admin")).into_response())
        }
        Err(AuthError::NotClaimed) => Ok(Redirect::to("/setup").into_response()),
        Err(e @ AuthError::WrongPassword) => {
            login_form(&state, jar, StatusCode::UNAUTHORIZED, Some(e.to_string()))
        }
        Err(e @ AuthError::Throttled { retry_after }) => {
            let mut response = login_form(
                &state,
                jar,
                StatusCode::TOO_MANY_REQUESTS,
                Some(e.to_string()),
            )?;
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                retry_after.as_secs().max(1).into(),
            );
            Ok(response)
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    if let Some(c) = jar.get(SESSION_COOKIE) {
        state.auth.logout(c.value()).await?;
    }
    Ok((session::clear(jar), Redirect::to("/login")).into_response())
}
