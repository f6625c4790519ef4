//! The hotspot board: what guests on the Wi-Fi read and write.
//!
//! Boards hold threads; threads hold replies; any post may carry a photo.
//! Every change a live page must see (a post, a removal, a pin) is written
//! to `board_events` in the same transaction as the change and then
//! broadcast, in event order, to every open page. A page that reconnects
//! says which event it saw last and gets the rest from the table, so no
//! update is lost to a flaky phone connection.
//!
//! Posts are rendered to HTML once, by a renderer the web layer supplies,
//! and that HTML goes to every listener: a thousand open phones cost one
//! render per post.

use hearth_system::unix_now;
mod events;
mod moderation;
pub mod photo;
mod posting;
pub mod text;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use hearth_store::{
    Store, StoreError,
    rusqlite::{self, Connection, OptionalExtension, Row, params},
};
use serde::Serialize;
use tokio::sync::{Mutex, broadcast};

pub use moderation::{Ban, LogEntry};
pub use posting::{NewPost, RateLimit};

/// What can go wrong. `Invalid`, `Refused` and `NotFound` texts are shown
/// to people as they are; `Internal` goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("{0}")]
    Invalid(String),
    /// Not allowed now: banned, locked, slow mode, too fast.
    #[error("{message}")]
    Refused {
        message: String,
        /// Seconds until trying again makes sense, when that is known.
        retry_after: Option<u64>,
    },
    #[error("That post or board does not exist.")]
    NotFound,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for BoardError {
    fn from(e: StoreError) -> Self {
        BoardError::Internal(e.to_string())
    }
}

impl From<rusqlite::Error> for BoardError {
    fn from(e: rusqlite::Error) -> Self {
        BoardError::Internal(e.to_string())
    }
}

/// One board as listed.
#[derive(Clone, Debug, Serialize)]
pub struct BoardInfo {
    pub id: i64,
    pub name: String,
    pub position: i64,
    pub locked: bool,
    pub slow_secs: u32,
    pub threads: u64,
}

/// One post, thread or reply.
#[derive(Clone, Debug, Serialize)]
pub struct Post {
    pub id: i64,
    pub board_id: i64,
    pub parent_id: Option<i64>,
    pub nickname: String,
    /// The body as safe HTML (escaped, links made clickable).
    pub html: String,
    pub photo: Option<String>,
    pub created_at: i64,
    pub pinned: bool,
    pub hidden: bool,
    /// Posted by the admin.
    pub by_admin: bool,
}

/// A thread with its replies.
#[derive(Clone, Debug, Serialize)]
pub struct Thread {
    pub post: Post,
    pub replies: Vec<Post>,
}

/// A guest's chosen name.
#[derive(Clone, Debug)]
pub struct Guest {
    pub id: String,
    pub nickname: String,
}

/// The landing page's words, set by the admin.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Landing {
    pub title: String,
    pub welcome: String,
}

impl Default for Landing {
    fn default() -> Self {
        Landing {
            title: "Welcome to this Hearth".into(),
            welcome: "A board for everyone on this Wi-Fi. Pick a name and say hello.".into(),
        }
    }
}

/// A change for live pages: the SSE event id, its board, a name
/// (`post`, `remove`, `refresh`) and its data.
#[derive(Clone, Debug)]
pub struct Event {
    pub id: i64,
    pub board_id: i64,
    pub kind: &'static str,
    pub data: Arc<str>,
}

/// Turns a post into the HTML fragment pages show and receive live.
pub type Renderer = Arc<dyn Fn(&Post) -> String + Send + Sync>;

/// Threads per page.
pub const PAGE_SIZE: usize = 20;

/// Events replayed to a page that reconnects; one further behind reloads.
pub const MAX_REPLAY: usize = 500;

/// The board domain; cheap to clone.
#[derive(Clone)]
pub struct Board {
    store: Store,
    photos: Arc<PathBuf>,
    events: broadcast::Sender<Arc<Event>>,
    renderer: Renderer,
    /// Held while a change is written and broadcast, so events go out in
    /// id order and a reconnecting page's replay has no gap.
    publish: Arc<Mutex<()>>,
    limits: Arc<RateLimit>,
    /// Bumped after every committed change, so pages built from an older
    /// state can be told apart and rebuilt (see [`Board::version`]).
    version: Arc<AtomicU64>,
    /// Nicknames by guest id: every page a guest loads needs its name, and
    /// names change only through [`Board::set_nickname`].
    guests: Arc<std::sync::Mutex<HashMap<String, String>>>,
}

