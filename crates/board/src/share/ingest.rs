//! Storing a peer's batch of events. Everything a peer sends is untrusted:
//! each event is parsed once, its fields checked here, its signature
//! checked against its origin's certificate by the peer layer's `verify`
//! (this crate does no cryptography), and every origin's numbering checked,
//! all before anything is written; then the whole batch is stored in one
//! transaction, or nothing.
//!
//! Order of the checks and why:
//! - an event under an `(origin, seq)` we hold must be byte-identical to
//!   ours: a different one is a forgery (or a broken origin) and refuses
//!   the batch;
//! - a new event must be exactly the next seq of its origin: numbering
//!   without gaps is what makes "after my cursor" resumable.
//!
//! A post becomes a row pages show once its thread is held; until then its
//! event waits (`pending`). A retraction removes its post wherever it is,
//! and a post whose retraction arrived first is never shown.

use std::{collections::BTreeMap, sync::Arc};

use hearth_store::rusqlite::{Connection, OptionalExtension, params};

use crate::{
    Board,
    error::BoardError,
    model::Event,
    photo,
    posting::{MAX_BODY, check_nickname},
    rows::load_post,
    share::{
        EVENT_VERSION, EventBody, EventKind, WireEvent, check_from, cursors_of, insert_event,
        is_origin, origin_guest, shared_id,
    },
};

/// What one batch did here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Events new to this Hearth (stored, and forwarded from now on).
    pub new: usize,
    /// Posts that became visible.
    pub shown: usize,
    /// Photos the new posts carry, to fetch from the same peer.
    pub photos: Vec<PhotoWant>,
}

/// A shown post whose photo is still at the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhotoWant {
    /// The post's id here.
    pub post: i64,
    pub board: String,
    pub origin: String,
    pub seq: u64,
    /// The size the event claims (checked again when it arrives).
    pub size: u64,
    /// The type the event claims (the content must agree).
    pub kind: photo::Kind,
}

fn short(origin: &str) -> &str {
    &origin[..origin.len().min(8)]
}

/// Checks one event's fields, apart from its place in the numbering.
fn check(e: &EventBody, board: &str) -> Result<(), BoardError> {
    let bad = |m: String| Err(BoardError::Invalid(m));
    if e.v != EVENT_VERSION {
        return bad(format!("an event has format {}, not {EVENT_VERSION}", e.v));
    }
    if !is_origin(&e.origin) {
        return bad("an event's origin is not a device ID".into());
    }
    let at = format!("event {}#{}", short(&e.origin), e.seq);
    if e.board != board {
        return bad(format!("{at} is for board {:?}, not {board:?}", e.board));
    }
    if e.seq == 0 || e.hlc < 0 {
        return bad(format!("{at} has a zero number or a negative time"));
    }
    check_from(&e.from)?;
    match e.kind {
        EventKind::Post => {
            if e.target.is_some() {
                return bad(format!("{at} is a post with a retraction's target"));
            }
            let text = e.text.trim();
            if text.chars().count() > MAX_BODY {
                return bad(format!("{at} is longer than {MAX_BODY} characters"));
            }
            if text.is_empty() && e.photo.is_none() {
                return bad(format!("{at} is empty"));
            }
            if !e.admin {
                check_nickname(&e.nick)
                    .map_err(|m| BoardError::Invalid(format!("{at} has a bad name: {m}")))?;
            }
            if let Some(p) = &e.parent
                && (!is_origin(&p.origin) || p.seq == 0)
            {
                return bad(format!("{at} replies to something that is not an event"));
            }
            if let Some(p) = &e.photo {
                let kind_ok = ["jpeg", "png", "webp"].contains(&p.kind.as_str());
                if photo::valid_name(&p.name).is_none_or(|(_, _, thumb)| thumb)
                    || !kind_ok
                    || p.size as usize > photo::MAX_PHOTO_BYTES
                {
                    return bad(format!("{at} names a photo that cannot be one"));
                }
            }
        }
        EventKind::Retract => match e.target {
            Some(t) if t >= 1 && t < e.seq && e.parent.is_none() && e.text.is_empty() => {}
            _ => return bad(format!("{at} is a retraction without a valid target")),
        },
    }
    Ok(())
}

