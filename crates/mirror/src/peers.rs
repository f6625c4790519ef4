//! The peer list and the admin's decisions about it: proposing a device
//! that paired, confirming it with a quota, replacing a lost device,
//! removing, and noting each contact.
//!
//! It is the one module that reads and writes `mirror_peers`, so both the
//! holder (who may talk to us) and the owner (whom we send to) ask it.

use hearth_store::rusqlite::{OptionalExtension, Row, params};
use hearth_system::unix_now;
use serde::Serialize;

use crate::{blocking::blocking, error::MirrorError, identity::DeviceId, service::Mirror};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum PeerState {
    /// Paired by code; this device's admin has not confirmed yet.
    Proposed,
    Confirmed,
}

/// A peer as the Peers page shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Peer {
    #[serde(skip)]
    pub device: DeviceId,
    pub device_short: String,
    pub name: String,
    pub address: String,
    pub state: PeerState,
    /// Bytes we offer to hold for it.
    pub quota: u64,
    /// It paired asking to replace a lost device of ours.
    pub wants_replace: bool,
    pub last_seen: Option<i64>,
    pub last_error: Option<String>,
    /// Bytes we hold for it.
    pub held_bytes: u64,
    /// Bytes it confirmed it holds for us.
    pub sent_bytes: u64,
    /// The last proof-of-storage check: when, packs checked, failed.
    pub last_proof: Option<(i64, u64, u64, String)>,
}

impl Peer {
    /// Confirmed by this device's admin and with an address to dial: a
    /// peer the owner's loops (mirroring, offers, shared boards) talk to.
    pub(crate) fn linked(&self) -> bool {
        self.state == PeerState::Confirmed && !self.address.is_empty()
    }
}

/// Each peer with the bytes held each way and its latest proof of storage.
const PEER_SELECT: &str = "SELECT p.device, p.name, p.address, p.state, p.quota, p.replaces,
     p.last_seen, p.last_error,
     (SELECT coalesce(sum(size), 0) FROM mirror_held h WHERE h.owner = p.device),
     (SELECT coalesce(sum(size), 0) FROM mirror_sent s WHERE s.peer = p.device),
     r.at, r.checked, r.failed, r.detail
     FROM mirror_peers p
     LEFT JOIN mirror_proofs r ON r.id = (SELECT id FROM mirror_proofs
         WHERE peer = p.device ORDER BY at DESC, id DESC LIMIT 1)";

fn peer_from(r: &Row<'_>) -> hearth_store::rusqlite::Result<Peer> {
    let hex: String = r.get(0)?;
    let device = DeviceId::from_hex(&hex).unwrap_or(DeviceId([0; 32]));
    let state: String = r.get(3)?;
    let replaces: Option<String> = r.get(5)?;
    let proof_at: Option<i64> = r.get(10)?;
    Ok(Peer {
        device,
        device_short: device.short(),
        name: r.get(1)?,
        address: r.get(2)?,
        state: if state == "confirmed" {
            PeerState::Confirmed
        } else {
            PeerState::Proposed
        },
        quota: r.get::<_, i64>(4)?.max(0) as u64,
        wants_replace: replaces.is_some(),
        last_seen: r.get(6)?,
        last_error: r.get(7)?,
        held_bytes: r.get::<_, i64>(8)?.max(0) as u64,
        sent_bytes: r.get::<_, i64>(9)?.max(0) as u64,
        last_proof: match proof_at {
            Some(at) => Some((
                at,
                r.get::<_, i64>(11)?.max(0) as u64,
                r.get::<_, i64>(12)?.max(0) as u64,
                r.get(13)?,
            )),
            None => None,
        },
    })
}

