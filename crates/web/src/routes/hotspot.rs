//! Admin → Hotspot: the last step of setup (name the hotspot and give it a
//! WPA2 password) and later changes. The rules that keep a bad change from
//! locking everyone out are in `hearth_net::hotspot`.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::CookieJar;
use hearth_net::hotspot::{HotspotError, State as HotspotState, validate};
use serde::Deserialize;

use crate::{
    AppState, WebError,
    csrf::{CsrfForm, Empty, issue},
    error::render,
    pages::HotspotPage,
    session::Admin,
};

async fn read_state(state: &AppState) -> Result<HotspotState, WebError> {
    let hotspot = state.hotspot.clone();
    tokio::task::spawn_blocking(move || hotspot.state())
        .await
        .map_err(|e| WebError::Internal(format!("hotspot: {e}")))
}

/// Whether the admin should be sent here after claiming: a hotspot exists
/// and is still open.
pub(crate) async fn needs_setup(state: &AppState) -> bool {
    matches!(
        read_state(state).await,
        Ok(HotspotState::Ready { current, .. }) if current.psk.is_none()
    )
}

async fn page(
    state: &AppState,
    jar: CookieJar,
    status: StatusCode,
    error: Option<String>,
) -> Result<Response, WebError> {
    let (jar, csrf) = issue(state, jar)?;
    let mut page = HotspotPage {
        csrf,
        error,
        unavailable: None,
        ssid: String::new(),
        protected: false,
        pending_secs: None,
        confirm_minutes: state.hotspot.confirm_window().as_secs().div_ceil(60),
    };
    match read_state(state).await? {
        HotspotState::Unavailable(why) => page.unavailable = Some(why),
        HotspotState::Ready {
            current,
            pending_secs,
        } => {
            page.protected = current.psk.is_some();
            page.ssid = current.ssid;
            page.pending_secs = pending_secs;
        }
    }
    Ok((status, jar, render(&page)?).into_response())
}

pub(crate) async fn show(
    _admin: Admin,
    State(state): State<AppState>,
    jar: CookieJar,
) -> Result<Response, WebError> {
    page(&state, jar, StatusCode::OK, None).await
}

#[derive(Deserialize)]
pub(crate) struct ChangeForm {
    ssid: String,
    password: String,
    confirm: String,
}

pub(crate) async fn change(
    _admin: Admin,
    State(state): State<AppState>,
    jar: CookieJar,
    CsrfForm(form): CsrfForm<ChangeForm>,
) -> Result<Response, WebError> {
    if form.password != form.confirm {
        let msg = "The two passwords differ. Type the same password twice.";
        return page(&state, jar, StatusCode::BAD_REQUEST, Some(msg.into())).await;
    }
    let new = match validate(&form.ssid, &form.password) {
        Ok(s) => s,
        Err(e) => return page(&state, jar, StatusCode::BAD_REQUEST, Some(e.to_string())).await,
    };
    let hotspot = state.hotspot.clone();
    let result = tokio::task::spawn_blocking(move || hotspot.change(&new))
        .await
        .map_err(|e| WebError::Internal(format!("hotspot: {e}")))?;
    match result {
        Ok(()) => Ok(Redirect::to("/admin/hotspot").into_response()),
        Err(HotspotError::Internal(m)) => Err(WebError::Internal(m)),
        Err(e) => page(&state, jar, StatusCode::BAD_GATEWAY, Some(e.to_string())).await,
    }
}

pub(crate) async fn keep(
    _admin: Admin,
    State(state): State<AppState>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    if state.hotspot.keep() {
        Ok(Redirect::to("/admin").into_response())
    } else {
        // Too late: the old settings are back (or nothing was pending).
        Ok(Redirect::to("/admin/hotspot").into_response())
    }
}
