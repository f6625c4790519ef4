//! Boards shared between paired Hearths (docs/board-replication.md).
//!
//! Every post and retraction on a shared board is an *event*: numbered per
//! (board, origin) with no gaps, stamped with a hybrid logical clock, and
//! signed by the origin Hearth's identity key. Events are kept byte for
//! byte in `board_share_events`, so a Hearth forwards what it received
//! unchanged and a third Hearth can check it against the origin's
//! certificate: the events are self-certifying, whoever carries them.
//!
//! This crate owns the event format, the order and what is shown; it does
//! no cryptography. The peer layer (hearth-mirror) signs with the key it
//! gives the board ([`Origin::sign`]), hands [`crate::Board::ingest`] the
//! function that checks a signature against the origin's certificate, and
//! carries events over the pinned channel.
//!
//! - `local`: events for this Hearth's own posts and retractions, which
//!   boards are shared, cursors, and answering a peer's "what do you have
//!   after". Turning sharing on and off, accepting an offered board and the
//!   photo budget are the admin's tools, in `moderation`, which uses this
//!   module (never the other way round).
//! - `ingest`: checking and storing a peer's batch, in one transaction.
//! - `photos`: a shared post's photo, served to peers and attached when it
//!   arrives (checked and re-encoded like an upload), or marked not carried.

mod ingest;
mod local;
mod photos;

use std::{collections::BTreeMap, sync::Arc};

use hearth_store::rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::error::BoardError;

pub use ingest::{Ingested, PhotoWant};
pub(crate) use local::{LocalPost, post_event, retract_event};

/// Version of the event format; anything else is refused.
pub const EVENT_VERSION: u32 = 1;
/// Largest signed body of one event, in bytes: a full post (4,000
/// characters, up to 4 bytes each) and its fields fit.
pub const MAX_EVENT_BYTES: usize = 20 * 1024;
/// Most events in one answer.
pub const MAX_BATCH: usize = 200;
/// Longest name of an origin Hearth, in characters.
const MAX_FROM: usize = 64;

/// Signs bytes with this Hearth's identity key (Ed25519).
pub type Signer = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// This Hearth as the origin of events: given by the appliance once its
/// identity is loaded. Without it no board can be shared.
#[derive(Clone)]
pub struct Origin {
    /// The device ID, hex: the SHA-256 of `cert`.
    pub id: String,
    /// The name peers show beside its posts.
    pub name: String,
    /// The device certificate (DER), sent with our events.
    pub cert: Vec<u8>,
    pub sign: Signer,
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What an event does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Post,
    Retract,
}

impl EventKind {
    fn as_str(self) -> &'static str {
        match self {
            EventKind::Post => "post",
            EventKind::Retract => "retract",
        }
    }
}

/// An event's place: its origin and number on a board.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRef {
    pub origin: String,
    pub seq: u64,
}

/// A photo a post carries: the origin's file name, its size and type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhotoRef {
    pub name: String,
    pub size: u64,
    #[serde(rename = "type")]
    pub kind: String,
}

/// The signed part of an event. Unknown fields are refused, so a newer
/// format is never half-understood.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBody {
    pub v: u32,
    pub board: String,
    pub origin: String,
    pub seq: u64,
    /// Hybrid logical clock: (milliseconds << 16) + counter.
    pub hlc: i64,
    /// The origin Hearth's name, shown beside its posts.
    pub from: String,
    pub kind: EventKind,
    /// A reply's thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<EventRef>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub nick: String,
    /// Written by the origin's admin.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo: Option<PhotoRef>,
    /// A retraction: the seq of the origin's own post it takes back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<u64>,
}

/// An event as it travels: the body exactly as signed, and the signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireEvent {
    pub body: String,
    /// Ed25519 signature over `body`, hex.
    pub sig: String,
}

impl WireEvent {
    /// The origin and seq, read without trusting anything else: for
    /// finding the certificate to check the signature with.
    pub fn parse(&self) -> Result<EventBody, BoardError> {
        if self.body.len() > MAX_EVENT_BYTES {
            return Err(BoardError::Invalid(format!(
                "an event is {} bytes; at most {MAX_EVENT_BYTES} are accepted",
                self.body.len()
            )));
        }
        serde_json::from_str(&self.body)
            .map_err(|e| BoardError::Invalid(format!("an event is malformed: {e}")))
    }
}