impl Mirror {
    /// Every peer, confirmed or proposed.
    pub async fn peers(&self) -> Result<Vec<Peer>, MirrorError> {
        self.0
            .store
            .read(|c| {
                let rows = c
                    .prepare(&format!("{PEER_SELECT} ORDER BY p.created_at, p.device"))?
                    .query_map([], peer_from)?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await
    }

    pub async fn peer(&self, device: DeviceId) -> Result<Option<Peer>, MirrorError> {
        self.0
            .store
            .read(move |c| {
                Ok(c.query_row(
                    &format!("{PEER_SELECT} WHERE p.device = ?1"),
                    [device.to_hex()],
                    peer_from,
                )
                .optional()?)
            })
            .await
    }

    /// Records a device that just paired with us (or we with it) as
    /// proposed. Pairing again with a known device keeps its state and
    /// quota and refreshes its name and address.
    pub(crate) async fn propose(
        &self,
        device: DeviceId,
        name: &str,
        address: &str,
        replaces: bool,
    ) -> Result<(), MirrorError> {
        let (name, address) = (clean_name(name), address.to_string());
        self.0
            .store
            .write(move |c| {
                c.execute(
                    "INSERT INTO mirror_peers (device, name, address, state, created_at, replaces)
                     VALUES (?1, ?2, ?3, 'proposed', ?4, CASE WHEN ?5 THEN '' END)
                     ON CONFLICT (device) DO UPDATE SET name = excluded.name,
                        address = CASE WHEN excluded.address = '' THEN address ELSE excluded.address END",
                    params![device.to_hex(), name, address, unix_now(), replaces],
                )?;
                Ok::<_, MirrorError>(())
            })
            .await
    }

    /// The admin confirms a proposed peer and sets what we hold for it. For
    /// a replacement, `replaces` names the old device whose packs it takes
    /// over (this device's admin vouches that the new device is the old
    /// one's owner, reflashed).
    pub async fn confirm(
        &self,
        device: DeviceId,
        quota: u64,
        replaces: Option<DeviceId>,
    ) -> Result<(), MirrorError> {
        if let Some(old) = replaces {
            self.take_over(old, device).await?;
        }
        let changed = self
            .0
            .store
            .write(move |c| {
                Ok::<_, MirrorError>(c.execute(
                    "UPDATE mirror_peers SET state = 'confirmed', quota = ?2, replaces = NULL
                     WHERE device = ?1",
                    params![device.to_hex(), quota as i64],
                )?)
            })
            .await?;
        if changed == 0 {
            return Err(MirrorError::Invalid(
                "That device is not paired with this Hearth.".into(),
            ));
        }
        log::info!(
            "mirror: peer {} confirmed, quota {quota} bytes",
            device.short()
        );
        self.sync_now();
        Ok(())
    }

    /// Changes what we hold for a peer.
    pub async fn set_quota(&self, device: DeviceId, quota: u64) -> Result<(), MirrorError> {
        self.0
            .store
            .write(move |c| {
                c.execute(
                    "UPDATE mirror_peers SET quota = ?2 WHERE device = ?1",
                    params![device.to_hex(), quota as i64],
                )?;
                Ok::<_, MirrorError>(())
            })
            .await
    }

    /// Forgets a peer. What we hold for it stays on disk until the admin
    /// deletes it by hand: unpairing must not destroy someone's backup.
    pub async fn remove(&self, device: DeviceId) -> Result<(), MirrorError> {
        self.0
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                tx.execute(
                    "DELETE FROM mirror_peers WHERE device = ?1",
                    [device.to_hex()],
                )?;
                tx.execute("DELETE FROM mirror_sent WHERE peer = ?1", [device.to_hex()])?;
                tx.execute(
                    "DELETE FROM mirror_resend WHERE peer = ?1",
                    [device.to_hex()],
                )?;
                tx.commit()?;
                Ok::<_, MirrorError>(())
            })
            .await?;
        log::info!("mirror: peer {} removed", device.short());
        Ok(())
    }

    /// Moves what we hold for `old` to `new`: the folder first (one
    /// rename, atomic), then the rows and the old peer, in one transaction.
    async fn take_over(&self, old: DeviceId, new: DeviceId) -> Result<(), MirrorError> {
        let Some(previous) = self.peer(old).await? else {
            return Err(MirrorError::Invalid(
                "The device to replace is not a peer.".into(),
            ));
        };
        let (from, to) = (self.held(old), self.held(new));
        blocking(move || {
            if from.exists() {
                if to.exists() {
                    return Err(MirrorError::Invalid(
                        "The new device already has packs stored here; remove it and pair again."
                            .into(),
                    ));
                }
                std::fs::rename(&from, &to)?;
                hearth_system::sync_parent(&to)?;
            }
            Ok(())
        })
        .await?;
        self.0
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                tx.execute(
                    "UPDATE mirror_held SET owner = ?2 WHERE owner = ?1",
                    params![old.to_hex(), new.to_hex()],
                )?;
                tx.execute(
                    "UPDATE mirror_sent SET peer = ?2 WHERE peer = ?1",
                    params![old.to_hex(), new.to_hex()],
                )?;
                tx.execute(
                    "UPDATE mirror_resend SET peer = ?2 WHERE peer = ?1",
                    params![old.to_hex(), new.to_hex()],
                )?;
                tx.execute("DELETE FROM mirror_peers WHERE device = ?1", [old.to_hex()])?;
                tx.commit()?;
                Ok::<_, MirrorError>(())
            })
            .await?;
        log::warn!(
            "mirror: {} ({}) replaces {} ({}); its backups now belong to the new device",
            new.short(),
            new.long(),
            previous.name,
            old.short()
        );
        Ok(())
    }

    /// Notes a contact (or its failure) with a peer.
    pub(crate) async fn seen(&self, device: DeviceId, error: Option<String>) {
        let r = self
            .0
            .store
            .write(move |c| {
                match &error {
                    None => c.execute(
                        "UPDATE mirror_peers SET last_seen = ?2, last_error = NULL WHERE device = ?1",
                        params![device.to_hex(), unix_now()],
                    )?,
                    Some(e) => c.execute(
                        "UPDATE mirror_peers SET last_error = ?2 WHERE device = ?1",
                        params![device.to_hex(), e],
                    )?,
                };
                Ok::<_, MirrorError>(())
            })
            .await;
        if let Err(e) = r {
            log::error!("mirror: recording contact with {}: {e}", device.short());
        }
    }
}

/// A peer's self-chosen name, as we store it: printable, 1 to 64 chars.
pub(crate) fn clean_name(name: &str) -> String {
    let n: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
    let n = n.trim();
    if n.is_empty() {
        "Hearth".to_string()
    } else {
        n.to_string()
    }
}
