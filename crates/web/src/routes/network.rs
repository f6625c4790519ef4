//! Admin → Network: this device on ZeroTier, so a paired Hearth far away
//! can reach it at its ZeroTier address. The page shows the node ID, each
//! joined network with its status and addresses, and joins or leaves a
//! network by its ID. The service itself is spoken to by
//! `hearth_net::zerotier`; every call is async HTTP to the loopback
//! service, so nothing here blocks the async threads.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::CookieJar;
use hearth_net::zerotier::{Network, NetworkId, ZeroTierError};
use serde::Deserialize;

use crate::{
    AppState, WebError,
    csrf::{CsrfForm, issue},
    error::render,
    pages::{NetworkPage, NetworkView, NodeView},
    session::Admin,
};

fn view(n: Network) -> NetworkView {
    NetworkView {
        words: n.status.describe(),
        ok: n.status.is_ok(),
        public: n.is_public(),
        id: n.id,
        name: n.name,
        addresses: n.assigned_addresses,
        device: n.port_device_name,
    }
}

/// The page as the service reports it now, with `error` from a refused
/// action and `typed` put back in the join field.
async fn page(
    state: &AppState,
    jar: CookieJar,
    status: StatusCode,
    error: Option<String>,
    typed: String,
) -> Result<Response, WebError> {
    let (jar, csrf) = issue(state, jar)?;
    let mut page = NetworkPage {
        csrf,
        error,
        problem: None,
        absent: false,
        node: None,
        networks: Vec::new(),
        pending: false,
        typed,
    };
    let zt = &state.zerotier;
    let found = match zt.node_status().await {
        Ok(node) => zt.networks().await.map(|list| (node, list)),
        Err(e) => Err(e),
    };
    match found {
        Ok((node, list)) => {
            page.pending = list.iter().any(|n| n.status.is_pending());
            page.node = Some(NodeView {
                address: node.address,
                online: node.online,
                version: node.version,
            });
            page.networks = list.into_iter().map(view).collect();
        }
        Err(e) => {
            if !e.is_absent() {
                log::warn!("zerotier: {e}");
            }
            page.absent = e.is_absent();
            page.problem = Some(e.to_string());
        }
    }
    Ok((status, jar, render(&page)?).into_response())
}

/// How a failed action is answered: the admin's typo is theirs (400), a
/// missing service is temporary (503), anything else is the service's
/// (502).
fn status_of(e: &ZeroTierError) -> StatusCode {
    match e {
        ZeroTierError::InvalidNetworkId(_) => StatusCode::BAD_REQUEST,
        ZeroTierError::NotJoined(_) => StatusCode::NOT_FOUND,
        e if e.is_absent() => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    }
}

pub(crate) async fn show(
    _admin: Admin,
    State(state): State<AppState>,
    jar: CookieJar,
) -> Result<Response, WebError> {
    page(&state, jar, StatusCode::OK, None, String::new()).await
}

#[derive(Deserialize)]
pub(crate) struct NetworkForm {
    #[serde(default)]
    network: String,
}

pub(crate) async fn join(
    _admin: Admin,
    State(state): State<AppState>,
    jar: CookieJar,
    CsrfForm(form): CsrfForm<NetworkForm>,
) -> Result<Response, WebError> {
    let result = match NetworkId::parse(&form.network) {
        Ok(id) => state.zerotier.join(&id).await.map(|_| ()),
        Err(e) => Err(e),
    };
    after(&state, jar, result, form.network).await
}

pub(crate) async fn leave(
    _admin: Admin,
    State(state): State<AppState>,
    jar: CookieJar,
    CsrfForm(form): CsrfForm<NetworkForm>,
) -> Result<Response, WebError> {
    let result = match NetworkId::parse(&form.network) {
        Ok(id) => state.zerotier.leave(&id).await,
        Err(e) => Err(e),
    };
    after(&state, jar, result, String::new()).await
}

/// Back to the page: a redirect when it worked (so a reload does not post
/// again), the page with the reason when it did not.
async fn after(
    state: &AppState,
    jar: CookieJar,
    result: Result<(), ZeroTierError>,
    typed: String,
) -> Result<Response, WebError> {
    match result {
        Ok(()) => Ok(Redirect::to("/admin/network").into_response()),
        Err(e) => {
            let status = status_of(&e);
            if status != StatusCode::BAD_REQUEST {
                log::warn!("zerotier: {e}");
            }
            let typed: String = typed.trim().chars().take(40).collect();
            page(state, jar, status, Some(e.to_string()), typed).await
        }
    }
}
