//! The mirror protocol's shared vocabulary (docs/mirror-protocol.md): the
//! version, the limits, which names are packs and repository files, the
//! JSON bodies, the refusal body, and how a pack is hashed.
//!
//! Both sides take these facts from here: the holder's handlers (`server`)
//! and the owner's side (`sync`, `proof`, `recover`, over `client`). Giving
//! them a home of their own is what lets the two sides never import each
//! other, and a change to the wire shows up in one file. Nothing here knows
//! about HTTP frameworks or the database.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The protocol version this build speaks (docs/mirror-protocol.md).
pub const PROTOCOL: u32 = 1;
/// The peer port when an address names none.
pub const DEFAULT_PORT: u16 = 7443;
/// The largest pack accepted (the engine writes about 16 MiB).
pub const MAX_PACK: u64 = 256 * 1024 * 1024;
/// The largest repository file (`META_FILES`) a holder keeps.
pub const MAX_META: usize = 64 * 1024;

/// The repository files besides packs that a peer keeps: public marker
/// and the passphrase-sealed key (useless without the passphrase).
pub const META_FILES: &[&str] = &["HEARTH-REPO", "key.age"];

/// A pack name: 64 lowercase hex digits (BLAKE3 of the ciphertext).
pub fn is_pack_name(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// BLAKE3 of `prefix ‖ file`, as hex. With no prefix it is a pack's name;
/// with the owner's nonce it is a proof of storage, which both sides must
/// compute the same way. Blocking: call it inside `blocking`.
pub fn hash_file(path: &Path, prefix: &[u8]) -> Result<String, std::io::Error> {
    use std::io::Read;
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

/// A refusal's body, `{"error": "..."}`: words for the other admin.
#[derive(Debug, Deserialize, Serialize)]
pub struct Refusal {
    pub error: String,
}

// ---- pairing -------------------------------------------------------------

#[derive(Debug, Deserialize, Serialize)]
pub struct PairRequest {
    pub spake: String,
    pub name: String,
    /// The port the joiner listens on, so we can dial it back.
    pub port: u16,
    pub replaces: bool,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct PairReply {
    pub spake: String,
    pub mac: String,
    pub name: String,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct PairConfirm {
    pub mac: String,
}

// ---- the mirror protocol -------------------------------------------------

#[derive(Debug, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub name: String,
    pub quota: u64,
    pub used: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Names {
    pub packs: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Held {
    pub name: String,
    pub size: u64,
    pub delete_after: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Received {
    pub received: u64,
    /// The pack is complete, checked and stored.
    pub stored: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Scheduled {
    pub scheduled: u64,
    pub delete_after: i64,
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

// ---- updates from a peer -------------------------------------------------

/// The largest offer read: a manifest (at most 64 KiB) and its signature,
/// escaped as JSON.
pub const MAX_OFFER: usize = 256 * 1024;

/// `GET /v1/update/offer`: the newest signed update the holder keeps (the
/// one it runs or has staged), its manifest and minisign signature
/// verbatim, so the asker checks the signature over the very bytes signed.
#[derive(Debug, Serialize, Deserialize)]
pub struct Offer {
    pub manifest: String,
    pub signature: String,
}

// ---- shared boards (docs/board-replication.md) -----------------------------

/// The largest answer to `/v1/board/since`: a full batch of the largest
/// events, hex-escaped certificates and JSON escaping included.
pub const MAX_BOARD_REPLY: usize = 8 * 1024 * 1024;
/// The largest `/v1/board/since` request (cursors of many origins).
pub const MAX_BOARD_ASK: usize = 256 * 1024;

/// `GET /v1/board/boards`: the names of the boards the holder shares.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedBoards {
    pub boards: Vec<String>,
}

/// `POST /v1/board/since`: "what do you have on `board` after my cursors",
/// at most `limit` events.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Since {
    pub board: String,
    /// Origin device ID (hex) → the highest seq the asker holds.
    pub cursors: std::collections::BTreeMap<String, u64>,
    pub limit: usize,
}

/// The answer: events in seq order per origin, the certificates (DER,
/// hex) of their origins, and whether more are waiting.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinceReply {
    pub events: Vec<hearth_board::WireEvent>,
    pub certs: std::collections::BTreeMap<String, String>,
    pub more: bool,
}

/// `POST /v1/board/photo`: the photo of post `(origin, seq)` on `board`;
/// the answer is its bytes, or 404.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhotoAsk {
    pub board: String,
    pub origin: String,
    pub seq: u64,
}

/// Where pack `name` lives under a repository folder, the owner's own or a
/// holder's copy of it (`packs/<first two hex digits>/<name>`): one layout, so
/// a held copy can be restored by copying it back as it is.
pub(crate) fn pack_path(repo: &Path, name: &str) -> PathBuf {
    repo.join("packs").join(&name[..2]).join(name)
}
