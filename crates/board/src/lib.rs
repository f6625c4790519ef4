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
//!
//! This file is the crate's front: `Board` itself (its state and what
//! every part shares) and the re-exports. The rest is split by concern, each
//! module adding its own `impl Board` block:
//!
//! - `model`: the public types; `error`: `BoardError`; `rate`: flood control.
//! - `rows`: decoding rows and loading one post or board, shared by all.
//! - `read`: what pages read; `guests`: guest ids and nicknames.
//! - `posting`, `moderation`, `events`: writing posts, the admin's tools,
//!   and live events with replay.
//! - `photo`, `text`: photo cleaning and post rendering (public).
//! - `share`: boards shared with paired Hearths: events, order, ingest.
//!
//! Modules import the crate root for `Board`; the root imports only
//! `model`, `error` and `rate`, which import none of the others (`model`
//! names `photo::Kind`, and `photo` imports only `error`), so no module
//! imports one that imports it back.

mod error;
mod events;
mod guests;
mod model;
mod moderation;
pub mod photo;
mod posting;
mod rate;
mod read;
mod rows;
pub mod share;
pub mod text;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use hearth_store::Store;
use tokio::sync::{Mutex, broadcast};

pub use error::BoardError;
pub use model::{
    Ban, BoardInfo, Event, Guest, Landing, LogEntry, MAX_REPLAY, NewPost, PAGE_SIZE, Post,
    Renderer, Thread,
};
pub use rate::RateLimit;
pub use share::{Batch, Ingested, Origin, WireEvent};

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
    /// This Hearth's identity as the origin of shared events (`share`).
    origin: Arc<std::sync::OnceLock<Arc<share::Origin>>>,
    /// Woken when this Hearth makes an event on a shared board.
    share_wake: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board")
            .field("photos", &self.photos)
            .finish()
    }
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
            origin: Arc::default(),
            share_wake: Arc::default(),
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

    /// Where photos are stored.
    pub fn photo_dir(&self) -> &Path {
        &self.photos
    }
}