impl Board {
    /// Stores a batch a peer (`via`, hex device ID) sent for shared board
    /// `board`. Each event is parsed once, its fields checked, and its
    /// signature checked by `verify` (the peer layer's cryptography: origin,
    /// that origin's certificate from `certs` if sent, the signed text and
    /// the signature) before anything is written. Refuses the whole batch,
    /// storing nothing, when any event is malformed, forged or out of order.
    pub async fn ingest(
        &self,
        via: &str,
        board: &str,
        events: Vec<WireEvent>,
        certs: BTreeMap<String, Vec<u8>>,
        verify: impl Fn(&str, Option<&[u8]>, &str, &[u8]) -> Result<(), String>,
    ) -> Result<Ingested, BoardError> {
        let mut parsed = Vec::with_capacity(events.len());
        for w in events {
            let body = w.parse()?;
            check(&body, board)?;
            let sig = hex::decode(&w.sig)
                .map_err(|_| BoardError::Invalid("an event's signature is not hex".into()))?;
            let cert = certs.get(&body.origin).map(Vec::as_slice);
            verify(&body.origin, cert, &w.body, &sig).map_err(BoardError::Invalid)?;
            parsed.push((body, w.body, sig));
        }
        let (via, board) = (via.to_string(), board.to_string());
        let own = self.origin().map(|o| o.id.clone()).unwrap_or_default();
        let renderer = self.renderer.clone();
        let _order = self.publish.lock().await;
        let (result, gone) = self
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                let Some(board_id) = shared_id(&tx, &board)? else {
                    // Sharing stopped while the batch was on its way.
                    return Ok((Ingested::default(), vec![], vec![]));
                };
                let mut cursors = cursors_of(&tx, &board)?;
                let mut fresh = vec![];
                for (body, text, sig) in parsed {
                    let held = cursors.get(&body.origin).copied().unwrap_or(0);
                    let at = format!("event {}#{}", short(&body.origin), body.seq);
                    if body.seq <= held {
                        let ours: Option<String> = tx
                            .query_row(
                                "SELECT body FROM board_share_events
                                 WHERE board = ?1 AND origin = ?2 AND seq = ?3",
                                params![board, body.origin, body.seq as i64],
                                |r| r.get(0),
                            )
                            .optional()?;
                        if ours.as_deref() != Some(text.as_str()) {
                            return Err(BoardError::Invalid(format!(
                                "{at} differs from the one this Hearth holds: refused as a forgery"
                            )));
                        }
                        continue;
                    }
                    if body.origin == own {
                        return Err(BoardError::Invalid(format!(
                            "{at} claims to be from this Hearth, which never made it"
                        )));
                    }
                    if body.seq != held + 1 {
                        return Err(BoardError::Invalid(format!(
                            "{at} skips ahead: the next from that Hearth is #{}",
                            held + 1
                        )));
                    }
                    cursors.insert(body.origin.clone(), body.seq);
                    fresh.push((body, text, sig));
                }
                let mut done = Ingested::default();
                let mut live = vec![];
                let mut gone = vec![];
                for (origin, cert) in &certs {
                    if fresh.iter().any(|(b, _, _)| &b.origin == origin) {
                        tx.execute(
                            "INSERT OR IGNORE INTO board_origins (origin, cert) VALUES (?1, ?2)",
                            params![origin, cert],
                        )?;
                    }
                }
                for (body, text, sig) in &fresh {
                    insert_event(&tx, body, text, sig, Some(&via))?;
                    done.new += 1;
                    match body.kind {
                        EventKind::Post => {
                            if let Some(e) = show(&tx, board_id, body, &renderer, &mut done.photos)? {
                                done.shown += 1;
                                live.push(e);
                            }
                        }
                        EventKind::Retract => {
                            if let Some((e, photos)) = retract(&tx, board_id, body)? {
                                live.push(e);
                                gone.extend(photos);
                            }
                        }
                    }
                }
                // Replies that waited for a thread this batch brought.
                if !fresh.is_empty() {
                    loop {
                        let waiting: Vec<String> = tx
                            .prepare(
                                "SELECT body FROM board_share_events WHERE board = ?1 AND pending = 1",
                            )?
                            .query_map([&board], |r| r.get(0))?
                            .collect::<Result<_, _>>()?;
                        let before = done.shown;
                        for text in waiting {
                            let Ok(body) = serde_json::from_str::<EventBody>(&text) else {
                                continue;
                            };
                            if let Some(e) = show(&tx, board_id, &body, &renderer, &mut done.photos)? {
                                done.shown += 1;
                                live.push(e);
                            }
                        }
                        if done.shown == before {
                            break;
                        }
                    }
                }
                tx.commit()?;
                Ok::<_, BoardError>((done, live, gone))
            })
            .await
            .map(|(done, live, gone)| {
                for e in live {
                    self.broadcast(e);
                }
                (done, gone)
            })?;
        if result.new > 0 {
            self.changed();
        }
        for name in gone {
            photo::remove(&self.photos, &name);
        }
        Ok(result)
    }
}

