//! The holder's handlers that move bytes: resumable pack uploads,
//! downloads for disaster recovery, the repository's key files, deletions
//! with a grace period, and proof-of-storage answers.

use hearth_system::unix_now;
use std::{
    io::Read,
    path::{Path as FsPath, PathBuf},
};

use axum::{
    Extension, Json,
    body::Body,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use hearth_store::rusqlite::params;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};

use crate::{
    DeviceId, META_FILES, Mirror, MirrorError, is_pack_name,
    server::{ApiError, Names, PeerCert, bad, confirmed},
};

use super::server::MAX_PACK;

const MAX_META: usize = 64 * 1024;

impl Mirror {
    fn pack_file(&self, owner: DeviceId, name: &str) -> PathBuf {
        self.held(owner).join("packs").join(&name[..2]).join(name)
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
            match std::fs::remove_file(&path) {
                Ok(()) => hearth_system::sync_parent(&path)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
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

#[derive(Debug, Serialize, Deserialize)]
pub struct Received {
    pub received: u64,
    /// The pack is complete, checked and stored.
    pub stored: bool,
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
    let received = std::fs::metadata(m.part_file(peer.id, &name))
        .map(|md| md.len())
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
    if let Some(dir) = part.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let have = tokio::fs::metadata(&part)
        .await
        .map(|md| md.len())
        .unwrap_or(0);
    if q.offset > have {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("resume from {have}, not {}", q.offset),
        ));
    }
    // Writing and hashing happen on a blocking thread, so the async threads
    // only move bytes off the socket. hyper's frames go over as they are
    // (no copy), a piece's worth at a time.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<bytes::Bytes>>(8);
    let (path, offset) = (part.clone(), q.offset);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<Option<String>> {
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
            if pending >= crate::pool::PIECE {
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
    let streamed = writer
        .await
        .map_err(|e| MirrorError::Internal(e.to_string()))??;
    if too_long {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(bad("more bytes than the declared size"));
    }
    if broken || received < q.size {
        return Ok(Json(Received {
            received,
            stored: false,
        }));
    }
    let (mm, owner, n) = (m.clone(), peer.id, name.clone());
    let stored = tokio::task::spawn_blocking(move || mm.store_part(owner, &n, q.size, streamed))
        .await
        .map_err(|e| MirrorError::Internal(e.to_string()))??;
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
    /// only then is it recorded. Blocking.
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

/// BLAKE3 of `prefix ‖ file`, as hex.
fn hash_file(path: &FsPath, prefix: &[u8]) -> Result<String, std::io::Error> {
    let mut h = blake3::Hasher::new();
    h.update(prefix);
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().to_hex().to_string())
}

/// A held pack, for disaster recovery.
pub(crate) async fn download(
    State(m): State<Mirror>,
    Extension(peer): Extension<PeerCert>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    confirmed(&m, &peer).await?;
    check_name(&name)?;
    let data = tokio::fs::read(m.pack_file(peer.id, &name))
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
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)?;
        crate::identity::write_durably(&dir.join(&file), &data)
            .map_err(|e| MirrorError::Internal(e.to_string()))
    })
    .await
    .map_err(|e| MirrorError::Internal(e.to_string()))??;
    Ok(Json(serde_json::json!({ "stored": true })))
}

pub(crate) async fn get_meta(
    State(m): State<Mirror>,
    Extension(peer): Extension<PeerCert>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    confirmed(&m, &peer).await?;
    check_meta(&file)?;
    let data = tokio::fs::read(m.held(peer.id).join(&file))
        .await
        .map_err(|_| ApiError(StatusCode::NOT_FOUND, "not stored here".into()))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], data).into_response())
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Scheduled {
    pub scheduled: u64,
    pub delete_after: i64,
}

/// The owner no longer needs these packs. They go after the grace period,
/// so a compromised or mistaken owner cannot wipe its mirror at once.
pub(crate) async fn delete(
    State(m): State<Mirror>,
    Extension(peer): Extension<PeerCert>,
    Json(req): Json<Names>,
) -> Result<Json<Scheduled>, ApiError> {
    confirmed(&m, &peer).await?;
    let after = unix_now() + m.0.settings.grace.as_secs() as i64;
    let owner = peer.id.to_hex();
    let scheduled =
        m.0.store
            .write(move |c| {
                let tx = c.transaction()?;
                let mut n = 0;
                {
                    let mut mark = tx.prepare_cached(
                        "UPDATE mirror_held SET delete_after = ?3
                     WHERE owner = ?1 AND name = ?2 AND delete_after IS NULL",
                    )?;
                    for name in req.packs.iter().filter(|n| is_pack_name(n)) {
                        n += mark.execute(params![owner, name, after])? as u64;
                    }
                }
                tx.commit()?;
                Ok::<_, MirrorError>(n)
            })
            .await?;
    if scheduled > 0 {
        log::info!(
            "mirror: {} asked to delete {scheduled} packs; they go after the grace period",
            peer.id.short()
        );
    }
    Ok(Json(Scheduled {
        scheduled,
        delete_after: after,
    }))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Challenge {
    /// Hex, 32 bytes.
    pub nonce: String,
    pub packs: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Proof {
    pub name: String,
    /// BLAKE3(nonce ‖ pack) in hex, or `None` when we do not have it.
    pub hash: Option<String>,
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
    let proofs = tokio::task::spawn_blocking(move || {
        req.packs
            .iter()
            .filter(|n| is_pack_name(n))
            .map(|name| Proof {
                name: name.clone(),
                hash: hash_file(&mm.pack_file(owner, name), &nonce).ok(),
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| MirrorError::Internal(e.to_string()))?;
    Ok(Json(proofs))
}

/// For the owner: the same proof over its own copy.
pub fn proof_of(path: &FsPath, nonce: &[u8]) -> Result<String, std::io::Error> {
    hash_file(path, nonce)
}
