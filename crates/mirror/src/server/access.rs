//! What every handler on the peer port shares: who is on the other end
//! ([`PeerCert`]), how a request is refused ([`ApiError`], [`bad`]), and the
//! check that the peer is one this device's admin confirmed ([`confirmed`]).
//!
//! It is its own module, below the handlers and the router, so that the
//! router can import the handlers and the handlers these without either
//! importing the other.

use std::net::SocketAddr;

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};

use crate::{
    error::MirrorError,
    identity::DeviceId,
    peers::{Peer, PeerState},
    protocol::Refusal,
    service::Mirror,
};

/// Who is on the other end of this connection, put into each request's
/// extensions by the connection loop. The ID is the hash of the certificate
/// the TLS handshake checked, so handlers can trust it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeerCert {
    pub id: DeviceId,
    pub addr: SocketAddr,
}

/// A refusal: a status and words for the other admin.
#[derive(Debug)]
pub(crate) struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(Refusal { error: self.1 })).into_response()
    }
}

/// Internal failures are logged here and reach the peer only as "internal
/// error": the other admin cannot act on our paths or SQL.
impl From<MirrorError> for ApiError {
    fn from(e: MirrorError) -> Self {
        log::error!("mirror server: {e}");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        ApiError::from(MirrorError::from(e))
    }
}

/// A 400 with `msg`: the peer sent something malformed.
pub(crate) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

/// The confirmed peer on this connection, or a refusal.
pub(crate) async fn confirmed(m: &Mirror, peer: &PeerCert) -> Result<Peer, ApiError> {
    match m.peer(peer.id).await? {
        Some(p) if p.state == PeerState::Confirmed => Ok(p),
        Some(_) => Err(ApiError(
            StatusCode::FORBIDDEN,
            "The admin of this Hearth has not confirmed the pairing yet.".into(),
        )),
        None => Err(ApiError(
            StatusCode::FORBIDDEN,
            "This Hearth is not paired with your device.".into(),
        )),
    }
}
