//! Proof of storage, the owner's side: a fresh nonce and a random sample of
//! the packs a peer holds for us, checked against our own copies.

use hearth_system::unix_now;
use std::collections::HashMap;

use hearth_store::rusqlite::params;
use hyper::Method;

use crate::{
    blocking::blocking,
    client::{self, Conn},
    error::MirrorError,
    identity::DeviceId,
    protocol::pack_path,
    protocol::{Challenge, Proof, hash_file},
    service::Mirror,
};

/// Packs checked per proof-of-storage round.
const PROOF_SAMPLE: usize = 4;

fn random(e: getrandom::Error) -> MirrorError {
    MirrorError::Internal(e.to_string())
}

impl Mirror {
    /// Challenges `peer` to prove it holds a few random packs it holds for
    /// us; missing or damaged ones are sent again by the next run, which
    /// this starts. Returns (checked, failed).
    pub async fn prove(&self, peer: DeviceId) -> Result<(u64, u64), MirrorError> {
        let p = self
            .peer(peer)
            .await?
            .ok_or_else(|| MirrorError::Invalid("No such peer.".into()))?;
        let mut conn = client::connect(&self.0.id, &p.address, Some(p.device)).await?;
        let r = self.prove_with(&mut conn, peer).await;
        if r.as_ref().is_ok_and(|(_, failed)| *failed > 0) {
            self.sync_now();
        }
        r
    }

    pub(crate) async fn prove_with(
        &self,
        conn: &mut Conn,
        peer: DeviceId,
    ) -> Result<(u64, u64), MirrorError> {
        let mut names: Vec<String> = self.sent(peer).await?.into_iter().collect();
        if names.is_empty() {
            return Ok((0, 0));
        }
        // A uniform random sample: the first steps of a Fisher-Yates shuffle.
        let sample = PROOF_SAMPLE.min(names.len());
        for i in 0..sample {
            let j = i + (getrandom::u64().map_err(random)? % (names.len() - i) as u64) as usize;
            names.swap(i, j);
        }
        names.truncate(sample);
        let mut nonce = [0u8; 32];
        getrandom::fill(&mut nonce).map_err(random)?;
        let proofs: Vec<Proof> = conn
            .json(
                Method::POST,
                "/v1/prove",
                &Challenge {
                    nonce: hex::encode(nonce),
                    packs: names.clone(),
                },
            )
            .await?;
        let answers: HashMap<String, Option<String>> =
            proofs.into_iter().map(|p| (p.name, p.hash)).collect();
        let repo = self.repo().to_path_buf();
        let checks = names.clone();
        let mine: Vec<Option<String>> = blocking(move || {
            Ok::<_, MirrorError>(
                checks
                    .iter()
                    .map(|n| hash_file(&pack_path(&repo, n), &nonce).ok())
                    .collect(),
            )
        })
        .await?;
        let failed: Vec<String> = names
            .iter()
            .zip(mine)
            .filter_map(|(name, own)| {
                let own = own?;
                (answers.get(name).cloned().flatten().as_deref() != Some(own.as_str()))
                    .then(|| name.clone())
            })
            .collect();
        let detail = if failed.is_empty() {
            "all copies intact".to_string()
        } else {
            let short: Vec<&str> = failed.iter().map(|n| &n[..12]).collect();
            format!(
                "{} missing or damaged, sending again: {}",
                failed.len(),
                short.join(", ")
            )
        };
        if !failed.is_empty() {
            log::warn!("mirror: proof of storage at {}: {detail}", peer.short());
        }
        let (checked, nfailed) = (names.len() as u64, failed.len() as u64);
        // The result, and the failed packs moved from "sent" to "send
        // again", in one transaction.
        self.0
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                for n in &failed {
                    tx.execute(
                        "DELETE FROM mirror_sent WHERE peer = ?1 AND name = ?2",
                        params![peer.to_hex(), n],
                    )?;
                    tx.execute(
                        "INSERT OR IGNORE INTO mirror_resend (peer, name) VALUES (?1, ?2)",
                        params![peer.to_hex(), n],
                    )?;
                }
                tx.execute(
                    "INSERT INTO mirror_proofs (peer, at, checked, failed, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        peer.to_hex(),
                        unix_now(),
                        checked as i64,
                        nfailed as i64,
                        detail
                    ],
                )?;
                tx.commit()?;
                Ok::<_, MirrorError>(())
            })
            .await?;
        Ok((checked, nfailed))
    }
}