/// Shows a post event as a row, unless it is already shown, retracted, or
/// its thread is not held yet (then it waits, `pending`). Returns the live
/// event for pages, when the post is visible.
fn show(
    c: &Connection,
    board_id: i64,
    e: &EventBody,
    renderer: &crate::Renderer,
    wants: &mut Vec<PhotoWant>,
) -> Result<Option<Arc<Event>>, BoardError> {
    let key = params![e.board, e.origin, e.seq as i64];
    let shown: bool = c.query_row(
        "SELECT EXISTS (SELECT 1 FROM board_posts WHERE board_id = ?1 AND origin = ?2 AND seq = ?3)",
        params![board_id, e.origin, e.seq as i64],
        |r| r.get(0),
    )?;
    let retracted: bool = c.query_row(
        "SELECT EXISTS (SELECT 1 FROM board_share_events
         WHERE board = ?1 AND origin = ?2 AND kind = 'retract' AND target = ?3)",
        key,
        |r| r.get(0),
    )?;
    let set_pending = |p: bool| {
        c.execute(
            "UPDATE board_share_events SET pending = ?4 WHERE board = ?1 AND origin = ?2 AND seq = ?3",
            params![e.board, e.origin, e.seq as i64, p],
        )
    };
    if shown || retracted {
        set_pending(false)?;
        return Ok(None);
    }
    let parent = match &e.parent {
        Some(p) => {
            let id: Option<i64> = c
                .query_row(
                    "SELECT id FROM board_posts
                     WHERE board_id = ?1 AND origin = ?2 AND seq = ?3 AND parent_id IS NULL",
                    params![board_id, p.origin, p.seq as i64],
                    |r| r.get(0),
                )
                .optional()?;
            match id {
                Some(id) => Some(id),
                None => {
                    set_pending(true)?;
                    return Ok(None);
                }
            }
        }
        None => None,
    };
    let guest = origin_guest(&e.origin);
    let hidden: bool = c.query_row(
        "SELECT EXISTS (SELECT 1 FROM board_bans WHERE guest_id = ?1)",
        [&guest],
        |r| r.get(0),
    )?;
    let created = (e.hlc >> 16) / 1000;
    let nick = if e.admin { "admin" } else { e.nick.trim() };
    let text = e.text.trim().replace("\r\n", "\n");
    c.execute(
        "INSERT INTO board_posts
         (board_id, parent_id, guest_id, nickname, body, photo, address, created_at,
          last_activity, hidden, origin, seq, hlc, activity, origin_name)
         VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?3, ?6, ?6, ?7, ?8, ?9, ?10, ?10, ?11)",
        params![
            board_id,
            parent,
            guest,
            nick,
            text,
            created,
            hidden,
            e.origin,
            e.seq as i64,
            e.hlc,
            e.from
        ],
    )?;
    let id = c.last_insert_rowid();
    if let Some(p) = parent {
        c.execute(
            "UPDATE board_posts SET activity = max(activity, ?2),
                    last_activity = max(last_activity, ?3) WHERE id = ?1",
            params![p, e.hlc, created],
        )?;
    }
    set_pending(false)?;
    if hidden {
        return Ok(None);
    }
    if let Some(p) = &e.photo {
        wants.push(PhotoWant {
            post: id,
            board: e.board.clone(),
            origin: e.origin.clone(),
            seq: e.seq,
            size: p.size,
            kind: match p.kind.as_str() {
                "png" => photo::Kind::Png,
                "webp" => photo::Kind::Webp,
                _ => photo::Kind::Jpeg,
            },
        });
    }
    let post = load_post(c, id)?;
    Ok(Some(Board::record_event(
        c,
        board_id,
        "post",
        id,
        renderer(&post),
    )?))
}

/// A retraction applied: the live "remove" and the photo files to delete.
type Retracted = (Arc<Event>, Vec<String>);

/// Applies a retraction: the post and its replies go, here as at their
/// origin. Returns the live "remove" and the photo files to delete after
/// the commit; nothing when the post is not shown here (then it never
/// will be: [`show`] checks for its retraction).
fn retract(c: &Connection, board_id: i64, e: &EventBody) -> Result<Option<Retracted>, BoardError> {
    let Some(target) = e.target else {
        return Ok(None);
    };
    let id: Option<i64> = c
        .query_row(
            "SELECT id FROM board_posts WHERE board_id = ?1 AND origin = ?2 AND seq = ?3",
            params![board_id, e.origin, target as i64],
            |r| r.get(0),
        )
        .optional()?;
    let Some(id) = id else { return Ok(None) };
    let photos: Vec<String> = c
        .prepare(
            "SELECT photo FROM board_posts WHERE (id = ?1 OR parent_id = ?1) AND photo IS NOT NULL",
        )?
        .query_map([id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    c.execute("DELETE FROM board_posts WHERE parent_id = ?1", [id])?;
    c.execute("DELETE FROM board_posts WHERE id = ?1", [id])?;
    let event = Board::record_event(c, board_id, "remove", id, id.to_string())?;
    Ok(Some((event, photos)))
}
