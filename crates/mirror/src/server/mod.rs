//! The holder's side of the peer port: accepting TLS connections, naming
//! the peer on each by its certificate hash, and routing its requests:
//! pairing for strangers, and for confirmed peers the mirror protocol
//! (docs/mirror-protocol.md).
//!
//! A pack is accepted only when its bytes hash to its name, and becomes
//! visible (a row in `mirror_held`) only after it is durable under its
//! final name. Deletions wait out the grace period.
//!
//! This file owns only the connection loop and the route table. What every
//! handler shares (the peer on the connection, refusals, the confirmed-peer
//! check) is in [`access`], and the handlers are in [`pair`], [`held`],
//! [`transfer`], [`update`] and [`boards`], none of which imports this file, so adding
//! a route never makes a cycle.

mod access;
mod boards;
mod held;
mod pair;
mod transfer;
mod update;

use std::sync::Arc;

use axum::{
    Router,
    routing::{get, post, put},
};
use hyper_util::rt::TokioIo;
use tower::ServiceExt;

use crate::{identity::DeviceId, server::access::PeerCert, service::Mirror};

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
        .route("/v1/pair", post(pair::pair))
        .route("/v1/pair/confirm", post(pair::pair_confirm))
        .route("/v1/hello", get(held::hello))
        .route("/v1/have", post(held::have))
        .route("/v1/packs", get(held::list))
        .route(
            "/v1/packs/{name}",
            put(transfer::upload).get(transfer::download),
        )
        .route("/v1/uploads/{name}", get(transfer::upload_state))
        .route(
            "/v1/meta/{file}",
            put(transfer::put_meta).get(transfer::get_meta),
        )
        .route("/v1/delete", post(held::delete))
        .route("/v1/prove", post(transfer::prove))
        .route("/v1/update/offer", get(update::offer))
        .route("/v1/update/files/{name}", get(update::file))
        .route("/v1/board/boards", get(boards::list))
        .route("/v1/board/since", post(boards::since))
        .route("/v1/board/poke", post(boards::poke))
        .route("/v1/board/photo", post(boards::photo))
}
