//! Shared boards between peers, the asker's side (docs/board-replication.md):
//! signing this Hearth's events, pulling each peer's events on the boards
//! both share, checking every signature against the origin's certificate
//! ([`verify`], which the board crate calls for each event as it checks the
//! rest, before storing anything), and telling peers when there is
//! something new (a poke, after which they pull at once).
//!
//! A peer that sends something malformed or forged is refused for an hour
//! (the admin sees why on the Peers card and can try again at once), and
//! each peer's events are accepted at most [`PER_MINUTE`] a minute.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use hearth_board::{Board, Origin, WireEvent};
use hearth_system::unix_now;
use hyper::Method;
use rustls::pki_types::CertificateDer;

pub use crate::board_link::Link;
use crate::{
    client::{self, Conn, full},
    error::MirrorError,
    identity::{DeviceId, Identity},
    peers::Peer,
    protocol::{MAX_BOARD_REPLY, SharedBoards, Since, SinceReply},
    service::Mirror,
};

pub use crate::board_link::PER_MINUTE;
/// How long a peer that sent garbage is not asked again.
const REFUSE_FOR: Duration = Duration::from_secs(3600);

/// The signer for this Hearth's events: its identity key.
pub fn origin(id: &Identity, name: &str) -> Result<Origin, MirrorError> {
    let key = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&id.key_der)
        .map_err(|e| MirrorError::Internal(format!("the identity key cannot sign: {e}")))?;
    let key = std::sync::Arc::new(key);
    Ok(Origin {
        id: id.id.to_hex(),
        name: name.to_string(),
        cert: id.cert_der.clone(),
        sign: std::sync::Arc::new(move |data: &[u8]| key.sign(data).as_ref().to_vec()),
    })
}

/// Checks that `sig` is `origin`'s signature over `body`, by the key in
/// `cert` (the certificate sent with the batch), and that `cert` is
/// `origin`'s (its SHA-256 is the ID). What [`Board::ingest`] calls for
/// each event.
pub fn verify(origin: &str, cert: Option<&[u8]>, body: &str, sig: &[u8]) -> Result<(), String> {
    let short = &origin[..origin.len().min(8)];
    let cert = cert.ok_or("an event came without its origin's certificate")?;
    if DeviceId::of_cert(cert).to_hex() != origin {
        return Err(format!(
            "the certificate sent for Hearth {short} is not its own"
        ));
    }
    let der = CertificateDer::from(cert);
    let ee = webpki::EndEntityCert::try_from(&der)
        .map_err(|e| format!("a certificate cannot be read: {e:?}"))?;
    ee.verify_signature(webpki::ring::ED25519, body.as_bytes(), sig)
        .map_err(|_| {
            format!("an event from Hearth {short} has a wrong signature: refused as a forgery")
        })
}

/// Pulls from peers that poked us at once, and from every peer every
/// `board_every` (what a lost poke or a broken link missed).
pub(crate) async fn run(m: Mirror) {
    let mut next_all = Instant::now() + Duration::from_secs(2);
    loop {
        let all = tokio::select! {
            () = m.0.board_wake.notified() => Instant::now() >= next_all,
            () = tokio::time::sleep_until(next_all.into()) => true,
        };
        if all {
            next_all = Instant::now() + m.0.settings.board_every;
        }
        let poked = std::mem::take(&mut *lock(&m.0.board_poked));
        let Ok(peers) = m.peers().await else { continue };
        for p in peers.iter().filter(|p| p.linked()) {
            if all || poked.contains(&p.device) {
                m.pull_boards(p).await;
            }
        }
    }
}

