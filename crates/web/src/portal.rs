//! The captive portal in front of every route: connectivity probes get the
//! answer that opens (or, after "Continue", closes) the phone's portal
//! window, and requests for names that are not Hearth's are sent to the
//! landing page. The table of probes is in `hearth_net::captive` and
//! docs/captive-portal.md.

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use axum_extra::extract::cookie::CookieJar;
use hearth_net::captive;

use crate::{
    AppState, Peer, WebError,
    csrf::{CsrfForm, Empty},
    error::render,
    pages::ContinuePage,
};

fn found(location: &str) -> Response {
    let mut r = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

pub(crate) async fn captive(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(probe) = captive::probe(req.uri().path()) {
        if state.portal.is_accepted(peer.remote.ip()) {
            let s = probe.success;
            let status = StatusCode::from_u16(s.status).unwrap_or(StatusCode::OK);
            return (status, [(header::CONTENT_TYPE, s.content_type)], s.body).into_response();
        }
        return found(&peer.home_url());
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !host.is_empty() && !captive::is_own_host(host, &state.hostname) {
        return found(&peer.home_url());
    }
    next.run(req).await
}

/// "Continue": from now on this client's probes succeed, so its portal
/// window can close and its normal browser works on this network.
pub(crate) async fn continue_in_browser(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    _jar: CookieJar,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    state.portal.accept(peer.remote.ip());
    log::info!("captive portal: {} continued", peer.remote.ip());
    let page = ContinuePage {
        address: peer.home_url(),
    };
    Ok(render(&page)?.into_response())
}
