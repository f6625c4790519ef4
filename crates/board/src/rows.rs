//! Reading posts and boards out of their rows.
//!
//! The column list, the row decoders and the loaders of one post or board
//! that every part of the board shares: the queries, posting, moderation and
//! event replay all load posts through here. These are plain functions over
//! a connection, not `Board` methods, so this module imports none of its
//! users and they can all import it.

use hearth_store::rusqlite::{self, Connection, OptionalExtension, Row};

use crate::{
    error::BoardError,
    model::{BoardInfo, Post},
    text,
};

pub(crate) const POST_COLUMNS: &str = "id, board_id, parent_id, nickname, body, photo, created_at, pinned, hidden, guest_id IS NULL, origin_name, photo_note, origin";

pub(crate) fn post_from(r: &Row<'_>) -> rusqlite::Result<Post> {
    Ok(Post {
        id: r.get(0)?,
        board_id: r.get(1)?,
        parent_id: r.get(2)?,
        nickname: r.get(3)?,
        html: text::render(&r.get::<_, String>(4)?),
        photo: r.get(5)?,
        created_at: r.get(6)?,
        pinned: r.get::<_, i64>(7)? != 0,
        hidden: r.get::<_, i64>(8)? != 0,
        by_admin: r.get(9)?,
        from_fp: match r.get::<_, Option<String>>(10)? {
            Some(_) => r
                .get::<_, Option<String>>(12)?
                .as_deref()
                .and_then(fingerprint),
            None => None,
        },
        from: r.get(10)?,
        photo_note: r.get(11)?,
    })
}

/// The short fingerprint of a device ID (hex): its first 40 bits in base32,
/// in two groups of four, as pairing and the Peers page show it.
fn fingerprint(origin: &str) -> Option<String> {
    let raw = hex::decode(origin).ok()?;
    let b32 = data_encoding::BASE32_NOPAD.encode(raw.get(..5)?);
    Some(format!("{}-{}", &b32[..4], &b32[4..8]))
}

pub(crate) fn load_post(c: &Connection, id: i64) -> Result<Post, BoardError> {
    c.query_row(
        &format!("SELECT {POST_COLUMNS} FROM board_posts WHERE id = ?1"),
        [id],
        post_from,
    )
    .optional()?
    .ok_or(BoardError::NotFound)
}

pub(crate) fn load_board(c: &Connection, id: i64) -> Result<BoardInfo, BoardError> {
    c.query_row(
        "SELECT b.id, b.name, b.position, b.locked, b.slow_secs,
                (SELECT count(*) FROM board_posts p
                 WHERE p.board_id = b.id AND p.parent_id IS NULL AND p.hidden = 0)
         FROM board_boards b WHERE b.id = ?1",
        [id],
        board_from,
    )
    .optional()?
    .ok_or(BoardError::NotFound)
}

pub(crate) fn board_from(r: &Row<'_>) -> rusqlite::Result<BoardInfo> {
    Ok(BoardInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        position: r.get(2)?,
        locked: r.get::<_, i64>(3)? != 0,
        slow_secs: r.get::<_, i64>(4)? as u32,
        threads: r.get::<_, i64>(5)? as u64,
    })
}
