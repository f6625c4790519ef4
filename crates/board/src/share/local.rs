//! This Hearth's side of sharing: which boards are shared (read), the events for
//! its own posts and retractions (made in the transaction that makes the
//! post, so a post on a shared board and its event exist together or not
//! at all), and answering a peer's "what do you have after my cursors".

use std::collections::BTreeMap;

use hearth_store::rusqlite::{Connection, OptionalExtension, params};

use crate::{
    Board,
    error::BoardError,
    share::{
        Batch, EVENT_VERSION, EventBody, EventKind, EventRef, MAX_BATCH, Origin, PhotoRef,
        WireEvent, cursors_of, insert_event, shared_id, shared_name,
    },
};

/// What a new local post on a shared board says, besides where it goes.
pub(crate) struct LocalPost<'a> {
    pub board_id: i64,
    pub parent: Option<i64>,
    pub nick: &'a str,
    pub admin: bool,
    pub text: &'a str,
    pub photo: Option<PhotoRef>,
    pub hlc: i64,
}

/// Makes and stores the event for a local post, inside the caller's
/// transaction. `None` when the post does not travel: the board is not
/// shared, this Hearth has no identity, or it replies to a thread that
/// never travelled (made before the board was shared).
pub(crate) fn post_event(
    c: &Connection,
    origin: Option<&Origin>,
    post: &LocalPost<'_>,
) -> Result<Option<u64>, BoardError> {
    let Some(origin) = origin else {
        return Ok(None);
    };
    let Some(board) = shared_name(c, post.board_id)? else {
        return Ok(None);
    };
    let parent = match post.parent {
        Some(p) => {
            let r: (Option<String>, Option<i64>) = c.query_row(
                "SELECT origin, seq FROM board_posts WHERE id = ?1",
                [p],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            match r {
                (Some(origin), Some(seq)) => Some(EventRef {
                    origin,
                    seq: seq as u64,
                }),
                _ => return Ok(None),
            }
        }
        None => None,
    };
    let seq = next_seq(c, &origin.id, post.board_id)?;
    let body = EventBody {
        parent,
        nick: post.nick.to_string(),
        admin: post.admin,
        text: post.text.to_string(),
        photo: post.photo.clone(),
        ..own_event(origin, board, seq, post.hlc, EventKind::Post)
    };
    store_own(c, origin, &body)?;
    Ok(Some(body.seq))
}

/// Makes the retraction of this Hearth's own post `post` (deleted by its
/// admin), inside the caller's transaction. Nothing for a post that never
/// travelled or came from elsewhere: deleting those stays local.
pub(crate) fn retract_event(
    c: &Connection,
    origin: Option<&Origin>,
    post: i64,
) -> Result<bool, BoardError> {
    let Some(origin) = origin else {
        return Ok(false);
    };
    let row: Option<(i64, Option<String>, Option<i64>)> = c
        .query_row(
            "SELECT board_id, origin, seq FROM board_posts WHERE id = ?1",
            [post],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((board_id, Some(from), Some(seq))) = row else {
        return Ok(false);
    };
    if from != origin.id {
        return Ok(false);
    }
    let board: String = c.query_row(
        "SELECT name FROM board_boards WHERE id = ?1",
        [board_id],
        |r| r.get(0),
    )?;
    let body = EventBody {
        target: Some(seq as u64),
        ..own_event(
            origin,
            board,
            next_seq(c, &origin.id, board_id)?,
            crate::share::next_hlc(c)?,
            EventKind::Retract,
        )
    };
    store_own(c, origin, &body)?;
    Ok(true)
}

/// An event of this Hearth's with the fields every kind has; the caller
/// fills in its kind's own.
fn own_event(origin: &Origin, board: String, seq: u64, hlc: i64, kind: EventKind) -> EventBody {
    EventBody {
        v: EVENT_VERSION,
        board,
        origin: origin.id.clone(),
        seq,
        hlc,
        from: origin.name.clone(),
        kind,
        parent: None,
        nick: String::new(),
        admin: false,
        text: String::new(),
        photo: None,
        target: None,
    }
}

fn next_seq(c: &Connection, origin: &str, board_id: i64) -> Result<u64, BoardError> {
    let last: Option<i64> = c.query_row(
        "SELECT max(e.seq) FROM board_share_events e JOIN board_boards b ON b.name = e.board
         WHERE b.id = ?1 AND e.origin = ?2",
        params![board_id, origin],
        |r| r.get(0),
    )?;
    Ok(last.unwrap_or(0) as u64 + 1)
}

fn store_own(c: &Connection, origin: &Origin, body: &EventBody) -> Result<(), BoardError> {
    let text = serde_json::to_string(body).map_err(|e| BoardError::Internal(e.to_string()))?;
    let sig = (origin.sign)(text.as_bytes());
    insert_event(c, body, &text, &sig, None)
}

impl Board {
    /// Gives the board this Hearth's identity, once, at start: what signs
    /// its events. Later calls are ignored.
    pub fn set_origin(&self, origin: Origin) {
        let _ = self.origin.set(std::sync::Arc::new(origin));
    }

    pub(crate) fn origin(&self) -> Option<&Origin> {
        self.origin.get().map(|o| o.as_ref())
    }

    /// Resolves when this Hearth made a new event on a shared board (a
    /// post or a retraction): the peer layer then tells its peers.
    pub async fn shared_changed(&self) {
        self.share_wake.notified().await;
    }

    /// The ids of the boards shared with peers.
    pub async fn shared_ids(&self) -> Result<Vec<i64>, BoardError> {
        self.store
            .read(|c| {
                let rows = c
                    .prepare("SELECT board_id FROM board_shared ORDER BY board_id")?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await
    }

    /// The names of the boards shared with peers: how peers match boards.
    pub async fn shared_boards(&self) -> Result<Vec<String>, BoardError> {
        self.store
            .read(|c| {
                let rows = c
                    .prepare(
                        "SELECT b.name FROM board_shared s JOIN board_boards b ON b.id = s.board_id
                         ORDER BY b.position, b.id",
                    )?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await
    }

    /// Our cursors on shared board `name`: the highest seq held per origin.
    pub async fn cursors(&self, name: &str) -> Result<BTreeMap<String, u64>, BoardError> {
        let name = name.to_string();
        self.store.read(move |c| cursors_of(c, &name)).await
    }

    /// What we hold on shared board `name` after the asker's `cursors`,
    /// at most `limit` events (and [`MAX_BATCH`]), in seq order per
    /// origin. Events of the asker's own origin are never sent back to it.
    pub async fn events_after(
        &self,
        name: &str,
        cursors: BTreeMap<String, u64>,
        asker: &str,
        limit: usize,
    ) -> Result<Batch, BoardError> {
        let (name, asker) = (name.to_string(), asker.to_string());
        let own = self.origin().map(|o| (o.id.clone(), o.cert.clone()));
        let limit = limit.clamp(1, MAX_BATCH);
        self.store
            .read(move |c| {
                if shared_id(c, &name)?.is_none() {
                    return Err(BoardError::NotFound);
                }
                let ours = cursors_of(c, &name)?;
                let mut batch = Batch::default();
                let mut stmt = c.prepare(
                    "SELECT body, sig FROM board_share_events
                     WHERE board = ?1 AND origin = ?2 AND seq > ?3 ORDER BY seq LIMIT ?4",
                )?;
                for (origin, held) in ours {
                    let after = cursors.get(&origin).copied().unwrap_or(0);
                    if origin == asker || held <= after {
                        continue;
                    }
                    let room = limit - batch.events.len();
                    if room == 0 {
                        batch.more = true;
                        break;
                    }
                    let rows: Vec<(String, Vec<u8>)> = stmt
                        .query_map(params![name, origin, after as i64, room as i64], |r| {
                            Ok((r.get(0)?, r.get(1)?))
                        })?
                        .collect::<Result<_, _>>()?;
                    if (rows.len() as u64) < held - after {
                        batch.more = true;
                    }
                    let cert = match &own {
                        Some((id, cert)) if *id == origin => Some(cert.clone()),
                        _ => c
                            .query_row(
                                "SELECT cert FROM board_origins WHERE origin = ?1",
                                [&origin],
                                |r| r.get(0),
                            )
                            .optional()?,
                    };
                    let Some(cert) = cert else { continue };
                    batch.certs.insert(origin.clone(), cert);
                    batch
                        .events
                        .extend(rows.into_iter().map(|(body, sig)| WireEvent {
                            body,
                            sig: hex::encode(sig),
                        }));
                }
                Ok(batch)
            })
            .await
    }
}
