//! The holder's side of shared boards: which boards this Hearth shares,
//! its events after the asker's cursors, and pokes (the asker has
//! something new; we pull from it soon). Confirmed peers only.

use axum::{Extension, Json, body::Bytes, extract::State, http::StatusCode};

use crate::{
    error::MirrorError,
    protocol::{MAX_BOARD_ASK, PhotoAsk, SharedBoards, Since, SinceReply},
    server::access::{ApiError, PeerCert, bad, confirmed},
    service::Mirror,
};

fn board_of(m: &Mirror) -> Result<&hearth_board::Board, ApiError> {
    m.board().ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            "This Hearth shares no boards.".into(),
        )
    })
}

/// Our own failure: logged, and "internal error" to the peer.
fn internal(e: hearth_board::BoardError) -> ApiError {
    ApiError::from(MirrorError::Internal(format!("board: {e}")))
}

/// `GET /v1/board/boards`.
pub(crate) async fn list(
    State(m): State<Mirror>,
    Extension(peer): Extension<PeerCert>,
) -> Result<Json<SharedBoards>, ApiError> {
    confirmed(&m, &peer).await?;
    let boards = board_of(&m)?.shared_boards().await.map_err(internal)?;
    Ok(Json(SharedBoards { boards }))
}

/// `POST /v1/board/since`.
pub(crate) async fn since(
    State(m): State<Mirror>,
    Extension(peer): Extension<PeerCert>,
    body: Bytes,
) -> Result<Json<SinceReply>, ApiError> {
    confirmed(&m, &peer).await?;
    if body.len() > MAX_BOARD_ASK {
        return Err(bad("That request is too large."));
    }
    let ask: Since = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("That request is malformed: {e}")))?;
    let batch = match board_of(&m)?
        .events_after(&ask.board, ask.cursors, &peer.id.to_hex(), ask.limit)
        .await
    {
        Ok(b) => b,
        Err(hearth_board::BoardError::NotFound) => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("This Hearth does not share a board called {:?}.", ask.board),
            ));
        }
        Err(e) => return Err(internal(e)),
    };
    m.with_link(peer.id, |l| l.out_today += batch.events.len() as u64);
    Ok(Json(SinceReply {
        events: batch.events,
        certs: batch
            .certs
            .into_iter()
            .map(|(k, v)| (k, hex::encode(v)))
            .collect(),
        more: batch.more,
    }))
}

/// `POST /v1/board/photo`: a shared post's photo, as stored here (already
/// cleaned and re-encoded when it arrived or was uploaded).
pub(crate) async fn photo(
    State(m): State<Mirror>,
    Extension(peer): Extension<PeerCert>,
    body: Bytes,
) -> Result<Vec<u8>, ApiError> {
    confirmed(&m, &peer).await?;
    let ask: PhotoAsk = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("That request is malformed: {e}")))?;
    let path = board_of(&m)?
        .shared_photo(&ask.board, &ask.origin, ask.seq)
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                "This Hearth has no such photo.".into(),
            )
        })?;
    tokio::fs::read(&path).await.map_err(|e| {
        log::warn!("board server: reading {}: {e}", path.display());
        ApiError(
            StatusCode::NOT_FOUND,
            "This Hearth has no such photo.".into(),
        )
    })
}

/// `POST /v1/board/poke`: the peer has new events.
pub(crate) async fn poke(
    State(m): State<Mirror>,
    Extension(peer): Extension<PeerCert>,
) -> Result<StatusCode, ApiError> {
    confirmed(&m, &peer).await?;
    m.poked(peer.id);
    Ok(StatusCode::NO_CONTENT)
}