/// Tells every peer when this Hearth made an event on a shared board.
pub(crate) async fn announce(m: Mirror) {
    let Some(board) = m.0.board.get().cloned() else {
        return;
    };
    loop {
        board.shared_changed().await;
        m.poke_peers(None);
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Mirror {
    /// Connects the board whose shared boards travel, and gives it this
    /// Hearth's signing identity. Call once, before [`Mirror::start`].
    pub fn attach_board(&self, board: Board) -> Result<(), MirrorError> {
        board.set_origin(origin(&self.0.id, self.name())?);
        let _ = self.0.board.set(board);
        Ok(())
    }

    pub(crate) fn board(&self) -> Option<&Board> {
        self.0.board.get()
    }

    /// The configuration's daily photo budget per peer, in bytes (the Board
    /// page's own figure, when set, wins).
    pub fn board_photo_budget(&self) -> u64 {
        self.0.settings.board_photo_budget
    }

    /// One peer's shared-board figures.
    pub fn board_link(&self, peer: DeviceId) -> Link {
        self.with_link(peer, |l| l.clone())
    }

    /// Accepts a refused peer's events again, now (the admin's "Try again").
    pub fn board_retry(&self, peer: DeviceId) {
        self.with_link(peer, |l| {
            l.refused = None;
            l.refused_until = None;
        });
        self.poked(peer);
    }

    /// Boards peers share that this Hearth does not: name and peer names.
    pub fn board_offers(&self) -> Vec<(String, Vec<String>)> {
        lock(&self.0.board_offers)
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
            .collect()
    }

    pub(crate) fn with_link<T>(&self, peer: DeviceId, f: impl FnOnce(&mut Link) -> T) -> T {
        let mut links = lock(&self.0.board_links);
        let l = links.entry(peer).or_default();
        l.roll();
        f(l)
    }

    /// A peer poked us: pull from it soon.
    pub(crate) fn poked(&self, peer: DeviceId) {
        lock(&self.0.board_poked).insert(peer);
        self.0.board_wake.notify_one();
    }

    /// Pokes every linked peer but `except`, each on its own task, so a
    /// slow or unreachable one delays nobody.
    pub(crate) fn poke_peers(&self, except: Option<DeviceId>) {
        let m = self.clone();
        tokio::spawn(async move {
            let Ok(peers) = m.peers().await else { return };
            for p in peers
                .into_iter()
                .filter(|p| p.linked() && Some(p.device) != except)
            {
                let m = m.clone();
                tokio::spawn(async move {
                    if let Ok(mut conn) = client::connect(&m.0.id, &p.address, Some(p.device)).await
                    {
                        let _ = conn
                            .send(Method::POST, "/v1/board/poke", full(Vec::new()))
                            .await;
                    }
                });
            }
        });
    }

    /// Pulls every board both sides share from `p`; a refusal is noted on
    /// the peer, an unreachable peer just waits for the next round.
    async fn pull_boards(&self, p: &Peer) {
        let Some(board) = self.board().cloned() else {
            return;
        };
        if self.with_link(p.device, |l| l.refused.is_some()) {
            return;
        }
        match self.pull_from(&board, p).await {
            Ok(()) => self.with_link(p.device, |l| l.last_exchange = Some(unix_now())),
            Err(Pull::Refuse(why)) => {
                log::warn!(
                    "board: refusing {} ({}) for an hour: {why}",
                    p.name,
                    p.device.short()
                );
                self.with_link(p.device, |l| {
                    l.refused = Some(why);
                    l.refused_until = Some(Instant::now() + REFUSE_FOR);
                });
            }
            Err(Pull::Other(e)) => log::debug!("board: pulling from {}: {e}", p.name),
        }
    }

    async fn pull_from(&self, board: &Board, p: &Peer) -> Result<(), Pull> {
        let mine = board.shared_boards().await.map_err(other)?;
        let mut conn = client::connect(&self.0.id, &p.address, Some(p.device))
            .await
            .map_err(Pull::Other)?;
        let theirs = shared_boards(&mut conn).await?;
        {
            let mut offers = lock(&self.0.board_offers);
            for names in offers.values_mut() {
                names.remove(&p.name);
            }
            for name in theirs.iter().filter(|n| !mine.contains(n)) {
                offers
                    .entry(name.clone())
                    .or_default()
                    .insert(p.name.clone());
            }
            offers.retain(|_, v| !v.is_empty());
        }
        let peer_hex = p.device.to_hex();
        for name in mine.iter().filter(|n| theirs.contains(n)) {
            loop {
                let limit = self.with_link(p.device, |l| l.budget());
                if limit == 0 {
                    break;
                }
                let limit = limit.min(hearth_board::share::MAX_BATCH);
                let cursors = board.cursors(name).await.map_err(other)?;
                let ask = Since {
                    board: name.clone(),
                    cursors,
                    limit,
                };
                let reply: SinceReply = ask_json(&mut conn, &ask).await?;
                let (events, certs, more) = check_reply(reply, limit)?;
                let count = events.len();
                let got = match board.ingest(&peer_hex, name, events, certs, verify).await {
                    Ok(got) => got,
                    Err(hearth_board::BoardError::Invalid(why)) => return Err(Pull::Refuse(why)),
                    Err(e) => return Err(other(e)),
                };
                self.with_link(p.device, |l| {
                    l.in_today += got.new as u64;
                    l.window_count += got.new;
                });
                self.fetch_photos(board, p.device, &mut conn, got.photos)
                    .await;
                if got.new > 0 {
                    // Hop by hop: our other peers pull what just arrived.
                    self.poke_peers(Some(p.device));
                }
                if !more || count == 0 {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Fetches the photos of posts that just arrived from `peer`, within
    /// its daily budget; each that does not come is marked "not carried".
    async fn fetch_photos(
        &self,
        board: &Board,
        peer: DeviceId,
        conn: &mut Conn,
        wants: Vec<hearth_board::share::PhotoWant>,
    ) {
        // The admin's figure from the Board page, else the configuration's.
        let budget = match board.photo_budget_mib().await {
            Ok(Some(mib)) => mib.saturating_mul(1 << 20),
            _ => self.0.settings.board_photo_budget,
        };
        for w in wants {
            let size = w.size.min(hearth_board::photo::MAX_PHOTO_BYTES as u64);
            let fits = self.with_link(peer, |l| {
                let fits = l.photo_bytes_today + size <= budget;
                if fits {
                    l.photo_bytes_today += size;
                }
                fits
            });
            let got = if fits {
                fetch_photo(conn, &w).await
            } else {
                None
            };
            let missing = got.is_none();
            let kept = match got {
                Some(data) => board.attach_photo(w.post, data, w.kind).await,
                None => board.photo_not_carried(w.post).await,
            };
            if missing || kept.is_err() {
                self.with_link(peer, |l| l.photos_dropped_today += 1);
            }
            if let Err(e) = kept {
                log::warn!("board: a photo from {} was not carried: {e}", peer.short());
            }
        }
    }
}

/// One photo's bytes from the peer, at most the largest upload.
async fn fetch_photo(conn: &mut Conn, w: &hearth_board::share::PhotoWant) -> Option<Vec<u8>> {
    let ask = crate::protocol::PhotoAsk {
        board: w.board.clone(),
        origin: w.origin.clone(),
        seq: w.seq,
    };
    let raw = serde_json::to_vec(&ask).ok()?;
    let resp = conn
        .send_json(Method::POST, "/v1/board/photo", full(raw))
        .await
        .ok()?;
    client::read_limited(resp.into_body(), hearth_board::photo::MAX_PHOTO_BYTES)
        .await
        .ok()
}

/// Why a pull stopped: the peer misbehaved, or something else (a broken
/// link, our own database) that is no reason to refuse it.
enum Pull {
    Refuse(String),
    Other(MirrorError),
}

fn other(e: impl std::fmt::Display) -> Pull {
    Pull::Other(MirrorError::Internal(e.to_string()))
}

/// The peer's shared boards; none from a peer that predates sharing (404).
async fn shared_boards(conn: &mut Conn) -> Result<Vec<String>, Pull> {
    let Some(resp) = conn
        .get_optional("/v1/board/boards")
        .await
        .map_err(Pull::Other)?
    else {
        return Ok(vec![]);
    };
    let raw = client::read_limited(resp.into_body(), 64 * 1024)
        .await
        .map_err(|e| Pull::Refuse(e.to_string()))?;
    let list: SharedBoards = serde_json::from_slice(&raw)
        .map_err(|e| Pull::Refuse(format!("its list of boards is malformed: {e}")))?;
    Ok(list.boards)
}

async fn ask_json(conn: &mut Conn, ask: &Since) -> Result<SinceReply, Pull> {
    let raw = serde_json::to_vec(ask).map_err(other)?;
    let resp = conn
        .send_json(Method::POST, "/v1/board/since", full(raw))
        .await
        .map_err(Pull::Other)?;
    let body = client::read_limited(resp.into_body(), MAX_BOARD_REPLY)
        .await
        .map_err(|e| Pull::Refuse(format!("its answer is too large or broken: {e}")))?;
    serde_json::from_slice(&body).map_err(|e| Pull::Refuse(format!("its answer is malformed: {e}")))
}

type Checked = (Vec<WireEvent>, BTreeMap<String, Vec<u8>>, bool);

/// The reply's size, and its certificates decoded; each event's signature
/// is checked by [`Board::ingest`] through [`verify`], which parses each
/// event once, before anything is stored.
fn check_reply(reply: SinceReply, limit: usize) -> Result<Checked, Pull> {
    if reply.events.len() > limit {
        return Err(Pull::Refuse(format!(
            "it sent {} events where at most {limit} were asked for",
            reply.events.len()
        )));
    }
    let mut certs = BTreeMap::new();
    for (origin, hex_cert) in &reply.certs {
        let der =
            hex::decode(hex_cert).map_err(|_| Pull::Refuse("a certificate is not hex".into()))?;
        certs.insert(origin.clone(), der);
    }
    Ok((reply.events, certs, reply.more))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_checked_against_their_origins_certificate() {
        let (a, b) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let signer = origin(&a, "A").unwrap();
        let body = r#"{"v":1,"board":"General"}"#;
        let sig = (signer.sign)(body.as_bytes());
        let hex_a = a.id.to_hex();
        let (cert_a, cert_b) = (Some(a.cert_der.as_slice()), Some(b.cert_der.as_slice()));
        assert_eq!(verify(&hex_a, cert_a, body, &sig), Ok(()));
        let tampered = body.replace("General", "Genera1");
        assert!(
            verify(&hex_a, cert_a, &tampered, &sig)
                .unwrap_err()
                .contains("forgery")
        );
        // B's certificate passed off as A's, and B's key signing as A.
        assert!(
            verify(&hex_a, cert_b, body, &sig)
                .unwrap_err()
                .contains("not its own")
        );
        let by_b = (origin(&b, "B").unwrap().sign)(body.as_bytes());
        assert!(
            verify(&hex_a, cert_a, body, &by_b)
                .unwrap_err()
                .contains("forgery")
        );
        assert!(verify(&hex_a, cert_a, body, b"zz").is_err());
        assert!(
            verify(&hex_a, None, body, &sig)
                .unwrap_err()
                .contains("without")
        );
    }
}
