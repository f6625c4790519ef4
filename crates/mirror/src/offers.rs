//! Updates from a peer, the owner's side: asking each confirmed peer which
//! signed update it keeps, judging it with this device's own keys and
//! version, and fetching one over the pinned peer channel into a new slot.
//!
//! What a peer says is never trusted: an offer is shown as installable only
//! when its signature checks out with *our* keys and its manifest suits
//! this device, and fetching hands the manifest and every file to
//! `Updates::stage_parts`, which checks it all again (signature, machine,
//! version, free space, each file's size and SHA-256) while it streams to
//! disk. An offer that is not newer than what runs here is not shown at all.

use std::{
    io::Read,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::{Buf, Bytes};
use hearth_update::{Accept, FileEntry, Manifest, Signed, Staged, UpdateError, Updates};
use http_body_util::BodyExt;
use hyper::{Method, body::Incoming};

use crate::{
    blocking::blocking,
    client::{self, Conn, full},
    error::MirrorError,
    identity::DeviceId,
    peers::Peer,
    protocol::{MAX_OFFER, Offer},
    service::{Mirror, UpdateOffer},
};

/// How often reloading the dashboard may have the offers asked for again.
const REFRESH_EVERY: Duration = Duration::from_secs(10);
/// How long a file transfer may stall before it counts as broken.
const STALL: Duration = Duration::from_secs(60);

impl Mirror {
    /// Asks every confirmed peer for its offer, in the background, unless
    /// that was done in the last few seconds: what loading the dashboard
    /// does. Returns at once; [`Mirror::update_offers`] has the results.
    pub fn refresh_update_offers(&self) {
        {
            let mut last = self
                .0
                .offers_refreshed
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < REFRESH_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let m = self.clone();
        tokio::spawn(async move {
            match m.peers().await {
                Ok(peers) => {
                    m.forget_offers_except(&peers);
                    for p in peers.iter().filter(|p| p.linked()) {
                        m.check_offer(p).await;
                    }
                }
                Err(e) => log::error!("mirror: reading peers: {e}"),
            }
        });
    }

    /// Drops the offers of devices that are no longer confirmed peers.
    pub(crate) fn forget_offers_except(&self, peers: &[Peer]) {
        self.offers()
            .retain(|id, _| peers.iter().any(|p| p.device == *id && p.linked()));
    }

    /// Asks `p` for its offer and keeps the verdict for the dashboard. A
    /// change is logged (once); a peer that cannot be reached keeps its
    /// last verdict.
    pub(crate) async fn check_offer(&self, p: &Peer) {
        let verdict = match self.ask_offer(p).await {
            Ok(Some(offer)) => self.judge(p, offer),
            Ok(None) => None,
            Err(e) => {
                log::debug!("mirror: asking {} for its update: {e}", p.name);
                return;
            }
        };
        let mut offers = self.offers();
        let Some(offer) = verdict else {
            offers.remove(&p.device);
            return;
        };
        if offers.get(&p.device) != Some(&offer) {
            match &offer.refused {
                None => log::info!(
                    "mirror: {} ({}) offers Hearth {}",
                    p.name,
                    p.device.short(),
                    offer.version
                ),
                Some(why) => log::warn!(
                    "mirror: {} ({}) offers Hearth {}, refused: {why}",
                    p.name,
                    p.device.short(),
                    offer.version
                ),
            }
        }
        offers.insert(p.device, offer);
    }

    async fn ask_offer(&self, p: &Peer) -> Result<Option<Offer>, MirrorError> {
        let mut conn = client::connect(&self.0.id, &p.address, Some(p.device)).await?;
        fetch_offer(&mut conn).await
    }

    /// What the dashboard shows for `offer`: installable, refused with the
    /// reason, or nothing when it is not newer than what runs here (its
    /// version is read before the signature only to hide it or to name it
    /// in a refusal, never to accept it).
    fn judge(&self, p: &Peer, offer: Offer) -> Option<UpdateOffer> {
        let running = hearth_update::running_version();
        let unverified = Manifest::parse(offer.manifest.as_bytes()).ok();
        if let Some(m) = &unverified
            && m.parsed_version().is_ok_and(|v| v <= *running)
        {
            log::debug!(
                "mirror: {} offers Hearth {}, not newer than this Hearth's {running}",
                p.name,
                m.version
            );
            return None;
        }
        let refused = |why: UpdateError| {
            Some(UpdateOffer {
                peer: p.device,
                peer_name: p.name.clone(),
                version: unverified
                    .as_ref()
                    .map_or_else(|| "an update".into(), |m| m.version.clone()),
                notes: String::new(),
                refused: Some(why.to_string()),
            })
        };
        let signed = match Signed::verify(
            self.updates().keys(),
            offer.manifest.into_bytes(),
            offer.signature,
        ) {
            Ok(s) => s,
            Err(e) => return refused(e),
        };
        match signed.manifest.check(running, Accept::default()) {
            Ok(()) => Some(UpdateOffer {
                peer: p.device,
                peer_name: p.name.clone(),
                version: signed.manifest.version,
                notes: signed.manifest.notes,
                refused: None,
            }),
            Err(UpdateError::Downgrade { .. }) => None,
            Err(e) => refused(e),
        }
    }

    /// Fetches the update `peer` offers over the pinned peer channel and
    /// stages it in `updates`: the manifest first, then each file streamed
    /// straight into the staging folder, a frame at a time, on a blocking
    /// thread. Everything is checked with this device's keys; a refusal
    /// leaves nothing staged.
    pub async fn fetch_update(
        &self,
        peer: DeviceId,
        updates: &Updates,
    ) -> Result<Staged, MirrorError> {
        let p =
            self.peer(peer).await?.filter(Peer::linked).ok_or_else(|| {
                MirrorError::Invalid("That device is not a confirmed peer.".into())
            })?;
        let mut conn = client::connect(&self.0.id, &p.address, Some(peer)).await?;
        let offer = fetch_offer(&mut conn).await?.ok_or_else(|| {
            MirrorError::Refused(format!("{} no longer offers an update.", p.name))
        })?;
        log::info!(
            "mirror: fetching the update {} offers ({})",
            p.name,
            peer.short()
        );
        let updates = updates.clone();
        let handle = tokio::runtime::Handle::current();
        // The transport's own failure, which says more than "the file
        // ended early" does.
        let broken: Arc<Mutex<Option<MirrorError>>> = Arc::default();
        let staged = {
            let broken = broken.clone();
            blocking(move || {
                let open = |file: &FileEntry| -> Result<Box<dyn Read + Send>, UpdateError> {
                    let path = format!("/v1/update/files/{}", file.name);
                    match handle.block_on(conn.send(Method::GET, &path, full(Bytes::new()))) {
                        Ok(resp) => Ok(Box::new(BodyReader {
                            handle: handle.clone(),
                            body: resp.into_body(),
                            chunk: Bytes::new(),
                            broken: broken.clone(),
                            address: conn.address.clone(),
                        })),
                        Err(e) => {
                            let text = e.to_string();
                            record(&broken, e);
                            Err(UpdateError::Truncated(text))
                        }
                    }
                };
                Ok::<_, std::io::Error>(updates.stage_parts(
                    offer.manifest.into_bytes(),
                    offer.signature,
                    Accept::default(),
                    open,
                ))
            })
            .await?
        };
        match staged {
            Ok(s) => {
                log::info!(
                    "mirror: staged Hearth {} from {} ({})",
                    s.manifest.version,
                    p.name,
                    peer.short()
                );
                Ok(s)
            }
            Err(e) => {
                let cause = broken.lock().unwrap_or_else(|p| p.into_inner()).take();
                let e = cause.unwrap_or(MirrorError::Update(e));
                log::warn!("mirror: the update from {} was not staged: {e}", p.name);
                Err(e)
            }
        }
    }
}

/// `GET /v1/update/offer`; `None` when the peer has none (or predates it).
async fn fetch_offer(conn: &mut Conn) -> Result<Option<Offer>, MirrorError> {
    let Some(resp) = conn.get_optional("/v1/update/offer").await? else {
        return Ok(None);
    };
    let body = client::read_limited(resp.into_body(), MAX_OFFER).await?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| MirrorError::Protocol(e.to_string()))
}

/// Keeps the first transport failure.
fn record(slot: &Mutex<Option<MirrorError>>, e: MirrorError) {
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    if slot.is_none() {
        *slot = Some(e);
    }
}

/// A response body read from a blocking thread, one frame at a time, so a
/// file of any size takes a frame's worth of memory.
struct BodyReader {
    handle: tokio::runtime::Handle,
    body: Incoming,
    /// What is left of the current frame.
    chunk: Bytes,
    broken: Arc<Mutex<Option<MirrorError>>>,
    address: String,
}

impl BodyReader {
    fn fail(&self, message: String) -> std::io::Error {
        record(
            &self.broken,
            MirrorError::Unreachable {
                address: self.address.clone(),
                message: message.clone(),
            },
        );
        std::io::Error::other(message)
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            let next = self
                .handle
                .block_on(tokio::time::timeout(STALL, self.body.frame()));
            match next {
                Err(_) => return Err(self.fail("the transfer stalled for a minute".into())),
                Ok(None) => return Ok(0),
                Ok(Some(Err(e))) => return Err(self.fail(format!("the connection broke: {e}"))),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.chunk = data;
                    }
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}
