//! The owner's side: pairing with a code, pushing packs to each confirmed
//! peer (resumable, rate-limited), asking for deletions of packs we no
//! longer have, proving the peer still holds what it claims, and pulling
//! everything back after a disaster. Each run also asks every peer it
//! reached which update it offers (`offers`).
//!
//! It speaks to the holder only through `client` and the wire types in
//! `protocol`, never through the holder's own code: the two sides share
//! the protocol, not modules.

use hearth_system::unix_now;
use std::{
    collections::{HashMap, HashSet, VecDeque},
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use hearth_store::rusqlite::params;
use http_body_util::BodyExt;
use hyper::Method;

use crate::{
    blocking::blocking,
    client::{self, Conn, full},
    error::MirrorError,
    identity::DeviceId,
    pairing::{self, Joiner},
    peers::Peer,
    pool::PIECE,
    protocol::{
        Hello, META_FILES, Names, PROTOCOL, PairConfirm, PairReply, PairRequest, Received,
        Scheduled, is_pack_name, pack_path,
    },
    service::Mirror,
};

/// Connections that upload at once: more than the cores, so one pack's
/// fsync and check at the holder overlap the others' transfer (measured
/// in docs/performance-network.md: 2 → 0.68, 4 → 0.80, 6 → 0.85 of a plain copy).
const PARALLEL: usize = 6;

/// The loop: shortly after start, then after each wake-up or period.
pub(crate) async fn run(m: Mirror) {
    let mut wait = Duration::from_secs(3);
    loop {
        tokio::select! {
            () = m.0.wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
        wait = m.0.settings.every;
        if let Err(e) = m.expire_deletions().await {
            log::error!("mirror: deleting expired packs: {e}");
        }
        let peers = match m.peers().await {
            Ok(p) => p,
            Err(e) => {
                log::error!("mirror: reading peers: {e}");
                continue;
            }
        };
        for p in peers.iter().filter(|p| p.linked()) {
            m.update_progress(p.device, |pr| {
                pr.running = true;
                pr.sent_bytes = 0;
            });
            let result = m.push(p).await;
            let error = result.as_ref().err().map(ToString::to_string);
            m.update_progress(p.device, |pr| {
                pr.running = false;
                pr.online = !matches!(result, Err(MirrorError::Unreachable { .. }));
                pr.quota_full = error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("quota full"));
                pr.last_error = error.clone();
                if result.is_ok() {
                    pr.pending_bytes = 0;
                }
            });
            m.seen(p.device, error.clone()).await;
            if let Some(e) = error {
                log::warn!("mirror: to {} ({}): {e}", p.name, p.device.short());
            }
            // A peer we reached may run a newer signed Hearth (`offers`).
            if !matches!(result, Err(MirrorError::Unreachable { .. })) {
                m.check_offer(p).await;
            }
        }
        m.forget_offers_except(&peers);
    }
}

/// Our packs: name → size, from the repository folder. Blocking: a
/// directory walk, run inside [`blocking`].
pub(crate) fn local_packs(repo: &Path) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    let Ok(dirs) = std::fs::read_dir(repo.join("packs")) else {
        return out;
    };
    for d in dirs.flatten() {
        let Ok(files) = std::fs::read_dir(d.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if is_pack_name(&name)
                && let Ok(md) = f.metadata()
            {
                out.insert(name, md.len());
            }
        }
    }
    out
}

impl Mirror {
    /// Pairs with the Hearth at `address` that shows `code`. Returns its
    /// name and ID; both sides then await their admin's confirmation.
    pub async fn join(
        &self,
        address: &str,
        code: &str,
        replaces: bool,
    ) -> Result<(String, DeviceId), MirrorError> {
        if address.trim().is_empty() {
            return Err(MirrorError::Invalid(
                "Type the other Hearth's address.".into(),
            ));
        }
        let code = pairing::normalise(code);
        if code.len() != 8 {
            return Err(MirrorError::Invalid(
                "A pairing code has 8 letters and digits.".into(),
            ));
        }
        let mut conn = client::connect(&self.0.id, address, None).await?;
        let (joiner, msg) = Joiner::start(&code);
        let reply: PairReply = conn
            .json(
                Method::POST,
                "/v1/pair",
                &PairRequest {
                    spake: hex::encode(msg),
                    name: self.name().to_string(),
                    port: self.0.port,
                    replaces,
                },
            )
            .await?;
        let decode = |s: &str| hex::decode(s).map_err(|e| MirrorError::Protocol(e.to_string()));
        let mac = joiner.finish(
            &decode(&reply.spake)?,
            &decode(&reply.mac)?,
            conn.server,
            self.device(),
        )?;
        let _: serde_json::Value = conn
            .json(
                Method::POST,
                "/v1/pair/confirm",
                &PairConfirm {
                    mac: hex::encode(mac),
                },
            )
            .await?;
        self.propose(conn.server, &reply.name, address.trim(), false)
            .await?;
        log::info!(
            "mirror: paired with \"{}\" ({}) at {address}; waiting for the admin to confirm",
            reply.name,
            conn.server.short()
        );
        Ok((reply.name, conn.server))
    }

