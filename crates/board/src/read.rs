//! What pages read: boards, threads, pinned notices, the moderation list,
//! search and the landing text.
//!
//! Every method here only reads, through the store's reader connections, and
//! returns the public types of `model`; rows are decoded by `rows`, shared
//! with the modules that write.

use hearth_store::rusqlite::{Connection, OptionalExtension, params};

use crate::{
    Board,
    error::BoardError,
    model::{BoardInfo, Landing, PAGE_SIZE, Post, Thread},
    rows::{POST_COLUMNS, board_from, load_board, load_post, post_from},
};

impl Board {
    /// Every board, in the admin's order.
    pub async fn boards(&self) -> Result<Vec<BoardInfo>, BoardError> {
        self.store
            .read(|c| {
                let mut stmt = c.prepare(
                    "SELECT b.id, b.name, b.position, b.locked, b.slow_secs,
                            (SELECT count(*) FROM board_posts p
                             WHERE p.board_id = b.id AND p.parent_id IS NULL AND p.hidden = 0)
                     FROM board_boards b ORDER BY b.position, b.id",
                )?;
                let rows = stmt.query_map([], board_from)?.collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await
    }

    pub async fn board(&self, id: i64) -> Result<BoardInfo, BoardError> {
        self.store.read(move |c| load_board(c, id)).await
    }

    /// One page of a board's threads, pinned first, then by latest
    /// activity, each with its replies. `with_hidden` is for the admin.
    /// Returns the threads and whether there is a next page.
    pub async fn threads(
        &self,
        board: i64,
        page: usize,
        with_hidden: bool,
    ) -> Result<(Vec<Thread>, bool), BoardError> {
        self.store
            .read(move |c| {
                load_board(c, board)?;
                let mut stmt = c.prepare(&format!(
                    "SELECT {POST_COLUMNS} FROM board_posts
                     WHERE board_id = ?1 AND parent_id IS NULL AND (hidden = 0 OR ?2)
                     ORDER BY pinned DESC, activity DESC, origin DESC, seq DESC, id DESC
                     LIMIT ?3 OFFSET ?4"
                ))?;
                let mut posts: Vec<Post> = stmt
                    .query_map(
                        params![
                            board,
                            with_hidden,
                            PAGE_SIZE as i64 + 1,
                            (page * PAGE_SIZE) as i64
                        ],
                        post_from,
                    )?
                    .collect::<Result<_, _>>()?;
                let more = posts.len() > PAGE_SIZE;
                posts.truncate(PAGE_SIZE);
                let threads = posts
                    .into_iter()
                    .map(|post| {
                        let replies = replies(c, post.id, with_hidden)?;
                        Ok(Thread { post, replies })
                    })
                    .collect::<Result<_, BoardError>>()?;
                Ok((threads, more))
            })
            .await
    }

    /// One thread with all its replies.
    pub async fn thread(&self, id: i64, with_hidden: bool) -> Result<Thread, BoardError> {
        self.store
            .read(move |c| {
                let post = load_post(c, id)?;
                if post.parent_id.is_some() || (post.hidden && !with_hidden) {
                    return Err(BoardError::NotFound);
                }
                let replies = replies(c, id, with_hidden)?;
                Ok(Thread { post, replies })
            })
            .await
    }

    /// Pinned threads of every board, for the landing page's notices.
    pub async fn pinned(&self) -> Result<Vec<Post>, BoardError> {
        self.store
            .read(|c| {
                let rows = c
                    .prepare(&format!(
                        "SELECT {POST_COLUMNS} FROM board_posts
                         WHERE pinned = 1 AND hidden = 0 AND parent_id IS NULL
                         ORDER BY activity DESC LIMIT 10"
                    ))?
                    .query_map([], post_from)?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await
    }

    /// The newest posts of every board, hidden ones included, for the
    /// admin's moderation list.
    pub async fn recent(&self, limit: usize) -> Result<Vec<Post>, BoardError> {
        self.store
            .read(move |c| {
                let rows = c
                    .prepare(&format!(
                        "SELECT {POST_COLUMNS} FROM board_posts ORDER BY id DESC LIMIT ?1"
                    ))?
                    .query_map([limit as i64], post_from)?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await
    }

    /// The newest event id: where a freshly loaded page starts listening.
    pub async fn last_event_id(&self) -> Result<i64, BoardError> {
        self.store
            .read(|c| {
                Ok(
                    c.query_row("SELECT coalesce(max(id), 0) FROM board_events", [], |r| {
                        r.get(0)
                    })?,
                )
            })
            .await
    }

    /// Full-text search over visible posts, best matches first.
    pub async fn search(&self, query: &str) -> Result<Vec<Post>, BoardError> {
        // Each word becomes a quoted FTS5 term, so punctuation in what a
        // guest types is never FTS5 syntax.
        let terms: Vec<String> = query
            .split_whitespace()
            .take(8)
            .map(|w| format!("\"{}\"", w.replace('"', "")))
            .filter(|t| t.len() > 2)
            .collect();
        if terms.is_empty() {
            return Ok(vec![]);
        }
        let fts = terms.join(" ");
        self.store
            .read(move |c| {
                let mut stmt = c.prepare(&format!(
                    "SELECT {} FROM board_posts_fts f JOIN board_posts p ON p.id = f.rowid
                     WHERE board_posts_fts MATCH ?1 AND p.hidden = 0
                     ORDER BY rank LIMIT 50",
                    POST_COLUMNS
                        .split(", ")
                        .map(|col| format!("p.{col}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))?;
                let rows = stmt
                    .query_map([fts], post_from)?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await
    }

    /// The landing page's title and welcome.
    pub async fn landing(&self) -> Result<Landing, BoardError> {
        self.store
            .read(|c| {
                let raw: Option<Vec<u8>> = c
                    .query_row(
                        "SELECT value FROM settings WHERE key = 'board.landing'",
                        [],
                        |r| r.get(0),
                    )
                    .optional()?;
                Ok(raw.and_then(|r| decode_landing(&r)).unwrap_or_default())
            })
            .await
    }
}

fn replies(c: &Connection, thread: i64, with_hidden: bool) -> Result<Vec<Post>, BoardError> {
    let mut stmt = c.prepare(&format!(
        "SELECT {POST_COLUMNS} FROM board_posts
         WHERE parent_id = ?1 AND (hidden = 0 OR ?2) ORDER BY hlc, origin, seq, id"
    ))?;
    let rows = stmt
        .query_map(params![thread, with_hidden], post_from)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The landing settings: title and welcome joined by the ASCII unit
/// separator, which neither may contain.
fn decode_landing(raw: &[u8]) -> Option<Landing> {
    let text = std::str::from_utf8(raw).ok()?;
    let (title, welcome) = text.split_once('\u{1f}')?;
    Some(Landing {
        title: title.to_string(),
        welcome: welcome.to_string(),
    })
}
