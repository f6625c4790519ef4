//! The holder's bookkeeping of what it keeps for each owner, in
//! `mirror_held`: the greeting with quota and use, which offered packs it
//! lacks, the list of what it holds, and deletions marked for after the
//! grace period.
//!
//! These handlers only run SQL (through `Store`, off the async threads);
//! the ones that move bytes or touch files are in `transfer`.

use axum::{Extension, Json, extract::State};
use hearth_store::rusqlite::{OptionalExtension, params};
use hearth_system::unix_now;

use crate::{
    error::MirrorError,
    protocol::{Held, Hello, Names, PROTOCOL, Scheduled, is_pack_name},
    server::access::{ApiError, PeerCert, confirmed},
    service::Mirror,
};

pub(crate) async fn hello(
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

/// Which of the owner's packs we lack. A pack waiting out a deletion that
/// the owner lists again is kept after all.
pub(crate) async fn have(
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

pub(crate) async fn list(
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
