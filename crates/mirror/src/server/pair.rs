//! Pairing on the holder's side: the only requests a stranger may make.
//!
//! The SPAKE2 exchange itself is in `pairing`; these handlers carry it over
//! HTTP, turn its failures into statuses, and record the new device as
//! proposed (the admin still has to confirm it before anything is stored).

use std::net::SocketAddr;

use axum::{Extension, Json, extract::State, http::StatusCode};

use crate::{
    pairing::{Joined, PairError},
    protocol::{PairConfirm, PairReply, PairRequest},
    server::access::{ApiError, PeerCert, bad},
    service::Mirror,
};

pub(crate) async fn pair(
    State(m): State<Mirror>,
    Extension(peer): Extension<PeerCert>,
    Json(req): Json<PairRequest>,
) -> Result<Json<PairReply>, ApiError> {
    let msg = hex::decode(&req.spake).map_err(|_| bad("malformed pairing message"))?;
    let joined = Joined {
        name: req.name,
        address: SocketAddr::new(peer.addr.ip(), req.port).to_string(),
        replaces: req.replaces,
    };
    let (reply, mac) = m
        .codes()
        .respond(&msg, m.device(), peer.id, joined)
        .map_err(pair_refusal)?;
    Ok(Json(PairReply {
        spake: hex::encode(reply),
        mac: hex::encode(mac),
        name: m.name().to_string(),
    }))
}

/// No code shown is 404, a wrong code 403, so the joiner can tell the
/// admin which of the two to fix.
fn pair_refusal(e: PairError) -> ApiError {
    let status = match e {
        PairError::NoCode => StatusCode::NOT_FOUND,
        PairError::Mismatch => StatusCode::FORBIDDEN,
        PairError::Malformed => StatusCode::BAD_REQUEST,
    };
    ApiError(status, e.to_string())
}

pub(crate) async fn pair_confirm(
    State(m): State<Mirror>,
    Extension(peer): Extension<PeerCert>,
    Json(req): Json<PairConfirm>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mac = hex::decode(&req.mac).map_err(|_| bad("malformed confirmation"))?;
    let joined = m
        .codes()
        .confirm(&mac, m.device(), peer.id)
        .map_err(pair_refusal)?;
    m.propose(peer.id, &joined.name, &joined.address, joined.replaces)
        .await?;
    log::info!(
        "mirror: paired with \"{}\" ({}) at {}; waiting for the admin to confirm",
        joined.name,
        peer.id.short(),
        joined.address
    );
    Ok(Json(serde_json::json!({ "paired": true })))
}
