//! Disaster recovery, the owner's side: a fresh device fetches the
//! repository files and every pack a peer keeps for the device it replaces.

use bytes::Bytes;
use hyper::Method;

use crate::{
    blocking::blocking,
    client::{self, full},
    error::MirrorError,
    identity::{DeviceId, write_durably},
    peers::PeerState,
    protocol::pack_path,
    protocol::{Held, MAX_META, MAX_PACK, META_FILES, is_pack_name},
    service::Mirror,
    sync::local_packs,
};

impl Mirror {
    /// Disaster recovery: fetches the repository files and every pack
    /// `peer` holds for us into our (empty or partial) repository. Packs
    /// are checked against their names and written durably; the caller
    /// then unseals the key with the passphrase and rebuilds the index.
    /// Returns (packs fetched, bytes).
    pub async fn restore_from(&self, peer: DeviceId) -> Result<(u64, u64), MirrorError> {
        let p = self
            .peer(peer)
            .await?
            .filter(|p| p.state == PeerState::Confirmed)
            .ok_or_else(|| {
                MirrorError::Invalid("Confirm the pairing with that device first.".into())
            })?;
        let mut conn = client::connect(&self.0.id, &p.address, Some(peer)).await?;
        let repo = self.repo().to_path_buf();
        let packs = repo.join("packs");
        blocking(move || std::fs::create_dir_all(packs)).await?;
        for meta in META_FILES {
            let resp = conn
                .send(Method::GET, &format!("/v1/meta/{meta}"), full(Bytes::new()))
                .await?;
            let data = client::read_limited(resp.into_body(), MAX_META).await?;
            let path = repo.join(meta);
            blocking(move || {
                write_durably(&path, &data).map_err(|e| MirrorError::Internal(e.to_string()))
            })
            .await?;
        }
        let held: Vec<Held> = conn.json(Method::GET, "/v1/packs", &()).await?;
        let local = {
            let r = repo.clone();
            blocking(move || Ok::<_, MirrorError>(local_packs(&r))).await?
        };
        let todo: Vec<&Held> = held
            .iter()
            .filter(|h| is_pack_name(&h.name) && !local.contains_key(&h.name))
            .collect();
        let total: u64 = todo.iter().map(|h| h.size).sum();
        self.update_progress(peer, |pr| {
            pr.running = true;
            pr.pending_bytes = total;
            pr.sent_bytes = 0;
        });
        let (mut count, mut bytes) = (0u64, 0u64);
        for h in todo {
            let resp = conn
                .send(
                    Method::GET,
                    &format!("/v1/packs/{}", h.name),
                    full(Bytes::new()),
                )
                .await?;
            let data = client::read_limited(resp.into_body(), MAX_PACK as usize).await?;
            if blake3::hash(&data).to_hex().as_str() != h.name {
                log::error!(
                    "mirror: pack {} from {} is damaged; skipped",
                    h.name,
                    peer.short()
                );
                continue;
            }
            let path = pack_path(&repo, &h.name);
            let len = data.len() as u64;
            blocking(move || {
                if let Some(d) = path.parent() {
                    std::fs::create_dir_all(d)?;
                }
                write_durably(&path, &data).map_err(|e| std::io::Error::other(e.to_string()))
            })
            .await?;
            self.record_sent(peer, vec![(h.name.clone(), len)]).await?;
            count += 1;
            bytes += len;
            self.update_progress(peer, |pr| {
                pr.sent_bytes = bytes;
                pr.pending_bytes = total.saturating_sub(bytes);
            });
        }
        self.update_progress(peer, |pr| pr.running = false);
        log::info!(
            "mirror: restored {count} packs ({bytes} bytes) from {}",
            peer.short()
        );
        Ok((count, bytes))
    }
}