    /// One mirror run to one peer.
    async fn push(&self, p: &Peer) -> Result<(), MirrorError> {
        let mut conn = client::connect(&self.0.id, &p.address, Some(p.device)).await?;
        let hello: Hello = conn.json(Method::GET, "/v1/hello", &()).await?;
        if hello.protocol != PROTOCOL {
            return Err(MirrorError::Protocol(format!(
                "it speaks mirror protocol {}, this Hearth {}",
                hello.protocol, PROTOCOL
            )));
        }
        // Our packs, and the repository files that exist beside them (they
        // are small), in one trip to the blocking pool.
        let repo = self.repo().to_path_buf();
        let (local, metas) = blocking(move || {
            let local = local_packs(&repo);
            let metas: Vec<(&str, Vec<u8>)> = if local.is_empty() {
                Vec::new()
            } else {
                META_FILES
                    .iter()
                    .filter_map(|meta| Some((*meta, std::fs::read(repo.join(meta)).ok()?)))
                    .collect()
            };
            Ok::<_, MirrorError>((local, metas))
        })
        .await?;
        if local.is_empty() {
            return Ok(());
        }
        for (meta, data) in metas {
            conn.send(Method::PUT, &format!("/v1/meta/{meta}"), full(data))
                .await?;
        }
        let names: Vec<String> = local.keys().cloned().collect();
        let want: Names = conn
            .json(Method::POST, "/v1/have", &Names { packs: names })
            .await?;
        let mut want: HashSet<String> = want.packs.into_iter().collect();
        // Copies a proof found damaged go again, whatever the peer thinks.
        let resend = self.resend(p.device).await?;
        want.extend(resend.iter().filter(|n| local.contains_key(*n)).cloned());
        let sent = self.sent(p.device).await?;
        // What it already holds counts as sent.
        let held: Vec<(String, u64)> = local
            .iter()
            .filter(|(n, _)| !want.contains(*n) && !sent.contains(*n))
            .map(|(n, s)| (n.clone(), *s))
            .collect();
        self.record_sent(p.device, held).await?;
        // Deletions: only packs we once sent and no longer have.
        let gone: Vec<String> = sent
            .into_iter()
            .filter(|n| !local.contains_key(n))
            .collect();
        if !gone.is_empty() {
            let _: Scheduled = conn
                .json(
                    Method::POST,
                    "/v1/delete",
                    &Names {
                        packs: gone.clone(),
                    },
                )
                .await?;
            self.forget_sent(p.device, gone).await?;
        }
        let mut todo: Vec<(String, u64)> = want
            .iter()
            .filter_map(|n| local.get(n).map(|s| (n.clone(), *s)))
            .collect();
        todo.sort();
        let pending: u64 = todo.iter().map(|(_, s)| s).sum();
        self.update_progress(p.device, |pr| pr.pending_bytes = pending);
        // Send what fits in the space the peer offers (it checks too, but
        // a refusal in the middle of a body reads as a broken connection).
        let mut room = hello.quota.saturating_sub(hello.used);
        let fits = todo
            .iter()
            .take_while(|(_, size)| match room.checked_sub(*size) {
                Some(left) => {
                    room = left;
                    true
                }
                None => false,
            })
            .count();
        let refused = todo.len() - fits;
        todo.truncate(fits);
        self.upload_all(p, todo).await?;
        if refused > 0 {
            return Err(MirrorError::Refused(format!(
                "quota full: {} offers {} bytes and holds {}; {refused} packs wait",
                hello.name, hello.quota, hello.used
            )));
        }
        let due = p
            .last_proof
            .as_ref()
            .is_none_or(|(at, ..)| unix_now() - at >= self.0.settings.prove_every.as_secs() as i64);
        if due {
            self.prove_with(&mut conn, p.device).await?;
        }
        Ok(())
    }

