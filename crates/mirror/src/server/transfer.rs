//! The holder's handlers that move bytes: resumable pack uploads,
//! downloads for disaster recovery, the repository's key files, proof-of-
//! storage answers, and removing packs whose grace period is over.
//!
//! Everything here touches the disk, and all of it goes through
//! [`blocking`]: an upload's writer thread is fed from the socket; each
//! step that must be durable (fsync, rename, fsync the folder) happens in
//! one closure, in order, before the row that makes it visible.

use std::path::PathBuf;

use axum::{
    Extension, Json,
    body::Body,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use hearth_store::rusqlite::params;
use hearth_system::unix_now;
use http_body_util::BodyExt;
use serde::Deserialize;

use crate::{
    blocking::blocking,
    error::MirrorError,
    identity::{DeviceId, write_durably},
    pool::PIECE,
    protocol::{
        Challenge, MAX_META, MAX_PACK, META_FILES, Proof, Received, hash_file, is_pack_name,
        pack_path,
    },
    server::access::{ApiError, PeerCert, bad, confirmed},
    service::Mirror,
};

impl Mirror {
    fn pack_file(&self, owner: DeviceId, name: &str) -> PathBuf {
        pack_path(&self.held(owner), name)
    }

    fn part_file(&self, owner: DeviceId, name: &str) -> PathBuf {
        self.held(owner)
            .join("incoming")
            .join(format!("{name}.part"))
    }

    /// Deletes what owners asked to delete once the grace period is over:
    /// the file first (and its folder synced), then the row.
    pub(crate) async fn expire_deletions(&self) -> Result<usize, MirrorError> {
        let due: Vec<(String, String)> = self
            .0
            .store
            .read(|c| {
                let rows = c
                    .prepare(
                        "SELECT owner, name FROM mirror_held
                         WHERE delete_after IS NOT NULL AND delete_after <= ?1",
                    )?
                    .query_map([unix_now()], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                Ok::<_, MirrorError>(rows)
            })
            .await?;
        for (owner, name) in &due {
            let Some(id) = DeviceId::from_hex(owner) else {
                continue;
            };
            let path = self.pack_file(id, name);
            blocking(move || match std::fs::remove_file(&path) {
                Ok(()) => hearth_system::sync_parent(&path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            })
            .await?;
            let (o, n) = (owner.clone(), name.clone());
            self.0
                .store
                .write(move |c| {
                    c.execute(
                        "DELETE FROM mirror_held WHERE owner = ?1 AND name = ?2 AND delete_after IS NOT NULL",
                        params![o, n],
                    )?;
                    Ok::<_, MirrorError>(())
                })
                .await?;
        }
        if !due.is_empty() {
            log::info!(
                "mirror: deleted {} packs whose grace period ended",
                due.len()
            );
        }
        Ok(due.len())
    }
}

/// Bytes of uploads in flight per owner, so parallel uploads cannot
/// together pass the quota.
struct Reservation {
    m: Mirror,
    owner: DeviceId,
    size: u64,
}

impl Reservation {
    fn take(
        m: &Mirror,
        owner: DeviceId,
        size: u64,
        fits: impl FnOnce(u64) -> bool,
    ) -> Option<Reservation> {
        let mut map = m.0.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let now = map.get(&owner).copied().unwrap_or(0);
        if !fits(now) {
            return None;
        }
        map.insert(owner, now + size);
        Some(Reservation {
            m: m.clone(),
            owner,
            size,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut map = self.m.0.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = map.get_mut(&self.owner) {
            *v = v.saturating_sub(self.size);
        }
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if is_pack_name(name) {
        Ok(())
    } else {
        Err(bad("not a pack name"))
    }
}

/// How much of an interrupted upload we have.
pub(crate) async fn upload_state(
    State(m): State<Mirror>,
    Extension(peer): Extension<PeerCert>,
    Path(name): Path<String>,
) -> Result<Json<Received>, ApiError> {
    confirmed(&m, &peer).await?;
    check_name(&name)?;
    let part = m.part_file(peer.id, &name);
    let received = blocking(move || std::fs::metadata(part).map(|md| md.len()))
        .await
        .unwrap_or(0);
    Ok(Json(Received {
        received,
        stored: false,
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct UploadQuery {
    offset: u64,
    size: u64,
}

/// Receives a pack from `offset` on. The upload may stop anywhere (the
/// link drops); the owner asks `/v1/uploads/{name}` and goes on from there.
pub(crate) async fn upload(
    State(m): State<Mirror>,
    Extension(peer): Extension<PeerCert>,
    Path(name): Path<String>,
    Query(q): Query<UploadQuery>,
    body: Body,
) -> Result<Json<Received>, ApiError> {
    let p = confirmed(&m, &peer).await?;
    check_name(&name)?;
    if q.size == 0 || q.size > MAX_PACK {
        return Err(bad("pack size out of range"));
    }
    // The quota counts what we hold, uploads in flight, and this pack (a
    // replacement of a damaged copy counts once).
    let already = held_size(&m, peer.id, &name).await?;
    let _reservation = Reservation::take(&m, peer.id, q.size, |in_flight| {
        p.held_bytes - already + in_flight + q.size <= p.quota
    })
    .ok_or_else(|| {
        ApiError(
            StatusCode::INSUFFICIENT_STORAGE,
            format!(
                "this Hearth keeps at most {} bytes for you and {} are in use",
                p.quota, p.held_bytes
            ),
        )
    })?;
    let part = m.part_file(peer.id, &name);
    let have = {
        let part = part.clone();
        blocking(move || {
            if let Some(dir) = part.parent() {
                std::fs::create_dir_all(dir)?;
            }
            Ok::<_, std::io::Error>(std::fs::metadata(&part).map(|md| md.len()).unwrap_or(0))
        })
        .await?
    };
    if q.offset > have {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("resume from {have}, not {}", q.offset),
        ));
    }
    // Writing and hashing happen on a blocking thread, so the async threads
    // only move bytes off the socket. hyper's frames go over as they are
    // (no copy), a piece's worth at a time. The writer starts now and runs
    // while the body streams in; it is awaited once the body ends.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<bytes::Bytes>>(8);
    let (path, offset) = (part.clone(), q.offset);
    let writer = blocking(move || -> std::io::Result<Option<String>> {
        use std::io::{Seek, Write};
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)?;
        f.set_len(offset)?;
        f.seek(std::io::SeekFrom::Start(offset))?;
        // A whole upload is hashed as it arrives; a resumed one is hashed
        // from the file once complete.
        let mut hasher = (offset == 0).then(blake3::Hasher::new);
        while let Some(frames) = rx.blocking_recv() {
            for frame in frames {
                if let Some(h) = hasher.as_mut() {
                    h.update(&frame);
                }
                f.write_all(&frame)?;
            }
        }
        f.sync_all()?;
        Ok(hasher.map(|h| h.finalize().to_hex().to_string()))
    });
    let mut received = q.offset;
    let mut body = body;
    let mut broken = false;
    let (mut frames, mut pending) = (Vec::new(), 0usize);
    let mut too_long = false;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            // The link dropped: keep what arrived for the resume.
            broken = true;
            break;
        };
        if let Ok(data) = frame.into_data() {
            received += data.len() as u64;
            if received > q.size {
                too_long = true;
                break;
            }
            pending += data.len();
            frames.push(data);
            if pending >= PIECE {
                pending = 0;
                if tx.send(std::mem::take(&mut frames)).await.is_err() {
                    break;
                }
            }
        }
    }
    if !frames.is_empty() {
        let _ = tx.send(frames).await;
    }
    drop(tx);
    let streamed = writer.await?;
    if too_long {
        let _ = blocking(move || std::fs::remove_file(&part)).await;
        return Err(bad("more bytes than the declared size"));
    }
    if broken || received < q.size {
        return Ok(Json(Received {
            received,
            stored: false,
        }));
    }
    let (mm, owner, n) = (m.clone(), peer.id, name.clone());
    let stored = blocking(move || mm.store_part(owner, &n, q.size, streamed)).await?;
    if !stored {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the pack's bytes do not match its name; send it again".into(),
        ));
    }
    Ok(Json(Received {
        received,
        stored: true,
    }))
}

async fn held_size(m: &Mirror, owner: DeviceId, name: &str) -> Result<u64, MirrorError> {
    let (o, n) = (owner.to_hex(), name.to_string());
    m.0.store
        .read(move |c| {
            Ok(c.query_row(
                "SELECT coalesce(sum(size), 0) FROM mirror_held WHERE owner = ?1 AND name = ?2",
                params![o, n],
                |r| r.get::<_, i64>(0),
            )? as u64)
        })
        .await
}

impl Mirror {
    /// Checks a complete upload against its name and moves it into place;
    /// only then is it recorded. Blocking: run it inside [`blocking`].
    fn store_part(
        &self,
        owner: DeviceId,
        name: &str,
        size: u64,
        streamed: Option<String>,
    ) -> Result<bool, MirrorError> {
        let part = self.part_file(owner, name);
        let hash = match streamed {
            Some(h) => h,
            None => hash_file(&part, &[])?,
        };
        if hash != name {
            std::fs::remove_file(&part)?;
            log::warn!(
                "mirror: a pack from {} did not match its name; dropped",
                owner.short()
            );
            return Ok(false);
        }
        let dest = self.pack_file(owner, name);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::rename(&part, &dest)?;
        hearth_system::sync_parent(&dest)?;
        let (o, n) = (owner.to_hex(), name.to_string());
        self.0.store.write_now(move |c| {
            c.execute(
                "INSERT INTO mirror_held (owner, name, size, received_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (owner, name) DO UPDATE SET size = excluded.size,
                    received_at = excluded.received_at, delete_after = NULL",
                params![o, n, size as i64, unix_now()],
            )?;
            Ok(())
        })?;
        Ok(true)
    }
}

/// A held pack, for disaster recovery.
pub(crate) async fn download(
    State(m): State<Mirror>,
    Extension(peer): Extension<PeerCert>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    confirmed(&m, &peer).await?;
    check_name(&name)?;
    let path = m.pack_file(peer.id, &name);
    let data = blocking(move || std::fs::read(path))
        .await
        .map_err(|_| ApiError(StatusCode::NOT_FOUND, "no such pack here".into()))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], data).into_response())
}

