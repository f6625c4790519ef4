//! The holder's side of updates from a peer: offering the newest signed
//! update this device keeps (the one it runs or has staged) to its
//! confirmed peers, and sending that update's files.
//!
//! The holder only passes on what it verified itself (`Updates::offer`
//! checks the slot's signature and every file's hash); the asker checks
//! everything again with its own keys, so a holder can never make a peer
//! install something its admin does not trust. Only names the offered
//! manifest lists are served, from that slot's folder.

use std::path::PathBuf;

use axum::{
    Extension, Json,
    body::Body,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use hearth_update::Signed;

use crate::{
    blocking::blocking,
    error::MirrorError,
    pool::PIECE,
    protocol::Offer,
    server::access::{ApiError, PeerCert, confirmed},
    service::Mirror,
};

/// The offered update, verified again, or 404.
async fn offered(m: &Mirror) -> Result<(Signed, PathBuf), ApiError> {
    let updates = m.updates().clone();
    blocking(move || Ok::<_, std::io::Error>(updates.offer()))
        .await?
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                "This Hearth has no update to offer.".into(),
            )
        })
}

/// `GET /v1/update/offer`: the manifest and signature, verbatim.
pub(crate) async fn offer(
    State(m): State<Mirror>,
    Extension(peer): Extension<PeerCert>,
) -> Result<Json<Offer>, ApiError> {
    confirmed(&m, &peer).await?;
    let (signed, _) = offered(&m).await?;
    // A manifest is UTF-8 (it parsed as TOML), so this keeps every byte.
    let manifest = String::from_utf8(signed.bytes)
        .map_err(|_| MirrorError::Internal("the offered manifest is not UTF-8".into()))?;
    Ok(Json(Offer {
        manifest,
        signature: signed.signature,
    }))
}

/// `GET /v1/update/files/{name}`: one file the offered manifest lists,
/// streamed from the slot in pieces.
pub(crate) async fn file(
    State(m): State<Mirror>,
    Extension(peer): Extension<PeerCert>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    confirmed(&m, &peer).await?;
    let (signed, dir) = offered(&m).await?;
    let entry = signed
        .manifest
        .files
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                "The offered update has no such file.".into(),
            )
        })?;
    let path = dir.join(&entry.name);
    let file = blocking(move || std::fs::File::open(path)).await?;
    log::info!(
        "mirror: sending {} of update {} to {}",
        entry.name,
        signed.manifest.version,
        peer.id.short()
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, entry.size.to_string()),
        ],
        file_body(m, file, entry.size),
    )
        .into_response())
}

/// `len` bytes of `file` as a response body, read on a blocking thread
/// into reused buffers, a few pieces ahead of the socket.
fn file_body(m: Mirror, mut file: std::fs::File, len: u64) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    // Not awaited: the reader stops at the end or when the body is dropped
    // (its next send fails); a read error travels in the body.
    drop(blocking(move || {
        use std::io::Read;
        let mut sent = 0u64;
        while sent < len {
            let want = (PIECE as u64).min(len - sent);
            let mut buf = m.0.pool.take();
            let n = match (&mut file).take(want).read_to_end(&mut buf) {
                Ok(0) => {
                    let _ = tx.blocking_send(Err(std::io::ErrorKind::UnexpectedEof.into()));
                    break;
                }
                Ok(n) => n,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            };
            if tx.blocking_send(Ok(m.0.pool.bytes(buf))).is_err() {
                break;
            }
            sent += n as u64;
        }
        Ok::<_, std::io::Error>(())
    }));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Body::from_stream(stream)
}
