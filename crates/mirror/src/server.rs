//! The holder's side of the peer port: pairing for strangers, and for
//! confirmed peers the mirror protocol (docs/mirror-protocol.md).
//!
//! A pack is accepted only when its bytes hash to its name, and becomes
//! visible (a row in `mirror_held`) only after it is durable under its
//! final name. Deletions wait out the grace period.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Extension, Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use hearth_store::rusqlite::{OptionalExtension, params};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

use crate::{
    DeviceId, Mirror, MirrorError, PROTOCOL, PeerState, is_pack_name,
    pairing::{Joined, PairError},
};

/// The largest pack accepted (the engine writes about 16 MiB).
pub const MAX_PACK: u64 = 256 * 1024 * 1024;

/// Who is on the other end of this connection.
#[derive(Clone, Copy, Debug)]
pub struct PeerCert {
    pub id: DeviceId,
    pub addr: SocketAddr,
}

/// A refusal: a status and words for the other admin.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct E {
            error: String,
        }
        (self.0, Json(E { error: self.1 })).into_response()
    }
}

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

pub(crate) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

/// Accepts connections until the runtime stops.
pub(crate) async fn serve(
    mirror: Mirror,
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let app = routes().with_state(mirror);
    loop {
        let (tcp, addr) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                log::warn!("mirror: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(
                std::time::Duration::from_secs(10),
                acceptor.accept(tcp),
            )
            .await
            {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => return log::debug!("mirror: TLS from {addr} failed: {e}"),
                Err(_) => return log::debug!("mirror: TLS from {addr} timed out"),
            };
            let Some(id) = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| DeviceId::of_cert(c))
            else {
                return;
            };
            let peer = PeerCert { id, addr };
            let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
                req.extensions_mut().insert(peer);
                app.clone().oneshot(req.map(axum::body::Body::new))
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                // Read buffers stay below glibc's mmap threshold (256 KiB,
                // set in main), so the upload frames held on their way to
                // the disk come from the heap, not fresh mappings.
                .max_buf_size(128 * 1024)
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                log::debug!("mirror: connection from {addr} ended: {e}");
            }
        });
    }
}

fn routes() -> Router<Mirror> {
    Router::new()
        .route("/v1/pair", post(pair))
        .route("/v1/pair/confirm", post(pair_confirm))
        .route("/v1/hello", get(hello))
        .route("/v1/have", post(have))
        .route("/v1/packs", get(list))
        .route("/v1/packs/{name}", put(upload).get(download))
        .route("/v1/uploads/{name}", get(upload_state))
        .route("/v1/meta/{file}", put(put_meta).get(get_meta))
        .route("/v1/delete", post(delete))
        .route("/v1/prove", post(prove))
}

// ---- pairing -------------------------------------------------------------

#[derive(Debug, Deserialize, Serialize)]
pub struct PairRequest {
    pub spake: String,
    pub name: String,
    /// The port the joiner listens on, so we can dial it back.
    pub port: u16,
    pub replaces: bool,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct PairReply {
    pub spake: String,
    pub mac: String,
    pub name: String,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct PairConfirm {
    pub mac: String,
}

async fn pair(
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

fn pair_refusal(e: PairError) -> ApiError {
    let status = match e {
        PairError::NoCode => StatusCode::NOT_FOUND,
        PairError::Mismatch => StatusCode::FORBIDDEN,
        PairError::Malformed => StatusCode::BAD_REQUEST,
    };
    ApiError(status, e.to_string())
}

async fn pair_confirm(
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

// ---- the mirror protocol -------------------------------------------------

/// The confirmed peer on this connection, or a refusal.
pub(crate) async fn confirmed(m: &Mirror, peer: &PeerCert) -> Result<crate::Peer, ApiError> {
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

#[derive(Debug, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub name: String,
    pub quota: u64,
    pub used: u64,
}

async fn hello(
    State(m): State<Mirror>,
    Extension(peer): Extension<PeerCert>,
) -> Result<Json<Hello>, ApiError> {
    let p = confirmed(&m, &peer).await?;
    m.seen(peer.id, None).await;
    Ok(Json(Hello {
        protocol: PROTOCOL,
        name: m.name().to_string(),
        quota: p.quota,
        used: p.held_bytes,
    }))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Names {
    pub packs: Vec<String>,
}

/// Which of the owner's packs we lack. A pack waiting out a deletion that
/// the owner lists again is kept after all.
async fn have(
    State(m): State<Mirror>,
    Extension(peer): Extension<PeerCert>,
    Json(req): Json<Names>,
) -> Result<Json<Names>, ApiError> {
    confirmed(&m, &peer).await?;
    let owner = peer.id.to_hex();
    let want = m
        .0
        .store
        .write(move |c| {
            let tx = c.transaction()?;
            let mut want = vec![];
            {
                let mut held = tx.prepare_cached(
                    "SELECT delete_after IS NOT NULL FROM mirror_held WHERE owner = ?1 AND name = ?2",
                )?;
                let mut undelete = tx.prepare_cached(
                    "UPDATE mirror_held SET delete_after = NULL WHERE owner = ?1 AND name = ?2",
                )?;
                for name in req.packs.iter().filter(|n| is_pack_name(n)) {
                    match held
                        .query_row(params![owner, name], |r| r.get::<_, bool>(0))
                        .optional()?
                    {
                        None => want.push(name.clone()),
                        Some(true) => {
                            undelete.execute(params![owner, name])?;
                        }
                        Some(false) => {}
                    }
                }
            }
            tx.commit()?;
            Ok::<_, MirrorError>(want)
        })
        .await?;
    Ok(Json(Names { packs: want }))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Held {
    pub name: String,
    pub size: u64,
    pub delete_after: Option<i64>,
}

async fn list(
    State(m): State<Mirror>,
    Extension(peer): Extension<PeerCert>,
) -> Result<Json<Vec<Held>>, ApiError> {
    confirmed(&m, &peer).await?;
    let owner = peer.id.to_hex();
    let rows = m
        .0
        .store
        .read(move |c| {
            let rows = c
                .prepare("SELECT name, size, delete_after FROM mirror_held WHERE owner = ?1 ORDER BY name")?
                .query_map([owner], |r| {
                    Ok(Held {
                        name: r.get(0)?,
                        size: r.get::<_, i64>(1)? as u64,
                        delete_after: r.get(2)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok::<_, MirrorError>(rows)
        })
        .await?;
    Ok(Json(rows))
}

use crate::transfer::{delete, download, get_meta, prove, put_meta, upload, upload_state};