fn check_meta(file: &str) -> Result<(), ApiError> {
    if META_FILES.contains(&file) {
        Ok(())
    } else {
        Err(bad("not a repository file"))
    }
}

pub(crate) async fn put_meta(
    State(m): State<Mirror>,
    Extension(peer): Extension<PeerCert>,
    Path(file): Path<String>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    confirmed(&m, &peer).await?;
    check_meta(&file)?;
    let data = axum::body::to_bytes(body, MAX_META)
        .await
        .map_err(|_| bad("too large for a repository file"))?;
    let dir = m.held(peer.id);
    blocking(move || {
        std::fs::create_dir_all(&dir)?;
        write_durably(&dir.join(&file), &data).map_err(|e| MirrorError::Internal(e.to_string()))
    })
    .await?;
    Ok(Json(serde_json::json!({ "stored": true })))
}

pub(crate) async fn get_meta(
    State(m): State<Mirror>,
    Extension(peer): Extension<PeerCert>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    confirmed(&m, &peer).await?;
    check_meta(&file)?;
    let path = m.held(peer.id).join(&file);
    let data = blocking(move || std::fs::read(path))
        .await
        .map_err(|_| ApiError(StatusCode::NOT_FOUND, "not stored here".into()))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], data).into_response())
}

/// Proof of storage: hashes each named pack, prefixed with the owner's
/// fresh nonce, so the answer cannot be precomputed or kept instead of
/// the pack.
pub(crate) async fn prove(
    State(m): State<Mirror>,
    Extension(peer): Extension<PeerCert>,
    Json(req): Json<Challenge>,
) -> Result<Json<Vec<Proof>>, ApiError> {
    confirmed(&m, &peer).await?;
    let nonce = hex::decode(&req.nonce).map_err(|_| bad("malformed nonce"))?;
    if nonce.len() != 32 || req.packs.len() > 64 {
        return Err(bad("a challenge is a 32-byte nonce and at most 64 packs"));
    }
    let (mm, owner) = (m.clone(), peer.id);
    let proofs = blocking(move || {
        Ok::<_, std::io::Error>(
            req.packs
                .iter()
                .filter(|n| is_pack_name(n))
                .map(|name| Proof {
                    name: name.clone(),
                    hash: hash_file(&mm.pack_file(owner, name), &nonce).ok(),
                })
                .collect::<Vec<_>>(),
        )
    })
    .await?;
    Ok(Json(proofs))
}