/// Guests whose names are kept in memory before the map starts over.
const GUEST_CACHE: usize = 10_000;

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board")
            .field("photos", &self.photos)
            .finish()
    }
}

const POST_COLUMNS: &str =
    "id, board_id, parent_id, nickname, body, photo, created_at, pinned, hidden, guest_id IS NULL";

fn post_from(r: &Row<'_>) -> rusqlite::Result<Post> {
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
    })
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

fn load_board(c: &Connection, id: i64) -> Result<BoardInfo, BoardError> {
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

fn board_from(r: &Row<'_>) -> rusqlite::Result<BoardInfo> {
    Ok(BoardInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        position: r.get(2)?,
        locked: r.get::<_, i64>(3)? != 0,
        slow_secs: r.get::<_, i64>(4)? as u32,
        threads: r.get::<_, i64>(5)? as u64,
    })
}

impl Board {
    /// The board over `store`, with photos under `data_dir/board/photos`.
    pub fn new(store: Store, data_dir: &Path, renderer: Renderer) -> Board {
        let (events, _) = broadcast::channel(1024);
        Board {
            store,
            photos: Arc::new(data_dir.join("board").join("photos")),
            events,
            renderer,
            publish: Arc::new(Mutex::new(())),
            limits: Arc::new(RateLimit::default()),
            version: Arc::new(AtomicU64::new(0)),
            guests: Arc::default(),
        }
    }

    /// A number that changes whenever anything a page shows may have
    /// changed (posts, moderation, boards, the landing text). Read it
    /// *before* loading what a page shows: a change that lands in between
    /// then makes the page look older than it is, never newer, so a cache
    /// keyed by it can only rebuild too often, never serve stale content.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Called after every committed change.
    pub(crate) fn changed(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    fn remember_guest(&self, guest: &Guest) {
        let mut map = self.guests.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= GUEST_CACHE && !map.contains_key(&guest.id) {
            map.clear();
        }
        map.insert(guest.id.clone(), guest.nickname.clone());
    }

    /// Where photos are stored.
    pub fn photo_dir(&self) -> &Path {
        &self.photos
    }

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
                     ORDER BY pinned DESC, last_activity DESC, id DESC
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
                         ORDER BY last_activity DESC LIMIT 10"
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

    /// The guest with this cookie id, if it chose a name.
    pub async fn guest(&self, id: &str) -> Result<Option<Guest>, BoardError> {
        let known = self
            .guests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned();
        if let Some(nickname) = known {
            return Ok(Some(Guest {
                id: id.to_string(),
                nickname,
            }));
        }
        let id = id.to_string();
        let found: Option<Guest> = self
            .store
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT id, nickname FROM board_guests WHERE id = ?1",
                    [&id],
                    |r| {
                        Ok(Guest {
                            id: r.get(0)?,
                            nickname: r.get(1)?,
                        })
                    },
                )
                .optional()?)
            })
            .await
            .map_err(|e: BoardError| e)?;
        if let Some(g) = &found {
            self.remember_guest(g);
        }
        Ok(found)
    }

    /// Sets a guest's nickname, creating the guest (with a new random id)
    /// when `id` is `None` or unknown.
    pub async fn set_nickname(
        &self,
        id: Option<String>,
        nickname: &str,
    ) -> Result<Guest, BoardError> {
        let nickname = posting::check_nickname(nickname)?;
        let id = match id.filter(|i| i.len() == 32 && i.bytes().all(|b| b.is_ascii_hexdigit())) {
            Some(i) => i,
            None => {
                let mut rnd = [0u8; 16];
                getrandom::fill(&mut rnd).map_err(|e| BoardError::Internal(e.to_string()))?;
                hex::encode(rnd)
            }
        };
        let (gid, name) = (id.clone(), nickname.clone());
        self.store
            .write(move |c| {
                c.execute(
                    "INSERT INTO board_guests (id, nickname, created_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (id) DO UPDATE SET nickname = excluded.nickname",
                    params![gid, name, unix_now()],
                )?;
                Ok::<_, BoardError>(())
            })
            .await?;
        let guest = Guest { id, nickname };
        self.remember_guest(&guest);
        Ok(guest)
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
         WHERE parent_id = ?1 AND (hidden = 0 OR ?2) ORDER BY id"
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