    /// Sends packs over a few connections at once, so one pack's fsync and
    /// check at the holder overlap the next one's transfer. With a rate
    /// limit, one connection carries everything (the limit is per stream).
    async fn upload_all(&self, p: &Peer, todo: Vec<(String, u64)>) -> Result<(), MirrorError> {
        let streams = if self.bandwidth() > 0 { 1 } else { PARALLEL };
        let queue = Arc::new(Mutex::new(VecDeque::from(todo)));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..streams {
            let (m, queue, peer) = (self.clone(), queue.clone(), p.clone());
            workers.spawn(async move {
                let next = || queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                let Some(mut job) = next() else {
                    return Ok(());
                };
                let mut conn = client::connect(&m.0.id, &peer.address, Some(peer.device)).await?;
                loop {
                    let (name, size) = job;
                    if let Err(e) = m.upload(&mut conn, peer.device, &name, size).await {
                        // The others stop after their current pack.
                        queue.lock().unwrap_or_else(|e| e.into_inner()).clear();
                        return Err(e);
                    }
                    m.update_progress(peer.device, |pr| {
                        pr.pending_bytes = pr.pending_bytes.saturating_sub(size)
                    });
                    match next() {
                        Some(j) => job = j,
                        None => return Ok(()),
                    }
                }
            });
        }
        let mut first = None;
        while let Some(r) = workers.join_next().await {
            let r = r
                .map_err(|e| MirrorError::Internal(e.to_string()))
                .and_then(|r| r);
            if let (Err(e), None) = (r, &first) {
                first = Some(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Sends one pack, from wherever an earlier attempt stopped.
    async fn upload(
        &self,
        conn: &mut Conn,
        peer: DeviceId,
        name: &str,
        size: u64,
    ) -> Result<(), MirrorError> {
        let state: Received = conn
            .json(Method::GET, &format!("/v1/uploads/{name}"), &())
            .await?;
        let offset = if state.received < size {
            state.received
        } else {
            0
        };
        let path = pack_path(self.repo(), name);
        let file = blocking(move || {
            use std::io::Seek;
            let mut file = std::fs::File::open(path)?;
            file.seek(std::io::SeekFrom::Start(offset))?;
            Ok::<_, MirrorError>(file)
        })
        .await?;
        let body = throttled(self.clone(), peer, file, size - offset);
        let resp = conn
            .send_sized(
                Method::PUT,
                &format!("/v1/packs/{name}?offset={offset}&size={size}"),
                body,
                size - offset,
            )
            .await?;
        let bytes = client::read_limited(resp.into_body(), 64 * 1024).await?;
        let r: Received =
            serde_json::from_slice(&bytes).map_err(|e| MirrorError::Protocol(e.to_string()))?;
        if !r.stored {
            return Err(MirrorError::Unreachable {
                address: conn.address.clone(),
                message: format!(
                    "the upload of a pack stopped at {} of {size} bytes",
                    r.received
                ),
            });
        }
        self.record_sent(peer, vec![(name.to_string(), size)]).await
    }

    pub(crate) async fn sent(&self, peer: DeviceId) -> Result<HashSet<String>, MirrorError> {
        self.0
            .store
            .read(move |c| {
                let rows = c
                    .prepare("SELECT name FROM mirror_sent WHERE peer = ?1")?
                    .query_map([peer.to_hex()], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await
    }

    async fn resend(&self, peer: DeviceId) -> Result<HashSet<String>, MirrorError> {
        self.0
            .store
            .read(move |c| {
                let rows = c
                    .prepare("SELECT name FROM mirror_resend WHERE peer = ?1")?
                    .query_map([peer.to_hex()], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await
    }

    /// Notes packs the peer now holds (so they need no sending again).
    pub(crate) async fn record_sent(
        &self,
        peer: DeviceId,
        packs: Vec<(String, u64)>,
    ) -> Result<(), MirrorError> {
        if packs.is_empty() {
            return Ok(());
        }
        self.0
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                {
                    let mut ins = tx.prepare_cached(
                        "INSERT OR REPLACE INTO mirror_sent (peer, name, size, sent_at)
                         VALUES (?1, ?2, ?3, ?4)",
                    )?;
                    let mut done = tx.prepare_cached(
                        "DELETE FROM mirror_resend WHERE peer = ?1 AND name = ?2",
                    )?;
                    for (n, s) in &packs {
                        ins.execute(params![peer.to_hex(), n, *s as i64, unix_now()])?;
                        done.execute(params![peer.to_hex(), n])?;
                    }
                }
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn forget_sent(&self, peer: DeviceId, packs: Vec<String>) -> Result<(), MirrorError> {
        self.0
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                for n in &packs {
                    tx.execute(
                        "DELETE FROM mirror_sent WHERE peer = ?1 AND name = ?2",
                        params![peer.to_hex(), n],
                    )?;
                }
                tx.commit()?;
                Ok(())
            })
            .await
    }
}

/// The file (from where the reader is) as a request body, at most
/// `bandwidth` bytes per second, with live progress. Read on a blocking
/// thread in pieces, into reused buffers ([`crate::pool`]).
fn throttled(m: Mirror, peer: DeviceId, mut file: std::fs::File, len: u64) -> client::Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    // Not awaited: the reader runs until the pack is read or the body is
    // dropped (its next send fails); a read error travels in the body.
    drop(blocking(move || {
        use std::io::Read;
        let start = std::time::Instant::now();
        let mut sent = 0u64;
        while sent < len {
            let want = (PIECE as u64).min(len - sent);
            let mut buf = m.0.pool.take();
            // `read_to_end` through `take` fills the spare capacity without
            // zeroing it first.
            let n = match (&mut file).take(want).read_to_end(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return Ok(());
                }
            };
            if tx.blocking_send(Ok(m.0.pool.bytes(buf))).is_err() {
                return Ok(());
            }
            sent += n as u64;
            m.update_progress(peer, |pr| pr.sent_bytes += n as u64);
            let limit = m.bandwidth();
            if limit > 0 {
                let due = Duration::from_secs_f64(sent as f64 / limit as f64);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
        Ok::<_, std::io::Error>(())
    }));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|item| (item.map(hyper::body::Frame::data), rx))
    });
    http_body_util::StreamBody::new(stream).boxed()
}