/// A batch for a peer: events after its cursors and the certificates of
/// their origins.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<WireEvent>,
    /// Origin ID (hex) → certificate (DER).
    pub certs: BTreeMap<String, Vec<u8>>,
    /// More events are waiting.
    pub more: bool,
}

/// The next hybrid logical clock value: this Hearth's clock in
/// milliseconds, or just after the newest value it holds, whichever is
/// later, so a post never sorts before one this Hearth has already shown.
/// Values from more than a day ahead of our clock are not followed: a
/// peer's broken clock must not drag ours along for good.
pub(crate) fn next_hlc(c: &Connection) -> Result<i64, BoardError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let wall = now.saturating_mul(1 << 16);
    let ceiling = now.saturating_add(86_400_000).saturating_mul(1 << 16);
    let seen: Option<i64> = c.query_row(
        "SELECT max(hlc) FROM board_posts WHERE hlc <= ?1",
        [ceiling],
        |r| r.get(0),
    )?;
    Ok(wall.max(seen.unwrap_or(0).saturating_add(1)))
}

/// Whether the board with `id` is shared, and its name.
pub(crate) fn shared_name(c: &Connection, id: i64) -> Result<Option<String>, BoardError> {
    Ok(c.query_row(
        "SELECT b.name FROM board_shared s JOIN board_boards b ON b.id = s.board_id
         WHERE s.board_id = ?1",
        [id],
        |r| r.get(0),
    )
    .optional()?)
}

/// The local id of the shared board called `name`.
pub(crate) fn shared_id(c: &Connection, name: &str) -> Result<Option<i64>, BoardError> {
    Ok(c.query_row(
        "SELECT b.id FROM board_shared s JOIN board_boards b ON b.id = s.board_id
         WHERE b.name = ?1",
        [name],
        |r| r.get(0),
    )
    .optional()?)
}

/// The highest seq held per origin on board `name`: the cursors we ask a
/// peer with. Each origin's events are held without gaps, so the highest
/// is also the last contiguous one.
pub(crate) fn cursors_of(c: &Connection, name: &str) -> Result<BTreeMap<String, u64>, BoardError> {
    let mut stmt = c.prepare(
        "SELECT origin, max(seq) FROM board_share_events WHERE board = ?1 GROUP BY origin",
    )?;
    let rows = stmt
        .query_map(params![name], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Stores one event as signed; `via` is the peer it came from (`None`
/// when made here).
pub(crate) fn insert_event(
    c: &Connection,
    body: &EventBody,
    text: &str,
    sig: &[u8],
    via: Option<&str>,
) -> Result<(), BoardError> {
    c.execute(
        "INSERT INTO board_share_events (board, origin, seq, kind, body, sig, target, via, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            body.board,
            body.origin,
            body.seq as i64,
            body.kind.as_str(),
            text,
            sig,
            body.target.map(|t| t as i64),
            via,
            hearth_system::unix_now()
        ],
    )?;
    Ok(())
}

/// The guest id a remote origin's posts carry: never NULL (which means
/// "this Hearth's admin"), and what a ban of such a post matches, so
/// banning it stops accepting that Hearth's posts here.
pub(crate) fn origin_guest(origin: &str) -> String {
    format!("origin:{origin}")
}

/// Checks an origin Hearth's name as sent: 1 to 64 characters, no control
/// or invisible characters.
fn check_from(name: &str) -> Result<(), BoardError> {
    let n = name.chars().count();
    if n == 0
        || n > MAX_FROM
        || name
            .chars()
            .any(|c| c.is_control() || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}'))
    {
        return Err(BoardError::Invalid(
            "an event names its Hearth with control characters, or too long a name".into(),
        ));
    }
    Ok(())
}

/// Whether `s` is a device ID: 64 lowercase hex digits.
pub(crate) fn is_origin(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The reference a stored photo travels as: its name, size and type.
pub(crate) fn photo_ref(dir: &std::path::Path, name: &str) -> Option<PhotoRef> {
    let (_, kind, _) = crate::photo::valid_name(name)?;
    let size = std::fs::metadata(dir.join(name)).ok()?.len();
    Some(PhotoRef {
        name: name.to_string(),
        size,
        kind: match kind {
            crate::photo::Kind::Jpeg => "jpeg",
            crate::photo::Kind::Png => "png",
            crate::photo::Kind::Webp => "webp",
        }
        .to_string(),
    })
}

#[cfg(test)]
mod tests;
